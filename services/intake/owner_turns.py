"""Requests of one intake process write a case-owner bucket in turn, each on top of the last.

Without it, concurrent requests for neighbouring cases (one bucket document) all read the bucket,
all try their conditional write, and all but one lose the race, read the bucket again, wait and try
again (ownership.py). Here a request takes its buckets' turns (one asyncio lock per bucket, taken in
order) before it writes, and finds the bucket as the request before it wrote it: it applies its
events to that copy instead of reading the store again, and its conditional write finds the version
it expects. Writes by another process still lose their race and are retried as before.

The copies are kept only while a request that read the bucket is still in flight, so memory follows
the requests in flight, not the buckets written. Nothing here answers a check: each request still
reads the store before it admits its events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any


class OwnerTurns:
    def __init__(self) -> None:
        self._readers: dict[str, int] = {}  # bucket → requests in flight that read it
        self._locks: dict[str, asyncio.Lock] = {}
        self._written: dict[str, tuple[int, dict[str, Any]]] = {}  # bucket → (sequence, document)
        self._sequence = 0

    @contextlib.asynccontextmanager
    async def reading(self, buckets: Iterable[str]) -> AsyncIterator[int]:
        """Around a request, from before its read of `buckets`: yields the sequence number its read
        is at least as new as (for `newer_than`)."""
        held = sorted(set(buckets))
        for bucket in held:
            self._readers[bucket] = self._readers.get(bucket, 0) + 1
        try:
            yield self._sequence
        finally:
            for bucket in held:
                left = self._readers[bucket] - 1
                if left:
                    self._readers[bucket] = left
                else:
                    del self._readers[bucket]
                    self._locks.pop(bucket, None)
                    self._written.pop(bucket, None)

    @contextlib.asynccontextmanager
    async def turn(self, buckets: Iterable[str]) -> AsyncIterator[None]:
        """Hold `buckets` (each read under `reading`) while writing them, in a fixed order."""
        taken: list[asyncio.Lock] = []
        try:
            for bucket in sorted(set(buckets)):
                lock = self._locks.setdefault(bucket, asyncio.Lock())
                await lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()

    def newer_than(self, sequence: int, buckets: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The buckets this process wrote after a read at `sequence`, as written."""
        out = {}
        for bucket in buckets:
            written = self._written.get(bucket)
            if written is not None and written[0] > sequence:
                out[bucket] = written[1]
        return out

    def wrote(self, documents: Iterable[dict[str, Any]]) -> None:
        """Bucket documents this process has just written (kept while a reader of theirs is in flight)."""
        for document in documents:
            bucket = document["_id"]
            if bucket in self._readers:
                self._sequence += 1
                self._written[bucket] = (self._sequence, document)

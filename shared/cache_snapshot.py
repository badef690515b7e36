"""The documents a projection keeps in memory (ADR 0012), saved at a graceful stop and put back at
the next start (ADR 0023).

After a restart every known case is read from the store again until the process has written it
once: the events of the first minutes cost a read each. The documents kept at the stop are what
those events touch (the most recently used), so a graceful stop saves them, in large chunks
beside the cases, and the next start puts them back while the open-case index and the bucket copy
load. Exact under the rule of the open-case index's snapshot (services/deadline/open_cases.py):

- saved after the consumer's last commit, with the group's committed offsets: every case write
  comes from a record at or past them, so while they are still the group's the store holds no
  write of these cases that the saved documents lack once those records are applied again;
- taken out of the store by every assignment, before this process applies a record (a later start
  cannot meet it once a write it lacks may exist), and used only by an assignment of every
  partition whose committed offsets are the saved ones, into the same collection (not one dropped
  and made again by a rebuild);
- put back only where this process has not written or dropped the case since (DocumentCache.warm),
  and never past the cache's bytes: what the process wrote wins.

A start without a snapshot, or with one that does not match, reads the store as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson.binary import Binary
from prometheus_client import Counter
from pymongo.asynchronous.collection import AsyncCollection

from shared.document_cache import DocumentCache
from shared.kafka import Membership
from shared.sole_writer import SoleWriterCopy
from shared.store import Document, collection_uuid, finished, take_out

log = logging.getLogger(__name__)

HEAD = "head"
CHUNK_BYTES = 4 * 2**20  # documents per chunk document, well under the store's 16 MB
COPIES_FIRST_S = 60.0  # the longest a restore waits for the in-memory copies the lists read

RESTORED = Counter(
    "tthc_projection_cache_restored_total", "Case documents put back in memory from a stop's snapshot", ["projection"]
)


class CacheSnapshot:
    """Saves `cache` at a graceful stop and puts it back at the next start (an Ownership: told of
    every assignment after the cache and the copies in `after`)."""

    def __init__(self, cache: DocumentCache, collection: AsyncCollection[Document], max_bytes: int) -> None:
        self.cache = cache
        self.collection = collection
        self.max_bytes = max_bytes
        self.snapshots: AsyncCollection[Document] = collection.database[f"{collection.name}_cache_snapshot"]
        self.restored = 0  # the last restore: documents put back (or held newer: written meanwhile)
        # the copies the officers' lists and indicators read (ADR 0008): they load first, the store
        # being theirs until then (a restore only spares the reads of events)
        self.after: list[SoleWriterCopy] = []
        self._task: asyncio.Task[None] | None = None  # the restore
        self._taking: asyncio.Task[Document | None] | None = None  # the assignment's take-out of the head

    # shared.kafka.Ownership
    def revoked(self) -> None:
        self._cancel()

    async def assigned(self, sole_owner: bool, membership: Membership | None = None) -> None:
        """The snapshot taken out of the store before this process applies a record (in a task: the
        rebalance waits on no store; the consumer awaits it, `before_applying`), and put back if it
        is this assignment's."""
        self._cancel()
        self._taking = asyncio.create_task(take_out(self.snapshots, HEAD), name=f"{self.cache.name}-cache-claim")
        if sole_owner and membership is not None and self.max_bytes > 0:
            generation = self.cache.warming()
            self._task = asyncio.create_task(
                self._restore(self._taking, membership, generation), name=f"{self.cache.name}-cache-restore"
            )

    async def before_applying(self) -> None:
        """The snapshot is out of the store (again, if the store was away the first time)."""
        taking = self._taking
        if taking is None or (taking.done() and (taking.cancelled() or taking.exception() is not None)):
            taking = asyncio.create_task(take_out(self.snapshots, HEAD), name=f"{self.cache.name}-cache-claim")
            self._taking = taking
        await finished(taking)

    def _cancel(self) -> None:
        for task in (self._task, self._taking):
            if task is not None:
                task.cancel()
        self._task = self._taking = None

    async def wait(self) -> None:
        """Until a restore in progress is over (tests, benchmarks)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([self._task])

    async def forget(self) -> None:
        """Before a write that comes from no record (a refold, maybe before the first assignment):
        a snapshot would lack it."""
        await self.snapshots.delete_one({"_id": HEAD})

    async def _restore(self, taking: asyncio.Task[Document | None], membership: Membership, generation: int) -> None:
        restored = 0
        head: Document | None = None
        try:
            head = await asyncio.shield(taking)  # (the consumer awaits it too: not cancelled with the restore)
            if head is None:
                return
            if head.get("offsets") != dict(membership.committed) or head.get("collection") != await collection_uuid(
                self.collection
            ):
                log.info("cache snapshot not for these offsets; the store is read", extra={"cache": self.cache.name})
                return
            loads = [task for copy in self.after if (task := copy.ensure_loading()) is not None]
            if loads:
                await asyncio.wait(loads, timeout=COPIES_FIRST_S)
            chunks = self.snapshots.find({"save": head["save"]}).sort("_id", 1)
            async for chunk in chunks:
                for key, data in zip(chunk["keys"], chunk["documents"], strict=True):
                    if not self.cache.warm(generation, key, bytes(data)):
                        return
                    restored += 1
        except Exception as exc:  # what was put back is exact; the rest is read from the store
            log.warning("cache snapshot not put back", extra={"cache": self.cache.name, "error": repr(exc)})
        finally:
            self.cache.warmed(generation)
            self.restored = restored
            if head is not None:
                RESTORED.labels(self.cache.name).inc(restored)
                log.info("cache snapshot put back", extra={"cache": self.cache.name, "documents": restored})
                with contextlib.suppress(Exception):  # used once: the next save deletes what is left
                    await self.snapshots.delete_many({"save": head.get("save")})

    async def save(self, offsets: Mapping[str, int | None], timeout: float = 20) -> bool:
        """At a graceful stop, after the consumer's last commit (`offsets`), while it still holds its
        partitions: the most recently used documents, within `max_bytes`. True if saved."""
        if not offsets or not self.cache.usable or self.max_bytes <= 0:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._save(offsets)
        except Exception as exc:  # the next start reads the store
            log.warning("cache snapshot not saved", extra={"cache": self.cache.name, "error": repr(exc)})
            return False
        return True

    async def _save(self, offsets: Mapping[str, int | None]) -> None:
        save = uuid.uuid4().hex
        generation = self.cache.generation
        entries = self.cache.recent(self.max_bytes)
        chunks = _chunked(entries)
        for n, part in enumerate(chunks):  # one at a time: a few megabytes each
            keys, documents = [key for key, _ in part], [Binary(data) for _, data in part]
            chunk = {"_id": f"{save}:{n:06d}", "save": save, "keys": keys, "documents": documents}
            await self.snapshots.insert_one(chunk)
        head = {
            "offsets": dict(offsets),
            "save": save,
            "chunks": len(chunks),
            "documents": len(entries),
            "collection": await collection_uuid(self.collection),
            "saved_at": datetime.now(UTC),
        }
        await self.snapshots.replace_one({"_id": HEAD}, head, upsert=True)
        if self.cache.generation != generation:  # revoked meanwhile: another member may write now
            await self.snapshots.delete_one({"_id": HEAD, "save": save})
            raise RuntimeError("partitions revoked while the snapshot was saved")
        await self.snapshots.delete_many({"save": {"$ne": save}, "_id": {"$ne": HEAD}})
        log.info("cache snapshot saved", extra={"cache": self.cache.name, "documents": len(entries)})


def _chunked(entries: list[tuple[Any, bytes]]) -> list[list[tuple[Any, bytes]]]:
    """Consecutive entries, CHUNK_BYTES at most a part (a larger document alone)."""
    parts: list[list[tuple[Any, bytes]]] = []
    size = 0
    for entry in entries:
        if not parts or size + len(entry[1]) > CHUNK_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(entry)
        size += len(entry[1])
    return parts

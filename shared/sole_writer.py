"""A read model copied into memory, exact while this process is the only writer of it (ADR 0008).

A subclass implements `load()` (replace the copy with what the store holds) and is told of its own
writes. This base follows the consumer's partitions (`shared.kafka.Ownership`): revoked → unusable
at once, before any other member of the group can write; every partition assigned → load again in
the background (others may have written meanwhile), unless the assignment follows the last one
that gave this member every partition, in the next generation of the group: then no other member
held a partition in between, so the copy (or the load in progress) is kept and usable again at
once; a load that fails is retried at the next `ensure_loading()` (the projection calls it with
each batch) or, with no batch coming, by a retry timer (2 s, doubling up to a minute). While
unusable, a reader may first wait a little (`wait_usable`) while a rebalance or a load is in
progress, for the first WAIT_S seconds of it; then the store answers, or, while this process is
the only writer and still loads (`loading`), the reader decides (the lists answer 503).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod

from prometheus_client import Gauge

from shared.kafka import Membership

log = logging.getLogger(__name__)
RETRY_FIRST_S = 2.0
RETRY_MAX_S = 60.0
# How long after a start, a rebalance or a load's start a reader waits for the copy before it reads
# the store: a snapshot loads in a second or two, a scan of the store takes longer (bench/results/).
WAIT_S = 10.0
# how long `unassigned` holds after a start or a revocation without the next assignment
UNASSIGNED_WAIT_S = 60.0


class SoleWriterCopy(ABC):
    name = "copy"

    def __init__(self, usable_gauge: Gauge) -> None:
        self.usable = False
        self.loaded = False  # the copy holds the store as of its load, moved by this process's writes since
        self.loads = 0
        self.membership: Membership | None = None  # of the assignment that made this process the only writer
        self._usable_gauge = usable_gauge
        self._sole = False
        self._task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = RETRY_FIRST_S
        self._assigned = False  # an assignment is held (not between a revocation and the next one)
        self._unassigned_since = time.monotonic()
        self._usable_now = asyncio.Event()
        self._wait_until = time.monotonic() + WAIT_S  # readers wait for the copy until then

    @abstractmethod
    async def load(self) -> None:
        """Replace the copy with what the store holds (each subclass reads its own collections)."""

    @property
    def loading(self) -> bool:
        """This process is the only writer and the copy is not loaded yet: it will be (the store
        should not be burdened meanwhile with what the copy will soon answer)."""
        return self._sole and not self.loaded

    @property
    def unassigned(self) -> bool:
        """No assignment is held since a start or a revocation less than UNASSIGNED_WAIT_S ago (the
        first assignment or a rebalance in progress): whether this process will be the only writer,
        and so load the copy, is not known yet. Bounded in time, so that a reader that waits for it
        (the gauges) does not wait forever on a broker that is away or a copy discarded without a
        rebalance."""
        return not self._assigned and time.monotonic() - self._unassigned_since < UNASSIGNED_WAIT_S

    def revoked(self) -> None:
        """Partitions are being taken away: another member may write from now on. The copy, and a
        load in progress, are kept for an assignment that follows without a generation between."""
        if self.usable:  # a rebalance begins: readers may wait for its end
            self._wait_until = time.monotonic() + WAIT_S
        self.usable = False
        self._sole = False
        if self._assigned:
            self._unassigned_since = time.monotonic()
        self._assigned = False
        self._usable_now.clear()
        self._usable_gauge.set(0)
        self._retry_delay = RETRY_FIRST_S
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def discard(self) -> None:
        """Another member may have written: what the copy holds, or a load in progress would, is void."""
        self.revoked()
        self.loaded = False
        self.membership = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def assigned(self, sole_owner: bool, membership: Membership | None = None) -> None:
        kept = sole_owner and membership is not None and membership.follows(self.membership)
        if not kept:
            self.discard()
        self.revoked()
        self.membership = membership if sole_owner else None
        self._sole = sole_owner
        self._assigned = True
        if kept and self.loaded:
            self._set_usable()
        elif sole_owner and (self._task is None or self._task.done()):
            self._wait_until = time.monotonic() + WAIT_S  # a load starts: readers may wait for it
        self.ensure_loading()

    async def before_applying(self) -> None:  # noqa: B027 - a hook the copies may override, not abstract
        """What must be done before a record of the assignment is applied (nothing, here)."""

    async def wait_usable(self) -> bool:
        """Whether the copy is usable, after waiting while a rebalance or a load is in progress, up
        to WAIT_S after it began (not while another member holds partitions: the store answers)."""
        while not self._usable_now.is_set() and (self.loading or not self._assigned):
            left = self._wait_until - time.monotonic()
            if left <= 0:
                break
            try:  # looked at again every half second: the assignment may go to others meanwhile
                await asyncio.wait_for(self._usable_now.wait(), min(left, 0.5))
            except TimeoutError:
                pass
        return self.usable

    def ensure_loading(self) -> asyncio.Task[None] | None:
        """Start a load when this process is the only writer and the copy is neither loaded nor loading."""
        if self._sole and not self.loaded and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._load_once(), name=f"{self.name}-load")
        return self._task

    async def settle(self) -> None:
        """Wait for a load in progress (or retry a failed one): for copies moved by deltas, which
        must not miss a batch applied between the load and the copy."""
        task = self.ensure_loading()
        if task is not None and not self.usable:
            await asyncio.wait([task])

    async def _load_once(self) -> None:
        started = time.perf_counter()
        try:
            await self.load()
        except Exception as exc:  # the store is down or swamped: the store answers (and fails there, visibly)
            delay = self._retry_delay
            self._retry_delay = min(delay * 2, RETRY_MAX_S)
            # a batch may retry sooner (ensure_loading); with none coming, the timer does
            self._retry = asyncio.get_running_loop().call_later(delay, self.ensure_loading)
            log.warning(
                "in-memory copy not loaded; the store answers",
                extra={"copy": self.name, "error": repr(exc), "retry_in_s": delay},
            )
            return
        self._retry_delay = RETRY_FIRST_S
        self.loaded = True
        self.loads += 1
        if self._sole:  # else at the next assignment, if it follows this one
            self._set_usable()
        log.info("in-memory copy loaded", extra={"copy": self.name, "seconds": round(time.perf_counter() - started, 2)})

    def _set_usable(self) -> None:
        self.usable = True
        self._usable_now.set()
        self._usable_gauge.set(1)

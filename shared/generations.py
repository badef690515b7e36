"""Projection generations: which collections and consumer group a service reads and feeds (ADR 0020).

A rebuild writes a projection again from the log into a new generation (`cases_g2`, `facts_g2`,
`agg_*_g2`, consumer group `tthc-deadline-g2`) while the live one keeps answering, then moves the
pointer, one document of the service's own `projections` collection. The services read it at start
and poll it; a service that sees a new generation switches to it (shared/service.py). Generation 1
is the names a store had before generations (`cases`, `tthc-deadline`): no pointer means 1.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from shared.kafka import topic_partitions
from shared.settings import Settings
from shared.store import Document, mongo_client, service_database

POINTERS = "projections"
FIRST = 1


def named(base: str, generation: int) -> str:
    """A collection's (or consumer group's) name in a generation: generation 1 keeps the plain name."""
    return base if generation <= FIRST else f"{base}_g{generation}"


def group_named(base: str, generation: int) -> str:
    return base if generation <= FIRST else f"{base}-g{generation}"


async def pointer(db: AsyncDatabase[Document], service: str) -> Document | None:
    """`{_id: service, generation, group_id, previous_group, switched_at}`, or None (generation 1)."""
    return await db[POINTERS].find_one({"_id": service})


async def live_generation(db: AsyncDatabase[Document], service: str) -> int:
    found = await pointer(db, service)
    return int(found["generation"]) if found else FIRST


async def live_generation_of(settings: Settings, service: str) -> int:
    """The live generation, read with a client of its own (a rebuild, before it builds its context)."""
    client = mongo_client(settings.mongo_uri, settings.store_profile)
    try:
        return await live_generation(service_database(client, settings, service), service)
    finally:
        await client.close()


async def switch_to(
    db: AsyncDatabase[Document], service: str, generation: int, group_id: str, previous_group: str
) -> None:
    """The switch: one document written, so every reader sees the old generation or the new one.
    `previous_group`: the live generation's consumer group, whose offsets say, at any later start,
    below which offsets the previous generation already derived events."""
    document = {
        "_id": service,
        "generation": generation,
        "group_id": group_id,
        "previous_group": previous_group,
        "switched_at": datetime.now(UTC),
    }
    await db[POINTERS].replace_one({"_id": service}, document, upsert=True)


async def committed_offsets(bootstrap: str, group_id: str, topic: str) -> dict[int, int]:
    """A consumer group's committed offset per partition of `topic` (0 where it has none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        offsets: dict[int, int] = {}
        for tp in await topic_partitions(consumer, topic):
            offsets[tp.partition] = await consumer.committed(tp) or 0
        return offsets
    finally:
        await consumer.stop()


async def commit_offsets(bootstrap: str, group_id: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit `offsets` for a group no member holds yet (the rebuilt generation's), so its first
    consumer continues where the rebuild stopped."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in offsets]
        consumer.assign(partitions)
        await consumer.commit({TopicPartition(topic, p): offset for p, offset in offsets.items()})
    finally:
        await consumer.stop()


# Close enough to the live generation's position to switch, under a steady stream that keeps
# moving it (for this long): the rest is applied by the rebuilt generation's own consumer, quietly,
# after the switch.
SWITCH_LAG = 2000
CLOSE_FOR_S = 2.0


@dataclass
class Progress:
    """A replay's progress, printed every `every_s`: cases, events applied, events/s, time left."""

    report: Callable[[str], object] = print
    every_s: float = 5.0
    started: float = field(default_factory=time.monotonic)
    events: int = 0
    records: int = 0
    cases: set[int] = field(default_factory=set)
    left: int = 0
    _last: float = 0.0

    def add(self, records: list[ConsumerRecord], applied: int, left: int) -> None:
        self.events += applied
        self.records += len(records)
        self.cases.update(hash(r.key) for r in records)
        self.left = left
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.report(self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.records / elapsed
        eta = f"{self.left / rate:.0f} s" if rate > 0 else "?"
        return (
            f"cases {len(self.cases)} · events applied {self.events} · {self.events / elapsed:.0f} events/s"
            f" · {self.left} records to go · about {eta} left"
        )

    def summary(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        return {
            "cases": len(self.cases),
            "events_applied": self.events,
            "records_read": self.records,
            "seconds": round(elapsed, 2),
            "events_per_s": round(self.events / elapsed, 1) if elapsed > 0 else 0.0,
        }


Apply = Callable[[list[ConsumerRecord]], Awaitable[int]]  # a batch applied: the events applied


async def replay(settings: Settings, apply: Apply, progress: Progress, follow: str | None = None) -> dict[int, int]:
    """tthc.case-events from offset 0 through `apply`, up to where the consumer group `follow`
    (the live generation's) has committed, or to the log's end without one; returns the offsets
    reached per partition. Never past `follow`'s offsets: what the live generation has not applied
    yet, it still derives events from, and the rebuilt one must not have applied it quietly."""
    topic = settings.case_events_topic
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=settings.poll_max_records,
    )
    watcher = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=follow, enable_auto_commit=False)
    await reader.start()
    await watcher.start()
    try:
        partitions = await topic_partitions(reader, topic)
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        close_since: float | None = None
        while True:
            targets = await _targets(watcher, partitions, follow)
            positions = {tp: await reader.position(tp) for tp in partitions}
            left = sum(max(targets[tp] - positions[tp], 0) for tp in partitions)
            close_since = (close_since or time.monotonic()) if left <= SWITCH_LAG else None
            if left == 0 or (close_since is not None and time.monotonic() - close_since > CLOSE_FOR_S):
                progress.left = left
                return {tp.partition: positions[tp] for tp in partitions}
            batch = await reader.getmany(timeout_ms=500, max_records=settings.poll_max_records)
            records: list[ConsumerRecord] = []
            for tp, part in batch.items():
                kept = [r for r in part if r.offset < targets[tp]]
                records.extend(kept)
                if len(kept) < len(part):  # read past the target: read again from there later
                    reader.seek(tp, part[len(kept)].offset)
            progress.add(records, await apply(records) if records else 0, left - len(records))
    finally:
        await reader.stop()
        await watcher.stop()


async def _targets(
    watcher: AIOKafkaConsumer, partitions: list[TopicPartition], follow: str | None
) -> dict[TopicPartition, int]:
    """How far the replay may go per partition: the log's end, or the followed group's offset."""
    ends: dict[TopicPartition, int] = await watcher.end_offsets(partitions)
    if follow is None:
        return ends
    targets = {}
    for tp in partitions:
        committed = await watcher.committed(tp)
        targets[tp] = ends[tp] if committed is None else min(committed, ends[tp])
    return targets

"""Kafka adapters: an idempotent publisher that answers only after acks, and a batch consumer.

Principle 2: producers are idempotent with acks=all; consumers commit only after their writes. A
consumer whose handler fails is restarted from its committed offsets, so nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from murmurhash2 import murmurhash2
from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

CONSUMER_LAG = Gauge(
    "tthc_consumer_lag_messages", "Messages not yet consumed, by consumer group and topic", ["group", "topic"]
)
CONSUMER_RESTARTS = Counter("tthc_consumer_restarts_total", "Consumer loops restarted after an error", ["group"])
CONSUMER_STUCK = Gauge(
    "tthc_consumer_stuck",
    "1 while a consumer is stuck: restarted from the same offsets 3 times, or records waiting and none applied",
    ["group"],
)
STUCK_AFTER_RESTARTS = 3  # restarts from the same offsets in a row (contract v1.1)
# A member whose heartbeats stop for this long (a killed process) leaves its group: the broker then
# rebalances and its partitions go to the others. What bounds a failover (docs/replicas.md).
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 1_000
LINGER_MIN_BYTES = 1024 * 1024  # with a linger, a fetch returns at this much or when the linger ends


# Kafka's default partitioner (murmur2 of the key, seed 0x9747b28c, positive, modulo the partition
# count), so a key lands where aiokafka or any Java client would put it; in C: aiokafka's pure
# Python murmur2 cost ~15 µs a key, a sixth of the intake's time per event. A unit test checks
# that both agree.
MURMUR2_SEED = 0x9747B28C


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    return partitions[(murmurhash2(key, MURMUR2_SEED) & 0x7FFFFFFF) % len(partitions)]


# Below the broker's default message.max.bytes (1,000,012): a larger record batch is refused whole.
MAX_BATCH_BYTES = 512 * 1024


class PublishFailed(Exception):
    """The broker did not acknowledge every message in time."""


class Publisher:
    def __init__(self, bootstrap: str, client_id: str, *, linger_ms: int = 5) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id=self.client_id,
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=self.linger_ms,
                    max_batch_size=MAX_BATCH_BYTES,
                    max_request_size=4 * 1024 * 1024,
                    request_timeout_ms=15_000,
                )
                try:
                    await producer.start()
                except Exception:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def start(self) -> None:
        try:
            await self._ensure()
        except Exception as exc:  # the service starts anyway; /readyz tells the truth
            log.warning("broker not reachable at start", extra={"error": str(exc)})

    async def publish(
        self,
        topic: str,
        messages: Sequence[tuple[bytes, bytes]],
        timeout: float,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Send (key, value) pairs and return only when the broker acknowledged every one.

        Messages are grouped per partition (the default partitioner, so a key lands where any
        other producer would put it) into record batches, in order: one future per batch instead
        of one per message.
        """
        try:
            async with asyncio.timeout(timeout):
                producer = await self._ensure()
                partitions = sorted(await producer.partitions_for(topic))
                grouped: dict[int, list[tuple[bytes, bytes]]] = {}
                for key, value in messages:
                    grouped.setdefault(partition_for(key, partitions), []).append((key, value))
                futures = []
                for partition, items in grouped.items():
                    batch = producer.create_batch()
                    for key, value in items:
                        if batch.append(key=key, value=value, timestamp=None, headers=headers or []) is None:
                            futures.append(await producer.send_batch(batch, topic, partition=partition))
                            batch = producer.create_batch()
                            if batch.append(key=key, value=value, timestamp=None, headers=headers or []) is None:
                                raise PublishFailed(f"a message of {len(value)} bytes is over the batch size")
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                results = await asyncio.gather(*futures, return_exceptions=True)
                errors = [r for r in results if isinstance(r, BaseException)]
                if errors:
                    raise errors[0]
        except (KafkaError, TimeoutError, OSError) as exc:
            await self._discard()
            raise PublishFailed(str(exc) or type(exc).__name__) from exc

    async def _discard(self) -> None:
        """Drop a producer after a failure: a new one gets a fresh idempotence session."""
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception:
                pass

    async def ready(self) -> bool:
        try:
            producer = await asyncio.wait_for(self._ensure(), 3)
            metadata = await asyncio.wait_for(producer.client.fetch_all_metadata(), 3)
            return bool(metadata.brokers())
        except Exception:
            return False

    async def stop(self) -> None:
        await self._discard()


Handler = Callable[[list[ConsumerRecord]], Awaitable[None]]
# How long a consumer may hold no partition of a topic the broker has before it rejoins. With more
# instances than partitions some instance legitimately holds none: it then rejoins this often.
ORPHANED_ASSIGNMENT_S = 15.0


@dataclass(frozen=True, slots=True)
class Membership:
    """Which member of which generation of the group an assignment went to, and the group's committed
    offsets of the partitions assigned ("topic:partition" → the next offset, None if never committed)."""

    member_id: str
    generation: int
    committed: Mapping[str, int | None] = field(default_factory=dict)

    def follows(self, previous: Membership | None) -> bool:
        """This assignment came in the generation right after `previous`, to the same member: no
        other generation (in which another member could have held a partition) lies between."""
        return (
            previous is not None
            and previous.member_id == self.member_id
            and previous.generation >= 0
            and self.generation == previous.generation + 1
        )


def offset_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


class Ownership(Protocol):
    """Told when this member's partitions change (e.g. a cache valid only for a sole writer).

    `assigned` runs inside the rebalance, while the member sends no heartbeat (aiokafka stops them
    until its listener returned): it must not wait on the store. What must be done before the
    first record of the assignment is applied (a snapshot taken out of the store) is started there
    and awaited by `before_applying`, which the consumer calls once the rebalance is over."""

    def revoked(self) -> None: ...

    async def assigned(self, sole_owner: bool, membership: Membership | None = None) -> None: ...

    async def before_applying(self) -> None: ...


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type information
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topics: list[str],
        owners: list[Ownership],
        committed: dict[str, int | None],
        settled: asyncio.Event,
    ) -> None:
        self.consumer = consumer
        self.topics = topics
        self.owners = owners
        self.committed = committed  # the BatchConsumer's, reset to the group's at each assignment
        self.settled = settled  # set once the owners were told of the assignment
        self.assignments = 0  # assignments told so far (the consumer prepares each one once)
        self.failure: BaseException | None = None  # an owner failed to be told (aiokafka only logs it)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # called before the group rebalances: no other member writes for these partitions yet
        self.settled.clear()
        for owner in self.owners:
            owner.revoked()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.settled.clear()
        try:
            await self._assigned(assigned)
        except Exception as exc:  # the consumer restarts: every owner is told again
            self.failure = exc
            raise
        finally:
            self.assignments += 1
            self.settled.set()

    async def _assigned(self, assigned: Any) -> None:
        if not self.owners:
            return
        held = {(tp.topic, tp.partition) for tp in assigned}
        every = {(t, p) for t in self.topics for p in (self.consumer.partitions_for_topic(t) or ())}
        coordinator = self.consumer._coordinator  # noqa: SLF001 - no public generation or member id
        self.committed.clear()
        try:  # one request for every partition (consumer.committed() asks for one at a time)
            found = await coordinator.fetch_committed_offsets(list(assigned)) if assigned else {}
            for tp in assigned:
                offset = found[tp].offset if tp in found else -1
                self.committed[offset_key(tp.topic, tp.partition)] = None if offset < 0 else offset
        except Exception as exc:  # unknown offsets: owners then trust nothing kept in the store
            log.warning("committed offsets not read at assignment", extra={"error": repr(exc)})
            self.committed.clear()
        membership = Membership(str(coordinator.member_id), int(coordinator.generation), dict(self.committed))
        for owner in self.owners:
            await owner.assigned(bool(every) and every <= held, membership)


class BatchConsumer:
    """One poll → the handler (one bulk write) → one commit. Restarts itself after errors."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topics: Sequence[str],
        group_id: str,
        handler: Handler,
        max_records: int = 1000,
        poll_timeout_ms: int = 200,
        linger_ms: int = 0,
        owners: Sequence[Ownership] = (),
        stall_s: float = 60.0,
        before_leaving: Callable[[Mapping[str, int | None]], Awaitable[object]] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        # at a graceful stop, after the last commit, while the partitions are still held (no other
        # member writes yet): given the committed offsets (a snapshot saved for the next start)
        self.before_leaving = before_leaving
        self.owners = list(owners)  # told of every revocation and assignment
        self.topics = list(topics)
        self.group_id = group_id
        self.handler = handler
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        # > 0: the broker holds a fetch up to this long for a larger batch (fewer, larger writes
        # under a steady stream, each record later by up to this much); 0: records as they come
        self.linger_ms = linger_ms
        self.connected = False
        self.applied_batches = 0
        self.stall_s = stall_s
        self.restarts_in_a_row = 0  # loop restarts since the last committed batch
        self.waiting = 0  # records on the assigned partitions not yet consumed, at the last look
        self.progress_at = time.monotonic()  # the last commit, or the last look that found nothing waiting
        # the group's committed offsets of the partitions held ("topic:partition" → next offset), as
        # of the last commit; `stopped_cleanly`: the last loop ended by stop() after a commit
        self.committed: dict[str, int | None] = {}
        self.stopped_cleanly = False
        CONSUMER_STUCK.labels(group_id).set_function(lambda: 1 if self.stuck_reason() else 0)
        self._stopping = asyncio.Event()
        # the owners were told of the current assignment: only then is a record of it applied
        self._settled = asyncio.Event()
        self._listener: _Listener | None = None
        self._prepared = 0  # the listener's assignments whose owners were prepared (`before_applying`)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.group_id}")

    async def stop(self) -> None:
        """Graceful: finish the batch in hand, commit it, leave the group."""
        self._stopping.set()
        if self._task is not None:
            # the batch in hand, and what is saved before leaving (`before_leaving`)
            done, _ = await asyncio.wait([self._task], timeout=90)
            if not done:
                self._task.cancel()
                await asyncio.wait([self._task])  # it leaves the group before the clients close

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                max_poll_records=self.max_records,
                fetch_min_bytes=LINGER_MIN_BYTES if self.linger_ms > 0 else 1,
                fetch_max_wait_ms=self.linger_ms if self.linger_ms > 0 else 500,
                session_timeout_ms=SESSION_TIMEOUT_MS,
                heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            )
            self._settled.clear()
            listener = _Listener(consumer, self.topics, self.owners, self.committed, self._settled)
            self._listener, self._prepared = listener, 0
            consumer.subscribe(self.topics, listener=listener)
            self.stopped_cleanly = False
            try:
                await consumer.start()
                self.connected = True
                backoff = 0.5
                orphaned_since: float | None = None
                while not self._stopping.is_set():
                    if await self._poll(consumer):
                        await self._record_lag(consumer)
                        orphaned_since = await self._check_assignment(consumer, orphaned_since)
                # stop() asked, the batch in hand applied and committed, the owners ready for the assignment
                self.stopped_cleanly = self._settled.is_set() and self._prepared == listener.assignments
                if self.stopped_cleanly and self.before_leaving is not None:
                    await self.before_leaving(dict(self.committed))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                CONSUMER_RESTARTS.labels(self.group_id).inc()
                self.restarts_in_a_row += 1
                log.warning(
                    "consumer error; restarting from committed offsets",
                    extra={"group": self.group_id, "error": repr(exc)},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            finally:
                self.connected = False
                for owner in self.owners:
                    owner.revoked()
                try:
                    await asyncio.wait_for(consumer.stop(), 10)
                except Exception:
                    pass

    async def _poll(self, consumer: AIOKafkaConsumer) -> bool:
        """One poll, its records applied and committed; False if it met an assignment in progress."""
        batch = await consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
        listener = self._listener
        assert listener is not None
        if listener.failure is not None:
            raise RuntimeError("an owner of the partitions was not told of the assignment") from listener.failure
        told = listener.assignments
        if self._settled.is_set() and self._prepared != told:
            await self._prepare()
            if self._settled.is_set() and listener.assignments == told:
                self._prepared = told
        if not self._settled.is_set() or self._prepared != listener.assignments:
            await self._settle(consumer, fetched=bool(batch))
            return False
        records = [record for part in batch.values() for record in part]
        if records:
            await self.handler(records)
            await consumer.commit()
            for tp, part in batch.items():  # never past what was committed (no await here)
                self.committed[offset_key(tp.topic, tp.partition)] = part[-1].offset + 1
            self.applied_batches += 1
            self.restarts_in_a_row = 0
            self.progress_at = time.monotonic()
        return True

    async def _prepare(self) -> None:
        """Each owner ready for the assignment (`before_applying`), after the rebalance: heartbeats
        go on while they wait. A rebalance meanwhile may cancel what an owner waits on: the poll
        then meets the next assignment (this task itself was not cancelled)."""
        task = asyncio.current_task()
        for owner in self.owners:
            try:
                await owner.before_applying()
            except asyncio.CancelledError:
                if task is None or task.cancelling():
                    raise
                return

    async def _settle(self, consumer: AIOKafkaConsumer, fetched: bool) -> None:
        """An assignment whose owners are still being told (aiokafka fetches for it before its
        listener returns): nothing of it is applied before they were (a snapshot taken out, a copy
        to load). What was fetched meanwhile is fetched again, from the committed offsets."""
        while not self._settled.is_set() and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), 1)
        if not fetched or not self._settled.is_set():
            return
        for tp in consumer.assignment():
            key = offset_key(tp.topic, tp.partition)
            offset = self.committed[key] if key in self.committed else await consumer.committed(tp)
            if offset is None:
                await consumer.seek_to_beginning(tp)  # never committed: from the start, as auto_offset_reset
            else:
                consumer.seek(tp, offset)

    async def _check_assignment(self, consumer: AIOKafkaConsumer, since: float | None) -> float | None:
        """A group joined while the broker was still loading its metadata can end up with no
        partition of a topic it subscribes to, and stay idle once the topic is back (seen after a
        broker restart). When that lasts, restart the consumer, from its committed offsets."""
        assigned = {tp.topic for tp in consumer.assignment()}
        if all(topic in assigned for topic in self.topics):
            return None
        now = time.monotonic()
        if since is None:
            return now
        if now - since > ORPHANED_ASSIGNMENT_S:
            existing = await consumer.topics()  # a fresh metadata request: does the broker have them?
            missing = [t for t in self.topics if t not in assigned and t in existing]
            if missing:
                raise RuntimeError(f"no partition of {missing} assigned although the broker has them")
            return now
        return since

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        per_topic: dict[str, int] = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = await consumer.position(tp)
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(highwater - position, 0)
        for topic, lag in per_topic.items():
            CONSUMER_LAG.labels(self.group_id, topic).set(lag)
        self.waiting = sum(per_topic.values())
        if not self.waiting:
            self.progress_at = time.monotonic()

    def stuck_reason(self) -> str | None:
        """Why this consumer is stuck, or None (contract v1.1: /readyz answers 503 naming it)."""
        if self.restarts_in_a_row >= STUCK_AFTER_RESTARTS:
            return f"consumer {self.group_id} restarted {self.restarts_in_a_row} times from the same offsets"
        idle = time.monotonic() - self.progress_at
        if self.waiting and idle > self.stall_s:
            return f"consumer {self.group_id}: {self.waiting} records waiting and none applied for {idle:.0f} s"
        return None

    async def readiness(self) -> bool | str:
        """True when connected and moving; otherwise why not."""
        reason = self.stuck_reason()
        if reason:
            return reason
        return True if self.connected else f"consumer {self.group_id} is not connected to the broker"

    async def ready(self) -> bool:
        return self.connected and self.stuck_reason() is None


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of a topic the consumer is not subscribed to (for manual assignment).

    aiokafka's partitions_for_topic() only knows topics already in the client's metadata, and
    topics() fetches into a separate object, so fetch the cluster metadata and read it there.
    """
    cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001 - no public per-topic lookup
    return [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or [])]

"""A case projection: a batch of records → the affected cases refolded → one bulk write.

Both the deadline and the metrics services keep one document per case holding the case's events
(so a late event refolds it) and what their own reads need. Applying is idempotent on event_id;
the consumer commits its offsets only after the bulk write (at-least-once delivery, exactly-once
effect). A record that cannot be decoded or validated goes to the dead-letter topic with the
reason, and is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import ChainMap
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import bson
from aiokafka import ConsumerRecord
from bson.raw_bson import RawBSONDocument
from motor.motor_asyncio import AsyncIOMotorCollection
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from shared.document_cache import DocumentCache, Entry
from shared.domain.codes import EventType
from shared.domain.fold import CaseEvent, CaseState, fold_case
from shared.domain.registry import Registry
from shared.events import EVENT_ADAPTER
from shared.kafka import Publisher
from shared.store import ABSENT_IDS_PER_QUERY, find_by_ids

log = logging.getLogger(__name__)

EVENTS_APPLIED = Counter("tthc_projection_events_applied_total", "Case events applied to a projection", ["projection"])
EVENTS_DUPLICATE = Counter(
    "tthc_projection_events_duplicate_total", "Case events already applied (ignored)", ["projection"]
)
EVENTS_DEAD_LETTERED = Counter(
    "tthc_projection_events_dead_lettered_total", "Records sent to the dead-letter topic", ["projection"]
)
BATCH_SECONDS = Histogram(
    "tthc_projection_batch_duration_seconds",
    "Time to apply one consumer batch (load, fold, bulk write)",
    ["projection"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

RECEIVED = EventType.RECEIVED.value  # a case's first event, as a rule: the batch most likely creates the case
WRITE_CHUNK = 500  # cases per bulk write within a consumer batch (the next chunk is folded meanwhile)
FIRST_CHUNK = 100  # the batch's first write: the store waits for its fold

# (state, events, previous document or None) → the case document (without `_id` and events)
ToDocument = Callable[[CaseState, list[dict[str, Any]], dict[str, Any] | None], dict[str, Any]]
# (state, previous document or None) → derived events to publish after the write
Derive = Callable[[CaseState, dict[str, Any] | None], list[dict[str, Any]]]
# (previous document or None, new fields) pairs of a batch → more writes, in the same transaction
Pairs = list[tuple[dict[str, Any] | None, dict[str, Any]]]
OtherWrites = list[tuple[AsyncIOMotorCollection, list]]  # (collection, its bulk operations)
Companion = Callable[[Pairs], OtherWrites]
# (case code, previous document or None, new document) of one write chunk → writes that land first
Staged = list[tuple[str, dict[str, Any] | None, dict[str, Any]]]
Prelude = Callable[[Staged], OtherWrites]
# (case code, document) written and derived events of one chunk, once its write reached the store
Landed = Callable[[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]], None]


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    # What was written and derived goes to `CaseProjection.landed`, chunk by chunk, as it lands: the
    # batch does not hold on to its documents.


def decode(record: ConsumerRecord) -> dict[str, Any]:
    """The stored form of one record: the validated event plus its arrival position."""
    raw = json.loads(record.value)
    event = EVENT_ADAPTER.validate_python(raw)
    if not event.event_id:
        raise ValueError("event_id is missing")
    stored = event.model_dump(mode="json")
    stored["seq"] = record.offset
    stored["partition"] = record.partition
    source = dict(record.headers or ()).get("source")
    if source:
        stored["source"] = source.decode("utf-8", "replace")
    return stored


class CaseProjection:
    def __init__(
        self,
        name: str,
        collection: AsyncIOMotorCollection,
        registry: Callable[[], Registry],
        to_document: ToDocument,
        dead_letters: Publisher | None,
        dlq_topic: str,
        derive: Derive | None = None,
        companion: Companion | None = None,
        prelude: Prelude | None = None,
        cache: DocumentCache | None = None,
    ) -> None:
        self.name = name
        # the documents this process wrote, while it holds their partitions (ADR 0012)
        self.cache = cache
        self.companion = companion
        # Writes to other collections that must land before each chunk's case documents (the
        # deadline's timers): a batch that fails between the two finds its cases unchanged when it
        # is applied again, and writes both again; the other order could lose the first.
        self.prelude = prelude
        self.collection = collection
        self.codec_options = collection.codec_options
        self.registry = registry
        self.to_document = to_document
        self.dead_letters = dead_letters
        self.dlq_topic = dlq_topic
        self.derive = derive
        # Cases per bulk write; while one is written, the next is folded (the fold is this
        # process's CPU, the write the store's). The companion's writes and the transaction, if
        # any, still span the whole batch.
        self.write_chunk = WRITE_CHUNK
        # Told of each chunk as its write lands, while the next is written (without a companion:
        # with one, nothing is stored before the batch's transaction commits). The deadline updates
        # its index and publishes the derived events there instead of after the whole batch.
        self.landed: Landed | None = None

    async def apply(self, records: list[ConsumerRecord]) -> BatchResult:
        started = time.perf_counter()
        result = BatchResult()
        incoming: dict[str, list[dict[str, Any]]] = {}
        poison: list[tuple[ConsumerRecord, str]] = []
        for record in records:
            try:
                event = decode(record)
            except (ValueError, ValidationError, UnicodeDecodeError) as exc:
                poison.append((record, _reason(exc)))
                continue
            incoming.setdefault(event["case_code"], []).append(event)
        if poison:
            await self._dead_letter(poison)
            result.dead_lettered = len(poison)

        if incoming:
            retry_until = time.monotonic() + TRANSACTION_RETRY_S
            for attempt in itertools.count():
                try:
                    await self._apply_cases(incoming, result)
                    break
                except PyMongoError as exc:
                    # a write conflict in the transaction (a killed predecessor's transaction still
                    # holds the documents until the store expires it): fold again from a fresh read,
                    # here, rather than fail the batch (and dead-letter its poison records again)
                    if not exc.has_error_label("TransientTransactionError") or time.monotonic() > retry_until:
                        raise
                    log.info("transient transaction error; the batch is folded again", extra={"attempt": attempt})
                    result.applied, result.duplicates = 0, 0
                    await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
        EVENTS_APPLIED.labels(self.name).inc(result.applied)
        EVENTS_DUPLICATE.labels(self.name).inc(result.duplicates)
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return result

    async def _apply_cases(self, incoming: dict[str, list[dict[str, Any]]], result: BatchResult) -> None:
        generation = self.cache.generation if self.cache is not None else 0
        previous = await self._read(incoming)
        registry = self.registry()
        cases = list(incoming.items())
        size = self.write_chunk
        bounds = [0, *range(min(size, FIRST_CHUNK), len(cases), size), len(cases)]
        kept: list[Entry] = []  # what the cache keeps of the batch's writes, once they all landed
        try:
            async with self._writer() as writer:
                for start, end in itertools.pairwise(bounds):
                    await writer.send(*self._fold(cases[start:end], previous, registry, result, kept))
        except BaseException:
            if self.cache is not None:  # the store holds some of the batch's writes, or none
                self.cache.discard(incoming)
            raise
        if self.cache is not None:
            self.cache.store(generation, kept)

    async def _read(self, incoming: dict[str, list[dict[str, Any]]]) -> Mapping[str, dict[str, Any]]:
        """The batch's cases as stored: those this process holds from memory, the others from the
        store: those the batch receives (mostly new: absent) in large queries, the rest in small ones."""
        held: Mapping[str, dict[str, Any]] = {}
        missing: list[str] = list(incoming)
        if self.cache is not None:
            held, missing = self.cache.lookup(incoming)
        new, other = [], []
        for code in missing:
            (new if any(e["type"] == RECEIVED for e in incoming[code]) else other).append(code)
        found = await find_by_ids(self.collection, new, per_query=ABSENT_IDS_PER_QUERY)
        found.update(await find_by_ids(self.collection, other))
        return ChainMap(found, held) if held else found

    def _fold(
        self,
        cases: list[tuple[str, list[dict[str, Any]]]],
        previous: Mapping[str, dict[str, Any]],
        registry: Registry,
        result: BatchResult,
        kept: list[Entry],
    ) -> tuple[list[CaseWrite], Pairs, OtherWrites, tuple[list, list]]:
        writes: list[CaseWrite] = []
        pairs: Pairs = []
        staged: Staged = []
        written: list[tuple[str, dict[str, Any]]] = []
        derived: list[dict[str, Any]] = []
        for case_code, new_events in cases:
            before = previous.get(case_code)
            events = list(before.get("events", [])) if before else []
            known = {e["event_id"] for e in events}
            fresh = []
            for event in new_events:
                if event["event_id"] in known:
                    result.duplicates += 1
                    continue
                known.add(event["event_id"])
                fresh.append(event)
            if not fresh:
                continue
            events.extend(fresh)
            result.applied += len(fresh)
            state = fold_case((CaseEvent.from_dict(e) for e in events), registry)
            if self.derive is not None:
                derived.extend(self.derive(state, before))
            document = self.to_document(state, events, before)
            pairs.append((before, document))
            written.append((case_code, document))
            staged.append((case_code, before, document))
            document["events"] = events
            # encoded here, once: for the write (pymongo sends a RawBSONDocument as it is) and for the cache
            stored = RawBSONDocument(bson.encode({"_id": case_code, **document}, codec_options=self.codec_options))
            writes.append(case_write(stored, before))
            if self.cache is not None:
                kept.append(self.cache.entry(case_code, document, stored))
        first = self.prelude(staged) if self.prelude is not None and staged else []
        return writes, pairs, first, (written, derived)

    @contextlib.asynccontextmanager
    async def _writer(self) -> AsyncIterator[ChunkWriter]:
        async with contextlib.AsyncExitStack() as stack:
            session = None
            if self.companion is not None:
                # The case documents and what is derived from them (aggregates) change together or
                # not at all: a batch redelivered after a crash finds its cases already at the new
                # state, so the difference it would add is zero, never counted twice. A transient
                # error is retried by `apply` (folded again from a fresh read); any other fails it.
                session = await stack.enter_async_context(await self.collection.database.client.start_session())
                await stack.enter_async_context(session.start_transaction())
            writer = ChunkWriter(self.collection, self.companion, session, self.landed if session is None else None)
            try:
                yield writer
                await writer.finish()
            finally:
                await writer.settle()

    async def _dead_letter(self, poison: list[tuple[ConsumerRecord, str]]) -> None:
        if self.dead_letters is None:
            # A replay (rebuild): the live consumer dead-lettered these records already.
            log.info("poison records skipped in a replay", extra={"count": len(poison), "projection": self.name})
            return
        messages = []
        for record, reason in poison:
            envelope = {
                "projection": self.name,
                "reason": reason,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": record.key.decode("utf-8", "replace") if record.key else None,
                "value": record.value.decode("utf-8", "replace") if record.value else None,
            }
            key = f"{record.topic}:{record.partition}:{record.offset}".encode()
            messages.append((key, json.dumps(envelope, ensure_ascii=False).encode()))
        # Raises PublishFailed if the broker does not take them: the batch is then retried, never
        # committed with its poison dropped.
        await self.dead_letters.publish(self.dlq_topic, messages, timeout=30)
        EVENTS_DEAD_LETTERED.labels(self.name).inc(len(messages))
        log.warning("records sent to the dead-letter topic", extra={"count": len(messages), "projection": self.name})


CaseWrite = InsertOne | ReplaceOne
TRANSACTION_RETRY_S = 120.0  # as pymongo's with_transaction


class ChunkWriter:
    """Writes a batch's case documents chunk by chunk, one bulk write in flight while the caller
    folds the next chunk (the fold is this process's CPU, the write the store's); then the
    companion's writes for the whole batch (merged over it), in the same session."""

    def __init__(
        self,
        collection: AsyncIOMotorCollection,
        companion: Companion | None,
        session: Any,
        landed: Landed | None = None,
    ) -> None:
        self.collection = collection
        self.companion = companion
        self.session = session
        self.landed = landed
        self.pairs: Pairs = []
        self.in_flight: asyncio.Future[None] | None = None

    async def send(
        self,
        writes: list[CaseWrite],
        pairs: Pairs,
        first: OtherWrites | None = None,
        after: tuple[list, list] | None = None,
    ) -> None:
        await self._drain()
        self.pairs.extend(pairs)
        if writes:
            self.in_flight = asyncio.ensure_future(self._bulk(writes, first or [], after))
            await asyncio.sleep(0)  # the write leaves for the store before the next fold

    async def finish(self) -> None:
        await self._drain()
        if self.companion is not None and self.pairs:
            for collection, ops in self.companion(self.pairs):
                if ops:
                    await collection.bulk_write(ops, ordered=False, session=self.session)

    async def settle(self) -> None:
        """After a failure: let a write still out land before the error goes up (and the
        transaction, if any, aborts)."""
        if self.in_flight is not None:
            with contextlib.suppress(Exception):
                await self.in_flight
            self.in_flight = None

    async def _drain(self) -> None:
        if self.in_flight is not None:
            in_flight, self.in_flight = self.in_flight, None
            await in_flight

    async def _bulk(self, writes: list[CaseWrite], first: OtherWrites, after: tuple[list, list] | None = None) -> None:
        for collection, ops in first:
            if ops:
                await self._first(collection, ops)
        try:
            result = await self.collection.bulk_write(writes, ordered=False, session=self.session)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if errors and all(e.get("code") == DUPLICATE_KEY for e in errors):
                raise CasesChanged(
                    f"{len(errors)} of {len(writes)} cases the batch found absent were created meanwhile; "
                    "it will be applied again"
                ) from exc
            raise
        _check_all_written(result, writes)
        if self.landed is not None and after is not None:
            self.landed(*after)

    async def _first(self, collection: AsyncIOMotorCollection, ops: list) -> None:
        """The prelude's writes. An insert that finds its document there is a leftover of an earlier
        attempt at this batch (it failed before its cases were written) or of another consumer's:
        it is written again as a `$set` of the same fields, so what lands is this fold's."""
        try:
            await collection.bulk_write(ops, ordered=False, session=self.session)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if not errors or any(
                e.get("code") != DUPLICATE_KEY or not isinstance(ops[e["index"]], InsertOne) for e in errors
            ):
                raise
            again = []
            for error in errors:
                document = dict(ops[error["index"]]._doc)
                key = document.pop("_id")
                again.append(UpdateOne({"_id": key}, {"$set": document}, upsert=True))
            await collection.bulk_write(again, ordered=False, session=self.session)


def case_write(stored: Mapping[str, Any], before: Mapping[str, Any] | None) -> CaseWrite:
    """The write that brings the stored case to `stored` (the new document, `_id` included): the
    projection is its only writer.

    A case the batch found absent is inserted: this store takes inserts at 1.6 times the rate of
    replacement upserts (ADR 0010); one created since the read (another consumer during a
    rebalance) fails the insert on its key, and the batch is applied again from a fresh read. A
    known case is replaced whole, on its `_id` alone (the store's fast path; ADR 0011): a `$set`
    costs this store a diff of the whole document for its oplog, a replacement does not. Nothing
    else writes a case document (the deadline's timer marks live in their own collection), so there
    is nothing for the replacement to overwrite but the batch's own reading.
    """
    if before is None:
        return InsertOne(stored)
    # not an upsert: a case read a moment ago that is gone now must not come back
    return ReplaceOne({"_id": before["_id"]}, stored)


def _check_all_written(result: Any, writes: list[CaseWrite]) -> None:
    """Every case of the batch was written; otherwise the batch is applied again from a fresh read
    (the consumer restarts from its committed offsets), never committed half done."""
    written = result.inserted_count + result.matched_count
    if written != len(writes):
        raise CasesChanged(
            f"{len(writes) - written} of {len(writes)} case documents changed under the batch; it will be applied again"
        )


class CasesChanged(RuntimeError):
    """Cases changed between the batch's read and its write (another writer): the batch is not
    committed; the consumer applies it again from its committed offsets, reading afresh."""


DUPLICATE_KEY = 11000


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        return "invalid event: " + "; ".join(parts)
    return f"undecodable record: {exc}"

"""A case projection: a batch of records → the affected cases refolded → one bulk write.

Both the deadline and the metrics services keep one document per case holding the case's events
(so a late event refolds it) and what their own reads need. Applying is idempotent on (source, event_id);
the consumer commits its offsets only after the bulk write (at-least-once delivery, exactly-once
effect). A record that cannot be decoded, folded or written stops nothing but its own case: it goes
to the dead-letter topic with the reason and its case is marked (shared/quarantine.py).
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
from typing import Any, Protocol

import bson
from aiokafka import ConsumerRecord
from bson.raw_bson import RawBSONDocument
from motor.motor_asyncio import AsyncIOMotorCollection
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
    WTimeoutError,
)

from shared.document_cache import DocumentCache, Entry
from shared.domain.codes import EventType
from shared.domain.fold import CaseEvent, CaseState, event_identity, fold_case
from shared.domain.registry import Registry
from shared.events import EVENT_ADAPTER
from shared.kafka import Publisher, PublishFailed
from shared.quarantine import Poison, Quarantine, poison_of
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


class Attempts(Protocol):
    """Told of each attempt at writing a set of cases: it began, then (unless it failed) it committed."""

    def begin(self) -> None: ...

    def committed(self) -> None: ...


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0  # records quarantined (dead-lettered, their cases marked)
    # What was written and derived goes to `CaseProjection.landed`, chunk by chunk, as it lands: the
    # batch does not hold on to its documents.


def decode(record: ConsumerRecord) -> dict[str, Any]:
    """The stored form of one record: the validated event plus its arrival position and source."""
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


class CaseTooLarge(ValueError):
    """A case whose document would outgrow the projection's limit (the store refuses 16 MiB)."""


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
        max_document_bytes: int = 4 * 1024 * 1024,
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
        self.derive = derive
        self.max_document_bytes = max_document_bytes
        # records that cannot be folded or written: dead-lettered, their cases marked (contract v1.1)
        self.quarantine = Quarantine(
            name, collection.database[f"{collection.name}_quarantine"], dead_letters, dlq_topic
        )
        # Cases per bulk write; while one is written, the next is folded (the fold is this
        # process's CPU, the write the store's). The companion's writes and the transaction, if
        # any, still span the whole batch.
        self.write_chunk = WRITE_CHUNK
        # Told of each chunk as its write lands, while the next is written (without a companion:
        # with one, nothing is stored before the batch's transaction commits). The deadline updates
        # its index and publishes the derived events there instead of after the whole batch.
        self.landed: Landed | None = None
        # Told when an attempt at a set of cases begins and when it committed (with a companion: its
        # transaction): the metrics service moves its in-memory buckets by the companion's deltas then.
        self.attempts: Attempts | None = None
        # A batch and a quarantine retry of this process never fold the same case at once.
        self.lock = asyncio.Lock()
        self._refolding: frozenset[str] = frozenset()  # cases folded again without a new event

    async def refold(self, codes: list[str]) -> BatchResult:
        """Fold these stored cases again from the events they hold, under the current registry
        (an agency dissolved into a successor, contract v1.1), and write those that exist. A case
        that cannot be folded any more is logged and left as it is (no record to dead-letter)."""
        async with self.lock:
            result = BatchResult()
            refused: list[tuple[str, BaseException]] = []
            self._refolding = frozenset(codes)
            try:
                await self._apply_isolating({code: [] for code in codes}, result, refused)
            finally:
                self._refolding = frozenset()
            for case_code, exc in refused:
                log.warning("case not refolded", extra={"case_code": case_code, "error": repr(exc)[:300]})
            return result

    async def apply(self, records: list[ConsumerRecord]) -> BatchResult:
        async with self.lock:
            return await self._apply(records)

    async def _apply(self, records: list[ConsumerRecord]) -> BatchResult:
        started = time.perf_counter()
        result = BatchResult()
        incoming: dict[str, list[dict[str, Any]]] = {}
        origins: dict[str, list[tuple[ConsumerRecord, dict[str, Any]]]] = {}
        poison: list[Poison] = []
        for record in records:
            try:
                event = decode(record)
            except Exception as exc:  # whatever the record holds (RecursionError for a deep one)
                poison.append(poison_of(record, exc, _reason(exc), case_code=_case_of_key(record)))
                continue
            incoming.setdefault(event["case_code"], []).append(event)
            origins.setdefault(event["case_code"], []).append((record, event))

        refused: list[tuple[str, BaseException]] = []  # cases whose fold or write failed on what they hold
        if incoming:
            await self._apply_isolating(incoming, result, refused)
        for case_code, exc in refused:
            for record, event in origins[case_code]:
                poison.append(poison_of(record, exc, case_code=case_code, event=event))
        if poison:
            # Raises PublishFailed if the broker does not take the dead letters: the batch is then
            # not committed, never committed with its poison dropped.
            await self.quarantine.hold(poison)
            result.dead_lettered = len(poison)
            EVENTS_DEAD_LETTERED.labels(self.name).inc(len(poison))
        EVENTS_APPLIED.labels(self.name).inc(result.applied)
        EVENTS_DUPLICATE.labels(self.name).inc(result.duplicates)
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return result

    async def _apply_isolating(
        self,
        incoming: dict[str, list[dict[str, Any]]],
        result: BatchResult,
        refused: list[tuple[str, BaseException]],
    ) -> None:
        """Apply the cases; when the write of a set fails on what one of its cases holds (not on the
        store or the broker being away), apply its halves apart, down to the case at fault, which is
        refused. Cases already written are found unchanged the second time (their events are known)."""
        counts, refusals = (result.applied, result.duplicates), len(refused)
        try:
            await self._apply_retrying(incoming, result, refused)
            return
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            result.applied, result.duplicates = counts
            del refused[refusals:]
            if len(incoming) == 1:
                refused.append((next(iter(incoming)), exc))
                return
            log.warning(
                "a write failed on a case it holds; the cases are applied apart",
                extra={"projection": self.name, "cases": len(incoming), "error": repr(exc)[:300]},
            )
        cases = list(incoming.items())
        half = len(cases) // 2
        for part in (cases[:half], cases[half:]):
            await self._apply_isolating(dict(part), result, refused)

    async def _apply_retrying(
        self,
        incoming: dict[str, list[dict[str, Any]]],
        result: BatchResult,
        refused: list[tuple[str, BaseException]],
    ) -> None:
        counts, refusals = (result.applied, result.duplicates), len(refused)
        retry_until = time.monotonic() + TRANSACTION_RETRY_S
        for attempt in itertools.count():
            if self.attempts is not None:
                self.attempts.begin()
            try:
                await self._apply_cases(incoming, result, refused)
                break
            except PyMongoError as exc:
                # a write conflict in the transaction (a killed predecessor's transaction still
                # holds the documents until the store expires it): fold again from a fresh read,
                # here, rather than fail the batch
                if not exc.has_error_label("TransientTransactionError") or time.monotonic() > retry_until:
                    raise
                log.info("transient transaction error; the batch is folded again", extra={"attempt": attempt})
                result.applied, result.duplicates = counts
                del refused[refusals:]
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
        if self.attempts is not None:
            self.attempts.committed()

    async def _apply_cases(
        self,
        incoming: dict[str, list[dict[str, Any]]],
        result: BatchResult,
        refused: list[tuple[str, BaseException]],
    ) -> None:
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
                    await writer.send(*self._fold(cases[start:end], previous, registry, result, kept, refused))
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
        refused: list[tuple[str, BaseException]],
    ) -> tuple[list[CaseWrite], Pairs, OtherWrites, tuple[list, list]]:
        writes: list[CaseWrite] = []
        pairs: Pairs = []
        staged: Staged = []
        written: list[tuple[str, dict[str, Any]]] = []
        derived: list[dict[str, Any]] = []
        for case_code, new_events in cases:
            before = previous.get(case_code)
            events = list(before.get("events", [])) if before else []
            known = {event_identity(e) for e in events}
            fresh = []
            for event in new_events:
                identity = event_identity(event)
                if identity in known:
                    result.duplicates += 1
                    continue
                known.add(identity)
                fresh.append(event)
            if not fresh and (before is None or case_code not in self._refolding):
                continue
            events.extend(fresh)
            try:
                state = fold_case([CaseEvent.from_dict(e) for e in events], registry)
                derived_here = self.derive(state, before) if self.derive is not None else []
                document = self.to_document(state, events, before)
                document["events"] = events
                # encoded here, once: for the write (pymongo sends a RawBSONDocument as it is) and for the cache
                stored = RawBSONDocument(bson.encode({"_id": case_code, **document}, codec_options=self.codec_options))
                if len(stored.raw) > self.max_document_bytes:
                    raise CaseTooLarge(
                        f"the case document would be {len(stored.raw)} bytes, over the limit of "
                        f"{self.max_document_bytes} ({len(events)} events)"
                    )
            except Exception as exc:  # whatever this case holds stops this case only
                if is_infrastructure(exc):
                    raise
                refused.append((case_code, exc))
                continue
            result.applied += len(fresh)
            derived.extend(derived_here)
            pairs.append((before, document))
            written.append((case_code, document))
            staged.append((case_code, before, document))
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


def is_infrastructure(exc: BaseException) -> bool:
    """Errors of the store or the broker being away or busy, or of another writer: the batch is
    not committed and comes again. Anything else is blamed on what the records hold."""
    if isinstance(exc, ConnectionFailure | PublishFailed | CasesChanged | TimeoutError | OSError | WTimeoutError):
        return True
    if isinstance(exc, ExecutionTimeout | WriteConcernError):
        return True
    if isinstance(exc, PyMongoError) and (
        exc.has_error_label("TransientTransactionError") or exc.has_error_label("RetryableWriteError")
    ):
        return True
    return isinstance(exc, OperationFailure) and exc.code in _BUSY_CODES


# NotWritablePrimary, NotPrimaryNoSecondaryOk, InterruptedAtShutdown, InterruptedDueToReplStateChange,
# PrimarySteppedDown, ShutdownInProgress, HostUnreachable, HostNotFound, NetworkTimeout, ExceededTimeLimit,
# LockTimeout, WriteConflict, NoSuchTransaction
_BUSY_CODES = frozenset({10107, 13435, 11600, 11602, 189, 91, 6, 7, 89, 262, 24, 112, 251})


def _case_of_key(record: ConsumerRecord) -> str | None:
    """The case an undecodable record names by its key, if the key reads as a case code."""
    if not record.key:
        return None
    try:
        key = record.key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return key if 0 < len(key) <= 64 and key.isprintable() else None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        return "invalid event: " + "; ".join(parts)
    return f"undecodable record: {exc}"

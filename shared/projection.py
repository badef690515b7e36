"""A case projection: a batch of records → the affected cases refolded → one bulk write.

Both the deadline and the metrics services keep one document per case holding the case's events
(so a late event refolds it) and what their own reads need. Applying is idempotent on (source, event_id);
the consumer commits its offsets only after the bulk write (at-least-once delivery, exactly-once
effect). A record that cannot be decoded, folded or written stops nothing but its own case: it goes
to the dead-letter topic with the reason and its case is marked (shared/quarantine.py).

A service gives its projection one port (`ProjectionPort`: the document, derived events, a prelude,
a transactional companion) at construction; the projection hands back each write's outcome as it
lands (`ProjectionRun`), and the service acts on it (index, publish, move a copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import ChainMap
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

import bson
from aiokafka import ConsumerRecord
from bson.raw_bson import RawBSONDocument
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
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
from shared.kafka import PublishFailed
from shared.quarantine import Poison, Quarantine, poison_of
from shared.store import ABSENT_IDS_PER_QUERY, Document, find_by_ids

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

# (previous document or None, new fields) pairs of a batch
Pairs = list[tuple[Document | None, Document]]
OtherOps = Sequence[InsertOne[Document] | UpdateOne]  # bulk operations on another collection
OtherWrites = list[tuple[AsyncCollection[Document], OtherOps]]  # (collection, its operations)
# (case code, previous document or None, new document) of one write chunk
Staged = list[tuple[str, Document | None, Document]]

Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class CompanionWrites(Generic[Outcome]):
    """A transactional companion's writes for a batch, and what they change (known to the service
    once the transaction committed)."""

    writes: OtherWrites
    outcome: Outcome


class Companion(Protocol[Outcome]):
    """A transactional companion's writes for one attempt at a batch: each chunk's (before, after)
    pairs added while that chunk is written, the writes asked for once every chunk was."""

    def add(self, pairs: Pairs) -> None: ...

    def writes(self) -> CompanionWrites[Outcome]: ...


class ProjectionPort(Protocol[Outcome]):
    """What a case projection asks of its service, given once at construction.

    `transactional`: the batch's case documents and the companion's writes land in one transaction
    (nothing is stored before it commits); otherwise there is no companion and each chunk lands as
    it is written. The defaults: nothing derived, no prelude, no companion."""

    transactional: bool = False

    def document(self, state: CaseState, events: list[Document], previous: Document | None) -> Document:
        """The case document (without `_id` and events)."""
        ...

    def derive(self, state: CaseState, previous: Document | None) -> list[Document]:
        """Derived events to publish once the case's write landed."""
        return []

    def prelude(self, staged: Staged) -> OtherWrites:
        """Writes that land before a chunk's case documents (the deadline's timers): a batch that
        fails between the two finds its cases unchanged when it is applied again, and writes both
        again; the other order could lose the first."""
        return []

    def companion(self) -> Companion[Outcome] | None:
        """With `transactional`: more writes for the whole batch, in its transaction (a new
        companion for each attempt)."""
        return None


@dataclass(frozen=True)
class ChunkOutcome(Generic[Outcome]):
    """What a write put in the store, once it is there: a chunk's (case code, document) pairs and
    derived events; with a transactional companion, the whole attempt's, and the companion's
    outcome, once the transaction committed (a failed or retried attempt yields nothing)."""

    written: list[tuple[str, Document]]
    derived: list[Document]
    companion: Outcome | None = None


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0  # records quarantined (dead-lettered, their cases marked)


Refused = list[tuple[str, BaseException]]  # cases whose fold or write failed on what they hold
Incoming = dict[str, list[Document]]  # case code → its new events (none for a re-fold)


class ProjectionRun(Generic[Outcome]):
    """One batch (or re-fold) through the projection. Iterated once, it yields each write's
    outcome as it lands, while the next is written; `result` holds the counts once it ended."""

    def __init__(self, outcomes: Callable[[BatchResult], AsyncGenerator[ChunkOutcome[Outcome], None]]) -> None:
        self.result = BatchResult()
        self._outcomes = outcomes(self.result)

    def __aiter__(self) -> AsyncIterator[ChunkOutcome[Outcome]]:
        return self._outcomes

    async def aclose(self) -> None:
        await self._outcomes.aclose()

    async def finish(self) -> BatchResult:
        """Run it to its end, its outcomes unheard (a rebuild, a test)."""
        async with contextlib.aclosing(self):
            async for _ in self:
                pass
        return self.result


def decode(record: ConsumerRecord) -> Document:
    """The stored form of one record: the validated event plus its arrival position and source."""
    raw = json.loads(record.value)
    event = EVENT_ADAPTER.validate_python(raw)
    if not event.event_id:
        raise ValueError("event_id is missing")
    stored: Document = event.model_dump(mode="json")
    stored["seq"] = record.offset
    stored["partition"] = record.partition
    source = dict(record.headers or ()).get("source")
    if source:
        stored["source"] = source.decode("utf-8", "replace")
    return stored


class CaseTooLarge(ValueError):
    """A case whose document would outgrow the projection's limit (the store refuses 16 MiB)."""


CaseWrite = InsertOne[Document] | ReplaceOne[Document]
TRANSACTION_RETRY_S = 120.0  # as pymongo's with_transaction


@dataclass
class FoldedChunk:
    """A chunk of cases folded: their writes, the prelude's, and what they derive."""

    writes: list[CaseWrite] = field(default_factory=list)
    staged: Staged = field(default_factory=list)
    derived: list[Document] = field(default_factory=list)
    first: OtherWrites = field(default_factory=list)

    def landed(self) -> ChunkOutcome[Any]:
        return ChunkOutcome([(code, document) for code, _, document in self.staged], self.derived)


class CaseProjection(Generic[Outcome]):
    def __init__(
        self,
        name: str,
        collection: AsyncCollection[Document],
        registry: Callable[[], Registry],
        port: ProjectionPort[Outcome],
        quarantine: Quarantine,
        cache: DocumentCache | None = None,
        max_document_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.collection = collection
        self.registry = registry
        self.port = port
        # records that cannot be folded or written: dead-lettered, their cases marked (contract v1.1)
        self.quarantine = quarantine
        # the documents this process wrote, while it holds their partitions (ADR 0012)
        self.cache = cache
        self.codec_options = collection.codec_options
        self.max_document_bytes = max_document_bytes
        # Cases per bulk write; while one is written, the next is folded (the fold is this
        # process's CPU, the write the store's). The companion's writes and the transaction, if
        # any, still span the whole batch.
        self.write_chunk = WRITE_CHUNK
        # A batch and a re-fold of this process never fold the same case at once.
        self.lock = asyncio.Lock()

    def applying(self, records: list[ConsumerRecord]) -> ProjectionRun[Outcome]:
        """A consumer batch, its outcomes heard chunk by chunk as they land."""
        return ProjectionRun(lambda result: self._apply(records, result))

    def refolding(self, codes: list[str]) -> ProjectionRun[Outcome]:
        """These stored cases folded again from the events they hold, under the current registry
        (an agency dissolved into a successor, contract v1.1), those that exist written. A case
        that cannot be folded any more is logged and left as it is (no record to dead-letter)."""
        return ProjectionRun(lambda result: self._refold(codes, result))

    async def apply(self, records: list[ConsumerRecord]) -> BatchResult:
        return await self.applying(records).finish()

    async def refold(self, codes: list[str]) -> BatchResult:
        return await self.refolding(codes).finish()

    async def _refold(self, codes: list[str], result: BatchResult) -> AsyncGenerator[ChunkOutcome[Outcome], None]:
        async with self.lock:
            refused: Refused = []
            async with contextlib.aclosing(self._isolating({code: [] for code in codes}, result, refused)) as outcomes:
                async for landed in outcomes:
                    yield landed
            for case_code, exc in refused:
                log.warning("case not refolded", extra={"case_code": case_code, "error": repr(exc)[:300]})

    async def _apply(
        self, records: list[ConsumerRecord], result: BatchResult
    ) -> AsyncGenerator[ChunkOutcome[Outcome], None]:
        async with self.lock:
            started = time.perf_counter()
            incoming, origins, poison = _decoded(records)
            refused: Refused = []
            if incoming:
                async with contextlib.aclosing(self._isolating(incoming, result, refused)) as outcomes:
                    async for landed in outcomes:
                        yield landed
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

    async def _isolating(
        self, incoming: Incoming, result: BatchResult, refused: Refused
    ) -> AsyncGenerator[ChunkOutcome[Outcome], None]:
        """Apply the cases; when the write of a set fails on what one of its cases holds (not on the
        store or the broker being away), apply its halves apart, down to the case at fault, which is
        refused. Cases already written are found unchanged the second time (their events are known)."""
        counts, refusals = (result.applied, result.duplicates), len(refused)
        try:
            async with contextlib.aclosing(self._retrying(incoming, result, refused)) as outcomes:
                async for landed in outcomes:
                    yield landed
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
            async with contextlib.aclosing(self._isolating(dict(part), result, refused)) as outcomes:
                async for landed in outcomes:
                    yield landed

    async def _retrying(
        self, incoming: Incoming, result: BatchResult, refused: Refused
    ) -> AsyncGenerator[ChunkOutcome[Outcome], None]:
        counts, refusals = (result.applied, result.duplicates), len(refused)
        retry_until = time.monotonic() + TRANSACTION_RETRY_S
        for attempt in itertools.count():
            try:
                async with contextlib.aclosing(self._write(incoming, result, refused)) as outcomes:
                    async for landed in outcomes:
                        yield landed
                return
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

    async def _write(
        self, incoming: Incoming, result: BatchResult, refused: Refused
    ) -> AsyncGenerator[ChunkOutcome[Outcome], None]:
        """One attempt at a set of cases: read, fold and write chunk by chunk."""
        generation = self.cache.generation if self.cache is not None else 0
        registry = self.registry()
        cases = list(incoming.items())
        size = self.write_chunk
        bounds = [0, *range(min(size, FIRST_CHUNK), len(cases), size), len(cases)]
        kept: list[Entry] = []  # what the cache keeps of the batch's writes, once they all landed
        parts = [cases[start:end] for start, end in itertools.pairwise(bounds)]
        # folded lazily: the next chunk while the one before is written, its cases read meanwhile
        reading = self._reading(parts)
        chunks = (self._fold(part, previous, registry, result, kept, refused) async for part, previous in reading)
        try:
            if self.port.transactional:
                committed = await self._write_in_transaction(chunks)
                if committed is not None:
                    yield committed
            else:
                async with contextlib.aclosing(self._write_landing(chunks)) as outcomes:
                    async for landed in outcomes:
                        yield landed
        except BaseException:
            if self.cache is not None:  # the store holds some of the batch's writes, or none
                self.cache.discard(incoming)
            raise
        finally:
            await chunks.aclose()
            await reading.aclose()  # a read still on its way is cancelled
        if self.cache is not None:
            self.cache.store(generation, kept)

    async def _write_landing(self, chunks: AsyncIterator[FoldedChunk]) -> AsyncGenerator[ChunkOutcome[Outcome], None]:
        """Each chunk's outcome as soon as its write landed, while the next is written; also when
        a later chunk fails (the chunks before it are in the store)."""
        writer = ChunkWriter(self.collection, None)
        try:
            async for chunk in chunks:
                landed = await writer.send(chunk)
                if landed is not None:
                    yield landed
            landed = await writer.drain()
        except Exception:
            landed = await writer.settle()
            if landed is not None:
                yield landed
            raise
        except BaseException:
            await writer.settle()
            raise
        if landed is not None:
            yield landed

    async def _write_in_transaction(self, chunks: AsyncIterator[FoldedChunk]) -> ChunkOutcome[Outcome] | None:
        """The case documents and what is derived from them (aggregates) change together or not
        at all: a batch redelivered after a crash finds its cases already at the new state, so the
        difference it would add is zero, never counted twice. A transient error is retried by
        `_retrying` (folded again from a fresh read); any other fails it."""
        written: list[tuple[str, Document]] = []
        derived: list[Document] = []
        companion = self.port.companion()
        staged = False
        writes: CompanionWrites[Outcome] | None = None
        async with self.collection.database.client.start_session() as session:
            async with await session.start_transaction():
                writer = ChunkWriter(self.collection, session)
                try:
                    async for chunk in chunks:
                        await writer.send(chunk)
                        if companion is not None and chunk.staged:  # while the chunk is written
                            companion.add([(before, document) for _, before, document in chunk.staged])
                            staged = True
                    await writer.drain()
                    writes = companion.writes() if companion is not None and staged else None
                    if writes is not None:
                        await writer.write_other(writes.writes)
                finally:
                    await writer.settle()
                for landed in writer.landed:
                    written.extend(landed.written)
                    derived.extend(landed.derived)
        if not written and writes is None:
            return None
        return ChunkOutcome(written, derived, writes.outcome if writes is not None else None)

    async def _reading(
        self, parts: list[list[tuple[str, list[Document]]]]
    ) -> AsyncGenerator[tuple[list[tuple[str, list[Document]]], Mapping[str, Document]], None]:
        """Each chunk of cases with its cases as stored, the next chunk's read already on its way
        to the store while this one is folded and written (the chunks hold distinct cases)."""
        ahead: asyncio.Future[Mapping[str, Document]] | None = None
        try:
            for number, part in enumerate(parts):
                previous = await (ahead if ahead is not None else self._read(dict(part)))
                ahead = None
                if number + 1 < len(parts):
                    ahead = asyncio.ensure_future(self._read(dict(parts[number + 1])))
                yield part, previous
        finally:
            if ahead is not None:  # the attempt stopped early: its read is not wanted
                ahead.cancel()
                await asyncio.wait([ahead])  # (a cancellation of this task itself goes on up)
                if not ahead.cancelled():
                    ahead.exception()  # taken: the attempt's own error is the one reported

    async def _read(self, incoming: Incoming) -> Mapping[str, Document]:
        """The batch's cases as stored: those this process holds from memory, the others from the
        store: those the batch receives (mostly new: absent) in large queries, the rest in small ones."""
        held: Mapping[str, Document] = {}
        missing: list[str] = list(incoming)
        if self.cache is not None:
            held, missing = self.cache.lookup(incoming)
        new: list[str] = []
        other: list[str] = []
        for code in missing:
            (new if any(e["type"] == RECEIVED for e in incoming[code]) else other).append(code)
        found = await find_by_ids(self.collection, new, per_query=ABSENT_IDS_PER_QUERY)
        found.update(await find_by_ids(self.collection, other))
        # ChainMap only reads `held` (its writes go to `found`); typeshed asks for a MutableMapping
        return ChainMap(found, held) if held else found  # type: ignore[arg-type]

    def _fold(
        self,
        cases: list[tuple[str, list[Document]]],
        previous: Mapping[str, Document],
        registry: Registry,
        result: BatchResult,
        kept: list[Entry],
        refused: Refused,
    ) -> FoldedChunk:
        chunk = FoldedChunk()
        for case_code, new_events in cases:
            before = previous.get(case_code)
            events, fresh = _with_fresh(before, new_events, result)
            # nothing new: skipped, unless a re-fold (no new events) of a stored case
            if not fresh and (before is None or new_events):
                continue
            try:
                document, stored, derived = self._fold_case(case_code, events, before, registry)
            except Exception as exc:  # whatever this case holds stops this case only
                if is_infrastructure(exc):
                    raise
                refused.append((case_code, exc))
                continue
            result.applied += fresh
            chunk.derived.extend(derived)
            chunk.staged.append((case_code, before, document))
            chunk.writes.append(case_write(stored, before))
            if self.cache is not None:
                kept.append(self.cache.entry(case_code, document, stored))
        if chunk.staged:
            chunk.first = self.port.prelude(chunk.staged)
        return chunk

    def _fold_case(
        self, case_code: str, events: list[Document], before: Document | None, registry: Registry
    ) -> tuple[Document, RawBSONDocument, list[Document]]:
        """One case's new document, encoded, and the events it derives."""
        state = fold_case([CaseEvent.from_dict(e) for e in events], registry)
        derived = self.port.derive(state, before)
        document = self.port.document(state, events, before)
        document["events"] = events
        # encoded here, once: for the write (pymongo sends a RawBSONDocument as it is) and for the cache
        stored = RawBSONDocument(bson.encode({"_id": case_code, **document}, codec_options=self.codec_options))
        if len(stored.raw) > self.max_document_bytes:
            raise CaseTooLarge(
                f"the case document would be {len(stored.raw)} bytes, over the limit of "
                f"{self.max_document_bytes} ({len(events)} events)"
            )
        return document, stored, derived


def _with_fresh(before: Document | None, new_events: list[Document], result: BatchResult) -> tuple[list[Document], int]:
    """The case's events with the new ones it did not hold yet (the others counted as duplicates),
    and how many were new."""
    events = list(before.get("events", [])) if before else []
    known = {event_identity(e) for e in events}
    fresh = 0
    for event in new_events:
        identity = event_identity(event)
        if identity in known:
            result.duplicates += 1
            continue
        known.add(identity)
        events.append(event)
        fresh += 1
    return events, fresh


def _decoded(
    records: list[ConsumerRecord],
) -> tuple[Incoming, dict[str, list[tuple[ConsumerRecord, Document]]], list[Poison]]:
    """A batch's records by case (and where each came from); those that cannot be decoded, as poison."""
    incoming: Incoming = {}
    origins: dict[str, list[tuple[ConsumerRecord, Document]]] = {}
    poison: list[Poison] = []
    for record in records:
        try:
            event = decode(record)
        except Exception as exc:  # whatever the record holds (RecursionError for a deep one)
            poison.append(poison_of(record, exc, _reason(exc), case_code=_case_of_key(record)))
            continue
        incoming.setdefault(event["case_code"], []).append(event)
        origins.setdefault(event["case_code"], []).append((record, event))
    return incoming, origins, poison


class ChunkWriter:
    """Writes a batch's case documents chunk by chunk, one bulk write in flight while the caller
    folds the next chunk (the fold is this process's CPU, the write the store's), each after its
    prelude's writes; in the batch's session, if any."""

    def __init__(self, collection: AsyncCollection[Document], session: Any) -> None:
        self.collection = collection
        self.session = session
        self.landed: list[ChunkOutcome[Any]] = []  # every chunk written, in order
        self.in_flight: asyncio.Future[ChunkOutcome[Any]] | None = None

    async def send(self, chunk: FoldedChunk) -> ChunkOutcome[Any] | None:
        """Start writing this chunk once the one before landed; the one before's outcome."""
        landed = await self.drain()
        if chunk.writes:
            self.in_flight = asyncio.ensure_future(self._written(chunk))
            await asyncio.sleep(0)  # the write leaves for the store before the next fold
        return landed

    async def drain(self) -> ChunkOutcome[Any] | None:
        """The write in flight landed: its outcome (None if there was none)."""
        if self.in_flight is None:
            return None
        in_flight, self.in_flight = self.in_flight, None
        return await in_flight

    async def settle(self) -> ChunkOutcome[Any] | None:
        """After a failure: let a write still out land before the error goes up (and the
        transaction, if any, aborts); its outcome if it landed."""
        if self.in_flight is None:
            return None
        in_flight, self.in_flight = self.in_flight, None
        with contextlib.suppress(Exception):
            return await in_flight
        return None

    async def write_other(self, writes: OtherWrites) -> None:
        for collection, ops in writes:
            if ops:
                await collection.bulk_write(ops, ordered=False, session=self.session)

    async def _written(self, chunk: FoldedChunk) -> ChunkOutcome[Any]:
        await self._bulk(chunk.writes, chunk.first)
        landed = chunk.landed()
        self.landed.append(landed)
        return landed

    async def _bulk(self, writes: list[CaseWrite], first: OtherWrites) -> None:
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

    async def _first(self, collection: AsyncCollection[Document], ops: OtherOps) -> None:
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

    A case the batch found absent is inserted: this store takes inserts faster than replacement
    upserts (ADR 0010); one created since the read (another consumer during a
    rebalance) fails the insert on its key, and the batch is applied again from a fresh read. A
    known case is replaced whole, on its `_id` alone (the store's fast path; ADR 0011): a `$set`
    costs this store a diff of the whole document for its oplog, a replacement does not. Nothing
    else writes a case document (the deadline's timer marks live in their own collection), so there
    is nothing for the replacement to overwrite but the batch's own reading.
    """
    document = cast(Document, stored)  # a RawBSONDocument, which pymongo sends as it is
    if before is None:
        return InsertOne(document)
    # not an upsert: a case read a moment ago that is gone now must not come back
    return ReplaceOne({"_id": before["_id"]}, document)


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

"""The open cases in memory, for the agencies' lists (ADR 0008).

An overdue or due-soon page is a range of open cases ordered by due (or received) instant. The
store answers it with a filtered sort over every case document; this index answers it from two
sorted key lists, walking from the cursor and stopping after `limit + 1` matching rows, so a page
costs the same however many cases are open.

It holds only what the store holds: it is loaded from the store and then fed the documents this
process writes, after each write. That is exact only while this process is the only writer of the
case collection, i.e. while its consumer holds every partition of tthc.case-events. So:

- it is (re)loaded each time the consumer is assigned every partition, and is usable once loaded;
  a rebalance that gives this member every partition again in the next generation keeps it
  (shared/sole_writer.py);
- it is loaded from its snapshot when there is one for the group's committed offsets: written at a
  graceful stop (`save`), beside the cases, when the index was exact and the consumer had
  committed all it applied. Every case write comes from a record at or past the committed offsets
  (a writer commits after its writes; one that did not commit is re-applied from there by this
  process), so equal offsets mean the store holds no case write the snapshot lacks once those
  records are applied; a refold (no record of its own) deletes it first. Every assignment takes it
  out of the store before this process applies a record (no later start meets it), and the only
  writer keeps it, for its load and a retry of a load that failed, until the index is installed or
  another member may have written.
  Otherwise a scan of the open cases (the projection of the fields a row needs);
- it is unusable from the moment partitions are revoked (before another member can write), and
  while the assignment is partial (several replicas): the lists then read the store. While this
  process, the only writer, loads it, the lists answer 503 (lists.py), the store left to the load;
- cases that ended are dropped, so it can answer for an `as_of` no earlier than the latest end it
  dropped (`horizon`); an older `as_of` reads the store.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, TypeVar

import bson
from bson.binary import Binary
from prometheus_client import Gauge
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError
from sortedcontainers import SortedList

from shared.domain.apology_due import apology_due
from shared.kafka import Membership
from shared.sole_writer import SoleWriterCopy
from shared.store import Document, collection_uuid, finished, take_out

log = logging.getLogger(__name__)
INDEXED = Gauge("tthc_deadline_open_cases_indexed", "Open cases held by the in-memory list index")
INDEX_USABLE = Gauge("tthc_deadline_open_cases_index_usable", "1 when the lists are answered from memory, else 0")

T = TypeVar("T")
COUNTS_KEPT = 256  # list totals kept, by query, until the index changes

# the case document fields a list row needs (everything but the events and the timeline)
FIELDS = (
    "agency_code",
    "procedure_code",
    "procedure_name",
    "field_code",
    "level",
    "channel",
    "received_at",
    "due_at",
    "apology_deadline_at",
    "apology",
    "agency_at_fault",
    "status",
    "clock_stopped_since",
    "overdue_from",
)
_INTERNED = ("agency_code", "procedure_code", "procedure_name", "field_code", "level", "channel", "status")


@dataclass(slots=True)
class OpenCase:
    case_code: str
    agency_code: str | None
    procedure_code: str | None
    procedure_name: str | None
    field_code: str | None
    level: str | None
    channel: str | None
    received_at: datetime
    due_at: datetime
    apology_deadline_at: datetime | None
    apology: bool
    agency_at_fault: str | None
    status: str | None
    paused: bool
    overdue_from: datetime | None = None  # the fold's rule (S-766DOC 2.1): None = not overdue while so

    def document(self) -> dict[str, Any]:
        """The row's fields in the case document's shape (what `lists.row` reads)."""
        return {
            "_id": self.case_code,
            "agency_code": self.agency_code,
            "procedure_code": self.procedure_code,
            "procedure_name": self.procedure_name,
            "field_code": self.field_code,
            "level": self.level,
            "channel": self.channel,
            "received_at": self.received_at,
            "due_at": self.due_at,
            "apology_deadline_at": self.apology_deadline_at,
            "apology": True if self.apology else None,
            "agency_at_fault": self.agency_at_fault,
            "status": self.status,
            "clock_stopped_since": None,
        }


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The filters of one list request, already resolved (agencies = the subtree, None = all)."""

    due_from: datetime | None  # inclusive
    due_before: datetime | None  # exclusive (overdue)
    due_until: datetime | None  # inclusive (due-soon)
    received_by: datetime
    agencies: frozenset[str] | None = None
    level: str | None = None
    field: str | None = None
    procedure: str | None = None
    channel: str | None = None
    apology: str | None = None  # "issued" | "missing"
    apology_due_until: datetime | None = None  # the apology-due list: its window's end (as_of = received_by)

    def matches(self, case: OpenCase) -> bool:
        if case.paused or case.received_at > self.received_by:
            return False
        if self.apology_due_until is not None and not apology_due(
            self.received_by, self.apology_due_until, case.apology_deadline_at, case.due_at, case.apology
        ):
            return False
        due = case.due_at
        if self.due_before is not None and not due < self.due_before:
            return False
        if self.due_from is not None and due < self.due_from:
            return False
        if self.due_until is not None and due > self.due_until:
            return False
        if self.agencies is not None and case.agency_code not in self.agencies:
            return False
        if self.level and case.level != self.level:
            return False
        if self.field and case.field_code != self.field:
            return False
        if self.procedure and case.procedure_code != self.procedure:
            return False
        if self.channel and case.channel != self.channel:
            return False
        if self.apology == "issued" and not case.apology:
            return False
        if self.apology == "missing" and case.apology:
            return False
        return True


def to_open_case(code: str, document: dict[str, Any]) -> OpenCase | None:
    """The index entry of a case document, or None when the case is not open with a due instant."""
    if not document.get("open") or document.get("due_at") is None or document.get("received_at") is None:
        return None
    values = {name: document.get(name) for name in _INTERNED}
    for name, value in values.items():
        if isinstance(value, str):
            values[name] = sys.intern(value)
    return OpenCase(
        case_code=code,
        received_at=document["received_at"],
        due_at=document["due_at"],
        apology_deadline_at=document.get("apology_deadline_at"),
        apology=document.get("apology") is not None,
        agency_at_fault=document.get("agency_at_fault"),
        paused=document.get("clock_stopped_since") is not None,
        overdue_from=_overdue_from(document),
        **values,
    )


def _overdue_from(document: dict[str, Any]) -> datetime | None:
    """The fold's `overdue_from`; for a document written before it existed, due unless the clock stopped."""
    if "overdue_from" in document:
        overdue: datetime | None = document["overdue_from"]
        return overdue
    return None if document.get("clock_stopped_since") is not None else document.get("due_at")


def _prefer_indexed(code: str, indexed: dict[str, T], loaded: dict[str, T]) -> None:
    """A case written while the load scanned: what the index holds of it is newer than the scan's."""
    if code in indexed:
        loaded[code] = indexed[code]
    else:
        loaded.pop(code, None)


def _undated(document: dict[str, Any]) -> tuple[str, str] | None:
    """(agency, level) of an open case with no due instant (counted open, never listed), else None."""
    if document.get("open") and document.get("due_at") is None:
        return (document.get("agency_code") or "unknown", document.get("level") or "unknown")
    return None


# the snapshot: an OpenCase's fields column by column, CHUNK_ROWS cases a document, each chunk one
# BSON blob (the store copies it whole instead of decoding thousands of rows)
COLUMNS = tuple(f.name for f in fields(OpenCase))
UNDATED_COLUMNS = ("case_code", "agency", "level")
CHUNK_ROWS = 10_000
HEAD = "head"


def snapshot_chunks(
    cases: list[OpenCase], undated: list[tuple[str, tuple[str, str]]], save: str
) -> list[dict[str, Any]]:
    """The snapshot's chunk documents (at least one)."""
    out = []
    for number, start in enumerate(range(0, max(len(cases), len(undated), 1), CHUNK_ROWS)):
        rows = cases[start : start + CHUNK_ROWS]
        other = undated[start : start + CHUNK_ROWS]
        body: dict[str, list[Any]] = {name: [getattr(case, name) for case in rows] for name in COLUMNS}
        body |= {
            "undated_codes": [code for code, _ in other],
            "undated_agencies": [agency for _, (agency, _) in other],
            "undated_levels": [level for _, (_, level) in other],
        }
        out.append({"_id": f"{save}:{number:05d}", "save": save, "rows": Binary(bson.encode(body))})
    return out


def read_chunk(body: Mapping[str, Any], cases: dict[str, OpenCase], undated: dict[str, tuple[str, str]]) -> None:
    """One chunk's rows into `cases` and `undated` (categorical strings interned, as a scan does)."""
    columns = [body[name] for name in COLUMNS]
    for number, name in enumerate(COLUMNS):
        if name in _INTERNED:
            columns[number] = [sys.intern(v) if isinstance(v, str) else v for v in columns[number]]
    for values in zip(*columns, strict=True):
        case = OpenCase(*values)
        cases[case.case_code] = case
    for code, agency, level in zip(
        body["undated_codes"], body["undated_agencies"], body["undated_levels"], strict=True
    ):
        undated[code] = (agency, level)


@dataclass(slots=True)
class _Loaded:
    horizon: datetime  # the index answers no `as_of` before it: cases that ended earlier are not in it
    source: str  # "snapshot" or "scan"
    cases: dict[str, OpenCase] = field(default_factory=dict)
    undated: dict[str, tuple[str, str]] = field(default_factory=dict)
    chunks: set[str] = field(default_factory=set)  # the snapshot's chunks read into it


class OpenCaseIndex(SoleWriterCopy):
    name = "open-cases"

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        super().__init__(INDEX_USABLE)
        self.collection = collection
        self.cases: dict[str, OpenCase] = {}
        self.undated: dict[str, tuple[str, str]] = {}  # open cases with no due instant: (agency, level)
        self.by_due: SortedList = SortedList()
        self.by_received: SortedList = SortedList()
        self.horizon: datetime | None = None  # the latest end instant dropped since the load
        self._touched: set[str] | None = None  # while loading: codes written meanwhile
        self._claimed: Document | None = None  # the snapshot's head this process took for its load
        self._taking: asyncio.Task[None] | None = None  # the assignment's take-out of the snapshot's head
        self._partial: _Loaded | None = None  # what the attempts so far read of it
        self.loaded_from = ""  # "snapshot" or "scan": how the last load read the store
        self.version = 0  # moves at every change: the totals counted before are stale
        self._counts: OrderedDict[ListQuery, tuple[int, int]] = OrderedDict()  # query → (version, total)

    # --- keeping it current -------------------------------------------------------------------

    def written(self, documents: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """After a write of this process reached the store: the new fields of each case written."""
        self.version += 1
        for code, document in documents:
            if self._touched is not None:
                self._touched.add(code)
            self._put(code, to_open_case(code, document))
            self._put_undated(code, document)
            end = document.get("end_at")
            if end is not None and (self.horizon is None or end > self.horizon):
                self.horizon = end
        INDEXED.set(len(self.cases))

    async def load(self) -> None:
        # kept from an attempt that failed to the next: what this process wrote since the first
        # attempt began is newer than what a retry reads (from the snapshot or the store)
        if self._touched is None:
            self._touched = set()
        loaded = await self._from_snapshot() or await self._scan()
        self.loaded_from = loaded.source
        for code in self._touched:  # written while the load ran: what was indexed since wins
            _prefer_indexed(code, self.cases, loaded.cases)
            _prefer_indexed(code, self.undated, loaded.undated)
        self._touched = None
        self._drop_claim()  # installed below, at once: a later load reads the store again
        self.version += 1
        self.cases = loaded.cases
        self.undated = loaded.undated
        self.by_due = SortedList((c.due_at, c.case_code) for c in loaded.cases.values())
        self.by_received = SortedList((c.received_at, c.case_code) for c in loaded.cases.values())
        self.horizon = loaded.horizon if self.horizon is None else max(self.horizon, loaded.horizon)
        INDEXED.set(len(self.cases))

    async def _scan(self) -> _Loaded:
        """The open cases read from the store: only the fields a row needs."""
        loaded = _Loaded(datetime.now().astimezone(), "scan")
        projection = {name: 1 for name in (*FIELDS, "open", "end_at")}
        async for document in self.collection.find({"open": True}, projection, batch_size=20_000):
            case = to_open_case(document["_id"], document)
            if case is not None:
                loaded.cases[case.case_code] = case
            elif (key := _undated(document)) is not None:
                loaded.undated[document["_id"]] = key
        return loaded

    @property
    def snapshots(self) -> AsyncCollection[Document]:
        return self.collection.database[f"{self.collection.name}_open_index"]

    async def assigned(self, sole_owner: bool, membership: Membership | None = None) -> None:
        """At every assignment: the snapshot's head is taken out of the store before this process
        applies a record (it writes cases from now on, which the snapshot lacks, and may stop before
        it commits them: a later start with the same offsets would miss them once they come again
        as duplicates), and kept, for the load, when this process is the only writer. In a task:
        the rebalance waits on no store; the consumer awaits it (`before_applying`), as the load does."""
        await super().assigned(sole_owner, membership)  # (no await in it: the load starts after this)
        self._taking = asyncio.create_task(self._take_head(self.membership), name=f"{self.name}-claim")

    async def before_applying(self) -> None:
        await finished(self._taken())

    def _taken(self) -> asyncio.Task[None]:
        """The assignment's take-out of the head (again, if it failed: the store was away)."""
        task = self._taking
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._taking = asyncio.create_task(self._take_head(self.membership), name=f"{self.name}-claim")
        return task

    async def _take_head(self, membership: Membership | None) -> None:
        head = await take_out(self.snapshots, HEAD)
        # kept only for the assignment that took it, if this process is its only writer
        if head is not None and membership is not None and self.membership is membership and self._claimed is None:
            self._claimed = head

    async def _claim(self) -> Document | None:
        """The snapshot's head this assignment took out of the store, kept in memory, its chunks in
        the store, for a retry of this load while the assignment is kept (the writes since are in
        `_touched`)."""
        await finished(self._taken())  # (a load cancelled by a revocation does not cancel the take-out)
        return self._claimed

    async def _from_snapshot(self) -> _Loaded | None:
        """The snapshot saved for the group's committed offsets of this assignment; else None."""
        committed = dict(self.membership.committed) if self.membership is not None else {}
        head = await self._claim()
        if head is None:
            return None
        if (
            not committed
            or head.get("offsets") != committed
            or head.get("columns") != list(COLUMNS)
            or head.get("collection") != await collection_uuid(self.collection)  # not dropped and made again since
        ):
            self._drop_claim()
            log.info("open-case snapshot not for these offsets; scanning the store", extra={"copy": self.name})
            return None
        # an attempt that failed left what it read: the retry reads the other chunks only
        loaded = self._partial or _Loaded(head["horizon"], "snapshot")
        self._partial = loaded
        async for chunk in self.snapshots.find({"save": head["save"], "_id": {"$nin": sorted(loaded.chunks)}}):
            try:
                body: dict[str, Any] = bson.decode(chunk["rows"], self.collection.codec_options)
                read_chunk(body, loaded.cases, loaded.undated)  # a chunk read again puts the same rows
            except (PyMongoError, OSError, TimeoutError):
                raise  # the store or the connection: a retry reads the chunks left
            except Exception:
                # the chunk itself cannot be read: a retry would fail on it again; the next load scans
                self._drop_claim()
                log.exception("open-case snapshot chunk unreadable; scanning the store", extra={"copy": self.name})
                return None
            loaded.chunks.add(chunk["_id"])
        if len(loaded.chunks) != head["chunks"]:
            self._drop_claim()
            return None
        return loaded

    def _drop_claim(self) -> None:
        self._claimed = None
        self._partial = None

    def discard(self) -> None:
        """Another member may write: what this process wrote meanwhile and the snapshot it took are
        no longer the store's latest (the next load reads the store)."""
        super().discard()
        self._touched = None
        self._drop_claim()

    async def save(self, offsets: Mapping[str, int | None], timeout: float = 40) -> bool:
        """At a graceful stop, after the consumer's last commit (`offsets`): the index as a snapshot for
        the next load, when it is exact (loaded, and only this process wrote since). True if saved."""
        if not self.loaded or not offsets or self.collection is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._save(offsets)
        except Exception as exc:  # the next start scans the store
            log.warning("open-case snapshot not saved", extra={"copy": self.name, "error": repr(exc)})
            return False
        return True

    async def _save(self, offsets: Mapping[str, int | None]) -> None:
        save = uuid.uuid4().hex
        membership = self.membership
        chunks = snapshot_chunks(list(self.cases.values()), list(self.undated.items()), save)
        await self.snapshots.insert_many(chunks, ordered=False)
        head = {
            "offsets": dict(offsets),
            "columns": list(COLUMNS),
            "save": save,
            "chunks": len(chunks),
            "collection": await collection_uuid(self.collection),
            "horizon": self.horizon or datetime.now(UTC),
            "saved_at": datetime.now(UTC),
        }
        await self.snapshots.replace_one({"_id": HEAD}, head, upsert=True)
        if not self._sole or self.membership is not membership:  # revoked meanwhile: another member may write
            await self.snapshots.delete_one({"_id": HEAD, "save": save})
            raise RuntimeError("partitions revoked while the snapshot was saved")
        await self.snapshots.delete_many({"save": {"$ne": save}, "_id": {"$ne": HEAD}})
        log.info("open-case snapshot saved", extra={"copy": self.name, "cases": len(self.cases), "chunks": len(chunks)})

    async def forget_snapshot(self) -> None:
        """Before a write that comes from no record (a refold): a snapshot would miss it."""
        await self.snapshots.delete_one({"_id": HEAD})

    def _put(self, code: str, case: OpenCase | None) -> None:
        old = self.cases.pop(code, None)
        if old is not None and case is not None and (old.due_at, old.received_at) == (case.due_at, case.received_at):
            self.cases[code] = case  # its place in both orders is unchanged (most later events)
            return
        if old is not None:
            self.by_due.remove((old.due_at, code))
            self.by_received.remove((old.received_at, code))
        if case is not None:
            self.cases[code] = case
            self.by_due.add((case.due_at, code))
            self.by_received.add((case.received_at, code))

    def _put_undated(self, code: str, document: dict[str, Any]) -> None:
        key = _undated(document)
        if key is None:
            self.undated.pop(code, None)
        else:
            self.undated[code] = key

    # --- reading ------------------------------------------------------------------------------

    def tallies(
        self, now: datetime, horizon: datetime, apology_horizon: datetime | None = None
    ) -> dict[tuple[str, str], dict[str, int]]:
        """(agency, level) → open, overdue, due soon (until `horizon`), apology missing, apology due
        (the apology-due list at `now`, its window ending at `apology_horizon`): the gauges."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        zero = {"open": 0, "overdue": 0, "soon": 0, "missing": 0, "apology_due": 0}
        for case in self.cases.values():
            key = (case.agency_code or "unknown", case.level or "unknown")
            counts = out.get(key) or out.setdefault(key, dict(zero))
            counts["open"] += 1
            if case.overdue_from is not None and case.overdue_from < now:
                counts["overdue"] += 1  # as the figures count it: a waiting case is judged at its request
            elif not case.paused and now <= case.due_at <= horizon:
                counts["soon"] += 1
            if (
                not case.paused
                and apology_horizon is not None
                and apology_due(now, apology_horizon, case.apology_deadline_at, case.due_at, case.apology)
            ):
                counts["apology_due"] += 1
            if not case.apology and case.apology_deadline_at is not None and case.apology_deadline_at < now:
                counts["missing"] += 1
        for key in self.undated.values():
            counts = out.get(key) or out.setdefault(key, dict(zero))
            counts["open"] += 1
        return out

    def answers(self, as_of: datetime) -> bool:
        return self.usable and (self.horizon is None or as_of >= self.horizon)

    async def ready(self, as_of: datetime) -> bool:
        """`answers`, after waiting a little for a rebalance or a load in progress (`wait_usable`): a
        list asked right after a restart waits for the index rather than burden the store with a
        scan while the index loads."""
        await self.wait_usable()
        return self.answers(as_of)

    def page(
        self,
        query: ListQuery,
        sort: str,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[OpenCase]:
        """Up to `limit` matching cases in `sort` order, strictly after the cursor key `after`."""
        out = []
        for case in self._walk(query, sort, after):
            if query.matches(case):
                out.append(case)
                if len(out) >= limit:
                    break
        return out

    def count(self, query: ListQuery) -> int:
        """How many cases match: the lists' `total`, walking only the due range; kept for the next
        page of the same list until the index changes (each page asks for it)."""
        known = self._counts.get(query)
        if known is not None and known[0] == self.version:
            self._counts.move_to_end(query)
            return known[1]
        counted = sum(1 for case in self._walk(query, "due_at", None) if query.matches(case))
        self._counts[query] = (self.version, counted)
        if len(self._counts) > COUNTS_KEPT:
            self._counts.popitem(last=False)
        return counted

    def _walk(self, query: ListQuery, sort: str, after: tuple[datetime, str] | None) -> Iterator[OpenCase]:
        descending = sort.startswith("-")
        by_due = sort.lstrip("-") == "due_at"
        keys = self.by_due if by_due else self.by_received
        low = high = None
        if by_due:  # the due range bounds the walk itself
            low = query.due_from
            high = query.due_until or query.due_before
        if descending:
            maximum = after if after is not None else ((high, "\U0010ffff") if high is not None else None)
            minimum = (low, "") if low is not None else None
            iterator = keys.irange(minimum, maximum, inclusive=(True, after is None), reverse=True)
        else:
            minimum = after if after is not None else ((low, "") if low is not None else None)
            maximum = (high, "\U0010ffff") if high is not None else None
            iterator = keys.irange(minimum, maximum, inclusive=(after is None, True))
        cases = self.cases
        for _, code in iterator:
            yield cases[code]

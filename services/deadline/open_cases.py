"""The open cases in memory, for the agencies' lists (ADR 0008).

An overdue or due-soon page is a range of open cases ordered by due (or received) instant. The
store answers it with a filtered sort over every case document; this index answers it from two
sorted key lists, walking from the cursor and stopping after `limit + 1` matching rows, so a page
costs the same however many cases are open.

It holds only what the store holds: it is loaded from the store and then fed the documents this
process writes, after each write. That is exact only while this process is the only writer of the
case collection, i.e. while its consumer holds every partition of tthc.case-events. So:

- it is (re)loaded each time the consumer is assigned every partition, and is usable once loaded;
- it is unusable from the moment partitions are revoked (before another member can write), and
  while the assignment is partial (several replicas): the lists then read the store;
- cases that ended are dropped, so it can answer for an `as_of` no earlier than the latest end it
  dropped (`horizon`); an older `as_of` reads the store.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from motor.motor_asyncio import AsyncIOMotorCollection
from prometheus_client import Gauge
from sortedcontainers import SortedList

from shared.domain.apology_due import apology_due
from shared.sole_writer import SoleWriterCopy
from shared.store import Document

INDEXED = Gauge("tthc_deadline_open_cases_indexed", "Open cases held by the in-memory list index")
INDEX_USABLE = Gauge("tthc_deadline_open_cases_index_usable", "1 when the lists are answered from memory, else 0")

T = TypeVar("T")

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


class OpenCaseIndex(SoleWriterCopy):
    name = "open-cases"

    def __init__(self, collection: AsyncIOMotorCollection[Document]) -> None:
        super().__init__(INDEX_USABLE)
        self.collection = collection
        self.cases: dict[str, OpenCase] = {}
        self.undated: dict[str, tuple[str, str]] = {}  # open cases with no due instant: (agency, level)
        self.by_due: SortedList = SortedList()
        self.by_received: SortedList = SortedList()
        self.horizon: datetime | None = None  # the latest end instant dropped since the load
        self._touched: set[str] | None = None  # while loading: codes written meanwhile

    # --- keeping it current -------------------------------------------------------------------

    def written(self, documents: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """After a write of this process reached the store: the new fields of each case written."""
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
        self._touched = set()
        loaded_at = datetime.now().astimezone()
        fresh: dict[str, OpenCase] = {}
        undated: dict[str, tuple[str, str]] = {}
        try:
            projection = {name: 1 for name in (*FIELDS, "open", "end_at")}
            async for document in self.collection.find({"open": True}, projection, batch_size=5000):
                case = to_open_case(document["_id"], document)
                if case is not None:
                    fresh[case.case_code] = case
                elif (key := _undated(document)) is not None:
                    undated[document["_id"]] = key
            for code in self._touched:  # written while the scan ran: what was indexed since wins
                _prefer_indexed(code, self.cases, fresh)
                _prefer_indexed(code, self.undated, undated)
        finally:
            self._touched = None
        self.cases = fresh
        self.undated = undated
        self.by_due = SortedList((c.due_at, c.case_code) for c in fresh.values())
        self.by_received = SortedList((c.received_at, c.case_code) for c in fresh.values())
        self.horizon = loaded_at if self.horizon is None else max(self.horizon, loaded_at)
        INDEXED.set(len(self.cases))

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
        """How many cases match: the lists' `total`, walking only the due range."""
        return sum(1 for case in self._walk(query, "due_at", None) if query.matches(case))

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

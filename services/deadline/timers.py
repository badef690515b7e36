"""Timers that survive restarts: an indexed `next_check_at` per case, not in-memory sleeps.

Each case's timer is a small document of its own (`<cases>_timers`: `next_check_at`, the marks of
the transitions published, `inputs`: what the timing was computed from), so the case document has
one writer, the projection, which replaces it whole, and no secondary index to keep (ADR 0011).
The projection re-arms a case's timer when what times it changes (open, due, pause, apology),
before it writes the case; it does not read the marks, so it sets the check at the case's first
transition, never later than the true next one. The sweep reads the due timers (an index range)
and the cases they time; a case whose inputs are not the timer's is being written (the timer lands
first) and waits for the next pass. It publishes what is due and not marked, marks it, and moves
the check on, unless the projection re-armed the timer meanwhile (its check is the earlier one).

Transitions, each published once (its event id names the case, the transition and the statutory
due instant, so a replay, a restart or a rebuild yields the same id and consumers count it once):
- deadline.due_soon: within the configured working time before due (default one working day);
- deadline.apology_due_soon: the case enters the apology-due window, the configured working time
  (TTHC_APOLOGY_DUE_WORKING_HOURS, default one working day) before its apology deadline, with no
  apology (a warning before the apology is late, not after);
- deadline.apology_required: one working day before due, not finished, no apology;
- deadline.overdue: at due, not finished.
An open pause of the clock (waiting for the citizen, verification) suspends them. When due_at
moves (a pause extended it), the transitions re-arm for the new due instant.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from shared.domain.calendar import CalendarError, WorkingCalendar
from shared.domain.codes import DerivedEventType
from shared.domain.registry import Registry
from shared.periodic import Periodic
from shared.store import Document, find_by_ids

log = logging.getLogger(__name__)

# A lower bound for the sweep's range: every timer is after it. Without one the range scan starts
# at the cases with no timer (null sorts first: paused, or every transition fired), and this store
# fetches each of them at every sweep.
TIMER_FLOOR = datetime(1970, 1, 1, tzinfo=UTC)
# A timer whose case does not match it this long after it was armed was left by a failed attempt.
STALE_ARMING = timedelta(minutes=10)
# Batches read per sweep query (see Sweeper.sweep).
FETCH_BATCHES = 10

TIMER_INDEX = [("next_check_at", 1)]

TIMER_TYPES = (
    DerivedEventType.DUE_SOON,
    DerivedEventType.APOLOGY_DUE_SOON,
    DerivedEventType.APOLOGY_REQUIRED,
    DerivedEventType.OVERDUE,
)
# the default TTHC_APOLOGY_DUE_WORKING_HOURS, for callers that time only the due instant's transitions
APOLOGY_DUE_SECONDS = 8 * 3600


def transition_id(case_code: str, kind: str, due_at: datetime) -> str:
    return f"{case_code}:{kind}:{due_at.astimezone(UTC).isoformat()}"


def transition_instants(
    document: dict[str, Any],
    calendar: WorkingCalendar,
    due_soon_seconds: int,
    apology_due_seconds: int = APOLOGY_DUE_SECONDS,
) -> dict[str, datetime]:
    """When each timer of an open, running case fires."""
    due = document["due_at"]
    instants = {
        DerivedEventType.DUE_SOON.value: calendar.subtract_working_time(due, due_soon_seconds),
        DerivedEventType.OVERDUE.value: due,
    }
    apology_at = document.get("apology_deadline_at")
    if document.get("apology") is None and apology_at is not None:
        instants[DerivedEventType.APOLOGY_DUE_SOON.value] = calendar.subtract_working_time(
            apology_at, apology_due_seconds
        )
        instants[DerivedEventType.APOLOGY_REQUIRED.value] = apology_at
    return instants


def armed(document: dict[str, Any]) -> bool:
    return bool(document.get("open")) and document.get("due_at") is not None and not document.get("clock_stopped_since")


def next_check_at(
    document: dict[str, Any],
    calendar: WorkingCalendar,
    due_soon_seconds: int,
    apology_due_seconds: int = APOLOGY_DUE_SECONDS,
) -> datetime | None:
    """The earliest timer not yet fired for the current due instant; None when nothing is armed."""
    if not armed(document):
        return None
    emitted = set(document.get("emitted", ()))
    try:
        instants = transition_instants(document, calendar, due_soon_seconds, apology_due_seconds)
    except CalendarError:
        return None
    pending = [
        at for kind, at in instants.items() if transition_id(document["_id"], kind, document["due_at"]) not in emitted
    ]
    return min(pending) if pending else None


def fired(
    document: dict[str, Any],
    calendar: WorkingCalendar,
    due_soon_seconds: int,
    now: datetime,
    apology_due_seconds: int = APOLOGY_DUE_SECONDS,
) -> list[dict[str, Any]]:
    """The derived events whose time has come and that were not published yet."""
    if not armed(document):
        return []
    emitted = set(document.get("emitted", ()))
    out = []
    for kind, at in transition_instants(document, calendar, due_soon_seconds, apology_due_seconds).items():
        event_id = transition_id(document["_id"], kind, document["due_at"])
        if at <= now and event_id not in emitted:
            out.append(
                {
                    "event_id": event_id,
                    "type": kind,
                    "schema_version": 1,
                    "case_code": document["_id"],
                    "occurred_at": at.isoformat(),
                    "agency_code": document.get("agency_code"),
                    "data": {
                        "due_at": document["due_at"].isoformat(),
                        "apology_deadline_at": document["apology_deadline_at"].isoformat()
                        if document.get("apology_deadline_at")
                        else None,
                        "agency_at_fault": document.get("agency_at_fault"),
                        "procedure_code": document.get("procedure_code"),
                        "level": document.get("level"),
                        "apology_issued": document.get("apology") is not None,
                        "source": document.get("source"),
                    },
                }
            )
    return out


def timer_writes(
    staged: list[tuple[str, dict[str, Any] | None, dict[str, Any]]],
    calendar_for: Callable[[str | None], WorkingCalendar],
    due_soon_seconds: int,
    now: datetime,
    apology_due_seconds: int = APOLOGY_DUE_SECONDS,
) -> list[InsertOne[Document] | UpdateOne]:
    """The timers to re-arm for a chunk of case writes: (case code, stored document or None, new one).

    Only cases whose timing changed; the check goes to the first transition, fired or not (the marks
    are the sweeper's, not read here), so a known case is checked once more and nothing is missed.
    A case that stops being armed (paused, ended) is disarmed by a write, without an upsert, on its
    timer only while that timer has a check: none is left once every transition fired or an earlier
    disarm landed, and a case with no timer gets none.
    """
    writes: list[InsertOne[Document] | UpdateOne] = []
    for code, before, document in staged:
        inputs = timer_inputs(document)
        if before is not None and timer_inputs(before) == inputs:
            continue
        calendar = calendar_for(document.get("agency_code"))
        at = next_check_at({**document, "_id": code}, calendar, due_soon_seconds, apology_due_seconds)
        timer = {"next_check_at": at, "inputs": inputs, "armed_at": now}
        if before is None:  # a new case: inserted, cheaper than an upsert here (a leftover is upserted then)
            if at is not None:
                writes.append(InsertOne({"_id": code, **timer}))
        elif at is not None:
            writes.append(UpdateOne({"_id": code}, {"$set": timer}, upsert=True))
        else:
            # on a check still set: the new inputs then also stop a sweep of the old ones from
            # moving the check on (its write is on the inputs it read)
            writes.append(UpdateOne({"_id": code, "next_check_at": {"$ne": None}}, {"$set": timer}))
    return writes


def timer_inputs(document: dict[str, Any]) -> str:
    """What a case's timers are computed from (with the marks), as a string: equal for the new
    document and the one read back (the store keeps milliseconds and hands back its own zone)."""

    def instant(name: str) -> str:
        at = document.get(name)
        return "" if at is None else str(round(at.timestamp() * 1000))

    return "|".join(
        (
            "open" if document.get("open") else "",
            instant("due_at"),
            instant("clock_stopped_since"),
            "apology" if document.get("apology") is not None else "",
            instant("apology_deadline_at"),
            document.get("agency_code") or "",
        )
    )


class TimedCases(Protocol):
    """What the sweeper needs of the deadline service: the timers and the cases they time, the
    thresholds and calendars that time them, and the way derived events are published."""

    due_soon_seconds: int
    apology_due_seconds: int
    cases: AsyncCollection[Document]
    timers: AsyncCollection[Document]

    @property
    def registry(self) -> Registry: ...

    async def publish_derived(self, events: list[dict[str, Any]]) -> None: ...


@dataclass
class Firing:
    """One sweep round's work: the events to publish and the timer writes that go with them."""

    events: list[dict[str, Any]] = field(default_factory=list)
    writes: list[UpdateOne] = field(default_factory=list)  # each on the timer's inputs as read
    marks: list[UpdateOne] = field(default_factory=list)  # the same marks on `_id` alone (`_fire`)
    handled: int = 0


class Sweeper:
    """Finds the timers whose next check has come (an index range scan), publishes their cases'
    transitions, marks them, and schedules their next check."""

    def __init__(self, context: TimedCases, interval_s: float, batch: int = 1000) -> None:
        self.context = context
        self.interval_s = interval_s
        self.batch = batch
        self.last_sweep_seconds = 0.0
        self.periodic = Periodic("timer-sweeper", interval_s, lambda: self.sweep(datetime.now(UTC)))
        self.stopping = False

    def start(self) -> None:
        self.stopping = False
        self.periodic.start()

    async def stop(self) -> None:
        """A round in hand ends after the batch it is firing: the timers after it stay due, for the
        next start's first round (a backlog's round takes tens of seconds)."""
        self.stopping = True
        await self.periodic.stop()

    async def sweep(self, now: datetime) -> int:
        """One pass; returns how many derived events were published."""
        started = asyncio.get_running_loop().time()
        total = 0
        fetch = self.batch * FETCH_BATCHES
        while True:
            # The store reads every timer in the range before it applies a limit, so each query
            # takes several batches (streamed, marked batch by batch) rather than one: a backlog of
            # N due cases is read about N/fetch times over, not N/batch.
            found: list[dict[str, Any]] = []
            seen = moved = 0
            due = {"next_check_at": {"$gte": TIMER_FLOOR, "$lte": now}}
            cursor = self.context.timers.find(due).sort("next_check_at", 1).limit(fetch)
            try:
                async for timer in cursor:
                    seen += 1
                    found.append(timer)
                    if len(found) == self.batch:
                        handled, published = await self._fire(found, now)
                        moved, total, found = moved + handled, total + published, []
                        if self.stopping:
                            break
            finally:
                await cursor.close()
            if self.stopping:  # the timers not fired stay due, unmarked
                break
            if found:
                handled, published = await self._fire(found, now)
                moved, total = moved + handled, total + published
            if seen < fetch or not moved:  # not moved: all of them wait for their cases' writes
                break
        self.last_sweep_seconds = asyncio.get_running_loop().time() - started
        return total

    async def _fire(self, timers: list[dict[str, Any]], now: datetime) -> tuple[int, int]:
        """Publishes the transitions these timers' cases have reached, then marks them and moves
        their checks on; returns how many timers it handled and how many events it published."""
        wall = datetime.now(UTC)
        cases = await find_by_ids(self.context.cases, [t["_id"] for t in timers], {"events": 0, "timeline": 0})
        firing = Firing()
        for timer in timers:
            self._check(timer, cases.get(timer["_id"]), now, wall, firing)
        if firing.events:
            await self.context.publish_derived(firing.events)  # published first: a crash re-publishes the same ids
        if firing.writes:
            result = await self.context.timers.bulk_write(firing.writes, ordered=False)
            if result.matched_count < len(firing.writes) and firing.marks:
                # a timer re-armed since it was read (its write did not land): its marks still
                # must, or the transitions would be published again, perhaps to another agency
                await self.context.timers.bulk_write(firing.marks, ordered=False)
        return firing.handled, len(firing.events)

    def _check(
        self, timer: dict[str, Any], document: dict[str, Any] | None, now: datetime, wall: datetime, firing: Firing
    ) -> None:
        """One timer: what its case has reached, its marks, its next check (or nothing, while its
        case's write is under way)."""
        inputs = timer.get("inputs")
        now_inputs = inputs
        if document is None or timer_inputs(document) != inputs:
            # the timer lands before its case's write: that write is under way, unless the timer
            # is older than any write takes (a batch that failed after arming it and was applied
            # again differently, e.g. with more events): then the case re-arms it
            armed_at = timer.get("armed_at")
            if armed_at is None or armed_at > wall - STALE_ARMING:
                return
            if document is None:  # a case never written (its batch was not applied again): disarmed
                firing.handled += 1
                firing.writes.append(
                    UpdateOne({"_id": timer["_id"], "inputs": inputs}, {"$set": {"next_check_at": None}})
                )
                return
            now_inputs = timer_inputs(document)
        firing.handled += 1
        threshold, apology_threshold = self.context.due_soon_seconds, self.context.apology_due_seconds
        calendar = self.context.registry.calendar_for(document.get("agency_code"))
        document["emitted"] = timer.get("emitted", [])
        due_now = fired(document, calendar, threshold, now, apology_threshold)
        firing.events.extend(due_now)
        emitted = [e["event_id"] for e in due_now]
        if emitted:
            document["emitted"] = [*document["emitted"], *emitted]
        check = next_check_at(document, calendar, threshold, apology_threshold)
        # the marks and the next check in one write, on the inputs read: if the projection re-armed
        # the timer since, its check stays (earlier), and the marks are written again on `_id`
        # alone (`_fire`: only then, so one write a timer as a rule)
        update: dict[str, Any] = {"$set": {"next_check_at": check, "inputs": now_inputs}}
        if emitted:
            marks = {"$addToSet": {"emitted": {"$each": emitted}}}
            update |= marks
            firing.marks.append(UpdateOne({"_id": timer["_id"]}, marks))
        firing.writes.append(UpdateOne({"_id": timer["_id"], "inputs": inputs}, update))

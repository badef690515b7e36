"""A case's state as a pure fold over its events (architecture principle 3).

Events are sorted by occurred_at, then by a lifecycle rank (so a receipt and a decision stamped in
the same second fold in the order they must have happened), then by arrival; an event repeated by
its source (the same `event_id` from the same source, contract v1.1) is ignored. A late event
simply means folding again: the result depends on the set of events, not on
the order they arrived in.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any

from shared.domain.calendar import VN_TZ, CalendarError, WorkingCalendar
from shared.domain.catalogue import ProcedureVersion, UnknownProcedure
from shared.domain.codes import CaseStatus, Channel, EventType, SupplementMode
from shared.domain.deadlines import (
    DeadlineError,
    Duration,
    Interval,
    apology_deadline,
    apology_on_time,
    compute_due,
)
from shared.domain.registry import Registry
from shared.domain.rulesets import RuleSet

SUPPLEMENT = "supplement"
DUE_MISMATCH_TOLERANCE_SECONDS = 60

_RANK: dict[str, int] = {
    EventType.SUBMITTED: 0,
    EventType.RECEIVED: 1,
    EventType.RECEIPT_REFUSED: 2,
    EventType.SUPPLEMENT_REQUESTED: 3,
    EventType.SUPPLEMENT_RECEIVED: 4,
    EventType.PAUSED: 5,
    EventType.RESUMED: 6,
    EventType.TRANSFERRED: 7,
    EventType.APOLOGY_ISSUED: 8,
    EventType.PAID_ONLINE: 9,
    EventType.DIGITIZED: 10,
    EventType.PROCESSED: 11,
    EventType.RETURNED: 12,
    EventType.WITHDRAWN: 13,
    EventType.STOPPED: 14,
    EventType.RATED: 15,
}


def parse_instant(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise CalendarError(f"timestamp {value!r} has no UTC offset")
    return moment


def _optional_instant(value: object) -> datetime | None:
    return None if value in (None, "") else parse_instant(value)


def _optional_text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


@dataclass(frozen=True)
class CaseEvent:
    event_id: str
    type: str
    case_code: str
    occurred_at: datetime
    agency_code: str
    data: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0  # arrival order: the offset on the topic
    source: str = ""  # who sent it (the record's `source` header): event ids are unique per source

    @property
    def identity(self) -> tuple[str, str]:
        return (self.source, self.event_id)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], seq: int | None = None) -> CaseEvent:
        return cls(
            event_id=str(raw["event_id"]),
            type=str(raw["type"]),
            case_code=str(raw["case_code"]),
            occurred_at=parse_instant(raw["occurred_at"]),
            agency_code=str(raw["agency_code"]),
            data=dict(raw.get("data") or {}),
            seq=int(raw.get("seq", 0) if seq is None else seq),
            source=str(raw.get("source") or ""),
        )

    def sort_key(self) -> tuple[datetime, int, int, str]:
        return (self.occurred_at, _RANK.get(self.type, 99), self.seq, self.event_id)


@dataclass
class Pause:
    reason: str  # "supplement" or a PauseReason
    start: datetime
    end: datetime | None = None
    counts_towards_deadline: bool = False


@dataclass
class Leg:
    """One agency's part of a liên thông case."""

    agency_code: str
    from_agency: str
    started_at: datetime
    ended_at: datetime | None = None
    due_at: datetime | None = None
    due_at_reported: datetime | None = None
    late: bool | None = None


@dataclass
class Apology:
    issuer_agency: str
    reason: str
    new_due_at: datetime | None
    issued_at: datetime
    on_time: bool | None = None  # issued by the apology deadline (deadlines.apology_on_time)
    issued_by: str | None = None  # set when issued through our API (not reported by a one-stop system)


@dataclass
class CaseState:
    case_code: str
    agency_code: str = ""
    status: CaseStatus | None = None
    procedure_code: str | None = None
    procedure_name: str | None = None
    procedure_version: str | None = None
    field_code: str | None = None
    level: str | None = None
    channel: str | None = None
    online_mode: str | None = None
    applicant_type: str | None = None
    applicant_name: str | None = None  # chủ hồ sơ, for the letters
    applicant_id: str | None = None  # số định danh cá nhân / mã số tổ chức
    full_online_eligible: bool = False
    fee_bearing: bool = False
    submitted_at: datetime | None = None
    received_at: datetime | None = None
    clock_started_at: datetime | None = None
    duration: dict[str, Any] | None = None
    convention: str | None = None
    due_at: datetime | None = None  # statutory; an apology never moves it
    due_at_reported: datetime | None = None
    due_mismatch: bool = False
    apology_deadline_at: datetime | None = None
    clock_stopped_since: datetime | None = None
    calendar_version: str | None = None
    rule_set: str | None = None  # the law in force at receipt: "nd61-2018" | "nd118-2025" (contract v1.1)
    overdue_from: datetime | None = None  # from when an open case counts overdue; None: not while it stays so
    # [{"agency_code", "from", "to"}]: who held the case, when an agency was dissolved into a successor
    agency_history: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)
    legs: list[Leg] = field(default_factory=list)
    supplement_requests: int = 0
    supplement_requested_at: list[datetime] = field(default_factory=list)  # the counted requests' instants
    apology: Apology | None = None
    extra_apologies: int = 0  # rescheduling is allowed once; later ones are recorded, not applied
    end_at: datetime | None = None  # end of processing: first of processed/returned/withdrawn/stopped
    end_type: str | None = None
    outcome: str | None = None
    returned_at: datetime | None = None
    e_result: bool | None = None
    result_channel: str | None = None
    paid_online: bool = False
    components_digitized: bool = False
    result_digitized: bool = False
    reused: bool = False
    satisfied: bool | None = None
    complaint: bool = False
    on_time: bool | None = None  # 766: end ≤ due on exact instants, ≤ 1 supplement request
    result_dated: str | None = None  # Biểu 06: early | on_time | late, by date
    agency_at_fault: str | None = None
    problems: list[str] = field(default_factory=list)
    event_count: int = 0
    last_event_at: datetime | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.end_at is not None

    @property
    def received(self) -> bool:
        return self.received_at is not None

    def as_dict(self) -> dict[str, Any]:
        """What dataclasses.asdict gives, without its deep copy of every leaf (`plain`): the
        projections write this for every event."""
        as_dict: dict[str, Any] = plain(self)
        return as_dict


_IMMUTABLE = (str, int, float, bool, type(None), datetime, date, timedelta, Enum)
_LEAVES = frozenset({str, int, float, bool, type(None), datetime, date, timedelta})  # by exact type: one lookup
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def plain(value: Any) -> Any:
    """dataclasses.asdict's result: dataclasses become dicts, lists, tuples and dicts are rebuilt
    (so the result shares no container with `value`); immutable leaves are shared, not deep-copied.
    Leaves are recognised by their exact type before any call, since most values are leaves."""
    cls = type(value)
    if cls in _LEAVES:
        return value
    if cls is list:  # before the dataclass lookup: most containers are lists (often empty) and dicts
        return [v if type(v) in _LEAVES else plain(v) for v in value]
    if cls is dict:
        return {k if type(k) in _LEAVES else plain(k): v if type(v) in _LEAVES else plain(v) for k, v in value.items()}
    names = _FIELD_NAMES.get(cls)
    if names is None:
        if hasattr(cls, "__dataclass_fields__"):
            names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
        elif isinstance(value, _IMMUTABLE):  # an Enum member, a subclass of a leaf type
            return value
    if names is not None:
        return {name: v if type(v := getattr(value, name)) in _LEAVES else plain(v) for name in names}
    if cls is tuple:
        return tuple(plain(v) for v in value)
    return copy.deepcopy(value)


class FoldError(ValueError):
    """A case whose events cannot be folded (an instant out of any calendar's range, a value of an
    unexpected type): the projection quarantines the case instead of stopping on it."""

    def __init__(self, case_code: str, cause: BaseException) -> None:
        super().__init__(f"case {case_code!r} cannot be folded: {type(cause).__name__}: {cause}")
        self.case_code = case_code
        self.cause = cause


def event_identity(stored: Mapping[str, Any]) -> tuple[str, str]:
    """What makes a stored event the same event again: its source and its id (contract v1.1)."""
    return (str(stored.get("source") or ""), str(stored["event_id"]))


def fold_case(events: Iterable[CaseEvent], registry: Registry) -> CaseState:
    """The state of one case from all its events, in any arrival order, duplicates included.

    Raises FoldError, and nothing else, for events it cannot fold."""
    materialised = list(events)
    try:
        return _fold(materialised, registry)
    except (ArithmeticError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        code = materialised[0].case_code if materialised else ""
        raise FoldError(code, exc) from exc


def _fold(events: list[CaseEvent], registry: Registry) -> CaseState:
    unique: dict[tuple[str, str], CaseEvent] = {}
    for event in events:
        kept = unique.get(event.identity)
        if kept is None or event.seq < kept.seq:
            unique[event.identity] = event
    ordered = sorted(unique.values(), key=CaseEvent.sort_key)
    if not ordered:
        raise ValueError("a case needs at least one event")

    state = CaseState(case_code=ordered[0].case_code, agency_code=ordered[0].agency_code)
    restarts: list[datetime] = []
    for event in ordered:
        _apply(state, event, restarts)
        state.timeline.append(
            {
                "at": event.occurred_at,
                "type": event.type,
                "event_id": event.event_id,
                "agency_code": event.agency_code,
                "data": dict(event.data),
            }
        )
    state.event_count = len(ordered)
    state.last_event_at = ordered[-1].occurred_at
    _derive_deadline(state, registry, restarts)  # under the receiving agency's calendar: due never moves
    hand_over(state, registry)
    return state


def _apply(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    handler = _HANDLERS.get(event.type)
    if handler is None:
        state.problems.append(f"unknown_event_type:{event.type}")
    else:
        handler(state, event, restarts)


def _submitted(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    data = event.data
    state.submitted_at = state.submitted_at or event.occurred_at
    state.procedure_code = state.procedure_code or data.get("procedure_code")
    state.channel = state.channel or data.get("channel")
    if state.status is None:
        state.status = CaseStatus.SUBMITTED


def _received(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    """Tiếp nhận hồ sơ: the receipt starts the clock; a second one is a problem, not a restart."""
    if state.received_at is not None:
        state.problems.append("repeated_receipt")
        return
    data = event.data
    state.received_at = event.occurred_at
    state.agency_code = event.agency_code
    state.procedure_code = data.get("procedure_code") or state.procedure_code
    state.field_code = data.get("field_code")
    state.level = data.get("level")
    state.channel = data.get("channel") or state.channel
    state.online_mode = data.get("online_mode")
    state.applicant_type = data.get("applicant_type")
    state.applicant_name = _optional_text(data.get("applicant_name"))
    state.applicant_id = _optional_text(data.get("applicant_id"))
    state.submitted_at = _optional_instant(data.get("submitted_at")) or state.submitted_at
    state.due_at_reported = _optional_instant(data.get("due_at_reported"))
    if data.get("fee_bearing") is not None:
        state.fee_bearing = bool(data["fee_bearing"])
    if not state.finished:
        state.status = CaseStatus.PENDING


def _receipt_refused(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    if state.received_at is None:
        state.status = CaseStatus.REFUSED


def _supplement_requested(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    if state.finished:
        return
    state.status = CaseStatus.WAITING_CITIZEN
    if state.received_at is not None:  # at the receipt stage the clock has not started yet
        at = event.occurred_at
        state.supplement_requests += 1
        state.supplement_requested_at.append(at)
        if not any(p.reason == SUPPLEMENT and p.end is None for p in state.pauses):
            state.pauses.append(Pause(SUPPLEMENT, at))


def _supplement_received(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    if state.finished:
        return
    for pause in state.pauses:
        if pause.reason == SUPPLEMENT and pause.end is None:
            pause.end = event.occurred_at
            restarts.append(event.occurred_at)
    state.status = CaseStatus.PENDING if state.received_at else state.status


def _paused(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    if state.finished:
        return
    reason = str(event.data.get("reason_code") or "other")
    if not any(p.reason == reason and p.end is None for p in state.pauses):
        state.pauses.append(Pause(reason, event.occurred_at))
    state.status = CaseStatus.PAUSED


def _resumed(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    """Ends the open pauses of the reason given (all but a supplement's, without one)."""
    reason = event.data.get("reason_code")
    for pause in state.pauses:
        if pause.end is None and pause.reason != SUPPLEMENT and (reason in (None, pause.reason)):
            pause.end = event.occurred_at
    if not state.finished and not any(p.end is None for p in state.pauses):
        state.status = CaseStatus.PENDING


def _transferred(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    """Liên thông: the case goes on to the next agency's leg."""
    data, at = event.data, event.occurred_at
    if state.legs and state.legs[-1].ended_at is None:
        state.legs[-1].ended_at = at
    state.legs.append(
        Leg(
            agency_code=str(data.get("to_agency") or ""),
            from_agency=str(data.get("from_agency") or event.agency_code),
            started_at=at,
            due_at_reported=_optional_instant(data.get("leg_due_at_reported")),
        )
    )


def _ended(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    """Processed, returned, withdrawn or stopped: the first of them ends processing (end_at)."""
    kind, at, data = event.type, event.occurred_at, event.data
    if state.end_at is None and state.received_at is not None:
        state.end_at, state.end_type = at, kind
    if kind == EventType.PROCESSED:
        state.outcome = data.get("outcome")
        if state.status != CaseStatus.RETURNED:
            state.status = CaseStatus.PROCESSED
    elif kind == EventType.RETURNED:
        state.returned_at = at
        state.e_result = data.get("e_result")
        state.result_channel = data.get("result_channel")
        state.status = CaseStatus.RETURNED
    elif state.status not in (CaseStatus.PROCESSED, CaseStatus.RETURNED):
        state.status = CaseStatus.WITHDRAWN if kind == EventType.WITHDRAWN else CaseStatus.STOPPED
    for pause in state.pauses:  # processing is over: nothing waits any more
        if pause.end is None:
            pause.end = at
    if state.legs and state.legs[-1].ended_at is None:
        state.legs[-1].ended_at = at


def _paid_online(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    state.paid_online = True


def _digitized(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    data = event.data
    state.components_digitized |= bool(data.get("components_digitized"))
    state.result_digitized |= bool(data.get("result_digitized"))
    state.reused |= bool(data.get("reused"))


def _rated(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    state.satisfied = bool(event.data.get("satisfied"))
    state.complaint = state.complaint or bool(event.data.get("complaint"))


def _apology_issued(state: CaseState, event: CaseEvent, restarts: list[datetime]) -> None:
    """Rescheduling is allowed once: a later apology is counted, not applied."""
    if state.apology is not None:
        state.extra_apologies += 1
        return
    data = event.data
    state.apology = Apology(
        issuer_agency=str(data.get("issuer_agency") or event.agency_code),
        reason=str(data.get("reason") or ""),
        new_due_at=_optional_instant(data.get("new_due_at")),
        issued_at=_optional_instant(data.get("issued_at")) or event.occurred_at,
        issued_by=data.get("issued_by"),
    )


_HANDLERS: dict[str, Callable[[CaseState, CaseEvent, list[datetime]], None]] = {
    EventType.SUBMITTED: _submitted,
    EventType.RECEIVED: _received,
    EventType.RECEIPT_REFUSED: _receipt_refused,
    EventType.SUPPLEMENT_REQUESTED: _supplement_requested,
    EventType.SUPPLEMENT_RECEIVED: _supplement_received,
    EventType.PAUSED: _paused,
    EventType.RESUMED: _resumed,
    EventType.TRANSFERRED: _transferred,
    EventType.PROCESSED: _ended,
    EventType.RETURNED: _ended,
    EventType.WITHDRAWN: _ended,
    EventType.STOPPED: _ended,
    EventType.PAID_ONLINE: _paid_online,
    EventType.DIGITIZED: _digitized,
    EventType.RATED: _rated,
    EventType.APOLOGY_ISSUED: _apology_issued,
}


def _derive_deadline(state: CaseState, registry: Registry, restarts: list[datetime]) -> None:
    if state.received_at is None:
        return
    rule_set = registry.rule_sets.at(state.received_at)
    state.rule_set = rule_set.code
    _check_level(state, rule_set)
    if state.procedure_code is None:
        return
    try:
        procedure = registry.catalogue.get(state.procedure_code)
        version = procedure.version_at(state.received_at)
    except UnknownProcedure:
        state.problems.append("unknown_procedure")
        return
    state.procedure_name = procedure.name
    state.field_code = state.field_code or procedure.field_code
    state.procedure_version = version.effective_from.isoformat()
    state.full_online_eligible = version.full_online_eligible
    if state.fee_bearing is False:
        state.fee_bearing = version.fee_bearing
    duration = version.duration_for(state.channel if state.channel in set(Channel) else None)
    state.duration = duration.as_dict()
    state.convention = version.convention.value
    calendar = registry.calendar_for(state.agency_code)
    state.calendar_version = calendar.version
    try:
        _compute(state, calendar, version, duration, restarts)
    except (CalendarError, DeadlineError) as exc:
        state.problems.append(f"deadline:{exc}")


def _compute(
    state: CaseState,
    calendar: WorkingCalendar,
    version: ProcedureVersion,
    duration: Duration,
    restarts: list[datetime],
) -> None:
    assert state.received_at is not None
    start = state.received_at
    restart_mode = version.supplement_mode is SupplementMode.RESTART
    if restart_mode and restarts:
        start = restarts[-1]  # the full duration again from the complete resubmission
    clock_pauses = []
    for pause in state.pauses:
        if pause.reason == SUPPLEMENT:
            counts = False
            if restart_mode and pause.end is not None:
                continue  # a completed supplement round restarts the clock instead of pausing it
        else:
            counts = pause.reason not in version.non_counting_reasons
        pause.counts_towards_deadline = counts
        if not counts:
            clock_pauses.append(Interval(pause.start, pause.end))
    state.clock_started_at = start
    result = compute_due(calendar, start, duration, version.convention, version.cutoff, clock_pauses)
    due = result.due_at
    state.due_at = due
    state.clock_stopped_since = result.clock_stopped_since
    state.apology_deadline_at = apology_deadline(calendar, due, state.received_at, version.apology_timing)
    if state.due_at_reported is not None:
        gap = abs((state.due_at_reported - due).total_seconds())
        state.due_mismatch = gap >= DUE_MISMATCH_TOLERANCE_SECONDS

    if state.apology is not None:
        state.apology.on_time = apology_on_time(state.apology.issued_at, state.apology_deadline_at)

    _judge_legs(state, calendar, version)
    if state.end_at is not None:
        _judge_end(state, state.end_at, due)
    state.agency_at_fault = _agency_at_fault(state)
    state.overdue_from = overdue_from(state)


def _judge_legs(state: CaseState, calendar: WorkingCalendar, version: ProcedureVersion) -> None:
    """Each liên thông leg's due instant (its own duration, else as reported) and whether it ran late."""
    for position, leg in enumerate(state.legs):
        leg_duration = version.leg_duration(leg.agency_code, position)
        if leg_duration is not None:
            leg.due_at = compute_due(calendar, leg.started_at, leg_duration).due_at
        leg_due = leg.due_at or leg.due_at_reported
        if leg.ended_at is not None and leg_due is not None:
            leg.late = leg.ended_at > leg_due


def _judge_end(state: CaseState, end_at: datetime, due: datetime) -> None:
    """On time for the 766 index (exact instants, at most one supplement request) and for Biểu 06
    (by date: early, on_time or late)."""
    state.on_time = end_at <= due and state.supplement_requests <= 1
    end_day, due_day = end_at.astimezone(VN_TZ).date(), due.astimezone(VN_TZ).date()
    state.result_dated = "early" if end_day < due_day else "on_time" if end_day == due_day else "late"


def overdue_from(state: CaseState) -> datetime | None:
    """The instant from which an open case counts overdue in the figures, or None when it cannot
    while it stays as it is (S-766DOC 2.1, contract v1.1):

    - waiting for the citizen after exactly one supplement request: judged at the request's instant,
      so within due if the request came at or before due, overdue (from due) otherwise;
    - waiting after two or more requests: late, from the latest request (or due, if earlier);
    - the clock stopped by a pause the law does not count (before due): not overdue while it lasts;
    - otherwise: from the statutory due instant.
    """
    due = state.due_at
    if due is None or state.finished:
        return due
    if state.status is CaseStatus.WAITING_CITIZEN and state.supplement_requested_at:
        if state.supplement_requests >= 2:
            return min(due, state.supplement_requested_at[-1])
        return None if state.supplement_requested_at[0] <= due else due
    if state.clock_stopped_since is not None:
        return None
    return due


def _check_level(state: CaseState, rule_set: RuleSet) -> None:
    """A level the rule set in force at receipt does not have (district from 2025-07-01) is kept as
    reported and flagged; the intake refuses it at the door (contract v1.1)."""
    if not rule_set.allows_level(state.level):
        state.problems.append(f"level_not_in_rule_set:{state.level}:{rule_set.code}")


def dissolution_instant(valid_to: date) -> datetime:
    """valid_to 00:00 Vietnam local: the instant an agency stops existing (contract v1.1)."""
    return datetime.combine(valid_to, time(0), VN_TZ)


def hand_over(state: CaseState, registry: Registry) -> None:
    """Agencies change (contract v1.1): a received case still open at the instant its holding
    agency is dissolved (valid_to 00:00 local) is handled by the successor from that instant, and
    by the successor's successor if that one is dissolved too while the case is still open.

    `agency_code` becomes the last holder; `agency_history` lists every holder with `from`/`to`
    (empty when the case never changed hands). Every valid_to in the registry is taken as in
    force: the admin route refuses one after today, the fold has no clock (ADR 0014). The due
    date stays as computed at receipt. `agency_at_fault` follows the same chain: a dissolved
    agency's fault is answered for by whoever took over its open cases."""
    received = state.received_at
    if received is None:
        return
    if state.agency_at_fault is not None:  # a leg's agency too, not only the holder
        state.agency_at_fault = successor_at(state.agency_at_fault, state.end_at, registry)
    history: list[dict[str, Any]] = []
    holder, since = state.agency_code, received
    seen = {holder}
    while True:
        agency = registry.agencies.get(holder)
        if agency is None or agency.valid_to is None or not agency.successor_code:
            break
        instant = dissolution_instant(agency.valid_to)
        if not (since < instant and (state.end_at is None or state.end_at >= instant)):
            break  # received after it (refused at the door), or finished before it
        if agency.successor_code in seen:
            state.problems.append(f"succession_cycle:{agency.successor_code}")
            break
        history.append({"agency_code": holder, "from": since, "to": instant})
        holder, since = agency.successor_code, instant
        seen.add(holder)
    if not history:
        return
    history.append({"agency_code": holder, "from": since, "to": None})
    state.agency_history = history
    state.agency_code = holder


def successor_at(code: str, until: datetime | None, registry: Registry) -> str:
    """Who answers for `code` in a case that ended at `until` (None: still open): `code`, or the
    successor it was dissolved into before then (following the chain)."""
    seen = {code}
    while True:
        agency = registry.agencies.get(code)
        if agency is None or agency.valid_to is None or not agency.successor_code:
            return code
        if until is not None and until < dissolution_instant(agency.valid_to):
            return code
        if agency.successor_code in seen:
            return code
        code = agency.successor_code
        seen.add(code)


def _agency_at_fault(state: CaseState) -> str:
    """The agency whose leg ran late; else the one holding the case; else the receiving agency."""
    for leg in state.legs:
        if leg.late:
            return leg.agency_code
    if state.legs and state.legs[-1].ended_at is None:
        return state.legs[-1].agency_code
    return state.agency_code

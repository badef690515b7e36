"""Submitting case events: the use case behind POST /v1/events, the DVCQG snapshots and pull mode.

validate (the door's bounds, the registry) → the key's scope → the cases' owners (ownership.py) →
the source's duplicates (dedupe.py) → publish, answered only once the broker acknowledged every
event → record the owners. All or nothing: a refusal is an ApiError carrying the contract's status
and details, which a route answers as it is and pull mode sets aside.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, TypedDict

from prometheus_client import Counter, Histogram
from pydantic import TypeAdapter, ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from services.intake.case_event import CaseEvent, EventList
from services.intake.dedupe import RecentEventIds, source_of
from services.intake.door import DoorBounds, dissolved_agency_problem, event_problems, named_type_errors, now_utc
from services.intake.owner_turns import OwnerTurns
from services.intake.ownership import OWNERS_COLLECTION, Ledger, bucket_of
from shared.domain.codes import EventType
from shared.domain.registry import Registry
from shared.events import EVENT_ADAPTER, derive_event_id
from shared.kafka import Publisher, PublishFailed
from shared.settings import Settings
from shared.store import Document
from shared.web import ApiError, Principal, pydantic_details, unavailable

log = logging.getLogger(__name__)

EVENTS_ACCEPTED = Counter("tthc_intake_events_accepted_total", "Events acknowledged by the broker", ["source"])
EVENTS_DUPLICATE = Counter("tthc_intake_events_duplicate_total", "Events the intake already had", ["source"])
REQUESTS_REJECTED = Counter("tthc_intake_requests_rejected_total", "Requests refused", ["reason"])
PUBLISH_SECONDS = Histogram(
    "tthc_intake_publish_duration_seconds",
    "Time from validation to the broker's last ack",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_PROCEDURE_TYPES = {EventType.RECEIVED.value, EventType.SUBMITTED.value}
_AGENCY_FIELDS = ("from_agency", "to_agency", "issuer_agency", "requested_by_agency")
# One call validates a whole batch (pydantic-core loops in Rust); errors carry the item index.
LIST_ADAPTER: TypeAdapter[EventList] = TypeAdapter(EventList)


class IntakePorts(Protocol):
    """What submitting needs of the running intake (context.IntakeContext provides it)."""

    settings: Settings
    db: AsyncDatabase[Document]
    publisher: Publisher
    door: DoorBounds
    recent_ids: RecentEventIds
    owner_turns: OwnerTurns

    @property
    def registry(self) -> Registry: ...

    def visible_agencies(self, principal: Principal) -> set[str] | None: ...


class Acceptance(TypedDict):
    """One event's answer: its id (the client's or derived) and whether the intake already had it."""

    event_id: str
    duplicate: bool


def check_registry(ports: IntakePorts, event: CaseEvent) -> list[dict[str, Any]]:
    """Unknown or dissolved agencies and unknown procedures, as contract details (422), or []."""
    problems = []
    registry = ports.registry
    if event.agency_code not in registry.agencies:
        problems.append({"loc": ["agency_code"], "msg": f"unknown agency_code {event.agency_code!r}"})
    elif dissolved := dissolved_agency_problem(registry, event.agency_code, event.occurred_at):
        problems.append({"loc": ["agency_code"], "msg": dissolved})
    # vars(): a pydantic model with extra="allow" answers getattr() of a missing name slowly
    data = vars(event.data)
    procedure = data.get("procedure_code")
    if event.type in _PROCEDURE_TYPES and procedure not in registry.catalogue:
        problems.append({"loc": ["data", "procedure_code"], "msg": f"unknown procedure_code {procedure!r}"})
    for key in _AGENCY_FIELDS:
        code = data.get(key)
        if code and code not in registry.agencies:
            problems.append({"loc": ["data", key], "msg": f"unknown agency_code {code!r}"})
        elif code and (dissolved := dissolved_agency_problem(registry, code, event.occurred_at)):
            problems.append({"loc": ["data", key], "msg": dissolved})
    return problems


def submission_scope(ports: IntakePorts, principal: Principal) -> set[str] | None:
    """The agencies a key may submit for (None: any): its agencies and those below them, and the
    agencies dissolved into them (the successor's system reports the cases it took over, and late
    events of the old period; contract v1.1 "Agencies change")."""
    allowed = ports.visible_agencies(principal)
    return None if allowed is None else ports.registry.with_predecessors(allowed)


def check_scope(ports: IntakePorts, principal: Principal, events: Sequence[CaseEvent]) -> None:
    """A source-system key may submit only for its agencies and those below them (403)."""
    if principal.kind == "agency":
        raise ApiError(403, "agency tokens read; submitting events needs a source-system key")
    allowed = submission_scope(ports, principal)
    if allowed is None:
        return
    outside = sorted({event.agency_code for event in events} - allowed)
    if outside:
        REQUESTS_REJECTED.labels("scope").inc()
        raise ApiError(
            403,
            f"this key may not submit events for {', '.join(outside)}",
            details=[{"loc": ["agency_code"], "msg": f"outside the key's agencies: {code}"} for code in outside],
        )


def validate_items(ports: IntakePorts, items: list[Any], batch: bool) -> list[CaseEvent]:
    """Every item validated; on any error, 422 with every item's errors and nothing published."""
    try:
        events: list[CaseEvent] = LIST_ADAPTER.validate_python(items)
    except ValidationError:
        events = []  # the slow path, only for a bad request: collect every item's problems
    details = []
    now = now_utc()
    for index, raw in enumerate(items):
        prefix = [index] if batch else []
        if events:
            event = events[index]
        else:
            try:
                event = EVENT_ADAPTER.validate_python(raw)
            except ValidationError as exc:
                details.extend(pydantic_details(named_type_errors(exc.errors()), tuple(prefix)))
                continue
        for problem in [*event_problems(event, ports.door, now), *check_registry(ports, event)]:
            details.append({"loc": [*prefix, *problem["loc"]], "msg": problem["msg"]})
    if details:
        REQUESTS_REJECTED.labels("invalid").inc()
        raise ApiError(422, "the events are invalid; nothing was published", details=details)
    return events


async def submit_items(
    ports: IntakePorts, principal: Principal, items: list[Any], batch: bool = True
) -> list[Acceptance]:
    """Raw items (a body's, a pulled page's): validated (all or nothing), scoped, published."""
    events = validate_items(ports, items, batch)
    check_scope(ports, principal, events)
    return await publish(ports, principal, events, batch=batch)


async def submit_checked_batch(
    ports: IntakePorts, principal: Principal, events: list[CaseEvent]
) -> list[Acceptance] | None:
    """A batch pydantic validated straight from the body's bytes, published when it passes the door
    and the registry; None when it does not, for `submit_items` to name every problem precisely."""
    door, now = ports.door, now_utc()
    if any(event_problems(e, door, now, nesting=2) or check_registry(ports, e) for e in events):
        return None
    check_scope(ports, principal, events)
    return await publish(ports, principal, events)


async def publish(
    ports: IntakePorts,
    principal: Principal,
    events: list[CaseEvent],
    *,
    batch: bool = True,
    locs: Sequence[list[Any]] | None = None,
    touches: Sequence[tuple[str, list[Any]]] = (),
) -> list[Acceptance]:
    """Check the cases' owners (403/409), publish the events new from this source (key = case_code,
    header `source`), answer once the broker acknowledged all of them, then record the owners.

    `locs`: each event's error location for an ownership refusal (default `[index, "case_code"]`,
    `["case_code"]` for a single event); `touches`: (case_code, loc) of cases the request concerns
    without an event, checked only (ownership.py).
    """
    source = source_of(principal)
    ids = _event_ids(principal, events)
    if locs is None:
        locs = [[index, "case_code"] for index in range(len(events))] if batch else [["case_code"]] * len(events)
    owners = ports.db[OWNERS_COLLECTION]
    codes = {e.case_code for e in events} | {code for code, _ in touches}
    async with ports.owner_turns.reading({bucket_of(code)[0] for code in codes}) as read_at:
        ledger = await Ledger.load(owners, codes)
        ledger.admit(events, submission_scope(ports, principal), locs, touches)
        accepted, fresh, fresh_ids = _sort_duplicates(ports.recent_ids, source, events, ids)
        if fresh:
            await _send(ports, source, fresh)
            ports.recent_ids.add(source, fresh_ids)
        await ledger.save(owners, ports.owner_turns, read_at)
    EVENTS_ACCEPTED.labels(principal.kind).inc(len(fresh))
    EVENTS_DUPLICATE.labels(principal.kind).inc(len(events) - len(fresh))
    return accepted


def _event_ids(principal: Principal, events: list[CaseEvent]) -> list[str]:
    """Each event's id: the client's, or one derived from the submitter and the event (set on it)."""
    ids = []
    for event in events:
        if not event.event_id:
            event.event_id = derive_event_id(principal.name, event.model_dump(mode="json"))
        ids.append(event.event_id)
    return ids


def _sort_duplicates(
    recent: RecentEventIds, source: str, events: list[CaseEvent], ids: list[str]
) -> tuple[list[Acceptance], list[CaseEvent], set[str]]:
    """Every event's answer, and the events (with their ids) new from this source."""
    known = recent.known(source, ids)
    fresh: list[CaseEvent] = []
    fresh_ids: set[str] = set()
    accepted: list[Acceptance] = []
    for event, event_id in zip(events, ids, strict=True):
        # known to the intake from this source, or earlier in this same request
        duplicate = event_id in known or event_id in fresh_ids
        if not duplicate:
            fresh_ids.add(event_id)
            fresh.append(event)
        accepted.append({"event_id": event_id, "duplicate": duplicate})
    return accepted, fresh, fresh_ids


async def _send(ports: IntakePorts, source: str, events: list[CaseEvent]) -> None:
    """Publish and wait for the broker's acknowledgements; 503 when it does not give them."""
    # model_dump_json's bytes before it decodes them to str (which .encode() would undo)
    messages = [(e.case_code.encode(), e.__pydantic_serializer__.to_json(e)) for e in events]
    settings = ports.settings
    with PUBLISH_SECONDS.time():
        try:
            await ports.publisher.publish(
                settings.case_events_topic,
                messages,
                timeout=settings.publish_timeout_s,
                headers=[("source", source.encode())],
            )
        except PublishFailed as exc:
            REQUESTS_REJECTED.labels("broker_unavailable").inc()
            log.warning("publish failed", extra={"error": str(exc), "events": len(messages)})
            raise unavailable("the event broker") from exc

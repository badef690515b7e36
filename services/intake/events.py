"""POST /v1/events: one event or a batch of up to 1000, all or nothing, 202 only after acks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from services.intake.context import IntakeContext, get_context
from services.intake.dedupe import source_of
from services.intake.door import dissolved_agency_problem, event_problems, named_type_errors, now_utc
from services.intake.openapi import events_request_body
from services.intake.ownership import OWNERS_COLLECTION, Ledger
from shared.domain.codes import EventType
from shared.events import EVENT_ADAPTER, CaseEventIn, Envelope, derive_event_id
from shared.kafka import PublishFailed
from shared.web import ApiError, Principal, error_responses, parse_json, pydantic_details, read_body, unavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

EVENTS_ACCEPTED = Counter("tthc_intake_events_accepted_total", "Events acknowledged by the broker", ["source"])
EVENTS_DUPLICATE = Counter("tthc_intake_events_duplicate_total", "Events the intake already had", ["source"])
REQUESTS_REJECTED = Counter("tthc_intake_requests_rejected_total", "Requests refused", ["reason"])
PUBLISH_SECONDS = Histogram(
    "tthc_intake_publish_duration_seconds",
    "Time from validation to the broker's last ack",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_PROCEDURE_TYPES = {EventType.RECEIVED.value, EventType.SUBMITTED.value}
# One call validates a whole batch (pydantic-core loops in Rust); errors carry the item index.
LIST_ADAPTER: TypeAdapter[list[Any]] = TypeAdapter(list[CaseEventIn])  # type: ignore[valid-type]


class _Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[CaseEventIn] = Field(min_length=1)  # type: ignore[valid-type]


BATCH_ADAPTER: TypeAdapter[_Batch] = TypeAdapter(_Batch)


def split_items(body: Any, max_batch: int) -> tuple[list[Any], bool]:
    """The items of a body and whether it was a batch ({"events": [...]})."""
    if isinstance(body, dict) and "events" in body and "type" not in body:
        items = body["events"]
        if not isinstance(items, list):
            raise ApiError(422, "events must be a list", details=[{"loc": ["events"], "msg": "not a list"}])
        if not items:
            raise ApiError(422, "events is empty", details=[{"loc": ["events"], "msg": "empty batch"}])
        if len(items) > max_batch:
            raise ApiError(
                422,
                f"a batch holds at most {max_batch} events",
                details=[{"loc": ["events"], "msg": f"{len(items)} events, at most {max_batch}"}],
            )
        return items, True
    if isinstance(body, dict):
        return [body], False
    raise ApiError(422, 'the body must be an event or {"events": [...]}', details=[{"loc": [], "msg": "not an object"}])


def check_registry(context: IntakeContext, event: Envelope) -> list[dict[str, Any]]:
    """Unknown agency or procedure codes, named (422)."""
    problems = []
    registry = context.registry
    if event.agency_code not in registry.agencies:
        problems.append({"loc": ["agency_code"], "msg": f"unknown agency_code {event.agency_code!r}"})
    elif dissolved := dissolved_agency_problem(registry, event.agency_code, event.occurred_at):
        problems.append({"loc": ["agency_code"], "msg": dissolved})
    # vars(): a pydantic model with extra="allow" answers getattr() of a missing name slowly
    data = vars(event.data)  # type: ignore[attr-defined]
    procedure = data.get("procedure_code")
    if event.type in _PROCEDURE_TYPES and procedure not in registry.catalogue:  # type: ignore[attr-defined]
        problems.append({"loc": ["data", "procedure_code"], "msg": f"unknown procedure_code {procedure!r}"})
    for key in ("from_agency", "to_agency", "issuer_agency", "requested_by_agency"):
        code = data.get(key)
        if code and code not in registry.agencies:
            problems.append({"loc": ["data", key], "msg": f"unknown agency_code {code!r}"})
        elif code and (dissolved := dissolved_agency_problem(registry, code, event.occurred_at)):
            problems.append({"loc": ["data", key], "msg": dissolved})
    return problems


def submission_scope(context: IntakeContext, principal: Principal) -> set[str] | None:
    """The agencies a key may submit for (None: any): its agencies and those below them, and the
    agencies dissolved into them (the successor's system reports the cases it took over, and late
    events of the old period; contract v1.1 "Agencies change")."""
    allowed = context.visible_agencies(principal)
    return None if allowed is None else context.registry.with_predecessors(allowed)


def check_scope(context: IntakeContext, principal: Principal, events: list[Envelope]) -> None:
    """A source-system key may submit only for its agencies and those below them (403)."""
    if principal.kind == "agency":
        raise ApiError(403, "agency tokens read; submitting events needs a source-system key")
    allowed = submission_scope(context, principal)
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


def validate_items(context: IntakeContext, items: list[Any], batch: bool) -> list[Envelope]:
    """Every item validated; on any error, 422 with every item's errors and nothing published."""
    try:
        events: list[Envelope] = LIST_ADAPTER.validate_python(items)
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
        for problem in [*event_problems(event, context.door, now), *check_registry(context, event)]:
            details.append({"loc": [*prefix, *problem["loc"]], "msg": problem["msg"]})
    if details:
        REQUESTS_REJECTED.labels("invalid").inc()
        raise ApiError(422, "the events are invalid; nothing was published", details=details)
    return events


class AcceptedEvent(BaseModel):
    event_id: str
    duplicate: bool


class Accepted(BaseModel):
    accepted: list[AcceptedEvent]


@router.post(
    "/v1/events",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(400, 401, 403, 409, 413, 422, 429, 503),
    openapi_extra={"requestBody": events_request_body()},
    summary="Submit one event or a batch of up to 1000 (all or nothing)",
)
async def post_events(request: Request) -> JSONResponse:
    context, principal, raw = await authorized_submission(request)
    try:
        # The fast path: a well-formed batch validated straight from its bytes by pydantic-core.
        events = BATCH_ADAPTER.validate_json(raw).events
        validated = events if len(events) <= context.settings.max_batch else None
    except ValidationError:
        validated = None
    now = now_utc()
    if validated is not None and not any(
        event_problems(e, context.door, now, nesting=2) or check_registry(context, e) for e in validated
    ):
        check_scope(context, principal, validated)
        accepted = await publish_events(context, principal, validated)
    else:  # anything else takes the path that reports every problem precisely
        items, batch = split_items(parse_json(raw), context.settings.max_batch)
        accepted = await ingest_events(context, principal, items, batch)
    return JSONResponse({"accepted": accepted}, status_code=202)


async def authorized_submission(request: Request) -> tuple[IntakeContext, Principal, bytes]:
    """Who submits (401/403), within their rate (429), and the raw body (413)."""
    context = get_context(request)
    principal = context.principal(request)
    if not principal.is_admin:
        context.rate_limiter.check(principal.name, principal.kind)
    return context, principal, await read_body(request, context.settings.max_body_bytes)


async def ingest_events(
    context: IntakeContext, principal: Principal, items: list[Any], batch: bool = True
) -> list[dict[str, Any]]:
    """Validate (all or nothing), check scope, publish; ApiError for anything refused."""
    events = validate_items(context, items, batch)
    check_scope(context, principal, events)
    return await publish_events(context, principal, events, batch=batch)


async def publish_events(
    context: IntakeContext,
    principal: Principal,
    events: list[Envelope],
    *,
    batch: bool = True,
    locs: Sequence[list[Any]] | None = None,
    touches: Sequence[tuple[str, list[Any]]] = (),
) -> list[dict[str, Any]]:
    """Check the cases' owners (403/409), publish the events new from this source (key = case_code,
    header `source`), answer once the broker acknowledged all of them, then record the owners.

    `locs`: each event's error location for an ownership refusal (default `[index, "case_code"]`,
    `["case_code"]` for a single event); `touches`: (case_code, loc) of cases the request concerns
    without an event, checked only (services/intake/ownership.py).
    """
    source = source_of(principal)
    for event in events:
        if not event.event_id:
            event.event_id = derive_event_id(principal.name, event.model_dump(mode="json"))
    ids: list[str] = [e.event_id for e in events]  # type: ignore[misc]
    if locs is None:
        locs = [[index, "case_code"] for index in range(len(events))] if batch else [["case_code"]] * len(events)
    owners = context.db[OWNERS_COLLECTION]
    ledger = await Ledger.load(owners, {e.case_code for e in events} | {code for code, _ in touches})
    ledger.admit(events, submission_scope(context, principal), locs, touches)
    known = context.recent_ids.known(source, ids)
    fresh: list[Envelope] = []
    fresh_ids: set[str] = set()
    accepted = []
    for event, event_id in zip(events, ids, strict=True):
        # known to the intake from this source, or earlier in this same request
        duplicate = event_id in known or event_id in fresh_ids
        if not duplicate:
            fresh_ids.add(event_id)
            fresh.append(event)
        accepted.append({"event_id": event_id, "duplicate": duplicate})
    if fresh:
        # model_dump_json's bytes before it decodes them to str (which .encode() would undo)
        messages = [(e.case_code.encode(), e.__pydantic_serializer__.to_json(e)) for e in fresh]
        with PUBLISH_SECONDS.time():
            try:
                await context.publisher.publish(
                    context.settings.case_events_topic,
                    messages,
                    timeout=context.settings.publish_timeout_s,
                    headers=[("source", source.encode())],
                )
            except PublishFailed as exc:
                REQUESTS_REJECTED.labels("broker_unavailable").inc()
                log.warning("publish failed", extra={"error": str(exc), "events": len(messages)})
                raise unavailable("the event broker") from exc
        context.recent_ids.add(source, fresh_ids)
    await ledger.save(owners)
    EVENTS_ACCEPTED.labels(principal.kind).inc(len(fresh))
    EVENTS_DUPLICATE.labels(principal.kind).inc(len(events) - len(fresh))
    return accepted

"""POST /v1/events: one event or a batch of up to 1000, all or nothing, 202 only after acks."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from pymongo.errors import BulkWriteError, PyMongoError

from services.intake.context import IntakeContext, get_context
from shared.domain.codes import EventType
from shared.events import EVENT_ADAPTER, derive_event_id, to_wire
from shared.kafka import PublishFailed
from shared.web import ApiError, Principal, pydantic_details, read_json_body, unavailable

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


def check_registry(context: IntakeContext, item: dict[str, Any]) -> list[dict[str, Any]]:
    """Unknown agency or procedure codes, named (422)."""
    problems = []
    registry = context.registry
    if item["agency_code"] not in registry.agencies:
        problems.append({"loc": ["agency_code"], "msg": f"unknown agency_code {item['agency_code']!r}"})
    data = item.get("data") or {}
    if item["type"] in _PROCEDURE_TYPES and data.get("procedure_code") not in registry.catalogue:
        problems.append(
            {"loc": ["data", "procedure_code"], "msg": f"unknown procedure_code {data.get('procedure_code')!r}"}
        )
    for key in ("from_agency", "to_agency", "issuer_agency", "requested_by_agency"):
        code = data.get(key)
        if code and code not in registry.agencies:
            problems.append({"loc": ["data", key], "msg": f"unknown agency_code {code!r}"})
    return problems


def check_scope(context: IntakeContext, principal: Principal, items: list[dict[str, Any]]) -> None:
    """A source-system key may submit only for its agencies and those below them (403)."""
    if principal.kind == "agency":
        raise ApiError(403, "agency tokens read; submitting events needs a source-system key")
    allowed = context.visible_agencies(principal)
    if allowed is None:
        return
    outside = sorted({item["agency_code"] for item in items} - allowed)
    if outside:
        REQUESTS_REJECTED.labels("scope").inc()
        raise ApiError(
            403,
            f"this key may not submit events for {', '.join(outside)}",
            details=[{"loc": ["agency_code"], "msg": f"outside the key's agencies: {code}"} for code in outside],
        )


def validate_items(context: IntakeContext, items: list[Any], batch: bool) -> list[dict[str, Any]]:
    """Every item validated; on any error, 422 with every item's errors and nothing published."""
    valid, details = [], []
    for index, raw in enumerate(items):
        prefix: tuple[Any, ...] = (index,) if batch else ()
        try:
            event = EVENT_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            details.extend(pydantic_details(exc.errors(), prefix))
            continue
        wire = to_wire(event)
        for problem in check_registry(context, wire):
            details.append({"loc": [*prefix, *problem["loc"]], "msg": problem["msg"]})
        valid.append(wire)
    if details:
        REQUESTS_REJECTED.labels("invalid").inc()
        raise ApiError(422, "the events are invalid; nothing was published", details=details)
    return valid


async def known_event_ids(context: IntakeContext, ids: list[str]) -> set[str]:
    try:
        cursor = context.db.seen_events.find({"_id": {"$in": ids}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}
    except PyMongoError:
        return set()  # without the store we publish again; downstream dedupes on event_id


async def remember(context: IntakeContext, ids: list[str]) -> None:
    if not ids:
        return
    try:
        await context.db.seen_events.insert_many([{"_id": i} for i in ids], ordered=False)
    except BulkWriteError:
        pass  # some were known already
    except PyMongoError as exc:
        log.warning("could not record seen event ids", extra={"error": str(exc)})


@router.post("/v1/events", status_code=202)
async def post_events(request: Request) -> JSONResponse:
    context = get_context(request)
    principal = context.principal(request)
    if not principal.is_admin:
        context.rate_limiter.check(principal.name, principal.kind)
    body = await read_json_body(request, context.settings.max_body_bytes)
    items, batch = split_items(body, context.settings.max_batch)
    accepted = await ingest_events(context, principal, items, batch)
    return JSONResponse({"accepted": accepted}, status_code=202)


async def ingest_events(
    context: IntakeContext, principal: Principal, items: list[Any], batch: bool = True
) -> list[dict[str, Any]]:
    """Validate (all or nothing), check scope, publish; ApiError for anything refused."""
    events = validate_items(context, items, batch)
    check_scope(context, principal, events)
    return await publish_events(context, principal, events)


async def publish_events(
    context: IntakeContext, principal: Principal, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Publish new events (key = case_code) and answer once the broker acknowledged all of them."""
    for event in events:
        if not event.get("event_id"):
            event["event_id"] = derive_event_id(principal.name, event)
    ids = [e["event_id"] for e in events]
    known = await known_event_ids(context, ids)
    fresh, seen_in_request = [], set()
    for event in events:
        if event["event_id"] in known or event["event_id"] in seen_in_request:
            continue
        seen_in_request.add(event["event_id"])
        fresh.append(event)
    messages = [
        (e["case_code"].encode(), json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode()) for e in fresh
    ]
    if messages:
        with PUBLISH_SECONDS.time():
            try:
                await context.publisher.publish(
                    context.settings.case_events_topic,
                    messages,
                    timeout=context.settings.publish_timeout_s,
                    headers=[("source", principal.name.encode())],
                )
            except PublishFailed as exc:
                REQUESTS_REJECTED.labels("broker_unavailable").inc()
                log.warning("publish failed", extra={"error": str(exc), "events": len(messages)})
                raise unavailable("the event broker") from exc
        await remember(context, [e["event_id"] for e in fresh])
    EVENTS_ACCEPTED.labels(principal.kind).inc(len(fresh))
    EVENTS_DUPLICATE.labels(principal.kind).inc(len(events) - len(fresh))
    fresh_ids = {e["event_id"] for e in fresh}
    first_seen: set[str] = set()
    accepted = []
    for event in events:
        event_id = event["event_id"]
        duplicate = event_id not in fresh_ids or event_id in first_seen
        first_seen.add(event_id)
        accepted.append({"event_id": event_id, "duplicate": duplicate})
    return accepted

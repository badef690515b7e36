"""The submitting routes: POST /v1/events (one event or a batch of up to 1000, all or nothing) and
POST /v1/dvcqg/hoso (DVCQG snapshots). Each reads its body, calls the use case (submission.py,
snapshots.py) and answers 202 with what it accepted; a refusal is answered as its ApiError."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from services.intake.case_event import CaseEvent, EventList
from services.intake.context import IntakeContext, get_context
from services.intake.openapi import events_request_body, snapshots_request_body
from services.intake.snapshots import submit_snapshots
from services.intake.submission import submit_checked_batch, submit_items
from shared.web import ApiError, Principal, error_responses, parse_json, read_body

router = APIRouter()


class _Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: EventList = Field(min_length=1)


BATCH_ADAPTER: TypeAdapter[_Batch] = TypeAdapter(_Batch)


class AcceptedEvent(BaseModel):
    event_id: str
    duplicate: bool


class Accepted(BaseModel):
    accepted: list[AcceptedEvent]


class SnapshotsAccepted(BaseModel):
    accepted: list[dict[str, Any]]
    snapshots: int


@router.post(
    "/v1/events",
    tags=["events"],
    status_code=202,
    response_model=Accepted,
    responses=error_responses(400, 401, 403, 409, 413, 422, 429, 503),
    openapi_extra={"requestBody": events_request_body()},
    summary="Submit one event or a batch of up to 1000 (all or nothing)",
)
async def post_events(request: Request) -> JSONResponse:
    context, principal, raw = await authorized_submission(request)
    batch = checked_batch(raw, context.settings.max_batch)
    accepted = None if batch is None else await submit_checked_batch(context, principal, batch)
    if accepted is None:  # anything else takes the path that reports every problem precisely
        items, is_batch = split_items(parse_json(raw), context.settings.max_batch)
        accepted = await submit_items(context, principal, items, is_batch)
    return JSONResponse({"accepted": accepted}, status_code=202)


@router.post(
    "/v1/dvcqg/hoso",
    tags=["dvcqg"],
    status_code=202,
    response_model=SnapshotsAccepted,
    responses=error_responses(400, 401, 403, 409, 413, 422, 429, 503),
    openapi_extra={"requestBody": snapshots_request_body()},
    summary="Submit HoSoDongBoDVC snapshots with the national field names",
)
async def post_snapshots(request: Request) -> JSONResponse:
    context, principal, raw = await authorized_submission(request)
    body = parse_json(raw)
    is_list = isinstance(body, list)
    accepted = await submit_snapshots(context, principal, body if is_list else [body], batch=is_list)
    return JSONResponse({"accepted": accepted, "snapshots": len(body) if is_list else 1}, status_code=202)


async def authorized_submission(request: Request) -> tuple[IntakeContext, Principal, bytes]:
    """Who submits (401/403), within their rate (429), and the raw body (413)."""
    context = get_context(request)
    principal = context.principal(request)
    if not principal.is_admin:
        context.rate_limiter.check(principal.name, principal.kind)
    return context, principal, await read_body(request, context.settings.max_body_bytes)


def checked_batch(raw: bytes, max_batch: int) -> list[CaseEvent] | None:
    """The fast path: a well-formed batch of at most `max_batch` events, validated straight from its
    bytes by pydantic-core; None for anything else."""
    try:
        events = BATCH_ADAPTER.validate_json(raw).events
    except ValidationError:
        return None
    return events if len(events) <= max_batch else None


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

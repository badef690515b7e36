"""Registries and credentials (admin token): agencies, procedures, source-system keys, agency tokens.

Each change is validated against the current registry, published on the compacted registry topic
(so all three services pick it up without a restart), then applied here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.intake.context import IntakeContext, get_context
from shared.domain.calendar import VN_TZ
from shared.domain.codes import Level
from shared.domain.deadlines import DeadlineError
from shared.domain.registry import RegistryError
from shared.kafka import PublishFailed
from shared.registry_sync import Credential, publish_record
from shared.web import ApiError, error_responses, unavailable
from shared.webhooks import UrlPolicy, WebhookUrlRefused

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=error_responses(400, 401, 403, 404, 422, 503))


def webhook_url_allowed(url: str | None) -> str | None:
    """422 for a webhook URL that is never acceptable (not http/https, link-local, cloud metadata);
    the deadline service checks it again, with TTHC_WEBHOOK_ALLOWED_NETWORKS, at each delivery."""
    if url is not None:
        try:
            UrlPolicy().check_url(url)
        except WebhookUrlRefused as exc:
            raise ValueError(str(exc)) from None
    return url


class AgencyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=300)
    level: Level
    parent_code: str | None = None
    calendar: dict[str, Any] | None = Field(
        None, description="overrides: office_hours, days_off, working_days (as in config/calendar.json)"
    )
    webhook_url: str | None = Field(None, description="notified on due-soon, apology-required, overdue")
    place_name: str | None = Field(None, max_length=100, description="địa danh of its documents; else its parent's")
    valid_to: str | None = Field(
        None,
        max_length=10,
        description="YYYY-MM-DD, the first local day it no longer exists (contract v1.1); not after today",
    )
    successor_code: str | None = Field(None, max_length=64, description="who handles its open cases from valid_to")

    _webhook_url = field_validator("webhook_url")(webhook_url_allowed)


class DurationIn(BaseModel):
    value: float
    unit: str


class LegIn(BaseModel):
    agency_code: str
    duration: DurationIn


class ProcedureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=500)
    field_code: str = Field(min_length=1, max_length=64)
    durations: dict[str, DurationIn]
    convention: str = "working_hours"
    supplement_mode: str = "pause"
    full_online_eligible: bool = False
    fee_bearing: bool = False
    cutoff: str | None = None
    effective_from: str | None = Field(None, description="YYYY-MM-DD; a case keeps the version in force at receipt")
    non_counting_reasons: list[str] | None = Field(
        None, description="pause reasons NOT counted towards the deadline, only where a specialised law says so"
    )
    legs: list[LegIn] | None = None
    apology_timing: Literal["one_working_day_before_due", "at_due"] | None = Field(
        None, description="when the apology is due: one working day before due (default) or at due (NĐ 297/2025)"
    )
    sources: dict[str, str] | None = Field(None, description="the legal source of each rule, by field name")


class SourceSystemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    agency_codes: list[str] = Field(min_length=1)
    webhook_url: str | None = Field(None, description="notified on due-soon, apology-required, overdue")

    _webhook_url = field_validator("webhook_url")(webhook_url_allowed)


class AgencyTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agency_code: str
    name: str | None = None


async def _publish(context: IntakeContext, key: str, value: dict[str, Any]) -> None:
    try:
        await publish_record(context.publisher, context.settings, key, value)
    except PublishFailed as exc:
        raise unavailable("the event broker") from exc
    context.registry_state.apply(key, value)


def _unknown_agencies(context: IntakeContext, codes: list[str], field: str) -> None:
    unknown = [c for c in codes if c not in context.registry.agencies]
    if unknown:
        raise ApiError(
            422,
            f"unknown agency_code {', '.join(map(repr, unknown))}",
            details=[{"loc": ["body", field], "msg": f"unknown agency_code {c!r}"} for c in unknown],
        )


def _not_ahead(valid_to: object) -> None:
    """A valid_to after today (Vietnam local) is refused: the fold has no clock, so a dissolution
    is put on or after its day, never ahead of it (ADR 0014)."""
    today = datetime.now(VN_TZ).date()
    if valid_to and date.fromisoformat(str(valid_to)) > today:
        raise RegistryError(
            f"valid_to {valid_to} is after today ({today.isoformat()}, Vietnam local): put the dissolution "
            "on or after its day",
            "valid_to",
        )


@router.put("/agencies/{agency_code}")
async def put_agency(agency_code: str, body: AgencyIn, request: Request) -> dict[str, Any]:
    context = get_context(request)
    context.require_admin(request)
    try:
        spec = body.model_dump(mode="json")
        key, record = context.registry_state.agency_record(agency_code, spec)
        _not_ahead(record.get("valid_to"))
    except RegistryError as exc:
        loc = [int(part) if part.isdigit() else part for part in (exc.field or "level").split(".")]
        raise ApiError(422, str(exc), details=[{"loc": ["body", *loc], "msg": str(exc)}]) from None
    await _publish(context, key, record)
    return context.registry.agency(agency_code).as_dict()


@router.get("/agencies")
async def list_agencies(request: Request) -> list[dict[str, Any]]:
    context = get_context(request)
    context.require_admin(request)
    return [a.as_dict() for a in context.registry.agencies.values()]


@router.put("/procedures/{procedure_code}")
async def put_procedure(procedure_code: str, body: ProcedureIn, request: Request) -> dict[str, Any]:
    context = get_context(request)
    context.require_admin(request)
    spec = body.model_dump(mode="json", exclude_none=True)
    if body.legs:
        _unknown_agencies(context, [leg.agency_code for leg in body.legs], "legs")
    try:
        key, record = context.registry_state.procedure_record(procedure_code, spec)
    except DeadlineError as exc:
        loc = ["body", *(exc.field.split(".") if exc.field else [])]
        raise ApiError(422, str(exc), details=[{"loc": loc, "msg": str(exc)}]) from None
    await _publish(context, key, record)
    return {"procedure_code": procedure_code, "versions": record["versions"]}


@router.get("/procedures/{procedure_code}")
async def get_procedure(procedure_code: str, request: Request) -> dict[str, Any]:
    context = get_context(request)
    context.require_admin(request)
    versions = context.registry_state.procedure_specs.get(procedure_code)
    if not versions:
        raise ApiError(404, f"unknown procedure_code {procedure_code!r}")
    return {"procedure_code": procedure_code, "versions": [versions[k] for k in sorted(versions)]}


async def _issue(
    context: IntakeContext, kind: str, name: str, agencies: list[str], webhook_url: str | None = None
) -> tuple[str, Credential]:
    token, credential = context.registry_state.new_credential(kind, name, agencies, webhook_url)
    await _publish(context, f"credential:{credential.id}", credential.as_dict())
    return token, credential


@router.post("/source-systems", status_code=201)
async def create_source_system(body: SourceSystemIn, request: Request) -> JSONResponse:
    context = get_context(request)
    context.require_admin(request)
    _unknown_agencies(context, body.agency_codes, "agency_codes")
    key, credential = await _issue(context, "source", body.name, body.agency_codes, body.webhook_url)
    return JSONResponse({"key": key, **credential.public()}, status_code=201)


@router.post("/agency-tokens", status_code=201)
async def create_agency_token(body: AgencyTokenIn, request: Request) -> JSONResponse:
    context = get_context(request)
    context.require_admin(request)
    _unknown_agencies(context, [body.agency_code], "agency_code")
    name = body.name or f"agency:{body.agency_code}"
    token, credential = await _issue(context, "agency", name, [body.agency_code])
    return JSONResponse({"token": token, **credential.public()}, status_code=201)


@router.get("/credentials")
async def list_credentials(request: Request) -> list[dict[str, Any]]:
    context = get_context(request)
    context.require_admin(request)
    return [c.public() for c in context.registry_state.credentials.values()]


def _credential(context: IntakeContext, credential_id: str) -> Credential:
    credential = context.registry_state.credentials.get(credential_id)
    if credential is None:
        raise ApiError(404, f"no credential {credential_id!r}")
    return credential


@router.post("/credentials/{credential_id}/rotate")
async def rotate_credential(credential_id: str, request: Request) -> dict[str, Any]:
    """A new secret for the same credential; the old one stops working at once."""
    context = get_context(request)
    context.require_admin(request)
    credential = _credential(context, credential_id)
    token, fresh = context.registry_state.new_credential(credential.kind, credential.name, credential.agencies)
    rotated = Credential(
        credential.id,
        credential.kind,
        credential.name,
        credential.agencies,
        fresh.hash,
        webhook_url=credential.webhook_url,
    )
    await _publish(context, f"credential:{credential.id}", rotated.as_dict())
    field = "key" if credential.kind == "source" else "token"
    return {field: token, **rotated.public()}


@router.delete("/credentials/{credential_id}")
async def revoke_credential(credential_id: str, request: Request) -> dict[str, Any]:
    context = get_context(request)
    context.require_admin(request)
    credential = _credential(context, credential_id)
    revoked = Credential(
        credential.id,
        credential.kind,
        credential.name,
        credential.agencies,
        credential.hash,
        revoked=True,
        webhook_url=credential.webhook_url,
    )
    await _publish(context, f"credential:{credential.id}", revoked.as_dict())
    return revoked.public()

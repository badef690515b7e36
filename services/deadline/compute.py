"""POST /v1/deadlines/compute and GET /v1/calendar/{year} (contract: Deadline service)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict

from services.deadline.context import get_context
from shared.domain.calendar import CalendarError, YearNotCovered
from shared.domain.catalogue import UnknownProcedure
from shared.domain.codes import ApologyTiming, Channel, Convention, Cutoff
from shared.domain.deadlines import DeadlineError, Duration, apology_deadline, compute_due
from shared.domain.registry import Registry, UnknownAgency
from shared.web import ApiError

router = APIRouter(tags=["deadlines"])


class DurationIn(BaseModel):
    value: float
    unit: str


class ComputeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    received_at: AwareDatetime
    duration: DurationIn | None = None
    convention: Convention | None = None
    agency_code: str | None = None
    procedure_code: str | None = None
    channel: Channel | None = None


class ComputeResponse(BaseModel):
    due_at: datetime
    apology_deadline_at: datetime
    calendar_version: str
    duration: dict[str, Any]
    convention: Convention
    cutoff: str | None = None
    procedure_version: str | None = None
    apology_timing: ApologyTiming = ApologyTiming.ONE_WORKING_DAY_BEFORE_DUE
    rule_set: str  # the law in force at that receipt (contract v1.1)


def _error(exc: Exception, field: str) -> ApiError:
    return ApiError(422, str(exc), details=[{"loc": ["body", field], "msg": str(exc)}])


@dataclass(frozen=True)
class _Rule:
    """What the deadline is computed with: given in the request, or the procedure's version in force."""

    duration: Duration
    convention: Convention | None
    cutoff: Cutoff | None = None
    apology_timing: ApologyTiming = ApologyTiming.ONE_WORKING_DAY_BEFORE_DUE
    procedure_version: str | None = None


def _rule(body: ComputeRequest, registry: Registry) -> _Rule:
    if body.duration is not None:
        try:
            duration = Duration.of({"value": body.duration.value, "unit": body.duration.unit})
        except DeadlineError as exc:
            raise _error(exc, f"duration.{exc.field or 'value'}") from None
        return _Rule(duration, body.convention)
    if body.procedure_code:
        try:
            version = registry.catalogue.version_at(body.procedure_code, body.received_at)
        except UnknownProcedure as exc:
            raise _error(exc, "procedure_code") from None
        return _Rule(
            duration=version.duration_for(body.channel),
            convention=body.convention or version.convention,
            cutoff=version.cutoff,
            apology_timing=version.apology_timing,
            procedure_version=version.effective_from.isoformat(),
        )
    raise ApiError(
        422,
        "give a duration or a procedure_code",
        details=[{"loc": ["body", "duration"], "msg": "a duration or a procedure_code is required"}],
    )


@router.post("/v1/deadlines/compute", response_model=ComputeResponse)
async def compute_deadline(body: ComputeRequest, request: Request) -> ComputeResponse:
    registry = get_context(request).registry
    if body.agency_code:
        try:
            registry.agency(body.agency_code)
        except UnknownAgency as exc:
            raise _error(exc, "agency_code") from None
    rule = _rule(body, registry)
    convention = rule.convention or Convention.WORKING_HOURS
    calendar = registry.calendar_for(body.agency_code)
    try:
        due = compute_due(calendar, body.received_at, rule.duration, convention, rule.cutoff).due_at
        apology = apology_deadline(calendar, due, body.received_at, rule.apology_timing)
    except CalendarError as exc:  # YearNotCovered among them
        raise _error(exc, "received_at") from None
    return ComputeResponse(
        due_at=due,
        apology_deadline_at=apology,
        calendar_version=calendar.version,
        duration=rule.duration.as_dict(),
        convention=convention,
        cutoff=rule.cutoff.value if rule.cutoff else None,
        procedure_version=rule.procedure_version,
        apology_timing=rule.apology_timing,
        rule_set=registry.rule_sets.at(body.received_at).code,
    )


@router.get("/v1/calendar/{year}")
async def get_calendar(
    year: int, request: Request, agency: str | None = Query(None, description="an agency's own calendar")
) -> dict[str, Any]:
    registry = get_context(request).registry
    if agency:
        try:
            registry.agency(agency)
        except UnknownAgency as exc:
            raise ApiError(404, str(exc)) from None
    calendar = registry.calendar_for(agency)
    try:
        days_off = calendar.days_off(year)
        working_weekend = calendar.working_weekend_days(year)
    except YearNotCovered as exc:
        raise ApiError(404, str(exc), details=[{"loc": ["path", "year"], "msg": str(exc)}]) from None
    return {
        "year": year,
        "days_off": [{"date": d.isoformat(), "name": name} for d, name in days_off],
        "working_weekend_days": [d.isoformat() for d in working_weekend],
        "office_hours": calendar.office_hours.as_strings(),
        "calendar_version": calendar.version,
        "national_changes": [c.as_dict() for c in calendar.rules.national_changes],
    }

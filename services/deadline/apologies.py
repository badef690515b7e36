"""Apologies issued through us, and the apology letter (Mẫu 04).

POST /v1/cases/{case_code}/apology: the agency at fault (its token, or one above it) or admin.
Rescheduling is allowed once: the apology is reserved in the store under the case code before it
is published, so a second one is a 409 even when two arrive at once. The statutory due_at never
changes; the apology is an `apology.issued` event on tthc.case-events (folded like any other) and
a notification on tthc.deadline-events.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pymongo.errors import DuplicateKeyError

from services.deadline.cases import case_agencies
from services.deadline.context import DeadlineContext, get_context
from services.deadline.letters.render import (
    LetterFields,
    LetterFontMissing,
    letter_fields,
    render_docx,
    render_pdf,
)
from shared.domain.deadlines import apology_on_time
from shared.domain.fold import parse_instant
from shared.domain.rulesets import rule_set_of
from shared.kafka import PublishFailed
from shared.web import ApiError, Principal, content_disposition, error_responses, unavailable

router = APIRouter(tags=["apologies"], responses=error_responses(401, 403, 404, 409, 422, 503))


class ApologyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=2000, description="lý do chậm trễ")
    new_due_at: AwareDatetime = Field(description="the proposed new return date; after the statutory due_at")
    applicant_name: str | None = Field(None, max_length=200, description="for the letter (Kính gửi)")


async def _case(context: DeadlineContext, case_code: str) -> dict[str, Any]:
    document = await context.cases.find_one({"_id": case_code}, {"timeline": 0})
    if document is None:
        raise ApiError(404, f"no case {case_code!r}", reason="case_not_found")
    return document


def _may_apologise(context: DeadlineContext, principal: Principal, document: dict[str, Any]) -> None:
    if principal.is_admin:
        return
    scope = context.visible_agencies(principal) or set()
    at_fault = document.get("agency_at_fault") or document.get("agency_code")
    if principal.kind != "agency" or at_fault not in scope:
        raise ApiError(
            403,
            f"only the agency at fault ({at_fault}) or an agency above it may apologise for this case",
            reason="not_agency_at_fault",
        )


@router.post("/v1/cases/{case_code:path}/apology", status_code=201)
async def issue_apology(case_code: str, body: ApologyIn, request: Request) -> JSONResponse:
    context = get_context(request)
    principal = context.principal(request)
    document = await _case(context, case_code)
    _may_apologise(context, principal, document)
    due = _check_apology(document, body)
    issued_at = datetime.now(UTC)
    event = _apology_event(case_code, document, body, issued_at, principal.name)
    await _reserve_and_publish(context, case_code, event)
    apology_deadline_at = document.get("apology_deadline_at") or due
    return JSONResponse(
        {
            "case_code": case_code,
            "issuer_agency": event["data"]["issuer_agency"],
            "reason": body.reason,
            "new_due_at": body.new_due_at.isoformat(),
            "issued_at": issued_at.isoformat(),
            "due_at": due.isoformat(),
            "on_time": apology_on_time(issued_at, apology_deadline_at),
            "letter": {
                "docx": f"/v1/cases/{quote(case_code, safe='')}/apology-letter?format=docx",
                "pdf": f"/v1/cases/{quote(case_code, safe='')}/apology-letter?format=pdf",
            },
        },
        status_code=201,
    )


def _check_apology(document: dict[str, Any], body: ApologyIn) -> datetime:
    """The case's statutory due instant, once the apology is allowed: a due date, a new one after
    it, no apology yet (rescheduling is allowed once)."""
    due: datetime | None = document.get("due_at")
    if due is None or not document.get("received_at"):
        raise ApiError(
            422,
            "the case has no statutory due date yet",
            reason="no_due_date",
            details=[{"loc": ["path", "case_code"], "msg": "no due_at"}],
        )
    if body.new_due_at <= due:
        raise ApiError(
            422,
            f"new_due_at must be after the statutory due_at {due.isoformat()}",
            reason="new_due_not_after_due",
            details=[{"loc": ["body", "new_due_at"], "msg": "not after due_at"}],
        )
    if document.get("apology") is not None:
        raise ApiError(409, "this case already has an apology; rescheduling is allowed once", reason="apology_exists")
    return due


def _apology_event(
    case_code: str, document: dict[str, Any], body: ApologyIn, issued_at: datetime, issued_by: str
) -> dict[str, Any]:
    """The `apology.issued` case event, issued by the agency at fault (else the holder)."""
    return {
        "event_id": f"apology:{case_code}",
        "type": "apology.issued",
        "schema_version": 1,
        "case_code": case_code,
        "occurred_at": issued_at.isoformat(),
        "agency_code": document.get("agency_code"),
        "data": {
            "issuer_agency": document.get("agency_at_fault") or document.get("agency_code"),
            "reason": body.reason,
            "new_due_at": body.new_due_at.isoformat(),
            "issued_at": issued_at.isoformat(),
            "issued_by": issued_by,
            "applicant_name": body.applicant_name,
        },
    }


async def _reserve_and_publish(context: DeadlineContext, case_code: str, event: dict[str, Any]) -> None:
    """Reserves the apology under the case code (a second one is a 409, even at the same time),
    then publishes it; the reservation is freed when the broker did not acknowledge it."""
    try:
        await context.db.apologies.insert_one({"_id": case_code, **event})
    except DuplicateKeyError:
        raise ApiError(
            409, "this case already has an apology; rescheduling is allowed once", reason="apology_exists"
        ) from None
    try:
        payload = json.dumps(event, ensure_ascii=False).encode()
        # The fact goes on the log; the projection folds it and publishes the apology.issued
        # notification once (deterministic id), like every other derived event.
        await context.publisher.publish(context.settings.case_events_topic, [(case_code.encode(), payload)], timeout=15)
    except PublishFailed as exc:
        await context.db.apologies.delete_one({"_id": case_code})
        raise unavailable("the event broker") from exc


@router.get("/v1/cases/{case_code:path}/apology-letter")
async def apology_letter(case_code: str, request: Request, format: Literal["docx", "pdf"] = Query("pdf")) -> Response:
    """Mẫu số 04 of the case's rule set: "Phiếu xin lỗi và hẹn lại ngày trả kết quả" (TT 01/2018/TT-VPCP)
    for `nd61-2018` cases, "Phiếu xin lỗi và đề nghị gia hạn thời gian giải quyết" (TT 03/2025/TT-VPCP)
    for `nd118-2025` ones; laid out as NĐ 30/2020/NĐ-CP Phụ lục I (A4, Times New Roman or an embedded
    metric-compatible serif)."""
    context = get_context(request)
    principal = context.principal(request)
    document = await _case(context, case_code)
    scope = context.visible_agencies(principal)
    if scope is not None and not case_agencies(document) & scope:
        raise ApiError(404, f"no case {case_code!r}")  # outside the caller's subtree: as if absent (v1.1)
    apology = document.get("apology")
    reserved = await context.db.apologies.find_one({"_id": case_code})
    if apology is None and reserved is None:
        raise ApiError(404, f"case {case_code!r} has no apology")
    if not document.get("received_at") or not (document.get("due_at_reported") or document.get("due_at")):
        # an apology reported by a one-stop system for a case whose receipt has not arrived yet
        raise ApiError(
            422, "the case has no receipt yet", details=[{"loc": ["path", "case_code"], "msg": "no received_at"}]
        )
    fields = _letter_fields(context, case_code, document, apology or {}, reserved["data"] if reserved else {})
    try:
        if format == "docx":
            content = render_docx(fields)
            media = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        else:
            content = render_pdf(fields)
            media = "application/pdf"
    except LetterFontMissing as exc:  # a machine without the Debian font package: say which, never a 500
        raise ApiError(503, str(exc), headers={"Retry-After": "300"}) from exc
    return Response(
        content,
        media_type=media,
        headers={"Content-Disposition": content_disposition(f"phieu-xin-loi-{case_code}.{format}")},
    )


def _letter_fields(
    context: DeadlineContext,
    case_code: str,
    document: dict[str, Any],
    apology: dict[str, Any],
    reserved: dict[str, Any],
) -> LetterFields:
    """The letter's fields from the folded apology, else from the one reserved through our API
    (issued, not folded yet)."""
    reason = apology.get("reason") or reserved.get("reason", "")
    new_due = apology.get("new_due_at") or parse_instant(reserved["new_due_at"])
    issued = apology.get("issued_at") or parse_instant(reserved["issued_at"])
    issuer_code = str(
        apology.get("issuer_agency") or reserved.get("issuer_agency") or document.get("agency_code") or ""
    )
    registry = context.registry
    agency = registry.agencies.get(issuer_code)
    parent = registry.agencies.get(agency.parent_code) if agency and agency.parent_code else None
    return letter_fields(
        agency_name=agency.name if agency else issuer_code,
        parent_name=parent.name if parent else "",
        place=registry.place_name(issuer_code) if agency else None,
        applicant=reserved.get("applicant_name")
        or document.get("applicant_name")
        or _applicant(document, "applicant_name"),
        applicant_id=document.get("applicant_id") or _applicant(document, "applicant_id"),
        case_code=case_code,
        procedure_name=document.get("procedure_name") or document.get("procedure_code") or "",
        received_at=document["received_at"],
        # the appointment printed on the receipt, else the statutory one (tthc-rules §2.3)
        due_at=document.get("due_at_reported") or document["due_at"],
        reason=reason,
        new_due_at=new_due,
        issued_at=issued,
        rule_set=rule_set_of(document),
    )


def _applicant(document: dict[str, Any], key: str) -> str | None:
    """From the case's receipt, for a document folded before the state carried the applicant."""
    for event in document.get("events", []):
        if event.get("type") == "case.received":
            value = (event.get("data") or {}).get(key)
            if isinstance(value, str) and value.strip():
                return value
    return None

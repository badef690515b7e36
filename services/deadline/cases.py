"""Case reads: GET /v1/cases/{case_code} with remaining working time, and the projection's counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from services.deadline.context import DeadlineContext, get_context
from shared.domain.calendar import CalendarError
from shared.domain.deadlines import remaining_in_words
from shared.domain.rulesets import rule_set_of
from shared.web import ApiError

router = APIRouter(tags=["cases"])

_HIDDEN = {"_id", "events", "open"}


def remaining(context: DeadlineContext, document: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Remaining (or, negative, overdue) working time of an open case at `now`."""
    due = document.get("due_at")
    if due is None or document.get("end_at") is not None:
        return {"remaining_working_hours": None, "remaining_text": None, "overdue": False}
    calendar = context.registry.calendar_for(document.get("agency_code"))
    stopped = document.get("clock_stopped_since")
    try:
        seconds = calendar.working_time_between(stopped or now, due)
    except CalendarError:
        return {"remaining_working_hours": None, "remaining_text": None, "overdue": now > due}
    return {
        "remaining_working_hours": round(seconds / 3600, 2),
        "remaining_text": remaining_in_words(seconds),
        "overdue": seconds < 0,
    }


def case_agencies(document: dict[str, Any]) -> set[str]:
    """The agencies whose tokens may read a case: its holder, the agency at fault, and every agency
    that held it before (a dissolved one reads the cases it held; contract v1.1)."""
    found = {document.get("agency_code"), document.get("agency_at_fault")}
    found.update(h.get("agency_code") for h in document.get("agency_history") or ())
    return {code for code in found if code}


@router.get("/v1/cases/{case_code:path}")
async def get_case(case_code: str, request: Request) -> dict[str, Any]:
    context = get_context(request)
    principal = context.principal(request)
    document = await context.cases.find_one({"_id": case_code})
    mark = await context.quarantine.get(case_code)
    held_by = (document or mark or {}).get("agency_code")
    scope = context.visible_agencies(principal)
    # A successor holds the cases handed over to it (agency_code); a dissolved agency's token still
    # reads the cases it held (agency_history). Outside the caller's subtree: as if absent (v1.1).
    holders = {held_by, *case_agencies(document or {})}
    if (document is None and mark is None) or (scope is not None and not holders & scope):
        raise ApiError(404, f"no case {case_code!r}", reason="case_not_found")
    quarantine = {"reason": mark["reason"], "since": mark["since"]} if mark else None
    if document is None:  # only records that could not be applied: the case is its quarantine
        return {"case_code": case_code, "agency_code": held_by, "status": None, "quarantine": quarantine}
    answer = {k: v for k, v in document.items() if k not in _HIDDEN}
    answer["quarantine"] = quarantine
    if not answer.get("rule_set"):  # a stored document without one: the rule set in force at receipt
        rule_set = rule_set_of(document)
        answer["rule_set"] = rule_set.code if rule_set else None
    for held in answer.get("agency_history") or ():  # the dissolved agency's name, for pages
        agency = context.registry.agencies.get(held.get("agency_code"))
        held["name"] = agency.name if agency else None
    timer = await context.timers.find_one({"_id": case_code}) or {}
    answer["next_check_at"] = timer.get("next_check_at")
    answer["emitted"] = timer.get("emitted", [])  # the timer transitions published
    answer.update(remaining(context, document, datetime.now(UTC)))
    return answer


@router.get("/v1/stats")
async def stats(request: Request) -> dict[str, Any]:
    """How many cases and events the projection holds (ops; admin or any agency token)."""
    context = get_context(request)
    context.principal(request)
    cases = context.cases
    return {
        "cases": await cases.count_documents({}),
        "cases_received": await cases.count_documents({"received_at": {"$ne": None}}),
        "cases_open": await cases.count_documents({"open": True}),
    }

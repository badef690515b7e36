"""Series for the charts of the web pages: every rate by month, and the agencies below one for a period.

`GET /v1/indicators/by-month` answers, for each month of the year up to the period's last month,
exactly what `GET /v1/indicators?period=YYYY-MM` answers (same aggregates, same arithmetic), so a
chart drawn from it shows the contract's numbers. `GET /v1/indicators/by-agency` answers, for each
agency directly below `agency`, what `GET /v1/indicators?period=…&agency=<it>` answers; an agency
that no longer existed when the period began (`valid_to` on or before its first day, e.g. the
districts dissolved on 01/07/2025) is left out and named in `omitted`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request

from services.metrics.aggregates import COARSE_KIND, group_buckets
from services.metrics.aggregates import answer as aggregate_answer
from services.metrics.context import get_context
from services.metrics.indicators import below, fetch_buckets, period_asked
from shared.domain.indicators import Period
from shared.domain.registry import Agency
from shared.web import error_responses

router = APIRouter(tags=["indicators"], responses=error_responses(401, 403, 422))

DISTRICTS_END = date(2025, 7, 1)  # NĐ 118/2025: no district level from this day (contract: Level)


def months_through(span: Period, today: date) -> list[Period]:
    """The calendar months of span.last's year up to span.last's month (that one cut at span.last when
    the period ends inside it), never a month after today's: the November page ends with November,
    whatever today is. Each month is the period /v1/indicators?period=YYYY-MM answers for."""
    last = span.last
    if (last.year, last.month) > (today.year, today.month):
        if last.year > today.year:
            return []
        last = (
            date(today.year, today.month + 1, 1) - timedelta(days=1) if today.month < 12 else date(today.year, 12, 31)
        )
    out = []
    for month in range(1, last.month + 1):
        first = date(last.year, month, 1)
        following = date(last.year + month // 12, month % 12 + 1, 1)
        out.append(Period(first, min(following - timedelta(days=1), last)))
    return out


def existed_during(agency: Agency, span: Period) -> bool:
    """Whether the agency still existed on the period's first day (a district not after 01/07/2025)."""
    if agency.valid_to is not None and agency.valid_to <= span.first:
        return False
    return not (agency.level.value == "district" and span.first >= DISTRICTS_END)


def figures(buckets: Sequence[Mapping[str, Any]], span: Period) -> dict[str, Any]:
    """The contract answer of /v1/indicators for these buckets (without `extra`)."""
    answer = aggregate_answer(buckets, span)
    answer.pop("extra", None)
    return answer


@router.get("/v1/indicators/by-month", summary="Every rate of /v1/indicators for each month, for charts")
async def by_month(
    request: Request,
    period: str = Query(..., description="the months of its last year up to its last month"),
    agency: str | None = Query(None, description="includes the agencies below it"),
) -> dict[str, Any]:
    context = get_context(request)
    span = period_asked(period)
    agencies = context.agency_filter(context.principal(request), agency or None)
    months = months_through(span, date.today())
    if not months:
        return {"period": span.as_dict(), "agency": agency or None, "months": []}
    whole = Period(months[0].first, months[-1].last)
    buckets = await fetch_buckets(context, whole, COARSE_KIND, agencies, {}, ("agency",))
    return {
        "period": span.as_dict(),
        "agency": agency or None,
        "months": [{"month": m.first.strftime("%Y-%m")} | figures(buckets, m) for m in months],
    }


@router.get("/v1/indicators/by-agency", summary="/v1/indicators for each agency below one, for rankings")
async def by_agency(
    request: Request,
    period: str = Query(...),
    agency: str | None = Query(None, description="list the agencies directly below it (default: the top)"),
) -> dict[str, Any]:
    context = get_context(request)
    span = period_asked(period)
    principal = context.principal(request)
    registry = context.registry
    context.agency_filter(principal, agency or None)  # 403/422 when outside the scope or unknown
    parent, children = below(registry, context.visible_agencies(principal), agency or None)
    listed = [code for code in children if existed_during(registry.agencies[code], span)]
    omitted = [code for code in children if code not in listed]
    groups = {code: set(registry.subtree(code)) for code in listed}
    if parent is not None:
        groups[parent] = {parent}
    members: set[str] = set().union(*groups.values()) if groups else set()
    buckets = await fetch_buckets(context, span, COARSE_KIND, members, {}, ("agency",))
    by_group = group_buckets(buckets, groups)
    rows = []
    for code in ([parent] if parent is not None else []) + listed:
        answer = figures(by_group.get(code, []), span)
        own = code == parent
        if own and answer["received"]["total"] + answer["received"]["carried_over"] == 0:
            continue  # the parent itself receives nothing: no row for it
        a = registry.agencies[code]
        rows.append(
            {
                "agency_code": code,
                "name": a.name,
                "level": a.level.value,
                "own_cases_only": own,
                **answer,
            }
        )
    return {
        "period": span.as_dict(),
        "agency": parent,
        "agencies": rows,
        "omitted": [_omitted(registry.agencies[code]) for code in omitted],
    }


def _omitted(agency: Agency) -> dict[str, Any]:
    """An agency left out of a period's rows: when it stopped existing, and who took its cases."""
    return {
        "agency_code": agency.code,
        "name": agency.name,
        "valid_to": agency.valid_to.isoformat() if agency.valid_to else None,
        "successor_code": agency.successor_code,
    }

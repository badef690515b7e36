"""GET /v1/indicators, /v1/index/766 and /v1/index/par (contract: Metrics service)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from services.metrics.aggregates import COARSE_KIND, FINE_KIND, answerable, buckets_queries, group_buckets, kind_for
from services.metrics.aggregates import answer as aggregate_answer
from services.metrics.context import MetricsContext, get_context
from services.metrics.sync_counts import counts_for, selection_roots
from shared.domain.indicators import (
    Period,
    PeriodError,
    band_points,
    choose_version,
    indicators,
    parse_period,
    rate_of,
    score_766,
)
from shared.domain.plans import target as plan_target
from shared.domain.registry import Registry
from shared.domain.sync_ratio import period_months, sync_ratio, with_sync
from shared.web import ApiError, Principal, error_responses

router = APIRouter(tags=["indicators"], responses=error_responses(401, 403, 422))

FACT_FIELDS = {
    k: 1
    for k in (
        "agency_code",
        "agency_history",
        "received_at",
        "due_at",
        "overdue_from",
        "end_at",
        "on_time",
        "result_dated",
        "channel",
        "online_mode",
        "full_online_eligible",
        "fee_bearing",
        "paid_online",
        "components_digitized",
        "result_digitized",
        "e_result",
        "reused",
        "apology_on_time",
        "satisfied",
        "complaint",
        "supplement_requests",
        "level",
        "field_code",
        "result_channel",
    )
}


@lru_cache
def scoring(config_dir: str, name: str) -> dict[str, Any]:
    rules: dict[str, Any] = json.loads((Path(config_dir) / "scoring" / f"{name}.json").read_text(encoding="utf-8"))
    return rules


EARLIEST_DAY = date(2015, 1, 1)
HORIZON_DAYS = 3660  # periods may reach about ten years ahead (plans), never further


def latest_day() -> date:
    return date.today() + timedelta(days=HORIZON_DAYS)


def period_asked(text: str) -> Period:
    """The period, 422 naming `period` when it is malformed or outside 2015-01-01 .. ten years ahead."""
    try:
        span = parse_period(text)
    except PeriodError as exc:
        raise ApiError(
            422, str(exc), reason="invalid_period", details=[{"loc": ["query", "period"], "msg": str(exc)}]
        ) from None
    if span.first < EARLIEST_DAY or span.last > latest_day():
        message = f"period {text!r} must lie between {EARLIEST_DAY.isoformat()} and {latest_day().isoformat()}"
        raise ApiError(
            422, message, reason="period_out_of_range", details=[{"loc": ["query", "period"], "msg": message}]
        )
    return span


PREDECESSORS = (
    "true: add the cases of the agencies dissolved into these (directly or through a chain, with the "
    "agencies below them) to the figures; false (default): each figure stays with the agency that "
    "held the case at the time (contract v1.1, agencies change)"
)


def with_predecessors(registry: Registry, agencies: set[str] | None) -> set[str] | None:
    """`agencies` and every agency dissolved into one of them, directly or through a chain, with
    the agencies below those (Registry.with_predecessors). None (every agency) stays None."""
    return None if agencies is None else registry.with_predecessors(agencies)


def agency_set(
    context: MetricsContext, principal: Principal, agency: str | None, include_predecessors: bool
) -> set[str] | None:
    """The agencies a figure covers: `agency` and those below it, within the token's scope (403/422
    as for every read), widened by their predecessors when asked. A successor's figures with its
    predecessors' cases are its own figures: the predecessors need not be in the token's scope."""
    agencies = context.agency_filter(principal, agency)
    return with_predecessors(context.registry, agencies) if include_predecessors else agencies


async def load_facts(
    context: MetricsContext,
    period: Period,
    agencies: set[str] | None,
    filters: dict[str, str | None],
) -> list[dict[str, Any]]:
    """The facts of cases that matter for the period: received before its end, open at its start,
    held by one of `agencies` now or before (`indicators` then counts each figure for the holder at
    the time)."""
    query: dict[str, Any] = {
        "received_at": {"$ne": None, "$lt": period.end},
        "$or": [{"end_at": None}, {"end_at": {"$gte": period.start}}],
    }
    if agencies is not None:
        codes = sorted(agencies)
        query["$and"] = [{"$or": [{"agency_code": {"$in": codes}}, {"agency_history.agency_code": {"$in": codes}}]}]
    for key, value in filters.items():
        if value:
            query[key] = value
    return [doc async for doc in context.collection.find(query, FACT_FIELDS)]


@router.get("/v1/indicators")
async def get_indicators(
    request: Request,
    period: str = Query(..., description="2026-03 | 2026-Q1 | 2026-H1 | 2026-9M | 2026 | 2026-03-01..2026-03-31"),
    agency: str | None = Query(None, description="includes the agencies below it"),
    level: Literal["province", "district", "commune"] | None = None,
    field: str | None = None,
    procedure: str | None = None,
    channel: Literal["direct", "online", "postal"] | None = None,
    include_predecessors: bool = Query(False, description=PREDECESSORS),
) -> dict[str, Any]:
    context = get_context(request)
    span = period_asked(period)
    agencies = agency_set(context, context.principal(request), agency, include_predecessors)
    if not by_aggregates(span, procedure, field, channel):  # not in the aggregates' keys: from the facts
        facts = await load_facts(
            context,
            span,
            agencies,
            {"level": level, "field_code": field, "procedure_code": procedure, "channel": channel},
        )
        answer = indicators(facts, span, agencies)
    else:
        answer = await from_aggregates(context, span, agencies, level, field, channel)
    answer.pop("extra")
    return answer


async def from_aggregates(
    context: MetricsContext,
    span: Period,
    agencies: set[str] | None,
    level: str | None = None,
    field: str | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    """The answer from the incremental aggregates (services/metrics/aggregates.py)."""
    kind = kind_for(field, channel)
    buckets = await fetch_buckets(context, span, kind, agencies, {"level": level, "field": field, "channel": channel})
    return aggregate_answer(buckets, span)


def by_aggregates(span: Period, procedure: str | None, field: str | None, channel: str | None) -> bool:
    return not procedure and answerable(span, kind_for(field, channel))


async def fetch_buckets(
    context: MetricsContext,
    span: Period,
    kind: str,
    agencies: set[str] | None,
    filters: dict[str, str | None],
    keys: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    fields = {"g": 1, "p": 1, "c": 1, "d": 1, "_id": 0} | {key: 1 for key in keys}
    # an answer over the whole selection may take one summed bucket per month; a grouping needs each
    end = date.fromordinal(span.last.toordinal() + 1)
    partial = None if keys else {day.strftime("%Y-%m") for day in (span.first, end) if day.day != 1}
    out: list[dict[str, Any]] = []
    for collection, query in buckets_queries(span, kind, agencies, filters):
        out += await context.find_buckets(collection, query, fields, partial)
    return out


@router.get("/v1/indicators/monthly", summary="Monthly on-time rate (766 item 2.1) by agency, for charts")
async def get_monthly(
    request: Request,
    year: int = Query(..., ge=2015, le=2100),
    agency: str | None = Query(None, description="one series per agency directly below it (default: the top)"),
) -> dict[str, Any]:
    """For each agency directly below `agency` (its subtree rolled up) and for `agency`'s own cases:
    the on-time rate and the counted cases of every month of the year, up to the current month."""
    context = get_context(request)
    principal = context.principal(request)
    agency, groups = _chart_groups(context.registry, context.visible_agencies(principal), agency or None)
    context.agency_filter(principal, agency)  # 403/422 when outside the scope or unknown
    year_span = parse_period(str(year))
    agencies = context.agency_filter(principal, agency)
    buckets = await fetch_buckets(context, year_span, COARSE_KIND, agencies, {}, ("agency",))
    by_group = group_buckets(buckets, groups)
    today = date.today()
    last_month = 12 if year < today.year else (today.month if year == today.year else 0)
    months = [parse_period(f"{year}-{m:02d}") for m in range(1, last_month + 1)]
    series = []
    for group in groups:
        own_cases_only = group == agency and len(groups) > 1
        buckets_of_group = by_group.get(group, [])
        whole_year = aggregate_answer(buckets_of_group, year_span)["received"]
        if own_cases_only and whole_year["total"] + whole_year["carried_over"] == 0:
            continue  # the parent itself receives nothing: no empty line for it
        series.append(
            {
                "agency_code": group,
                "name": context.registry.agencies[group].name,
                "own_cases_only": own_cases_only,
                "points": [_monthly_point(buckets_of_group, month) for month in months],
            }
        )
    return {"year": year, "agency": agency, "months": [m.first.strftime("%Y-%m") for m in months], "series": series}


def below(registry: Registry, scope: set[str] | None, agency: str | None) -> tuple[str | None, list[str]]:
    """The agency whose children are listed, and those children; with no agency: the single top of
    the caller's scope (the province for admin), else the several tops themselves."""
    if agency is None:
        tops = sorted(
            a.code
            for a in registry.agencies.values()
            if (scope is None or a.code in scope)
            and (a.parent_code is None or (scope is not None and a.parent_code not in scope))
        )
        if len(tops) != 1:
            return None, tops
        agency = tops[0]
    children = sorted(a.code for a in registry.agencies.values() if a.parent_code == agency)
    return agency, children


def _chart_groups(
    registry: Registry, scope: set[str] | None, agency: str | None
) -> tuple[str | None, dict[str, set[str]]]:
    """The agency charted and its lines: the agency's own cases and each agency directly below it
    with its subtree; without one agency on top of the scope, each top agency."""
    parent, codes = below(registry, scope, agency)
    groups = {} if parent is None else {parent: {parent}}
    return parent, groups | {code: set(registry.subtree(code)) for code in codes}


def _monthly_point(buckets: list[dict[str, Any]], month: Period) -> dict[str, Any]:
    answer = aggregate_answer(buckets, month)
    counted = answer["finished"]["total"] + answer["pending"]["total"]
    return {"month": month.first.strftime("%Y-%m"), "on_time": answer["rates"]["on_time"], "counted": counted}


@router.get("/v1/index/766")
async def get_index_766(
    request: Request,
    period: str = Query(...),
    agency: str | None = None,
    rules_version: str | None = Query(
        None, description="score under another version (default: in force at period end)"
    ),
    include_predecessors: bool = Query(False, description=PREDECESSORS),
) -> dict[str, Any]:
    context = get_context(request)
    span = period_asked(period)
    principal = context.principal(request)
    answer = await from_aggregates(context, span, agency_set(context, principal, agency, include_predecessors))
    try:
        rules = choose_version(scoring(context.settings.config_dir, "766")["versions"], span.last, rules_version)
    except PeriodError as exc:
        raise ApiError(422, str(exc), details=[{"loc": ["query", "rules_version"], "msg": str(exc)}]) from None
    # 1.4 and the 3.3 multiplier: the cases held ÷ the national counts ops entered (S-766DOC 1.4)
    # (the asked agency's counts, also with include_predecessors: a dissolved agency has none after it)
    roots = selection_roots(context, principal, agency)
    counts = await counts_for(context, roots, period_months(span))
    answer = with_sync(answer, *sync_ratio(answer["received"]["total"], span, roots, counts))
    return score_766(answer, rules)


@router.get("/v1/index/par")
async def get_index_par(
    request: Request,
    year: int = Query(..., ge=2015, le=2100),
    agency: str | None = None,
    rules_version: str | None = None,
    include_predecessors: bool = Query(False, description=PREDECESSORS),
) -> dict[str, Any]:
    context = get_context(request)
    span = parse_period(str(year))
    agencies = agency_set(context, context.principal(request), agency, include_predecessors)
    coarse = await fetch_buckets(context, span, COARSE_KIND, agencies, {}, ("level",))
    config = scoring(context.settings.config_dir, "par")
    try:
        rules = choose_version(config["versions"], min(span.last, date.today()), rules_version)
    except PeriodError as exc:
        raise ApiError(422, str(exc), details=[{"loc": ["query", "rules_version"], "msg": str(exc)}]) from None
    overall = aggregate_answer(coarse, span)
    criteria = _par_criteria(rules["criteria"], coarse, span, overall)
    plan = config.get("plans", {}).get(str(year))
    targets = []
    if plan:
        fine = await fetch_buckets(context, span, FINE_KIND, agencies, {}, ("field",))
        targets = _plan_targets(plan, fine, span, overall)
    return {
        "year": year,
        "rules_version": rules["version"],
        "criteria": criteria,
        "total": round(sum(c["points"] for c in criteria), 2),
        "plan_targets": targets,
    }


def _par_criteria(
    rules: list[dict[str, Any]], coarse: list[dict[str, Any]], span: Period, overall: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each PAR Index criterion's rate (over its level's cases, else all) and band points."""
    by_level: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bucket in coarse:
        by_level[bucket.get("level") or "unknown"].append(bucket)
    criteria = []
    for criterion in rules:
        scope = aggregate_answer(by_level.get(criterion["level"], []), span) if "level" in criterion else overall
        rate = rate_of(scope, criterion["rate"])
        criteria.append(
            {
                "criterion": criterion["criterion"],
                "name": criterion["name"],
                "level": criterion.get("level"),
                "rate": rate,
                "max_points": criterion["max"],
                "points": band_points(rate, criterion["bands"]),
            }
        )
    return criteria


def _plan_targets(
    plan: dict[str, Any], fine: list[dict[str, Any]], span: Period, overall: dict[str, Any]
) -> list[dict[str, Any]]:
    """The year's plan targets: the on-time rate of each field with cases, then the overall ones."""
    by_field: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bucket in fine:
        by_field[bucket.get("field") or "unknown"].append(bucket)
    targets = []
    for field_code, field_buckets in sorted(by_field.items()):
        answer = aggregate_answer(field_buckets, span)
        if answer["received"]["total"] + answer["received"]["carried_over"] == 0:
            continue  # a field with no case in the year
        wanted = plan["on_time_by_field"].get(field_code, plan["on_time_by_field"].get("*"))
        targets.append(plan_target(f"on_time:{field_code}", answer["rates"]["on_time"], wanted))
    returned = overall["extra"]["returned"]
    postal = overall["extra"]["returned_postal"] / returned if returned else None
    return targets + [
        plan_target("online", overall["rates"]["online"], plan.get("online")),
        plan_target("postal_returns", postal, plan.get("postal_returns")),
        plan_target("apology_coverage", overall["rates"]["apology_coverage"], plan.get("apology_coverage")),
        plan_target("digitized", overall["rates"]["digitized"], plan.get("digitized")),
    ]

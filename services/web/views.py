"""What the indicators page shows, built from the metrics answers: pure functions, no I/O but the plan.

The charts (services/web/charts.py) and the tables get their rows here: the plan's target for each
rate, the agencies that existed in the period (no district after 01/07/2025, no dissolved agency from
its `valid_to`), the PAR criteria that apply to the year, the 766 items the case data cannot score.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from services.web import charts, labels
from services.web.charts import Target
from services.web.site import Officer
from shared.domain.indicators import Period
from shared.domain.plans import target_spec

DISTRICTS_END = date.fromisoformat(labels.DISTRICTS_END)
LEVEL_GROUPS = {
    "province": "Sở, ban, ngành và đơn vị cấp tỉnh",
    "district": "UBND cấp huyện (trước 01/07/2025)",
    "commune": "UBND cấp xã, phường",
}


@lru_cache
def _plans(config_dir: str) -> dict[str, Any]:
    path = Path(config_dir) / "scoring" / "par.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("plans", {}))
    except (OSError, ValueError):
        return {}


def targets(par: dict[str, Any], config_dir: str, year: int) -> dict[str, Target | None]:
    """The plan's target of each charted rate: from /v1/index/par `plan_targets`; the overall on-time
    rate takes the plan's rule for "the other fields" (on_time_by_field["*"]) from config/scoring/par.json."""
    found: dict[str, Target | None] = {rate: None for rate in labels.RATE_CHARTS}
    for row in par.get("plan_targets") or []:
        if row.get("target") in found and row.get("goal") is not None:
            found[row["target"]] = Target(float(row["goal"]), str(row.get("compare") or "at_least"), row.get("wording"))
    plan = _plans(config_dir).get(str(year)) or {}
    spec = target_spec((plan.get("on_time_by_field") or {}).get("*"))
    if spec is not None:
        found["on_time"] = Target(spec["goal"], spec["compare"], spec["wording"])
    return found


def existed(agency: dict[str, Any], span: Period) -> bool:
    """Whether an agency (from /v1/me) existed on the period's first day."""
    valid_to = agency.get("valid_to")
    if valid_to and date.fromisoformat(str(valid_to)) <= span.first:
        return False
    return not (agency.get("level") == "district" and span.first >= DISTRICTS_END)


def par_criteria(par: dict[str, Any]) -> list[dict[str, Any]]:
    """The PAR rows that apply to the year: the district criterion only for years before 2026 (the
    district level ended on 01/07/2025; its row in 2026 could only ever be empty)."""
    first_day = date(int(par["year"]), 1, 1)
    return [c for c in par.get("criteria", []) if not (c.get("level") == "district" and first_day >= DISTRICTS_END)]


def unscored_766(index766: dict[str, Any]) -> list[dict[str, str]]:
    """The 766 items the case data cannot score, by name, with the data each one needs."""
    out = []
    for group in index766.get("groups", []):
        for item in group["items"]:
            if item.get("scored") is False:
                out.append(
                    {
                        "name": labels.item_766(item["item"], item.get("name")),
                        "needs": labels.OUTSIDE_DATA_766.get(item["item"], "dữ liệu ngoài luồng hồ sơ"),
                    }
                )
    return out


def item_note(item: dict[str, Any]) -> str | None:
    """Why an item has no rate, in Vietnamese (the API's note is for developers)."""
    if item.get("scored") is False:
        return "Cần " + labels.OUTSIDE_DATA_766.get(item["item"], "dữ liệu ngoài luồng hồ sơ")
    if item.get("rate") is None:
        if item["item"] in ("1.4", "3.3"):
            return "Chưa có số hồ sơ của Cổng DVCQG và hệ thống báo cáo cho kỳ này (quản trị nhập theo tháng)"
        return "Chưa có hồ sơ để tính tỷ lệ trong kỳ"
    return None


def has_cases(row: Mapping[str, Any]) -> bool:
    received = row.get("received") or {}
    return bool(received.get("total", 0) + received.get("carried_over", 0))


def agency_groups(rows: list[dict[str, Any]], rank: str, target: Target | None) -> list[dict[str, Any]]:
    """The agencies below the chosen one, grouped by level (departments, communes): each group with
    its ranking chart (worst first, only those with the rate), its rows with cases in that order, and
    the names of those with no case in the period (one line, not a screen of empty rows)."""
    out = []
    for level, title in LEVEL_GROUPS.items():
        members = [r for r in rows if r.get("level") == level]
        if not members:
            continue
        label = f"{labels.RATE_CHARTS[rank]}, {title.lower()}, xếp từ thấp đến cao"
        rated = [r for r in members if r["rates"].get(rank) is not None]
        out.append(
            {
                "level": level,
                "title": title,
                "count": len(members),
                "rows": [r for r in charts.ranked(members, rank) if has_cases(r)],
                "empty": sorted(r["name"] for r in members if not has_cases(r)),
                "svg": charts.ranking(rated, rank, label, target) if rated else None,
            }
        )
    return out


def rate_chart(
    rate: str, title: str, value: float | None, goal: Target | None, months: list[Any], year: int
) -> dict[str, Any]:
    """One rate's card: its value for the period, the plan's target and the month chart."""
    return {
        "rate": rate,
        "title": title,
        "value": value,
        "target": goal,
        "met": goal.met(value) if goal else None,
        "svg": charts.rate_by_month(months, rate, f"{title} theo tháng, năm {year}", goal),
    }


def indicator_views(
    who: Officer,
    span: Period,
    answer: dict[str, Any],
    index766: dict[str, Any],
    par: dict[str, Any],
    by_month: dict[str, Any],
    by_agency: dict[str, Any],
    config_dir: str,
    rank: str,
) -> dict[str, Any]:
    """The page's context beyond the raw answers."""
    goals = targets(par, config_dir, int(par["year"]))
    months = by_month.get("months", [])
    rate_charts = [
        rate_chart(rate, title, answer["rates"].get(rate), goals[rate], months, span.last.year)
        for rate, title in labels.RATE_CHARTS.items()
    ]
    for group in index766.get("groups", []):
        for item in group["items"]:
            item["why"] = item_note(item)
    return {
        "who": replace(who, agencies=[a for a in who.agencies if existed(a, span)]),
        "rate_charts": rate_charts,
        "months": months,
        "points_svg": charts.points_by_group(
            index766.get("groups", []), "Điểm Bộ chỉ số 766 theo nhóm so với điểm tối đa"
        ),
        "unscored": unscored_766(index766),
        "par": par,
        "par_rows": par_criteria(par),
        "rank": rank,
        "by_agency": by_agency,
        "agency_groups": agency_groups(by_agency.get("agencies", []), rank, goals[rank]),
    }

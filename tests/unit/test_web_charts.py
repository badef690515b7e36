"""The indicators page's SVG charts and its names for the ids of config/scoring (issue #20 items 4, 5)."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from services.metrics.series import existed_during, months_through
from services.web import charts, labels, views
from services.web.charts import Target
from shared.domain.codes import Level
from shared.domain.indicators import Period, parse_period
from shared.domain.registry import Agency

CONFIG = Path(__file__).resolve().parents[2] / "config"
RATES = ("on_time", "online", "full_online", "online_payment", "digitized", "apology_coverage")


def month(m: str, **rates: float | None) -> dict:
    return {
        "month": m,
        "rates": {name: rates.get(name) for name in RATES},
        "received": {"total": 10},
        "finished": {"total": 6},
        "pending": {"total": 4},
    }


def values(svg: str, attribute: str) -> dict[str, str]:
    return dict(re.findall(rf'<text class="value" data-{attribute}="([^"]+)"[^>]*>([^<]*)</text>', svg))


@pytest.mark.parametrize(
    ("rate", "printed", "bar_height", "bar_y"),
    [(1.0, "100", 146.0, 34.0), (0.5, "50", 73.0, 107.0), (0.9534, "95,3", 139.2, 40.8), (0.0, "0", 1.0, 179.0)],
)
def test_month_bar_height_and_printed_value_follow_the_rate(
    rate: float, printed: str, bar_height: float, bar_y: float
) -> None:
    svg = charts.rate_by_month([month("2026-11", online=rate)], "online", "Trực tuyến", None)
    assert values(svg, "month") == {"2026-11": printed}
    bar = re.search(r'<rect class="bar plain" x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)"', svg)
    assert bar and (float(bar.group(1)), float(bar.group(2))) == (bar_y, bar_height)


def test_month_chart_prints_month_labels_values_and_the_plans_target_line() -> None:
    months = [month("2026-01", online=0.25), month("2026-02", online=0.31), month("2026-03", online=None)]
    svg = charts.rate_by_month(months, "online", "Tỷ lệ hồ sơ trực tuyến theo tháng", Target(0.30, "above", "…"))
    assert re.findall(r'<text class="month"[^>]*>([^<]+)</text>', svg) == ["T1", "T2", "T3"]
    assert values(svg, "month") == {"2026-01": "25", "2026-02": "31", "2026-03": "—"}
    assert "Chỉ tiêu: trên 30%" in svg
    target = re.search(r'<line class="target" x1="0" y1="([^"]+)"', svg)
    assert target and float(target.group(1)) == charts.y_of(0.30) == 136.2
    assert svg.count('class="bar unmet"') == 1 and svg.count('class="bar met"') == 1  # 25% no, 31% yes
    assert 'role="img"' in svg
    assert (
        'aria-label="Tỷ lệ hồ sơ trực tuyến theo tháng. chỉ tiêu trên 30%; tháng 1: 25,00 %; tháng 2: 31,00 %; '
        'tháng 3: —."' in svg
    )
    assert "<title>Tỷ lệ hồ sơ trực tuyến theo tháng</title>" in svg
    assert 'width="100%"' in svg and 'viewBox="0 0 320 ' in svg


def test_exactly_at_a_goal_worded_above_is_not_met_but_at_least_is() -> None:
    assert Target(0.30, "above").met(0.30) is False and Target(0.30, "at_least").met(0.30) is True
    assert Target(0.30, "above").words == "trên 30%"
    assert Target(1.0, "at_least").words == "đạt 100%"
    assert Target(0.98, "at_least").words == "từ 98% trở lên"


def test_ranking_is_worst_first_with_the_value_printed_and_no_rate_last() -> None:
    rows = [
        {"agency_code": "A", "name": "Sở A", "rates": {"on_time": 0.99}},
        {"agency_code": "B", "name": "Sở B", "rates": {"on_time": 0.7}},
        {"agency_code": "C", "name": "Sở C", "rates": {"on_time": None}},
        {"agency_code": "D", "name": "Sở D", "rates": {"on_time": 0.85}},
    ]
    svg = charts.ranking(rows, "on_time", "Xếp hạng", Target(1.0, "at_least"))
    assert list(values(svg, "agency").items()) == [("B", "70%"), ("D", "85%"), ("A", "99%")]  # C has no rate
    widths = re.findall(r'<rect class="bar unmet" x="0" y="[^"]+" width="([^"]+)"', svg)
    assert widths == ["168.0", "204.0", "237.6"]  # 240 × rate
    assert 'x1="240.0"' in svg  # the 100% line
    assert [r["agency_code"] for r in charts.ranked(rows, "on_time")] == ["B", "D", "A", "C"]


def test_points_by_group_print_points_over_the_maximum() -> None:
    groups = [
        {
            "group": "1",
            "name": "Công khai, minh bạch",
            "max_points": 18,
            "points": 4.5,
            "items": [{"max_points": 12, "scored": False}, {"max_points": 6, "scored": True}],
        },
        {
            "group": "3'",
            "name": "Thanh toán trực tuyến",
            "max_points": 10,
            "points": 0.0,
            "items": [{"max_points": 4, "scored": False}, {"max_points": 6, "scored": True}],
        },
    ]
    svg = charts.points_by_group(groups, "766")
    assert values(svg, "group") == {"1": "4,5 / 18", "3&#x27;": "0 / 10"}
    assert "1. Công khai, minh bạch" in svg and ">Thanh toán trực tuyến<" in svg  # no "3'" shown
    assert '<rect class="track" x="0" y="17" width="240.0"' in svg
    assert '<rect class="scorable" x="0" y="17" width="80.0"' in svg  # 6 of the 18 points


def test_every_par_criterion_and_766_item_in_config_has_a_vietnamese_label() -> None:
    par = json.loads((CONFIG / "scoring" / "par.json").read_text(encoding="utf-8"))
    index = json.loads((CONFIG / "scoring" / "766.json").read_text(encoding="utf-8"))
    criteria = {c["criterion"] for v in par["versions"] for c in v["criteria"]}
    items = {i["item"] for v in index["versions"] for g in v["groups"] for i in g["items"]}
    assert criteria <= set(labels.PAR_CRITERION), criteria - set(labels.PAR_CRITERION)
    assert items <= set(labels.ITEM_766), items - set(labels.ITEM_766)
    unscored = {i["item"] for v in index["versions"] for g in v["groups"] for i in g["items"] if i["rate"] is None}
    assert unscored <= set(labels.OUTSIDE_DATA_766)
    assert labels.par_criterion("on_time_province") == "Tỷ lệ đúng hạn cấp tỉnh"
    assert labels.item_766("3.tt") == "Hồ sơ trực tuyến toàn trình"
    assert labels.item_766("2.1") == "2.1. Hồ sơ xử lý trước hạn, đúng hạn"
    assert labels.item_766("4.cttd") == "Chứng thực điện tử"
    assert labels.rules_version("766-2026.2") == "Bộ tiêu chí 766 (bản 2026.2)"
    assert labels.rules_version("par-2026.1") == "Bộ tiêu chí PAR INDEX (bản 2026.1)"
    assert labels.plan_target("on_time:G09-DD") == "Đúng hạn · Đất đai"
    for plan in par["plans"].values():
        for key in ("online", "postal_returns", "apology_coverage", "digitized"):
            assert labels.plan_target(key) != key
            assert not re.search(r"\((every|read as)", labels.plan_wording(plan[key]["wording"]))


def test_the_november_page_ends_with_november_whatever_today_is() -> None:
    november = months_through(parse_period("2026-11"), today=date(2026, 12, 2))
    assert [m.first.month for m in november] == list(range(1, 12))
    assert november[-1] == Period(date(2026, 11, 1), date(2026, 11, 30))
    year = months_through(parse_period("2026"), today=date(2026, 10, 2))
    assert year[-1] == Period(date(2026, 10, 1), date(2026, 10, 31))  # the current month (whole), not the future
    assert months_through(parse_period("2027"), today=date(2026, 10, 2)) == []
    assert months_through(parse_period("2026-03-01..2026-03-15"), today=date(2026, 12, 2))[-1].last == date(2026, 3, 15)


def test_districts_and_dissolved_agencies_are_not_listed_after_they_ended() -> None:
    district = Agency("000.30.02.H99", "UBND huyện", Level("district"), valid_to=date(2025, 7, 1), successor_code="x")
    assert existed_during(district, parse_period("2025-06"))
    assert not existed_during(district, parse_period("2025-07"))
    assert not existed_during(district, parse_period("2026"))
    page_agency = {"agency_code": "000.30.02.H99", "level": "district", "valid_to": "2025-07-01"}
    assert views.existed(page_agency, parse_period("2025-Q2")) and not views.existed(page_agency, parse_period("2026"))
    par = {"year": 2026, "criteria": [{"criterion": "on_time_district", "level": "district"}, {"criterion": "x"}]}
    assert [c["criterion"] for c in views.par_criteria(par)] == ["x"]
    assert len(views.par_criteria(par | {"year": 2025})) == 2


def test_agencies_with_no_case_are_named_under_the_ranking_not_drawn() -> None:
    def row(code: str, rate: float | None, received: int) -> dict:
        return {
            "agency_code": code,
            "name": f"Xã {code}",
            "level": "commune",
            "rates": {"on_time": rate},
            "received": {"total": received, "carried_over": 0},
        }

    groups = views.agency_groups([row("A", 0.9, 3), row("B", None, 0), row("C", 0.5, 2)], "on_time", None)
    assert [(g["level"], g["count"]) for g in groups] == [("commune", 3)]
    assert [r["agency_code"] for r in groups[0]["rows"]] == ["C", "A"] and groups[0]["empty"] == ["Xã B"]
    assert values(groups[0]["svg"], "agency") == {"C": "50%", "A": "90%"}


def test_targets_come_from_the_plan() -> None:
    par = {"plan_targets": [{"target": "online", "goal": 0.3, "compare": "above", "wording": "trên 30%"}]}
    goals = views.targets(par, str(CONFIG), 2026)
    assert goals["online"] == Target(0.3, "above", "trên 30%")
    assert goals["on_time"] is not None and goals["on_time"].goal == 1.0  # the plan's "*" rule
    assert goals["online_payment"] is None
    assert views.targets({"plan_targets": []}, str(CONFIG), 2031)["on_time"] is None

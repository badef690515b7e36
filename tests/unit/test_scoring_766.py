"""The 766 rules in config/scoring/766.json, item by item, and item 1.4 from the national counts.

Each table row: the case (rates or counts), the expected points, and where the rule comes from
(S-766DOC = "Mô tả công thức tính chỉ số 766.docx"; tthc-rules = the team's shared docs, tthc-rules.md).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.domain.indicators import choose_version, indicators, parse_period, score_766
from shared.domain.sync_ratio import SyncCount, period_months, sync_ratio, with_sync

RULES = json.loads((Path(__file__).parents[2] / "config" / "scoring" / "766.json").read_text(encoding="utf-8"))
VERSIONS = RULES["versions"]
NEW = choose_version(VERSIONS, date(2026, 12, 31), "766-2026.2")
OLD = choose_version(VERSIONS, date(2026, 12, 31), "766-2026.1")


def answer_with(**rates: float | None) -> dict[str, Any]:
    """An indicators answer (as shared.domain.indicators.assemble gives it) with these rates."""
    contract = ("on_time", "on_time_dated", "online", "full_online", "online_payment", "digitized", "apology_coverage")
    return {
        "period": {"start": "2026-12-01", "end": "2026-12-31"},
        "received": {"total": 100},
        "rates": {name: rates.get(name) for name in contract},
        "extra": {name: value for name, value in rates.items() if name not in contract},
    }


def item(scored: dict[str, Any], code: str) -> dict[str, Any]:
    return next(i for g in scored["groups"] for i in g["items"] if i["item"] == code)


# ---- the file -------------------------------------------------------------------------------


def test_the_new_version_has_the_group_maxima_of_the_source() -> None:
    # tthc-rules §5 (S-766DOC + METRICS): 18 / 20 / 12 / 10 / 22 / 18 = 100
    maxima = {g["group"]: sum(i["max"] for i in g["items"]) for g in NEW["groups"]}
    assert maxima == {"1": 18, "2": 20, "3": 12, "3'": 10, "4": 22, "5": 18}
    items = {i["item"]: i for g in NEW["groups"] for i in g["items"]}
    # tthc-rules §5 and §8: 1.4 = 6, 1.2 = 4, 2.1 = 20, toàn trình ÷ eligible one item of 12, 3.6 = 6,
    # 4.2 = 4 (80%), 5.4 = 6 (90%)
    assert items["1.4"]["max"] == 6 and items["1.2"]["max"] == 4 and items["2.1"]["max"] == 20
    assert items["3.tt"]["max"] == 12 and items["3.tt"]["rate"] == "full_online"
    assert items["3.3"]["max"] == 0  # tracking only: METRICS gives group 3's 12 points to toàn trình
    assert items["3.6"]["max"] == 6 and items["4.2"]["max"] == 4 and items["4.2"]["threshold"] == 0.8
    assert items["4.2"]["rate"] == "digitized_e_result" and items["5.4"]["threshold"] == 0.9


def test_every_departure_from_the_source_is_written_in_the_file() -> None:
    for group in NEW["groups"]:
        for entry in group["items"]:
            assert entry.get("source"), entry["item"]
            if entry["rate"] is None or entry["item"] in ("1.4", "2.1", "3.tt", "3.3", "3.6", "4.2"):
                assert len(entry.get("deviation", "")) > 20, entry["item"]


def test_the_corrected_version_scores_every_period_and_the_old_one_only_by_name() -> None:
    # 766-2026.1 misread S-766DOC (issue #19): superseded, chosen only by name to reproduce a score
    assert choose_version(VERSIONS, date(2026, 11, 30))["version"] == "766-2026.2"
    assert choose_version(VERSIONS, date(2024, 3, 31))["version"] == "766-2026.2"
    assert choose_version(VERSIONS, date(2026, 12, 31))["version"] == "766-2026.2"
    assert choose_version(VERSIONS, date(2026, 11, 30), "766-2026.1")["version"] == "766-2026.1"
    old_items = {i["item"]: i for g in OLD["groups"] for i in g["items"]}
    assert old_items["3.3"]["max"] == 6 and old_items["3.tt"]["max"] == 6 and old_items["3.6"]["threshold"] == 0.3


# ---- points, item by item ---------------------------------------------------------------------

POINT_ROWS = [
    # (item, rates of the answer, expected points)
    ("1.4", {"sync": 1.0}, 6.0),  # S-766DOC 1.4, no threshold stated → proportional; tthc-rules §5: 6 points
    ("1.4", {"sync": 0.5}, 3.0),  # S-766DOC 1.4: 0.5 × 6
    ("1.4", {"sync": None}, 0.0),  # no national count: no rate, no points (the note says why)
    ("2.1", {"on_time": 0.95}, 19.0),  # S-766DOC 2.1; tthc-rules §5: 20 points, conversion not stated → linear
    ("3.tt", {"full_online": 1.0}, 12.0),  # METRICS: toàn trình ÷ eligible, 12 points (tthc-rules §4, §5, §8)
    ("3.tt", {"full_online": 0.6}, 7.2),  # no threshold for the METRICS row → 0.6 × 12
    ("3.3", {"online_synced": 0.7}, 0.0),  # S-766DOC 3.3 tracked; METRICS puts group 3's points on toàn trình
    ("3.6", {"online_payment": 0.3}, 1.8),  # S-766DOC 3.6 states no threshold: 0.3 × 6 (was 6.0 with S-TH's 30%)
    ("3.6", {"online_payment": 0.31}, 1.86),  # proportional, never full points below 100%
    ("4.2", {"digitized_e_result": 0.8}, 4.0),  # S-766DOC 4.2: full points from 80%
    ("4.2", {"digitized_e_result": 0.4}, 2.0),  # S-766DOC 4.2: 0.4 × 4 ÷ 0.8
    ("4.2", {"digitized": 1.0, "digitized_e_result": 0.0}, 0.0),  # digitized without an e-result: nothing
    ("4.3", {"reused": 0.2}, 0.5),  # S-766DOC 4.3: 0.2 × 2 ÷ 0.8
    ("5.4", {"satisfaction": 0.9}, 6.0),  # S-766DOC 5.4: full points from 90%
    ("5.4", {"satisfaction": 0.45}, 3.0),  # S-766DOC 5.4: 0.45 × 6 ÷ 0.9
    ("4.1", {"digitized_e_result": 1.0}, 0.0),  # not scored: needs the "paper result" procedure flag
    ("1.1", {}, 0.0),  # not scored: national TTHC database (S-766DOC 1.1)
]


@pytest.mark.parametrize("code, rates, expected", POINT_ROWS)
def test_points_of_each_item_under_766_2026_2(code: str, rates: dict[str, float | None], expected: float) -> None:
    assert item(score_766(answer_with(**rates), NEW), code)["points"] == expected


def test_the_same_rates_under_the_old_version_score_as_they_did() -> None:
    # 766-2026.1: 3.6 at S-TH's 30% (full points), online 3.3 for 6, toàn trình for 6 at 80%
    scored = score_766(answer_with(online_payment=0.3, online=0.5, full_online=0.4), OLD)
    assert [item(scored, c)["points"] for c in ("3.6", "3.3", "3.tt")] == [6.0, 6.0, 3.0]
    assert scored["rules_version"] == "766-2026.1"


def test_unscored_items_say_why_and_the_answer_says_what_can_be_scored() -> None:
    scored = score_766(answer_with(on_time=1.0), NEW)
    assert scored["max_total"] == 100 and scored["scored_max_total"] == 56  # 6+20+12+0+6+4+2+6
    unscored = item(scored, "4.4")
    assert unscored["scored"] is False and unscored["rate"] is None and "DuocLayTuKhoDMQG" in unscored["note"]
    assert item(scored, "2.1")["scored"] is True and item(scored, "2.1")["note"] is None


# ---- 4.2 from the facts -----------------------------------------------------------------------


def fact(**flags: Any) -> dict[str, Any]:
    at = datetime.fromisoformat("2026-12-02T09:00:00+07:00")
    return {"received_at": at, "due_at": at, "channel": "direct"} | flags


DIGITIZED_ROWS = [
    # (facts flags, counted for 4.2?) — S-766DOC 4.2: (1) files in the components AND (2) a result file
    ({"components_digitized": True, "result_digitized": True}, True),
    ({"components_digitized": True, "e_result": True}, True),  # returned electronically
    ({"components_digitized": True, "result_digitized": False, "e_result": False}, False),  # no e-result
    ({"components_digitized": False, "result_digitized": True, "e_result": True}, False),  # no digitized files
]


def test_4_2_counts_digitized_components_with_an_electronic_result() -> None:
    facts = [fact(**flags) for flags, _ in DIGITIZED_ROWS]
    answer = indicators(facts, parse_period("2026-12"))
    assert answer["extra"]["digitized_e_result"] == 2 / 4
    assert answer["rates"]["digitized"] == 3 / 4  # the contract's rate is unchanged
    assert item(score_766(answer, NEW), "4.2")["points"] == 2.5  # S-766DOC 4.2: 0.5 × 4 ÷ 0.8


# ---- 1.4 and the 3.3 multiplier from the national counts ---------------------------------------

A = "000.00.00.H99"
DEC = parse_period("2026-12")
Q4 = parse_period("2026-Q4")


def counts(*rows: tuple[str, int | None, int | None]) -> dict[tuple[str, str], SyncCount]:
    return {(A, month): SyncCount(A, month, bcqg, dvcqg) for month, bcqg, dvcqg in rows}


SYNC_ROWS = [
    # (cases held, period, counts (month, bcqg, dvcqg), expected rate) — S-766DOC 1.4: ÷ max(BCQG, DVCQG)
    (90, DEC, counts(("2026-12", 100, 80)), 0.9),  # BCQG larger → ÷ BCQG
    (90, DEC, counts(("2026-12", 80, 120)), 0.75),  # DVCQG larger → ÷ DVCQG
    (120, DEC, counts(("2026-12", 100, 100)), 1.0),  # more held than expected: capped at 1
    (45, DEC, counts(("2026-12", None, 50)), 0.9),  # only DVCQG supplied
    (150, Q4, counts(("2026-10", 100, 0), ("2026-11", 100, 0), ("2026-12", 100, 0)), 0.5),  # months summed
]


@pytest.mark.parametrize("held, period, given, expected", SYNC_ROWS)
def test_sync_ratio(held: int, period: Any, given: dict, expected: float) -> None:
    rate, reason = sync_ratio(held, period, [A], given)
    assert rate == pytest.approx(expected) and reason is None


NULL_ROWS = [
    # (period, counts, words of the reason) — no count supplied → null with the reason, never a silent 0
    (DEC, {}, "no national sync count"),
    (Q4, counts(("2026-10", 100, 90), ("2026-12", 100, 90)), "2026-11"),  # one month missing
    (DEC, counts(("2026-12", 0, 0)), "are 0"),  # a zero denominator (contract: rate null)
    (parse_period("2026-12-01..2026-12-15"), counts(("2026-12", 100, 90)), "whole months"),
]


@pytest.mark.parametrize("period, given, words", NULL_ROWS)
def test_sync_ratio_is_null_with_a_reason(period: Any, given: dict, words: str) -> None:
    rate, reason = sync_ratio(50, period, [A], given)
    assert rate is None and reason is not None and words in reason


def test_the_online_share_is_multiplied_by_the_sync_ratio() -> None:
    # S-766DOC 3.3: online received ÷ received × Tỷ lệ đồng bộ hồ sơ
    answer = with_sync(answer_with(online=0.6), 0.5, None)
    assert answer["extra"]["online_synced"] == pytest.approx(0.3)
    scored = score_766(answer, NEW)
    assert item(scored, "1.4")["points"] == 3.0 and item(scored, "3.3")["rate"] == pytest.approx(0.3)


def test_without_counts_1_4_and_3_3_are_null_and_say_why() -> None:
    rate, reason = sync_ratio(50, DEC, [A], {})
    scored = score_766(with_sync(answer_with(online=0.6), rate, reason), NEW)
    for code in ("1.4", "3.3"):
        entry = item(scored, code)
        assert entry["rate"] is None and entry["points"] == 0.0
        assert "PUT /v1/admin/sync-counts" in entry["note"]


def test_period_months() -> None:
    assert period_months(Q4) == ["2026-10", "2026-11", "2026-12"]
    assert period_months(parse_period("2026")) == [f"2026-{m:02d}" for m in range(1, 13)]
    assert period_months(parse_period("2026-02-01..2026-02-27")) is None

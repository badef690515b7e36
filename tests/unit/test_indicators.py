"""Indicators and scoring on a hand-computed set of facts."""

from datetime import date, datetime

import pytest

from shared.domain.indicators import (
    PeriodError,
    band_points,
    choose_version,
    indicators,
    parse_period,
    points,
    score_766,
)


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text + "T09:00:00+07:00")


def fact(received, due, end=None, **extra):
    base = {"received_at": vn(received), "due_at": vn(due) if due else None, "end_at": end, "channel": "direct"}
    return {**base, **extra}


FACTS = [
    # A: carried over, finished late in March, apologised in time
    fact("2026-02-20", "2026-03-05", vn("2026-03-10"), on_time=False, result_dated="late", apology_on_time=True),
    # B: online toàn trình, paid online, digitized, finished early
    fact(
        "2026-03-02",
        "2026-03-10",
        vn("2026-03-05"),
        on_time=True,
        result_dated="early",
        channel="online",
        online_mode="full",
        full_online_eligible=True,
        fee_bearing=True,
        paid_online=True,
        components_digitized=True,
    ),
    # C: same date as due but an hour late: on time by date, late on exact instants
    fact(
        "2026-03-10",
        "2026-03-20",
        datetime.fromisoformat("2026-03-20T10:00:00+07:00"),
        on_time=False,
        result_dated="on_time",
    ),
    # D: postal, pending within due at period end
    fact("2026-03-25", "2026-04-05", channel="postal"),
    # E: online partial, pending and overdue at period end
    fact("2026-03-15", "2026-03-28", channel="online", online_mode="partial"),
    # F: received after the period; G: finished before it
    fact("2026-04-02", "2026-04-10"),
    fact("2026-02-01", "2026-02-10", vn("2026-02-20"), on_time=True, result_dated="early"),
]


def test_biểu_06_counts_and_rates() -> None:
    answer = indicators(FACTS, parse_period("2026-03"))
    assert answer["period"] == {"start": "2026-03-01", "end": "2026-03-31"}
    assert answer["received"] == {"total": 4, "carried_over": 1, "online": 2, "direct": 1, "postal": 1}
    assert answer["finished"] == {"total": 3, "early": 1, "on_time": 1, "late": 1}
    assert answer["pending"] == {"total": 2, "within_due": 1, "overdue": 1}
    rates = answer["rates"]
    assert rates["on_time"] == pytest.approx(2 / 5)
    assert rates["on_time_dated"] == pytest.approx(2 / 3)
    assert rates["online"] == pytest.approx(0.5)
    assert rates["full_online"] == 1.0 and rates["online_payment"] == 1.0
    assert rates["digitized"] == pytest.approx(0.25)
    assert rates["apology_coverage"] == pytest.approx(1 / 3)


def test_more_than_one_supplement_makes_a_pending_case_late_for_766() -> None:
    facts = [fact("2026-03-25", "2026-04-05", supplement_requests=2)]
    assert indicators(facts, parse_period("2026-03"))["rates"]["on_time"] == 0.0


def test_empty_denominators_give_null_rates() -> None:
    rates = indicators([], parse_period("2026"))["rates"]
    assert all(value is None for value in rates.values())


@pytest.mark.parametrize(
    "text, first, last",
    [
        ("2026-03", "2026-03-01", "2026-03-31"),
        ("2026-02", "2026-02-01", "2026-02-28"),
        ("2026-Q4", "2026-10-01", "2026-12-31"),
        ("2026-H1", "2026-01-01", "2026-06-30"),
        ("2026-9M", "2026-01-01", "2026-09-30"),
        ("2026", "2026-01-01", "2026-12-31"),
        ("2026-03-05..2026-03-09", "2026-03-05", "2026-03-09"),
    ],
)
def test_periods(text, first, last) -> None:
    period = parse_period(text)
    assert (period.first, period.last) == (date.fromisoformat(first), date.fromisoformat(last))


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "March", "2026-03-09..2026-03-01", "2026-02-30..2026-03-01"])
def test_bad_periods(text) -> None:
    with pytest.raises(PeriodError):
        parse_period(text)


def test_points_follow_the_766_conversion() -> None:
    assert points(0.6, 6, 0.5) == 6.0
    assert points(0.4, 6, 0.5) == 4.8
    assert points(0.333, 20, 1.0) == 6.66
    assert points(None, 6, 0.5) == 0.0


def test_scoring_versions_and_groups() -> None:
    rules = [
        {
            "version": "a",
            "effective_from": "2024-01-01",
            "groups": [
                {
                    "group": "2",
                    "name": "Tiến độ",
                    "items": [{"item": "2.1", "name": "x", "rate": "on_time", "max": 20, "threshold": 1.0}],
                }
            ],
        },
        {
            "version": "b",
            "effective_from": "2026-06-01",
            "groups": [
                {
                    "group": "2",
                    "name": "Tiến độ",
                    "items": [{"item": "2.1", "name": "x", "rate": "on_time", "max": 20, "threshold": 0.8}],
                }
            ],
        },
    ]
    answer = indicators(FACTS, parse_period("2026-03"))
    march = score_766(answer, choose_version(rules, date(2026, 3, 31)))
    rescored = score_766(answer, choose_version(rules, date(2026, 3, 31), "b"))
    assert march["rules_version"] == "a" and march["total"] == 8.0  # 0.4 × 20 ÷ 1.0
    assert rescored["rules_version"] == "b" and rescored["total"] == 10.0  # 0.4 × 20 ÷ 0.8
    assert march["groups"][0]["items"][0]["rate"] == pytest.approx(0.4)


def test_par_bands() -> None:
    bands = [{"min": 1.0, "points": 1.0}, {"min": 0.95, "points": 0.5}, {"min": 0.0, "points": 0.0}]
    assert [band_points(r, bands) for r in (1.0, 0.97, 0.5, None)] == [1.0, 0.5, 0.0, 0.0]

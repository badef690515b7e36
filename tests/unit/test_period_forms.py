"""Periods as officers write them (issue #20), next to the contract's forms, in parse_period."""

from __future__ import annotations

from datetime import date

import pytest

from shared.domain.indicators import PERIOD_FORMS, PeriodError, parse_period


@pytest.mark.parametrize(
    "text, first, last",
    [
        # the contract's forms keep working
        ("2026-11", "2026-11-01", "2026-11-30"),
        ("2026-Q1", "2026-01-01", "2026-03-31"),
        ("2026-H1", "2026-01-01", "2026-06-30"),
        ("2026-9M", "2026-01-01", "2026-09-30"),
        ("2026", "2026-01-01", "2026-12-31"),
        ("2026-03-01..2026-03-31", "2026-03-01", "2026-03-31"),
        # as officers write them
        ("11/2026", "2026-11-01", "2026-11-30"),
        ("2/2026", "2026-02-01", "2026-02-28"),
        ("tháng 11/2026", "2026-11-01", "2026-11-30"),
        (" 11 / 2026 ", "2026-11-01", "2026-11-30"),
        ("Q1/2026", "2026-01-01", "2026-03-31"),
        ("q4/2026", "2026-10-01", "2026-12-31"),
        ("quý 1/2026", "2026-01-01", "2026-03-31"),
        ("Quý IV/2026", "2026-10-01", "2026-12-31"),
        ("quý 2 năm 2026", "2026-04-01", "2026-06-30"),
        ("2026-q3", "2026-07-01", "2026-09-30"),
        ("6 tháng đầu năm 2026", "2026-01-01", "2026-06-30"),
        ("6 THÁNG CUỐI NĂM 2026", "2026-07-01", "2026-12-31"),
        ("9 tháng 2026", "2026-01-01", "2026-09-30"),
        ("9 tháng đầu năm 2026", "2026-01-01", "2026-09-30"),
        ("năm 2026", "2026-01-01", "2026-12-31"),
        ("Năm  2026", "2026-01-01", "2026-12-31"),
        ("01/03/2026-31/03/2026", "2026-03-01", "2026-03-31"),
        ("từ 5/3/2026 đến 9/3/2026", "2026-03-05", "2026-03-09"),
    ],
)
def test_periods_as_officers_write_them(text: str, first: str, last: str) -> None:
    period = parse_period(text)
    assert (period.first, period.last) == (date.fromisoformat(first), date.fromisoformat(last))


def test_decomposed_vietnamese_is_read_like_composed() -> None:
    import unicodedata

    assert parse_period(unicodedata.normalize("NFD", "6 tháng đầu năm 2026")).last == date(2026, 6, 30)


@pytest.mark.parametrize(
    "text", ["13/2026", "2026-13", "Q5/2026", "quý 5/2026", "March", "7 tháng 2026", "31/02/2026-01/03/2026"]
)
def test_a_bad_period_is_refused_in_vietnamese_with_the_forms(text: str) -> None:
    with pytest.raises(PeriodError) as refused:
        parse_period(text)
    message = str(refused.value)
    assert "Kỳ báo cáo" in message or "kỳ báo cáo" in message
    assert PERIOD_FORMS in message
    assert "11/2026" in message and "Q1/2026" in message and "6 tháng đầu năm 2026" in message


def test_a_period_ending_before_it_starts_says_so() -> None:
    with pytest.raises(PeriodError, match="kết thúc trước khi bắt đầu"):
        parse_period("2026-03-09..2026-03-01")

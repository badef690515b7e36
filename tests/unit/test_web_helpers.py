"""The web pages' pure helpers: Vietnamese formats, safe redirects, datetime-local (charts: test_web_charts)."""

from __future__ import annotations

from services.web.case import local_instant
from services.web.labels import FILTERS, local_input, number, percent, when
from services.web.lists import allowed_int
from services.web.session import safe_next

status = FILTERS["status"]


def status_label(code: str | None) -> str:
    return status(code)


def test_dates_are_shown_in_vietnam_time_day_first() -> None:
    assert when("2026-03-16T02:15:00+00:00") == "16/03/2026 09:15"
    assert when("2026-03-16T09:15:00+07:00", with_time=False) == "16/03/2026"
    assert when(None) == "—"
    assert local_input("2026-03-16T02:15:00Z") == "2026-03-16T09:15"


def test_numbers_and_rates_use_vietnamese_separators() -> None:
    assert percent(0.95341) == "95,34 %"
    assert percent(None) == "—"
    assert percent(1.0) == "100,00 %"
    assert number(1234567) == "1.234.567"
    assert number(12.5) == "12,50"
    assert number(0) == "0"


def test_codes_become_words_and_unknown_codes_stay_visible() -> None:
    assert status_label("waiting_citizen") == "Chờ bổ sung"
    assert status_label("something_new") == "something_new"
    assert status_label(None) == "—"


def test_login_only_redirects_within_the_site() -> None:
    assert safe_next("/cases/X?y=1") == "/cases/X?y=1"
    assert safe_next("//evil.example/") == "/"
    assert safe_next("https://evil.example/") == "/"


def test_form_values() -> None:
    assert local_instant("2026-03-20T10:00") == "2026-03-20T10:00:00+07:00"
    assert local_instant("2026-03-20T10:00:30") == "2026-03-20T10:00:30+07:00"
    assert allowed_int("50", 20, (20, 50, 100)) == 50
    assert allowed_int("7", 20, (20, 50, 100)) == 20
    assert allowed_int("x", 20, (20, 50, 100)) == 20

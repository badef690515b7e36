"""National changes of the calendar are dated in config with their source (issue #19 item 6)."""

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from shared.config import load_registry
from shared.domain.calendar import CalendarError, CalendarRules, WorkingCalendar
from shared.domain.deadlines import Duration, compute_due

CALENDAR_FILE = Path(__file__).resolve().parents[2] / "config" / "calendar.json"
CULTURE_DAY = "Ngày Văn hóa Việt Nam"  # 24/11, listed by the holidays package from 2026


def calendar(in_force_from: str | None) -> WorkingCalendar:
    spec = json.loads(CALENDAR_FILE.read_text(encoding="utf-8"))
    spec["national_changes"] = [{"name": CULTURE_DAY, "in_force_from": in_force_from, "source": "test"}]
    return WorkingCalendar(CalendarRules.from_mapping(spec))


@pytest.mark.parametrize(
    ("in_force_from", "day", "working"),
    [
        # tthc-rules §8: 24/11 a day off only from the date the amended BLLĐ Điều 112 takes effect
        ("2026-01-01", date(2026, 11, 24), False),
        ("2026-01-01", date(2027, 11, 24), False),
        ("2027-01-01", date(2026, 11, 24), True),  # listed by the package, not yet law: worked
        ("2027-01-01", date(2027, 11, 24), False),
        (None, date(2026, 11, 24), True),  # not in force at all
        (None, date(2027, 11, 24), True),
        (None, date(2026, 9, 2), False),  # other holidays untouched (Quốc khánh, BLLĐ Điều 112 k1)
    ],
)
def test_a_national_change_is_a_day_off_only_from_its_date(in_force_from: str | None, day: date, working: bool) -> None:
    assert calendar(in_force_from).is_working_day(day) is working


def test_the_date_of_a_change_moves_due_dates_and_the_calendar_version() -> None:
    received = datetime.fromisoformat("2026-11-23T09:00:00+07:00")  # Monday
    in_force, not_yet = calendar("2026-01-01"), calendar("2027-01-01")
    assert compute_due(in_force, received, Duration(1, "working_days")).due_at.date() == date(2026, 11, 25)
    assert compute_due(not_yet, received, Duration(1, "working_days")).due_at.date() == date(2026, 11, 24)
    assert in_force.version != not_yet.version  # a case names the calendar it was computed on


def test_the_sample_province_dates_culture_day_with_its_source() -> None:
    rules = load_registry(CALENDAR_FILE.parent).calendar_rules
    (change,) = [c for c in rules.national_changes if c.name == CULTURE_DAY]
    assert change.in_force_from == date(2026, 1, 1)
    assert "Điều 112" in change.source


@pytest.mark.parametrize(
    "changes",
    [
        "24/11",
        [{"name": CULTURE_DAY, "in_force_from": "2026-01-01"}],  # no source
        [{"name": CULTURE_DAY, "in_force_from": "01/01/2026", "source": "x"}],
    ],
)
def test_a_change_without_a_date_or_a_source_is_refused(changes: object) -> None:
    with pytest.raises(CalendarError):
        CalendarRules.from_mapping({"national_changes": changes})

"""The working calendar against the official 2024–2026 schedules, and its arithmetic."""

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.calendar import (
    DEFAULT_OFFICE_HOURS,
    VN_TZ,
    CalendarError,
    CalendarRules,
    NaiveTimestamp,
    OfficeHours,
    WorkingCalendar,
    YearNotCovered,
    from_local_seconds,
    local_seconds,
)

CAL = WorkingCalendar(CalendarRules())


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


@pytest.mark.parametrize(
    "day, working",
    [
        # Tết 2026: Mon 16/02 – Fri 20/02 off (CV 6620/UBND-VX relaying the national notice)
        ("2026-02-13", True),
        ("2026-02-16", False),
        ("2026-02-20", False),
        ("2026-02-23", True),
        # Giỗ Tổ 10/3 âm lịch = Sun 26/04/2026, compensatory Monday 27/04 off
        ("2026-04-26", False),
        ("2026-04-27", False),
        ("2026-04-28", True),
        # 2026 Quốc khánh swap: Mon 31/08 off, made up on Sat 22/08
        ("2026-08-22", True),
        ("2026-08-31", False),
        ("2026-09-01", False),
        ("2026-09-02", False),
        ("2026-09-03", True),
        # 2025 swap: Fri 02/05 off, made up on Sat 26/04
        ("2025-04-26", True),
        ("2025-04-30", False),
        ("2025-05-01", False),
        ("2025-05-02", False),
        ("2025-05-05", True),
        # Tết 2025: 27/01 – 31/01 (Mon–Fri) off
        ("2025-01-24", True),
        ("2025-01-27", False),
        ("2025-01-31", False),
        ("2025-02-03", True),
        # Tết 2024: 08/02 – 14/02 off; 2024 swap Mon 29/04 off, made up on Sat 04/05
        ("2024-02-07", True),
        ("2024-02-08", False),
        ("2024-02-14", False),
        ("2024-02-15", True),
        ("2024-04-29", False),
        ("2024-05-04", True),
        # ordinary weekend and weekday
        ("2026-03-14", False),
        ("2026-03-16", True),
    ],
)
def test_official_schedule(day: str, working: bool) -> None:
    assert CAL.is_working_day(date.fromisoformat(day)) is working


def test_calendar_lists_days_off_with_names_and_working_saturdays() -> None:
    days = dict(CAL.days_off(2026))
    assert days[date(2026, 2, 17)] == "Tết Nguyên Đán"
    assert "nghỉ bù" in days[date(2026, 4, 27)]
    assert date(2026, 8, 31) in days
    assert CAL.working_weekend_days(2026) == [date(2026, 8, 22)]
    assert CAL.working_weekend_days(2025) == [date(2025, 4, 26)]


def test_year_without_data_is_an_error_naming_the_year() -> None:
    with pytest.raises(YearNotCovered, match="2031"):
        CAL.days_off(2031)
    with pytest.raises(YearNotCovered, match="2028"):
        CAL.add_working_time(vn("2027-12-20T09:00:00"), 30 * 8 * 3600)
    with pytest.raises(YearNotCovered, match="2019"):
        CAL.is_working_day(date(2019, 6, 3))


def test_overrides_add_days_off_working_days_and_office_hours() -> None:
    rules = CalendarRules.from_mapping(
        {
            "name": "VN/test",
            "days_off": [{"date": "2026-03-17", "name": "Ngày nghỉ của tỉnh"}],
            "working_days": ["2026-03-21"],
            "office_hours": [["07:30", "11:30"], ["13:00", "17:00"]],
        }
    )
    cal = WorkingCalendar(rules)
    assert not cal.is_working_day(date(2026, 3, 17))
    assert cal.is_working_day(date(2026, 3, 21))
    assert cal.next_opening(vn("2026-03-16T06:00:00")) == vn("2026-03-16T07:30:00")
    assert cal.version != CAL.version
    assert dict(cal.days_off(2026))[date(2026, 3, 17)] == "Ngày nghỉ của tỉnh"


def test_bad_office_hours_are_rejected() -> None:
    with pytest.raises(CalendarError):
        OfficeHours.parse([["11:30", "07:00"]])
    with pytest.raises(CalendarError):
        OfficeHours.parse([["07:00", "12:00"], ["11:00", "17:00"]])
    with pytest.raises(CalendarError):
        OfficeHours.parse([["7h", "17:00"]])


def test_naive_timestamps_are_rejected() -> None:
    with pytest.raises(NaiveTimestamp):
        CAL.add_working_time(datetime(2026, 3, 16, 9, 0), 3600)


@pytest.mark.parametrize(
    "moment, opening",
    [
        ("2026-03-16T06:00:00", "2026-03-16T07:00:00"),  # before opening
        ("2026-03-16T12:00:00", "2026-03-16T13:30:00"),  # lunch
        ("2026-03-16T17:30:00", "2026-03-17T07:00:00"),  # after closing
        ("2026-03-14T10:00:00", "2026-03-16T07:00:00"),  # Saturday
        ("2026-02-13T18:00:00", "2026-02-23T07:00:00"),  # Friday evening before Tết
        ("2026-03-16T09:00:00", "2026-03-16T09:00:00"),  # already open
    ],
)
def test_receipt_outside_office_hours_starts_at_next_opening(moment: str, opening: str) -> None:
    assert CAL.next_opening(vn(moment)) == vn(opening)


def test_other_offsets_are_the_same_instant() -> None:
    utc = datetime.fromisoformat("2026-03-16T02:15:00+00:00")
    assert CAL.add_working_time(utc, 3600) == vn("2026-03-16T10:15:00")


def test_working_time_skips_lunch_and_nights() -> None:
    assert CAL.working_time_between(vn("2026-03-16T11:00:00"), vn("2026-03-16T14:00:00")) == 3600
    assert CAL.working_time_between(vn("2026-03-16T16:00:00"), vn("2026-03-17T08:00:00")) == 2 * 3600
    assert CAL.working_time_between(vn("2026-03-17T08:00:00"), vn("2026-03-16T16:00:00")) == -2 * 3600


# ---- properties ---------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=VN_TZ)
)
working_seconds = st.integers(min_value=1, max_value=60 * 8 * 3600)


@settings(max_examples=300, deadline=None)
@given(instants, working_seconds)
def test_added_time_always_lands_in_working_time(start: datetime, seconds: int) -> None:
    assert CAL.is_working_time(CAL.add_working_time(start, seconds))


@settings(max_examples=300, deadline=None)
@given(instants, working_seconds)
def test_time_between_start_and_add_is_the_added_time(start: datetime, seconds: int) -> None:
    assert CAL.working_time_between(start, CAL.add_working_time(start, seconds)) == seconds


@settings(max_examples=300, deadline=None)
@given(instants, working_seconds)
def test_add_then_subtract_returns_the_start(start: datetime, seconds: int) -> None:
    back = CAL.subtract_working_time(CAL.add_working_time(start, seconds), seconds)
    # The same point of working time always; the same instant when the start lies inside office
    # hours (outside them, every instant up to the next opening is that same point, and the
    # earliest of them is returned: a close of day rather than the next morning).
    assert CAL.working_time_between(back, start) == 0
    opening = CAL.next_opening(start)
    if opening == start and CAL.is_working_time(start - timedelta(seconds=1)):
        assert back == start


@settings(max_examples=200, deadline=None)
@given(instants, instants, working_seconds)
def test_added_time_is_monotonic_in_the_start(a: datetime, b: datetime, seconds: int) -> None:
    early, late = min(a, b), max(a, b)
    assert CAL.add_working_time(early, seconds) <= CAL.add_working_time(late, seconds)


# ---- the lookup tables against the definitions they replace --------------------------------

any_offset = st.sampled_from(
    [VN_TZ, timezone(timedelta(hours=7)), UTC, timezone(timedelta(hours=-5, minutes=-30)), ZoneInfo("Asia/Ho_Chi_Minh")]
)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2030, 1, 1)), any_offset)
def test_local_seconds_is_the_timestamp_at_plus_seven(moment: datetime, tz: tzinfo) -> None:
    aware = moment.replace(tzinfo=tz)
    assert local_seconds(aware) == int(aware.timestamp()) + 7 * 3600


def test_local_seconds_truncates_like_the_timestamp_before_1970() -> None:
    for text in ["1969-12-31T23:59:59.500000+00:00", "1970-01-01T06:59:59.250000+07:00", "1970-01-01T07:00:00.5+07:00"]:
        moment = datetime.fromisoformat(text)
        assert local_seconds(moment) == int(moment.timestamp()) + 7 * 3600


@pytest.mark.parametrize(
    "intervals",
    [
        DEFAULT_OFFICE_HOURS.intervals,
        ((0, 3600), (7200, 86_400)),  # to midnight
        ((8 * 3600 + 17, 12 * 3600 - 3), (12 * 3600 - 3, 18 * 3600)),  # seconds, touching
        ((13 * 3600, 17 * 3600), (7 * 3600, 11 * 3600)),  # not in order: built from the definition
    ],
)
def test_office_hour_tables_are_the_definitions(intervals: tuple[tuple[int, int], ...]) -> None:
    hours = OfficeHours(intervals)
    assert len(hours.worked_before_table) == 86_400
    assert all(hours.worked_before_table[s] == hours.worked_before(s) for s in range(86_400))
    assert len(hours.clock_at_table) == hours.seconds_per_day + 1
    assert all(hours.clock_at_table[w] == hours.clock_at(w) for w in range(hours.seconds_per_day + 1))
    assert all(
        hours.clock_at_deltas[w] == timedelta(seconds=hours.clock_at(w))
        for w in range(0, hours.seconds_per_day + 1, 97)
    )


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=CAL.cumulative_at(local_seconds(datetime(2027, 12, 31, 17, tzinfo=VN_TZ)))))
def test_moment_at_is_the_instant_as_a_time(cumulative: int) -> None:
    moment = CAL.moment_at(cumulative)
    assert moment == from_local_seconds(CAL.instant_of(cumulative))
    assert moment.utcoffset() == timedelta(hours=7)


def test_moment_at_outside_the_covered_years_names_the_year() -> None:
    with pytest.raises(YearNotCovered, match="2028"):
        CAL.moment_at(CAL.cumulative_at(local_seconds(datetime(2027, 12, 31, 17, tzinfo=VN_TZ))) + 1)
    with pytest.raises(YearNotCovered, match="2019"):
        CAL.moment_at(0)

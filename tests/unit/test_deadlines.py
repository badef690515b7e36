"""Deadline arithmetic: units, conventions, cut-offs, pauses, apology deadline, words."""

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.calendar import VN_TZ, CalendarRules, WorkingCalendar
from shared.domain.codes import Convention, Cutoff, DurationUnit
from shared.domain.deadlines import (
    DeadlineError,
    Duration,
    Interval,
    apology_deadline,
    apology_on_time,
    compute_due,
    remaining_in_words,
)

CAL = WorkingCalendar(CalendarRules())
DAYS = DurationUnit.WORKING_DAYS


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


def due(received: str, value: float, unit=DAYS, convention=Convention.WORKING_HOURS, cutoff=None, pauses=()):
    return compute_due(CAL, vn(received), Duration(value, unit), convention, cutoff, pauses).due_at


@pytest.mark.parametrize(
    "received, value, unit, convention, expected",
    [
        ("2026-03-16T09:15:00", 3, DAYS, Convention.WORKING_HOURS, "2026-03-19T09:15:00"),
        ("2026-03-16T07:00:00", 1, DAYS, Convention.WORKING_HOURS, "2026-03-16T17:00:00"),
        ("2026-03-16T09:15:00", 3, DAYS, Convention.END_OF_DAY, "2026-03-19T17:00:00"),
        ("2026-03-13T16:00:00", 1, DAYS, Convention.WORKING_HOURS, "2026-03-16T16:00:00"),
        # Friday before Tết: the whole Tết week is skipped
        ("2026-02-13T16:00:00", 1, DAYS, Convention.WORKING_HOURS, "2026-02-23T16:00:00"),
        # the swap: Sat 22/08/2026 is a working day, Mon 31/08 – Wed 02/09 are not
        ("2026-08-21T09:00:00", 1, DAYS, Convention.WORKING_HOURS, "2026-08-22T09:00:00"),
        ("2026-08-28T09:00:00", 1, DAYS, Convention.WORKING_HOURS, "2026-09-03T09:00:00"),
        # receipt in the lunch break starts at 13:30
        ("2026-03-16T12:00:00", 4, DurationUnit.WORKING_HOURS, Convention.WORKING_HOURS, "2026-03-17T07:30:00"),
        # working hours cross lunch and the night
        ("2026-03-16T10:30:00", 4, DurationUnit.WORKING_HOURS, Convention.WORKING_HOURS, "2026-03-16T16:30:00"),
        ("2026-03-16T16:00:00", 2, DurationUnit.WORKING_HOURS, Convention.WORKING_HOURS, "2026-03-17T08:00:00"),
        # calendar days: 10 days later is a Thursday
        ("2026-03-16T09:15:00", 10, DurationUnit.CALENDAR_DAYS, Convention.WORKING_HOURS, "2026-03-26T17:00:00"),
        # calendar days landing on a Saturday move to Monday; on Tết, to the first day after it
        ("2026-03-16T09:15:00", 5, DurationUnit.CALENDAR_DAYS, Convention.WORKING_HOURS, "2026-03-23T17:00:00"),
        ("2026-02-06T09:00:00", 10, DurationUnit.CALENDAR_DAYS, Convention.WORKING_HOURS, "2026-02-23T17:00:00"),
        # a same-day procedure (0 days, end of day)
        ("2026-03-16T09:15:00", 0, DAYS, Convention.END_OF_DAY, "2026-03-16T17:00:00"),
        ("2026-03-14T09:15:00", 0, DAYS, Convention.END_OF_DAY, "2026-03-16T17:00:00"),
    ],
)
def test_due_dates(received, value, unit, convention, expected) -> None:
    assert due(received, value, unit, convention) == vn(expected)


def test_cutoff_at_15_starts_counting_next_working_day() -> None:
    assert due("2026-03-16T14:59:00", 1, cutoff=Cutoff.AT_15) == vn("2026-03-17T14:59:00")
    assert due("2026-03-16T15:00:00", 1, cutoff=Cutoff.AT_15) == vn("2026-03-17T17:00:00")
    # same-day procedure received after 15:00: due the next working day
    assert due("2026-03-16T15:30:00", 0, convention=Convention.END_OF_DAY, cutoff=Cutoff.AT_15) == vn(
        "2026-03-17T17:00:00"
    )


def test_cutoff_one_hour_before_close() -> None:
    assert due("2026-03-20T15:59:00", 1, cutoff=Cutoff.ONE_HOUR_BEFORE_CLOSE) == vn("2026-03-23T15:59:00")
    assert due("2026-03-20T16:00:00", 1, cutoff=Cutoff.ONE_HOUR_BEFORE_CLOSE) == vn("2026-03-23T17:00:00")


def test_pause_moves_due_by_its_working_time() -> None:
    pause = Interval(vn("2026-03-17T09:00:00"), vn("2026-03-19T09:00:00"))  # two working days
    assert due("2026-03-16T09:00:00", 3, pauses=[pause]) == vn("2026-03-23T09:00:00")


def test_open_pause_freezes_the_clock() -> None:
    start = vn("2026-03-17T09:00:00")
    result = compute_due(CAL, vn("2026-03-16T09:00:00"), Duration(3, DAYS), pauses=[Interval(start, None)])
    assert result.clock_stopped_since == start


def test_pause_after_due_does_not_rescue_a_late_case() -> None:
    pause = Interval(vn("2026-03-25T09:00:00"), vn("2026-03-27T09:00:00"))
    assert due("2026-03-16T09:00:00", 3, pauses=[pause]) == vn("2026-03-19T09:00:00")


def test_overlapping_pauses_count_once() -> None:
    a = Interval(vn("2026-03-17T09:00:00"), vn("2026-03-18T09:00:00"))
    b = Interval(vn("2026-03-17T13:30:00"), vn("2026-03-19T09:00:00"))
    assert due("2026-03-16T09:00:00", 3, pauses=[a, b]) == vn("2026-03-23T09:00:00")


def test_end_of_day_pause_keeps_due_at_a_close() -> None:
    pause = Interval(vn("2026-03-17T09:00:00"), vn("2026-03-17T10:00:00"))
    assert due("2026-03-16T09:00:00", 3, convention=Convention.END_OF_DAY, pauses=[pause]) == vn("2026-03-20T17:00:00")


def test_an_apology_at_its_deadline_is_on_time_and_after_it_late() -> None:
    deadline = apology_deadline(CAL, vn("2026-03-17T17:00:00"))
    assert apology_on_time(deadline, deadline)
    assert not apology_on_time(deadline + timedelta(seconds=1), deadline)


def test_apology_deadline_is_one_working_day_before_due() -> None:
    assert apology_deadline(CAL, vn("2026-03-17T17:00:00")) == vn("2026-03-16T17:00:00")
    assert apology_deadline(CAL, vn("2026-02-23T09:00:00")) == vn("2026-02-13T09:00:00")


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"value": -1, "unit": "working_days"}, "value"),
        ({"value": 10_000, "unit": "working_days"}, "value"),
        ({"value": 3, "unit": "weeks"}, "unit"),
        ({"value": "3", "unit": "working_days"}, "value"),
        ({"value": float("nan"), "unit": "working_days"}, "value"),
        ({"value": 1.5, "unit": "calendar_days"}, "value"),
        ({"unit": "working_days"}, "duration"),
    ],
)
def test_bad_durations_name_the_field(spec, field) -> None:
    with pytest.raises(DeadlineError) as info:
        Duration.of(spec)
    assert info.value.field == field


@pytest.mark.parametrize(
    "seconds, words",
    [
        (11 * 3600, "còn 1 ngày 3 giờ làm việc"),
        (-(17 * 3600), "quá 2 ngày 1 giờ làm việc"),
        (45 * 60, "còn 45 phút làm việc"),
        (0, "đến hạn"),
        (16 * 3600, "còn 2 ngày làm việc"),
        (-(431 * 8 * 3600), "quá 431 ngày làm việc"),
    ],
)
def test_remaining_in_words(seconds, words) -> None:
    assert remaining_in_words(seconds) == words


# ---- properties ---------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 10, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=VN_TZ)
)
durations = st.builds(
    Duration,
    st.integers(min_value=0, max_value=60),
    st.sampled_from([DurationUnit.WORKING_DAYS, DurationUnit.WORKING_HOURS, DurationUnit.CALENDAR_DAYS]),
)
conventions = st.sampled_from(list(Convention))
cutoffs = st.sampled_from([None, Cutoff.AT_15, Cutoff.ONE_HOUR_BEFORE_CLOSE])


@settings(max_examples=300, deadline=None)
@given(instants, durations, conventions, cutoffs)
def test_due_is_never_in_non_working_time(received, duration, convention, cutoff) -> None:
    result = compute_due(CAL, received, duration, convention, cutoff).due_at
    assert CAL.is_working_time(result)


@settings(max_examples=300, deadline=None)
@given(instants, instants, durations, conventions, cutoffs)
def test_due_is_monotonic_in_the_receipt_instant(a, b, duration, convention, cutoff) -> None:
    early, late = min(a, b), max(a, b)
    assert (
        compute_due(CAL, early, duration, convention, cutoff).due_at
        <= compute_due(CAL, late, duration, convention, cutoff).due_at
    )


@settings(max_examples=300, deadline=None)
@given(
    instants,
    durations,
    conventions,
    st.lists(st.tuples(st.integers(0, 30 * 86400), st.integers(0, 10 * 86400)), max_size=3),
)
def test_pause_never_gives_an_earlier_due_than_no_pause(received, duration, convention, raw) -> None:
    pauses = [Interval(received + timedelta(seconds=a), received + timedelta(seconds=a + b)) for a, b in raw]
    plain = compute_due(CAL, received, duration, convention).due_at
    paused = compute_due(CAL, received, duration, convention, pauses=pauses).due_at
    assert paused >= plain


# ---- the independent oracle: a straightforward day-by-day loop over the `holidays` calendar ----

from bench.deadline_core import DayByDayCalendar  # noqa: E402

ORACLE = DayByDayCalendar(2020, 2027)


@settings(max_examples=300, deadline=None)
@given(instants, st.integers(min_value=1, max_value=60))
def test_due_agrees_with_a_day_by_day_loop(received, days) -> None:
    assert due_plain(received, days) == ORACLE.due(received, days)


def due_plain(received: datetime, days: int) -> datetime:
    return compute_due(CAL, received, Duration(days, DAYS)).due_at


def test_calendar_days_with_a_cutoff_count_a_day_off_receipt_from_the_next_working_day() -> None:
    """Found by the monotonic property: Fri 24/4/2026 15:00 (after the cut-off) and Sat 25/4 00:00
    both count from Tue 28/4 (27/4 is the Hùng Kings compensatory day off)."""
    unit = DurationUnit.CALENDAR_DAYS
    friday = due("2026-04-24T15:00:00", 1, unit, cutoff=Cutoff.AT_15)
    saturday = due("2026-04-25T00:00:00", 1, unit, cutoff=Cutoff.AT_15)
    assert friday == saturday == vn("2026-04-29T17:00:00")
    assert due("2026-04-25T00:00:00", 1, unit) == vn("2026-04-28T17:00:00")  # D10: only the last day moves

"""Statutory deadlines (ngày hẹn trả) on the working calendar.

Three units (working days, calendar days, working hours) and two conventions for working days:
- working_hours: 1 working day = 8 working hours, counted from the receipt instant through office
  hours; a receipt outside office hours starts at the next opening.
- end_of_day: the receipt day is not counted; due at the close of the Nth working day after it.
Calendar days: add N calendar days to the receipt date; a due date on a non-working day moves to
the next working day; due at its close.

Everything here works in cumulative working seconds (see calendar.py), so a pause of the clock is
a subtraction and a due date is one lookup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from shared.domain.calendar import (
    SECONDS_PER_DAY,
    WorkingCalendar,
    from_local_seconds,
    local_seconds,
)
from shared.domain.codes import ApologyTiming, Convention, Cutoff, DurationUnit

WORKING_DAY_SECONDS = 8 * 3600  # 1 working day = 8 working hours (contract, tthc-rules D9)
APOLOGY_LEAD_SECONDS = WORKING_DAY_SECONDS  # apology at the latest one working day before due

# Beyond these a duration is a typo, not a procedure (the longest TTHC run a few months).
MAX_DURATION = {
    DurationUnit.WORKING_DAYS: 365,
    DurationUnit.CALENDAR_DAYS: 730,
    DurationUnit.WORKING_HOURS: 365 * 8,
}


# looked up once: a member of an enum class costs an attribute lookup on every call
_CALENDAR_DAYS = DurationUnit.CALENDAR_DAYS
_WORKING_DAYS = DurationUnit.WORKING_DAYS
_END_OF_DAY = Convention.END_OF_DAY


class DeadlineError(ValueError):
    """Input a deadline cannot be computed from; the message names what is wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Duration:
    """Thời hạn giải quyết: a value and a unit, as published in the procedure."""

    value: float
    unit: DurationUnit

    def __post_init__(self) -> None:
        try:
            unit = DurationUnit(self.unit)
        except ValueError:
            allowed = ", ".join(u.value for u in DurationUnit)
            raise DeadlineError(f"unknown duration unit {self.unit!r} (one of {allowed})", "unit") from None
        object.__setattr__(self, "unit", unit)
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise DeadlineError(f"duration value {value!r} is not a number", "value")
        if value < 0:
            raise DeadlineError(f"duration value {value} is negative", "value")
        if value > MAX_DURATION[unit]:
            raise DeadlineError(f"duration {value} {unit.value} is over the limit of {MAX_DURATION[unit]}", "value")
        if unit is DurationUnit.CALENDAR_DAYS and value != int(value):
            raise DeadlineError("calendar_days must be a whole number", "value")

    @classmethod
    def of(cls, spec: object) -> Duration:
        if isinstance(spec, Duration):
            return spec
        if not isinstance(spec, dict) or "value" not in spec or "unit" not in spec:
            raise DeadlineError('duration must be {"value": number, "unit": ...}', "duration")
        return cls(spec["value"], spec["unit"])

    @cached_property
    def working_seconds(self) -> int:
        if self.unit is DurationUnit.WORKING_HOURS:
            return round(self.value * 3600)
        return round(self.value * WORKING_DAY_SECONDS)

    def as_dict(self) -> dict[str, object]:
        return {"value": self.value, "unit": self.unit.value}


@dataclass(frozen=True)
class Interval:
    """A stretch of time that does not count towards the deadline (a pause of the clock)."""

    start: datetime
    end: datetime | None  # None: still open


class DueResult:
    """The statutory due instant; `clock_stopped_since` when an open pause before due froze it."""

    __slots__ = ("due_at", "clock_stopped_since")

    def __init__(self, due_at: datetime, clock_stopped_since: datetime | None = None) -> None:
        self.due_at = due_at
        self.clock_stopped_since = clock_stopped_since

    def __repr__(self) -> str:
        return f"DueResult({self.due_at!r}, {self.clock_stopped_since!r})"


def _cutoff_applies(calendar: WorkingCalendar, x: int, cutoff: Cutoff | None) -> bool:
    """Received on a working day at or after the procedure's cut-off hour."""
    if cutoff is None or not calendar.is_working_day_at(x):
        return False
    limit = 15 * 3600 if cutoff is Cutoff.AT_15 else calendar.office_hours.closing - 3600
    return x % SECONDS_PER_DAY >= limit


def _after_close(calendar: WorkingCalendar, x: int) -> bool:
    return not calendar.is_working_day_at(x) or x % SECONDS_PER_DAY >= calendar.office_hours.closing


def _counting_start(calendar: WorkingCalendar, x: int, cutoff: Cutoff | None) -> int:
    """Cumulative working seconds at which the clock starts for a receipt at local instant `x`:
    after the procedure's cut-off (15:00, or within the last hour before closing) it is the next
    working day's opening."""
    if cutoff is not None and _cutoff_applies(calendar, x, cutoff):
        return calendar.day_end_cumulative(x)
    return calendar.cumulative_at(x)


def merge_intervals(intervals: Sequence[Interval]) -> list[Interval]:
    """Sorted, non-overlapping pauses: overlapping reasons do not stop the clock twice."""
    merged: list[Interval] = []
    for item in sorted(intervals, key=lambda i: i.start):
        if merged:
            last = merged[-1]
            if last.end is None:
                break
            if item.start <= last.end:
                end = None if item.end is None else max(last.end, item.end)
                merged[-1] = Interval(last.start, end)
                continue
        merged.append(item)
    return merged


def compute_due(
    calendar: WorkingCalendar,
    received_at: datetime,
    duration: Duration,
    convention: Convention = Convention.WORKING_HOURS,
    cutoff: Cutoff | None = None,
    pauses: Sequence[Interval] = (),
) -> DueResult:
    """The statutory due instant for a receipt, a duration and the pauses of the clock.

    Pauses that start before the (running) due date push it back by their working time; a pause
    still open freezes the clock and the result carries `clock_stopped_since`.
    """
    unit = duration.unit
    if unit is _CALENDAR_DAYS:
        return _calendar_days_due(calendar, received_at, duration, cutoff, pauses)

    x = local_seconds(received_at)
    day = calendar.day_seconds
    whole_days = convention is _END_OF_DAY and unit is _WORKING_DAYS
    if whole_days:
        n = duration.value
        end_of_receipt_day = calendar.day_end_cumulative(x)
        if n == 0 and (_after_close(calendar, x) or _cutoff_applies(calendar, x, cutoff)):
            n = 1  # a same-day procedure received too late is due the next working day
        due_c = end_of_receipt_day + math.ceil(n * day)
        start_c = calendar.cumulative_at(x)
    else:
        start_c = calendar.cumulative_at(x) if cutoff is None else _counting_start(calendar, x, cutoff)
        due_c = start_c + duration.working_seconds
        if not pauses:
            return DueResult(calendar.moment_at(due_c))

    for pause in merge_intervals(pauses):
        pause_c = max(calendar.cumulative_at(local_seconds(pause.start)), start_c)
        if pause_c >= due_c:
            break  # a pause after the due date does not rescue a late case
        if pause.end is None:
            return DueResult(calendar.moment_at(due_c), pause.start)
        extension = calendar.cumulative_at(local_seconds(pause.end)) - pause_c
        if extension > 0:
            if whole_days:  # keep the due date at a close of day
                extension = math.ceil(extension / day) * day
            due_c += extension
    return DueResult(calendar.moment_at(due_c))


def _calendar_days_due(
    calendar: WorkingCalendar,
    received_at: datetime,
    duration: Duration,
    cutoff: Cutoff | None,
    pauses: Sequence[Interval],
) -> DueResult:
    x = local_seconds(received_at)
    start_day = from_local_seconds(x).date()
    # With a cut-off, a receipt after it counts from the next working day; so does one on a day off
    # (it came after the last working day's cut-off), or a later receipt could be due earlier.
    if _cutoff_applies(calendar, x, cutoff) or (cutoff is not None and not calendar.is_working_day(start_day)):
        start_day = calendar.next_working_day(start_day, include_self=False)
    due_day = start_day + timedelta(days=int(duration.value))
    for pause in merge_intervals(pauses):
        if pause.start.astimezone(received_at.tzinfo).date() > due_day:
            break
        if pause.end is None:
            return DueResult(calendar.close_of_day(calendar.next_working_day(due_day)), pause.start)
        held = max(0.0, (pause.end - max(pause.start, received_at)).total_seconds())
        due_day += timedelta(days=math.ceil(held / SECONDS_PER_DAY))
    return DueResult(calendar.close_of_day(calendar.next_working_day(due_day)))


def apology_deadline(
    calendar: WorkingCalendar,
    due_at: datetime,
    received_at: datetime | None = None,
    timing: ApologyTiming = ApologyTiming.ONE_WORKING_DAY_BEFORE_DUE,
) -> datetime:
    """Hạn xin lỗi: one working day before due (tthc-rules §2.1), or the due instant itself for the
    procedures that apologise at expiry (NĐ 297/2025 Điều 6 k5). Never before the receipt: where one
    working day before due would be, it is due (contract v1.1), so the rule can always be met."""
    if timing is ApologyTiming.AT_DUE:
        return due_at
    before = calendar.subtract_working_time(due_at, APOLOGY_LEAD_SECONDS)
    if received_at is not None and before < received_at:
        return due_at
    return before


def apology_on_time(issued_at: datetime, apology_deadline_at: datetime) -> bool:
    """Xin lỗi đúng hạn: the apology (phiếu xin lỗi, Mẫu 04) is issued at or before its deadline
    (`apology_deadline`): "chậm nhất 01 ngày trước ngày hết hạn" under NĐ 61/2018 and NĐ 118/2025,
    at expiry under NĐ 297/2025 Điều 6 k5 (tthc-rules §2.1, contract v1.1). Both the fold and the
    apology route judge it here."""
    return issued_at <= apology_deadline_at


def remaining_in_words(working_seconds: int) -> str:
    """'còn 1 ngày 3 giờ làm việc' before due, 'quá 2 ngày 1 giờ làm việc' after, in 8-hour working
    days: it says "làm việc" so an officer does not read calendar days."""
    if working_seconds == 0:
        return "đến hạn"
    prefix = "còn" if working_seconds > 0 else "quá"
    rest = abs(working_seconds)
    days, rest = divmod(rest, WORKING_DAY_SECONDS)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    if days:
        parts.append(f"{days} ngày")
    if hours:
        parts.append(f"{hours} giờ")
    if minutes and not days:
        parts.append(f"{minutes} phút")
    if not parts:
        parts.append("dưới 1 phút")
    return f"{prefix} {' '.join(parts)} làm việc"

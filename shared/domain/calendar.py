"""The Vietnamese working calendar (lịch làm việc) and working-time arithmetic on it.

Built on the `holidays` package (Bộ luật Lao động 2019 Điều 112 holidays, the lunar ones, the
compensatory day off when a holiday falls on a weekend, the yearly day swaps with their working
Saturdays), with versioned overrides per province and agency on top: extra days off, extra working
days, office hours.

Working time is measured on a precomputed index: for every day of the covered years, the working
seconds elapsed before it. Any instant maps to a cumulative working-seconds value in O(1), and a
value maps back to the earliest instant that reaches it by bisection, so adding 30 working days
costs the same as adding one hour, and nothing loops day by day.

Time zone: Asia/Ho_Chi_Minh. Vietnam has kept UTC+7 without daylight saving since 1975, so a fixed
offset is exact for every date we cover and much faster than a zoneinfo lookup.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property, lru_cache
from itertools import repeat
from typing import Any

import holidays

# part of a calendar's version: another release of the holiday tables may know other holidays
HOLIDAYS_VERSION = importlib.metadata.version("holidays")
VN_TZ = timezone(timedelta(hours=7), "+07:00")
UTC_OFFSET_SECONDS = 7 * 3600
SECONDS_PER_DAY = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_VN_OFFSET = timedelta(seconds=UTC_OFFSET_SECONDS)
_LOCAL_EPOCH = datetime(1970, 1, 1, tzinfo=VN_TZ)


class CalendarError(ValueError):
    """Bad calendar input or configuration."""


class YearNotCovered(CalendarError):
    """The calendar has no data for a year: an error that names the year, never a guess."""

    def __init__(self, year: int, first: int, last: int) -> None:
        super().__init__(f"the working calendar has no data for year {year} (covered: {first}–{last})")
        self.year = year


class NaiveTimestamp(CalendarError):
    def __init__(self, what: str = "timestamp") -> None:
        super().__init__(f"{what} has no UTC offset; give an ISO 8601 time with an offset (+07:00)")


def _parse_clock(text: str) -> int:
    try:
        hours, minutes = text.split(":")
        value = time(int(hours), int(minutes))
    except (ValueError, AttributeError) as exc:
        raise CalendarError(f"office hour {text!r} is not HH:MM") from exc
    return value.hour * 3600 + value.minute * 60


def _format_clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


@dataclass(frozen=True)
class OfficeHours:
    """Giờ làm việc: sorted, non-overlapping intervals of a working day, in seconds from midnight."""

    intervals: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, spec: Sequence[Sequence[str]]) -> OfficeHours:
        intervals = tuple((_parse_clock(a), _parse_clock(b)) for a, b in spec)
        if not intervals:
            raise CalendarError("office hours are empty")
        previous_end = -1
        for start, end in intervals:
            if not start < end:
                raise CalendarError(f"office interval {_format_clock(start)}–{_format_clock(end)} is empty")
            if start < previous_end:
                raise CalendarError("office intervals overlap or are not in order")
            previous_end = end
        return cls(intervals)

    @property
    def seconds_per_day(self) -> int:
        return sum(end - start for start, end in self.intervals)

    @property
    def opening(self) -> int:
        return self.intervals[0][0]

    @property
    def closing(self) -> int:
        return self.intervals[-1][1]

    def as_strings(self) -> list[list[str]]:
        return [[_format_clock(a), _format_clock(b)] for a, b in self.intervals]

    def worked_before(self, second_of_day: int) -> int:
        """Working seconds of one working day that lie before `second_of_day`."""
        worked = 0
        for start, end in self.intervals:
            if second_of_day <= start:
                break
            worked += (second_of_day if second_of_day < end else end) - start
        return worked

    def clock_at(self, worked: int) -> int:
        """The earliest second of the day at which `worked` working seconds have elapsed."""
        for start, end in self.intervals:
            span = end - start
            if worked <= span:
                return start + worked
            worked -= span
        return self.closing

    @cached_property
    def worked_before_table(self) -> Sequence[int]:
        """`worked_before` for every second of a day, looked up instead of computed."""
        return _worked_before_table(self.intervals)

    @cached_property
    def clock_at_table(self) -> Sequence[int]:
        """`clock_at` for every working second of a day, from 0 to `seconds_per_day`."""
        return _clock_at_table(self.intervals)

    @cached_property
    def clock_at_deltas(self) -> Sequence[timedelta]:
        """`clock_at_table` as time since midnight: an instant is its day's midnight plus one."""
        return _clock_at_deltas(self.intervals)


def _well_formed(intervals: tuple[tuple[int, int], ...]) -> bool:
    previous_end = 0
    for start, end in intervals:
        if not previous_end <= start < end <= SECONDS_PER_DAY:
            return False
        previous_end = end
    return bool(intervals)


@lru_cache(maxsize=32)
def _worked_before_table(intervals: tuple[tuple[int, int], ...]) -> Sequence[int]:
    if not _well_formed(intervals):  # built second by second from the definition
        hours = OfficeHours(intervals)
        return array("i", (hours.worked_before(s) for s in range(SECONDS_PER_DAY)))
    table = array("i")
    worked = second = 0
    for start, end in intervals:
        table.extend(repeat(worked, start - second))
        table.extend(range(worked, worked + end - start))
        worked += end - start
        second = end
    table.extend(repeat(worked, SECONDS_PER_DAY - second))
    return table


@lru_cache(maxsize=32)
def _clock_at_table(intervals: tuple[tuple[int, int], ...]) -> Sequence[int]:
    hours = OfficeHours(intervals)
    if not _well_formed(intervals):
        return array("i", (hours.clock_at(w) for w in range(max(hours.seconds_per_day, 0) + 1)))
    table = array("i", [intervals[0][0]])
    for start, end in intervals:
        table.extend(range(start + 1, end + 1))
    return table


@lru_cache(maxsize=32)
def _clock_at_deltas(intervals: tuple[tuple[int, int], ...]) -> Sequence[timedelta]:
    return tuple(timedelta(seconds=s) for s in _clock_at_table(intervals))


DEFAULT_OFFICE_HOURS = OfficeHours.parse([["07:00", "11:30"], ["13:30", "17:00"]])


@dataclass(frozen=True)
class NationalChange:
    """A change of the national days off (a holiday added by an amendment of BLLĐ Điều 112, say),
    in force from a date written in config with its source. The `holidays` package may list a day
    before the law that makes it one takes effect; before `in_force_from` (or always, when it is
    None: not yet in force) the calendar keeps that day, and its compensatory day, as working days."""

    name: str  # the holiday's name as the holidays package gives it (Vietnamese)
    in_force_from: date | None
    source: str

    def drops(self, day: date, holiday_name: str) -> bool:
        """True when `day`, named `holiday_name` by the package, is not a day off yet."""
        if not holiday_name.startswith(self.name):  # the day itself or its "(nghỉ bù)"
            return False
        return self.in_force_from is None or day < self.in_force_from

    def as_dict(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "in_force_from": self.in_force_from.isoformat() if self.in_force_from else None,
            "source": self.source,
        }


@dataclass(frozen=True)
class CalendarRules:
    """The data a working calendar is built from. Rules are data, versioned (architecture §5)."""

    name: str = "VN"
    first_year: int = 2020
    last_year: int = 2027
    office_hours: OfficeHours = DEFAULT_OFFICE_HOURS
    extra_days_off: Mapping[date, str] = field(default_factory=dict)
    extra_working_days: Mapping[date, str] = field(default_factory=dict)
    revision: str = "1"
    national_changes: tuple[NationalChange, ...] = ()

    def __post_init__(self) -> None:
        if self.first_year > self.last_year:
            raise CalendarError("calendar first_year is after last_year")
        both = set(self.extra_days_off) & set(self.extra_working_days)
        if both:
            raise CalendarError(f"{min(both)} is both an extra day off and an extra working day")

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any], base: CalendarRules | None = None) -> CalendarRules:
        """Rules from configuration data; keys absent from `spec` are taken from `base`."""
        base = base or cls()
        office = spec.get("office_hours")
        return cls(
            name=str(spec.get("name", base.name)),
            first_year=int(spec.get("first_year", base.first_year)),
            last_year=int(spec.get("last_year", base.last_year)),
            office_hours=OfficeHours.parse(office) if office else base.office_hours,
            extra_days_off={**base.extra_days_off, **_dated(spec.get("days_off", []))},
            extra_working_days={**base.extra_working_days, **_dated(spec.get("working_days", []))},
            revision=str(spec.get("revision", base.revision)),
            national_changes=(
                _national_changes(spec["national_changes"]) if "national_changes" in spec else base.national_changes
            ),
        )

    @cached_property
    def version(self) -> str:
        overrides = json.dumps(
            {
                "office": self.office_hours.as_strings(),
                "off": sorted((d.isoformat(), n) for d, n in self.extra_days_off.items()),
                "work": sorted((d.isoformat(), n) for d, n in self.extra_working_days.items()),
                "national": [c.as_dict() for c in self.national_changes],
            },
            ensure_ascii=False,
        )
        digest = hashlib.sha256(overrides.encode()).hexdigest()[:8]
        return f"{self.name}:r{self.revision}:{self.first_year}-{self.last_year}:holidays-{HOLIDAYS_VERSION}:{digest}"


def _national_changes(items: object) -> tuple[NationalChange, ...]:
    if not isinstance(items, list):
        raise CalendarError("national_changes must be a list of {name, in_force_from, source}")
    out = []
    for item in items:
        if not isinstance(item, Mapping) or not item.get("name") or not item.get("source"):
            raise CalendarError("each national change needs a name and a source")
        start = item.get("in_force_from")
        try:
            day = date.fromisoformat(str(start)) if start else None
        except ValueError as exc:
            raise CalendarError(f"national change in_force_from {start!r} is not YYYY-MM-DD") from exc
        out.append(NationalChange(str(item["name"]), day, str(item["source"])))
    return tuple(out)


def _dated(items: Iterable[Any] | None) -> dict[date, str]:
    out: dict[date, str] = {}
    for item in items or []:
        if isinstance(item, str):
            day, name = item, ""
        else:
            day, name = item["date"], item.get("name", "")
        try:
            out[day if isinstance(day, date) else date.fromisoformat(day)] = name
        except ValueError as exc:
            raise CalendarError(f"calendar date {day!r} is not YYYY-MM-DD") from exc
    return out


def local_seconds(moment: datetime) -> int:
    """Seconds since 1970-01-01 00:00 Vietnam local time (sub-second parts are dropped).

    A time given at +07:00 is read from its fields; any other offset goes through its timestamp.
    """
    tz = moment.tzinfo
    if tz is not VN_TZ:
        offset = None if tz is None else moment.utcoffset()
        if offset is None:
            raise NaiveTimestamp()
        if offset != _VN_OFFSET:
            return int(moment.timestamp()) + UTC_OFFSET_SECONDS
    local = (
        (moment.toordinal() - _EPOCH_ORDINAL) * SECONDS_PER_DAY
        + moment.hour * 3600
        + moment.minute * 60
        + moment.second
    )
    if local < UTC_OFFSET_SECONDS and moment.microsecond:
        local += 1  # a timestamp before 1970 is truncated towards zero, not floored
    return local


def from_local_seconds(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds - UTC_OFFSET_SECONDS, VN_TZ)


class WorkingCalendar:
    """Working days and working time of one set of rules over its covered years."""

    def __init__(self, rules: CalendarRules) -> None:
        self.rules = rules
        self.version = rules.version
        self.office_hours = rules.office_hours
        self.day_seconds = rules.office_hours.seconds_per_day
        self._first = date(rules.first_year, 1, 1)
        self._base_day = self._first.toordinal() - _EPOCH_ORDINAL
        n_days = date(rules.last_year, 12, 31).toordinal() - self._first.toordinal() + 1

        package = holidays.country_holidays("VN", years=range(rules.first_year, rules.last_year + 1), language="vi")
        weekend_workdays = set(getattr(package, "weekend_workdays", ()))
        national = {
            d: str(n) for d, n in package.items() if not any(c.drops(d, str(n)) for c in rules.national_changes)
        }
        self._names: dict[date, str] = dict(national)
        self._names.update({d: n or "Ngày nghỉ" for d, n in rules.extra_days_off.items()})
        self._working_weekend: set[date] = set()

        # Every working day of one calendar has the same length, so cumulative working time is
        # (working days before) × (day length) + (worked so far today), and its inverse is a
        # division: no search at all.
        working = bytearray(n_days)
        before = [0] * (n_days + 1)  # working days before day i
        working_day_numbers: list[int] = []  # the k-th working day, as days since 1970-01-01
        for i in range(n_days):
            day = self._first + timedelta(days=i)
            if day in rules.extra_working_days:
                is_working = True
            elif day in rules.extra_days_off:
                is_working = False
            elif day in weekend_workdays:
                is_working = True
            else:
                is_working = day.weekday() < 5 and day not in national
            if is_working:
                working[i] = 1
                working_day_numbers.append(self._base_day + i)
                if day.weekday() >= 5:
                    self._working_weekend.add(day)
            before[i + 1] = before[i] + is_working
        self._working = bytes(working)
        self._before = before
        self._before_seconds = [b * self.day_seconds for b in before]
        self._working_day_numbers = working_day_numbers
        self._working_midnights = [_LOCAL_EPOCH + timedelta(days=n) for n in working_day_numbers]
        self._worked_before = self.office_hours.worked_before_table
        self._clock_at = self.office_hours.clock_at_table
        self._clock_at_deltas = self.office_hours.clock_at_deltas
        self._n_working = len(working_day_numbers)
        self._n_days = n_days

    # ---- the index, in local seconds and cumulative working seconds -------------------------

    def _day_index(self, day_number: int) -> int:
        i = day_number - self._base_day
        if i < 0 or i >= self._n_days:
            year = date.fromordinal(day_number + _EPOCH_ORDINAL).year if day_number > -700_000 else 1
            raise YearNotCovered(year, self.rules.first_year, self.rules.last_year)
        return i

    def cumulative_at(self, local_s: int) -> int:
        """Working seconds from the start of the covered range up to local instant `local_s`."""
        day_number = local_s // SECONDS_PER_DAY
        i = day_number - self._base_day
        if i < 0 or i >= self._n_days:
            self._day_index(day_number)  # raises, naming the year
        if self._working[i]:
            return self._before_seconds[i] + self._worked_before[local_s - day_number * SECONDS_PER_DAY]
        return self._before_seconds[i]

    def instant_of(self, cumulative: int) -> int:
        """The earliest local instant at which `cumulative` working seconds have elapsed.

        A value that falls exactly on a day's total is that day's closing, not the next opening.
        """
        k, worked = divmod(cumulative, self.day_seconds)
        if worked == 0:
            k, worked = k - 1, self.day_seconds
        if k < 0:
            raise YearNotCovered(self.rules.first_year - 1, self.rules.first_year, self.rules.last_year)
        if k >= self._n_working:
            raise YearNotCovered(self.rules.last_year + 1, self.rules.first_year, self.rules.last_year)
        return self._working_day_numbers[k] * SECONDS_PER_DAY + self._clock_at[worked]

    def moment_at(self, cumulative: int) -> datetime:
        """`instant_of` as an aware time at +07:00, from the working day's midnight."""
        k, worked = divmod(cumulative, self.day_seconds)
        if worked == 0:
            k, worked = k - 1, self.day_seconds
        if k < 0 or k >= self._n_working:
            self.instant_of(cumulative)  # raises, naming the year
        return self._working_midnights[k] + self._clock_at_deltas[worked]

    def day_end_cumulative(self, local_s: int) -> int:
        """Cumulative working seconds at the end of the day containing `local_s`."""
        i = self._day_index(local_s // SECONDS_PER_DAY)
        return self._before[i + 1] * self.day_seconds

    def is_working_day_at(self, local_s: int) -> bool:
        return bool(self._working[self._day_index(local_s // SECONDS_PER_DAY)])

    # ---- the public API, in aware datetimes ------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        return bool(self._working[self._day_index(day.toordinal() - _EPOCH_ORDINAL)])

    def is_working_time(self, moment: datetime) -> bool:
        """True inside office hours of a working day, both ends of each interval included."""
        x = local_seconds(moment)
        if not self.is_working_day_at(x):
            return False
        second = x % SECONDS_PER_DAY
        return any(start <= second <= end for start, end in self.office_hours.intervals)

    def next_opening(self, moment: datetime) -> datetime:
        """`moment` itself when it lies in office hours, else the next opening."""
        x = local_seconds(moment)
        c = self.cumulative_at(x)
        if self.is_working_day_at(x):
            second = x % SECONDS_PER_DAY
            if any(start <= second < end for start, end in self.office_hours.intervals):
                return from_local_seconds(x)
        # One working second later, minus that second: the opening that follows `moment`.
        return from_local_seconds(self.instant_of(c + 1) - 1)

    def add_working_time(self, moment: datetime, seconds: int) -> datetime:
        return self.moment_at(self.cumulative_at(local_seconds(moment)) + seconds)

    def subtract_working_time(self, moment: datetime, seconds: int) -> datetime:
        return self.add_working_time(moment, -seconds)

    def working_time_between(self, start: datetime, end: datetime) -> int:
        """Working seconds from `start` to `end`; negative when `end` is before `start`."""
        return self.cumulative_at(local_seconds(end)) - self.cumulative_at(local_seconds(start))

    def close_of_day(self, day: date) -> datetime:
        self._day_index(day.toordinal() - _EPOCH_ORDINAL)
        return datetime.combine(day, time(0), VN_TZ) + timedelta(seconds=self.office_hours.closing)

    def next_working_day(self, day: date, include_self: bool = True) -> date:
        current = day if include_self else day + timedelta(days=1)
        while not self.is_working_day(current):  # bounded: at most a Tết week plus a weekend
            current += timedelta(days=1)
        return current

    # ---- what the calendar says about a year -----------------------------------------------

    def covers(self, year: int) -> bool:
        return self.rules.first_year <= year <= self.rules.last_year

    def days_off(self, year: int) -> list[tuple[date, str]]:
        """Named days off of `year` (holidays, compensatory days, swaps, extra days off).

        Holidays that fall on a weekend are listed too (with their compensatory day), since
        officers look for them by name; days declared working are left out.
        """
        if not self.covers(year):
            raise YearNotCovered(year, self.rules.first_year, self.rules.last_year)
        return sorted((d, n) for d, n in self._names.items() if d.year == year and not self.is_working_day(d))

    def working_weekend_days(self, year: int) -> list[date]:
        """Ngày làm bù: Saturdays and Sundays declared working days."""
        if not self.covers(year):
            raise YearNotCovered(year, self.rules.first_year, self.rules.last_year)
        return sorted(d for d in self._working_weekend if d.year == year)

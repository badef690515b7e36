"""Due-date computations per second for 30-working-day durations, on one core.

Compared in the same run with a straightforward day-by-day loop (what a one-stop system typically
does: walk the days, ask the `holidays` calendar whether each is a working day, consume office
hours). The loop is also an independent oracle: both must give the same due instant for every
sample, or the benchmark fails.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import holidays

from shared.domain.calendar import VN_TZ, CalendarRules, WorkingCalendar, local_seconds
from shared.domain.codes import Convention, DurationUnit
from shared.domain.deadlines import Duration, compute_due

T = TypeVar("T")

OFFICE = ((7 * 3600, 11 * 3600 + 1800), (13 * 3600 + 1800, 17 * 3600))


class DayByDayCalendar:
    """The straightforward implementation: one day at a time, the `holidays` object per day."""

    def __init__(self, first_year: int, last_year: int) -> None:
        self.vn = holidays.country_holidays("VN", years=range(first_year, last_year + 1))

    def due(self, received: datetime, working_days: int) -> datetime:
        local = received.astimezone(VN_TZ)
        remaining = working_days * 8 * 3600
        day: date = local.date()
        second = local.hour * 3600 + local.minute * 60 + local.second
        while True:
            if self.vn.is_working_day(day):
                for start, end in OFFICE:
                    begin = max(start, second)
                    if begin >= end:
                        continue
                    available = end - begin
                    if remaining <= available:
                        moment = datetime(day.year, day.month, day.day, tzinfo=VN_TZ)
                        return moment + timedelta(seconds=begin + remaining)
                    remaining -= available
            day += timedelta(days=1)
            second = 0


def receipts(n: int, seed: int = 1) -> list[datetime]:
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=VN_TZ)
    return [start + timedelta(seconds=rng.randrange(0, 2 * 365 * 86400)) for _ in range(n)]


def _rate(fn: Callable[[T], object], items: list[T], min_seconds: float = 1.0) -> float:
    done, started = 0, time.perf_counter()
    while True:
        for item in items:
            fn(item)
        done += len(items)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return done / elapsed


def run(samples: int = 5000) -> dict[str, Any]:
    """On one core: the process is pinned for the measurement and unpinned afterwards."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        return _run(samples)
    finally:
        os.sched_setaffinity(0, before)


def _run(samples: int) -> dict[str, Any]:
    calendar = WorkingCalendar(CalendarRules())
    loop = DayByDayCalendar(2020, 2027)
    duration = Duration(30, DurationUnit.WORKING_DAYS)
    items = receipts(samples)

    def indexed(received: datetime) -> datetime:
        return compute_due(calendar, received, duration, Convention.WORKING_HOURS).due_at

    def day_by_day(received: datetime) -> datetime:
        return loop.due(received, 30)

    mismatches = [r for r in items[:2000] if indexed(r) != day_by_day(r)]
    if mismatches:
        raise AssertionError(f"{len(mismatches)} due dates differ from the day-by-day oracle, e.g. {mismatches[0]}")

    indexed_rate = _rate(indexed, items)
    loop_rate = _rate(day_by_day, items[:1000])
    # The arithmetic alone, on local seconds: what remains once a timestamp is converted.
    span = duration.working_seconds
    local = [local_seconds(r) for r in items]
    core_rate = _rate(lambda x: calendar.instant_of(calendar.cumulative_at(x) + span), local)
    return {
        "name": "deadline_core",
        "what": "due dates/s for 30 working days (working_hours convention), one core",
        "indexed_per_s": round(indexed_rate),
        "day_by_day_loop_per_s": round(loop_rate),
        "ratio_vs_loop": round(indexed_rate / loop_rate, 1),
        "core_arithmetic_per_s": round(core_rate),
        "core_ratio_vs_loop": round(core_rate / loop_rate, 1),
        "oracle_agreement": "2000/2000 identical due instants",
        "targets": {"indexed_per_s": ">= 100000", "ratio_vs_loop": ">= 50"},
        "met": indexed_rate >= 100_000 and indexed_rate / loop_rate >= 50,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))

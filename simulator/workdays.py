"""The simulator's own working-day arithmetic, deliberately not the product's.

Day level only: the simulator chooses receipt times strictly inside office hours, pauses of whole
working days and endings well away from the due instant, so that the due date of every case follows
from counting working days (holidays from the `holidays` package, the province's own days from
config/calendar.json) and the due instant from the receipt's clock time or the close of day.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import holidays

VN = timezone(timedelta(hours=7))
CLOSE = time(17, 0)


class Workdays:
    def __init__(self, config_dir: Path) -> None:
        spec = json.loads((config_dir / "calendar.json").read_text(encoding="utf-8"))
        years = range(int(spec["first_year"]), int(spec["last_year"]) + 1)
        national = holidays.country_holidays("VN", years=years)
        self.off = set(national) | {
            date.fromisoformat(d["date"] if isinstance(d, dict) else d) for d in spec["days_off"]
        }
        self.extra = set(getattr(national, "weekend_workdays", ())) | {
            date.fromisoformat(d["date"] if isinstance(d, dict) else d) for d in spec["working_days"]
        }

    def is_working(self, day: date) -> bool:
        if day in self.extra:
            return True
        return day.weekday() < 5 and day not in self.off

    def after(self, day: date, n: int) -> date:
        """The n-th working day after `day` (n ≥ 1); n = 0 is `day` itself."""
        while n > 0:
            day += timedelta(days=1)
            if self.is_working(day):
                n -= 1
        return day

    def before(self, day: date, n: int) -> date:
        while n > 0:
            day -= timedelta(days=1)
            if self.is_working(day):
                n -= 1
        return day

    def next_working(self, day: date) -> date:
        while not self.is_working(day):
            day += timedelta(days=1)
        return day

    def between(self, first: date, last: date) -> int:
        """Working days after `first` up to and including `last`."""
        count, day = 0, first
        while day < last:
            day += timedelta(days=1)
            count += self.is_working(day)
        return count

    def days(self, first: date, last: date) -> list[date]:
        out, day = [], first
        while day <= last:
            if self.is_working(day):
                out.append(day)
            day += timedelta(days=1)
        return out


def at(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, VN)

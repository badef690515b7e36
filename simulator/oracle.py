"""The simulator's expected indicators, from its own case list, by the contract's words.

Written from the contract (Metrics service, GET /v1/indicators), not from the product's code: a
period is whole days in Vietnam time, both ends included; the end of processing is the first of
processed/returned/withdrawn/stopped; "late" and the 766 rate are on exact instants, Biểu 06 by date.
A case waiting for the citizen at the period end is judged at its request: within due after exactly
one request made at or before due, overdue otherwise (contract v1.1, S-766DOC 2.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from simulator.province import Case
from simulator.workdays import VN


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass
class _Tally:
    """One period's counts, case by case: [start, end) in Vietnam time."""

    start: datetime
    end: datetime
    received: dict[str, int] = field(
        default_factory=lambda: {"total": 0, "carried_over": 0, "online": 0, "direct": 0, "postal": 0}
    )
    finished: dict[str, int] = field(default_factory=lambda: {"total": 0, "early": 0, "on_time": 0, "late": 0})
    pending: dict[str, int] = field(default_factory=lambda: {"total": 0, "within_due": 0, "overdue": 0})
    on_time_766: int = 0
    eligible: int = 0
    full: int = 0
    fee: int = 0
    paid: int = 0
    digitized: int = 0
    late: int = 0
    late_apologised: int = 0

    def add(self, case: Case) -> None:
        if case.received_at >= self.end:
            return
        self._receive(case)
        requests = len(case.supplements) + (case.waiting_since is not None)
        ended = case.end_at
        if ended is not None and self.start <= ended < self.end:
            is_late = self._finish(case, ended, requests)
        elif ended is None or ended >= self.end:
            is_late = self._pend(case, requests)
        else:
            return  # finished before the period
        if is_late:
            self.late += 1
            self.late_apologised += bool(case.apology_on_time)

    def _receive(self, case: Case) -> None:
        if self.start <= case.received_at:
            self.received["total"] += 1
            self.received[case.channel] += 1
            if case.procedure.full_online_eligible:
                self.eligible += 1
                self.full += case.online_mode == "full"
            if case.procedure.fee_bearing:
                self.fee += 1
                self.paid += case.paid_online
            self.digitized += case.components_digitized
        elif case.end_at is None or case.end_at >= self.start:
            self.received["carried_over"] += 1

    def _finish(self, case: Case, ended: datetime, requests: int) -> bool:
        """Counts a case finished in the period; whether it finished late."""
        self.finished["total"] += 1
        end_day, due_day = ended.astimezone(VN).date(), case.due_at.astimezone(VN).date()
        self.finished["early" if end_day < due_day else "on_time" if end_day == due_day else "late"] += 1
        self.on_time_766 += ended <= case.due_at and requests <= 1
        return ended > case.due_at

    def _pend(self, case: Case, requests: int) -> bool:
        """Counts a case still pending at the period end; whether it is overdue."""
        self.pending["total"] += 1
        asked = case.waiting_since
        if asked is not None and asked < self.end:  # waiting for the citizen at the period end
            within = requests == 1 and asked <= case.due_at
        else:
            within = case.due_at >= self.end
        self.pending["within_due" if within else "overdue"] += 1
        self.on_time_766 += within and requests <= 1
        return not within

    def answer(self) -> dict[str, Any]:
        counted = self.finished["total"] + self.pending["total"]
        return {
            "period": {"start": self.start.isoformat(), "end": (self.end - timedelta(days=1)).date().isoformat()},
            "received": self.received,
            "finished": self.finished,
            "pending": self.pending,
            "rates": {
                "on_time": _rate(self.on_time_766, counted),
                "on_time_dated": _rate(self.finished["early"] + self.finished["on_time"], self.finished["total"]),
                "online": _rate(self.received["online"], self.received["total"]),
                "full_online": _rate(self.full, self.eligible),
                "online_payment": _rate(self.paid, self.fee),
                "digitized": _rate(self.digitized, self.received["total"]),
                "apology_coverage": _rate(self.late_apologised, self.late),
            },
        }


def expected(cases: Iterable[Case], first: date, last: date) -> dict[str, Any]:
    """What GET /v1/indicators must answer for these cases over the days first..last."""
    tally = _Tally(datetime.combine(first, time(0), VN), datetime.combine(last + timedelta(days=1), time(0), VN))
    for case in cases:
        tally.add(case)
    return tally.answer()


def periods(first: date, last: date) -> list[tuple[str, date, date]]:
    """The months the span touches (as the API names them) and the whole span."""
    out = []
    month = date(first.year, first.month, 1)
    while month <= last:
        following = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        out.append((f"{month:%Y-%m}", month, following - timedelta(days=1)))
        month = following
    out.append((f"{first.isoformat()}..{last.isoformat()}", first, last))
    return out

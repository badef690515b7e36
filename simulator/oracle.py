"""The simulator's expected indicators, from its own case list, by the contract's words.

Written from the contract (Metrics service, GET /v1/indicators), not from the product's code: a
period is whole days in Vietnam time, both ends included; the end of processing is the first of
processed/returned/withdrawn/stopped; "late" and the 766 rate are on exact instants, Biểu 06 by date.
A case waiting for the citizen at the period end is judged at its request: within due after exactly
one request made at or before due, overdue otherwise (contract v1.1, S-766DOC 2.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from simulator.province import Case
from simulator.workdays import VN


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def expected(cases: Iterable[Case], first: date, last: date) -> dict[str, Any]:
    start = datetime.combine(first, time(0), VN)
    end = datetime.combine(last + timedelta(days=1), time(0), VN)
    received = {"total": 0, "carried_over": 0, "online": 0, "direct": 0, "postal": 0}
    finished = {"total": 0, "early": 0, "on_time": 0, "late": 0}
    pending = {"total": 0, "within_due": 0, "overdue": 0}
    on_time_766 = 0
    eligible = full = fee = paid = digitized = 0
    late = late_apologised = 0
    for case in cases:
        if case.received_at >= end:
            continue
        requests = len(case.supplements) + (case.waiting_since is not None)
        ended = case.end_at
        if start <= case.received_at:
            received["total"] += 1
            received[case.channel] += 1
            if case.procedure.full_online_eligible:
                eligible += 1
                full += case.online_mode == "full"
            if case.procedure.fee_bearing:
                fee += 1
                paid += case.paid_online
            digitized += case.components_digitized
        elif ended is None or ended >= start:
            received["carried_over"] += 1
        if ended is not None and start <= ended < end:
            finished["total"] += 1
            end_day, due_day = ended.astimezone(VN).date(), case.due_at.astimezone(VN).date()
            finished["early" if end_day < due_day else "on_time" if end_day == due_day else "late"] += 1
            on_time_766 += ended <= case.due_at and requests <= 1
            is_late = ended > case.due_at
        elif ended is None or ended >= end:
            pending["total"] += 1
            asked = case.waiting_since
            if asked is not None and asked < end:  # waiting for the citizen at the period end
                within = requests == 1 and asked <= case.due_at
            else:
                within = case.due_at >= end
            pending["within_due" if within else "overdue"] += 1
            on_time_766 += within and requests <= 1
            is_late = not within
        else:
            continue  # finished before the period
        if is_late:
            late += 1
            late_apologised += bool(case.apology_on_time)
    counted = finished["total"] + pending["total"]
    return {
        "period": {"start": start.isoformat(), "end": (end - timedelta(days=1)).date().isoformat()},
        "received": received,
        "finished": finished,
        "pending": pending,
        "rates": {
            "on_time": _rate(on_time_766, counted),
            "on_time_dated": _rate(finished["early"] + finished["on_time"], finished["total"]),
            "online": _rate(received["online"], received["total"]),
            "full_online": _rate(full, eligible),
            "online_payment": _rate(paid, fee),
            "digitized": _rate(digitized, received["total"]),
            "apology_coverage": _rate(late_apologised, late),
        },
    }


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

"""Pending cases are judged by when they count overdue (`overdue_from`), not by their frozen due date.

Rule (S-766DOC 2.1; contract v1.1 "Indicators"): a case waiting for the citizen after exactly one
supplement request counts, in rates.on_time and in pending, as within due when the request came at
or before due_at, and as overdue otherwise; after two or more requests it is late. The clock
stopped by a pause the law does not count (tthc-rules §1.2: "không tính vào thời hạn giải quyết")
does not make a case overdue while it lasts. Both paths (facts, aggregates) give the same answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from services.metrics.aggregates import answer, apply_change, changes
from services.metrics.facts import case_facts
from shared.domain.calendar import CalendarRules
from shared.domain.catalogue import Catalogue
from shared.domain.codes import Level
from shared.domain.fold import CaseEvent, fold_case
from shared.domain.indicators import indicators, parse_period
from shared.domain.registry import Agency, Registry


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


def make_registry() -> Registry:
    registry = Registry(CalendarRules())
    registry.put_agency(Agency("H12", "UBND tỉnh", Level.PROVINCE))
    registry.catalogue = Catalogue.from_specs(
        [
            (
                "P.LAND",  # 3 working days, pause mode; verification does not count (tthc-rules §1.2)
                {
                    "name": "Đăng ký biến động đất đai",
                    "field_code": "DD",
                    "durations": {"direct": {"value": 3, "unit": "working_days"}},
                    "supplement_mode": "pause",
                    "non_counting_reasons": ["verification"],
                },
            )
        ]
    )
    return registry


REGISTRY = make_registry()
RECEIVED = {"procedure_code": "P.LAND", "field_code": "DD", "level": "province", "channel": "direct"}


def ev(n: int, kind: str, at: str, **data: Any) -> CaseEvent:
    return CaseEvent(f"e{n}", kind, "C1", vn(at), "H12", data, seq=n)


def case(*later: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """Received Mon 2026-03-16 09:00, due Thu 2026-03-19 09:00 (3 working days); then `later`."""
    events = [ev(1, "case.received", "2026-03-16T09:00:00", **RECEIVED)]
    events += [ev(n, kind, at, **data) for n, (kind, at, data) in enumerate(later, start=2)]
    return case_facts(fold_case(events, REGISTRY), [], None)


REQUEST = "case.supplement_requested"
SUPPLIED = "case.supplement_received"
PAUSED = "case.paused"
MARCH = "2026-03"  # ends 2026-04-01 00:00: long after due
BEFORE_DUE = "2026-03-16..2026-03-18"  # ends 2026-03-19 00:00: before due (09:00)
TWO_DAYS = "2026-03-16..2026-03-17"  # ends 2026-03-18 00:00

OLD_FACT = {  # stored before the fold derived overdue_from: judged by due_at, as it was then
    "received_at": vn("2026-03-16T09:00:00"),
    "due_at": vn("2026-03-19T09:00:00"),
    "end_at": None,
    "channel": "direct",
    "supplement_requests": 1,
}

# (name, the case's facts, period, pending within due, pending overdue, rates.on_time)
ROWS = [
    # no request: judged by due (tthc-rules §3.2, pending at period end)
    ("no request, period ends before due", case(), BEFORE_DUE, 1, 0, 1.0),
    ("no request, period ends after due", case(), MARCH, 0, 1, 0.0),
    # S-766DOC 2.1 / contract v1.1: one request at or before due → within due while waiting
    ("one request before due, waiting", case((REQUEST, "2026-03-17T09:00:00", {})), MARCH, 1, 0, 1.0),
    ("one request at due, waiting", case((REQUEST, "2026-03-19T09:00:00", {})), MARCH, 1, 0, 1.0),
    # S-766DOC 2.1 / contract v1.1: one request after due → overdue
    ("one request after due, waiting", case((REQUEST, "2026-03-20T09:00:00", {})), MARCH, 0, 1, 0.0),
    # S-766DOC 2.1 / contract v1.1: two or more requests → late (766), overdue once the last came
    (
        "two requests, waiting",
        case(
            (REQUEST, "2026-03-17T09:00:00", {}),
            (SUPPLIED, "2026-03-18T09:00:00", {}),
            (REQUEST, "2026-03-18T10:00:00", {}),
        ),
        MARCH,
        0,
        1,
        0.0,
    ),
    (
        "two requests, period ends before the second",
        case(
            (REQUEST, "2026-03-17T09:00:00", {}),
            (SUPPLIED, "2026-03-18T09:00:00", {}),
            (REQUEST, "2026-03-18T10:00:00", {}),
        ),
        TWO_DAYS,
        1,
        0,
        0.0,
    ),
    # supplied again: no longer waiting, judged by the due date the pause moved (tthc-rules §1.2 a)
    (
        "one request, supplied, period ends after the moved due",
        case((REQUEST, "2026-03-17T09:00:00", {}), (SUPPLIED, "2026-03-18T09:00:00", {})),
        MARCH,
        0,
        1,
        0.0,
    ),
    (
        "one request, supplied, period ends before the moved due",
        case((REQUEST, "2026-03-17T09:00:00", {}), (SUPPLIED, "2026-03-18T09:00:00", {})),
        BEFORE_DUE,
        1,
        0,
        1.0,
    ),
    # tthc-rules §1.2: time a specialised law does not count stops the clock: not overdue meanwhile
    (
        "clock stopped by verification",
        case((PAUSED, "2026-03-17T09:00:00", {"reason_code": "verification"})),
        MARCH,
        1,
        0,
        1.0,
    ),
    (
        "a counting pause leaves the clock running",
        case((PAUSED, "2026-03-17T09:00:00", {"reason_code": "other"})),
        MARCH,
        0,
        1,
        0.0,
    ),
    (
        "verification paused only after due",
        case((PAUSED, "2026-03-20T09:00:00", {"reason_code": "verification"})),
        MARCH,
        0,
        1,
        0.0,
    ),
    # facts stored before `overdue_from` existed: the missing key means due_at (CHANGELOG, ADR 0015)
    ("older fact without overdue_from", OLD_FACT, MARCH, 0, 1, 0.0),
    ("a fact whose case cannot be overdue", OLD_FACT | {"overdue_from": None}, MARCH, 1, 0, 1.0),
]


@pytest.mark.parametrize(
    "fact, period, within_due, overdue, on_time", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_pending_cases_are_judged_by_when_they_count_overdue(
    fact: dict[str, Any], period: str, within_due: int, overdue: int, on_time: float
) -> None:
    span = parse_period(period)
    expected = indicators([fact], span)
    assert expected["pending"] == {"total": 1, "within_due": within_due, "overdue": overdue}
    assert expected["rates"]["on_time"] == on_time
    assert expected["extra"]["late"] == overdue  # apology coverage's "late" likewise
    assert expected["extra"]["counted"] == 1  # every case with a due date is counted
    buckets: dict[tuple[str, str], dict[str, Any]] = {}
    for key, change in changes([(None, fact)]).items():
        apply_change(buckets.setdefault(key, {**change["keys"], "c": {}}), change["inc"])
    assert answer([b for (c, _), b in buckets.items() if c == "c_m"], span) == expected

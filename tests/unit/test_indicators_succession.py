"""Figures stay with the agency that held the case at the time; include_predecessors adds the
predecessors' cases to an agency's figures.

Rule (contract v1.1 "Agencies change"): from an agency's `valid_to` its open cases are handled by
the successor (`agency_history` lists `[{"agency_code", "from", "to"}]`);
`GET /v1/indicators?...&include_predecessors=true` adds the predecessors' cases to an agency's
figures; without it, figures stay with the agency that held the case at the time. Both paths
(facts, aggregates) give the same answer.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from services.metrics.aggregates import answer, apply_change, changes
from services.metrics.indicators import with_predecessors
from shared.domain.calendar import CalendarRules
from shared.domain.codes import Level
from shared.domain.indicators import indicators, parse_period
from shared.domain.registry import Agency, Registry


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


HANDOVER = vn("2025-07-01T00:00:00")  # district D dissolved into commune C: valid_to 2025-07-01
CASE = {  # received by D in June, handed to C on 2025-07-01, finished (late) in August
    "agency_code": "C",
    "agency_history": [
        {"agency_code": "D", "from": vn("2025-06-20T09:00:00"), "to": HANDOVER},
        {"agency_code": "C", "from": HANDOVER, "to": None},
    ],
    "level": "commune",
    "channel": "direct",
    "received_at": vn("2025-06-20T09:00:00"),
    "due_at": vn("2025-07-10T09:00:00"),
    "overdue_from": vn("2025-07-10T09:00:00"),
    "end_at": vn("2025-08-05T10:00:00"),
    "on_time": False,
    "result_dated": "late",
    "supplement_requests": 0,
}

# (period, agencies, received.total, carried_over, finished.total, pending.total, pending.overdue,
#  rates.on_time) — contract v1.1: each figure for the agency holding the case at the time
ROWS = [
    ("2025-06", {"D"}, 1, 0, 0, 1, 0, 1.0),  # received in June, pending at the end of June: D
    ("2025-06", {"C"}, 0, 0, 0, 0, 0, None),
    ("2025-06-30..2025-06-30", {"D"}, 0, 1, 0, 1, 0, 1.0),  # still D's on its last day
    ("2025-07-01..2025-07-01", {"D"}, 0, 0, 0, 0, 0, None),
    ("2025-07-01..2025-07-01", {"C"}, 0, 1, 0, 1, 0, 1.0),  # carried over into C's first day
    ("2025-07", {"D"}, 0, 0, 0, 0, 0, None),
    ("2025-07", {"C"}, 0, 1, 0, 1, 1, 0.0),  # carried over, pending and overdue at the end of July: C
    ("2025-08", {"C"}, 0, 1, 1, 0, 0, 0.0),  # finished (late) in August: C
    ("2025-08", {"D"}, 0, 0, 0, 0, 0, None),
    ("2025-06-15..2025-07-05", {"D"}, 1, 0, 0, 0, 0, None),  # received by D, but C holds it at the end
    ("2025-06-15..2025-07-05", {"C"}, 0, 0, 0, 1, 0, 1.0),
    ("2025", {"D"}, 1, 0, 0, 0, 0, None),
    ("2025", {"C"}, 0, 0, 1, 0, 0, 0.0),
    # include_predecessors=true: C's figures with D's cases (with_predecessors gives {C, D, …})
    ("2025", {"C", "D"}, 1, 0, 1, 0, 0, 0.0),
    ("2025-06-15..2025-07-05", {"C", "D"}, 1, 0, 0, 1, 0, 1.0),
    ("2025-07", None, 0, 1, 0, 1, 1, 0.0),  # every agency: as if it never changed hands
]


@pytest.mark.parametrize(
    "period, agencies, received, carried_over, finished, pending, overdue, on_time",
    ROWS,
    ids=[f"{row[0]}-{'+'.join(sorted(row[1])) if row[1] else 'all'}" for row in ROWS],
)
def test_each_figure_counts_for_the_agency_holding_the_case_then(
    period: str,
    agencies: set[str] | None,
    received: int,
    carried_over: int,
    finished: int,
    pending: int,
    overdue: int,
    on_time: float | None,
) -> None:
    span = parse_period(period)
    expected = indicators([CASE], span, agencies)
    assert (expected["received"]["total"], expected["received"]["carried_over"]) == (received, carried_over)
    assert (expected["finished"]["total"], expected["pending"]["total"]) == (finished, pending)
    assert expected["pending"]["overdue"] == overdue
    assert expected["rates"]["on_time"] == on_time
    buckets: dict[tuple[str, str], dict[str, Any]] = {}
    for key, change in changes([(None, CASE)]).items():
        apply_change(buckets.setdefault(key, {**change["keys"], "c": {}}), change["inc"])
    held = [b for (c, _), b in buckets.items() if c == "c_m" and (agencies is None or b["agency"] in agencies)]
    assert answer(held, span) == expected


def test_a_case_never_handed_over_stays_with_its_agency() -> None:
    """No agency_history: every figure for `agency_code`, as before v1.1."""
    case = {k: v for k, v in CASE.items() if k != "agency_history"} | {"agency_code": "D"}
    assert indicators([case], parse_period("2025-08"), {"D"})["finished"]["total"] == 1
    assert indicators([case], parse_period("2025-08"), {"C"})["finished"]["total"] == 0


def make_registry() -> Registry:
    """Province P; district D (with its office D.1) dissolved into commune C on 2025-07-01; an older
    unit O dissolved into D in 2020 (a chain); E, another commune, untouched."""
    registry = Registry(CalendarRules())
    registry.put_agency(Agency("P", "UBND tỉnh", Level.PROVINCE))
    registry.put_agency(Agency("C", "UBND xã C", Level.COMMUNE, "P"))
    registry.put_agency(Agency("C.1", "Bộ phận một cửa xã C", Level.COMMUNE, "C"))
    registry.put_agency(Agency("E", "UBND xã E", Level.COMMUNE, "P"))
    registry.put_agency(Agency("D", "UBND huyện D", Level.DISTRICT, "P", valid_to=date(2025, 7, 1), successor_code="C"))
    registry.put_agency(Agency("D.1", "Phòng D.1", Level.DISTRICT, "D"))
    registry.put_agency(
        Agency("O", "UBND thị trấn O", Level.COMMUNE, "P", valid_to=date(2020, 1, 1), successor_code="D")
    )
    return registry


@pytest.mark.parametrize(
    "asked, expected",
    [
        # contract v1.1: include_predecessors adds the predecessors' cases (their subtrees, and the
        # chain: O was dissolved into D, D into C)
        ({"C", "C.1"}, {"C", "C.1", "D", "D.1", "O"}),
        ({"C.1"}, {"C.1"}),  # C.1 has no predecessor of its own
        ({"E"}, {"E"}),
        ({"D", "D.1"}, {"D", "D.1", "O"}),
        (None, None),  # every agency already
    ],
)
def test_include_predecessors_widens_the_agency_set(asked: set[str] | None, expected: set[str] | None) -> None:
    assert with_predecessors(make_registry(), asked) == expected

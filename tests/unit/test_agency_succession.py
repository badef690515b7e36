"""Agencies change (contract v1.1, "Agencies change"): a dissolved agency's open cases are handled
by its successor from valid_to 00:00 Vietnam local. The fold does it from the registry's data (no
I/O, no clock), so a rebuild gives the same answer.

Contract v1.1: "From that day its open cases are handled by the successor: their `agency_code` is
the successor's, `agency_history` lists [{"agency_code", "from", "to"}], and they appear in the
successor's lists."
"""

from dataclasses import replace
from datetime import date, datetime

import pytest

from shared.domain.calendar import CalendarRules
from shared.domain.catalogue import Catalogue
from shared.domain.codes import Level
from shared.domain.fold import CaseEvent, fold_case
from shared.domain.registry import Agency, Registry

PROVINCE, DISTRICT, COMMUNE, WARD, OTHER = "P", "P.D", "P.C1", "P.C2", "P.X"
HANDOVER = "2025-07-01T00:00:00"  # the district's valid_to, 00:00 local
SECOND = "2026-01-01T00:00:00"  # the commune's valid_to (chain case)


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


def registry(chain: bool = False) -> Registry:
    r = Registry(CalendarRules())
    r.put_agency(Agency(PROVINCE, "UBND tỉnh", Level.PROVINCE))
    r.put_agency(
        Agency(DISTRICT, "UBND huyện", Level.DISTRICT, PROVINCE, valid_to=date(2025, 7, 1), successor_code=COMMUNE)
    )
    commune = Agency(COMMUNE, "UBND xã 1", Level.COMMUNE, PROVINCE)
    if chain:
        commune = replace(commune, valid_to=date(2026, 1, 1), successor_code=WARD)
    r.put_agency(commune)
    r.put_agency(Agency(WARD, "UBND phường 2", Level.COMMUNE, PROVINCE))
    r.put_agency(Agency(OTHER, "UBND xã khác", Level.COMMUNE, PROVINCE))
    r.catalogue = Catalogue.from_specs(
        [("P1", {"name": "Thủ tục", "field_code": "F", "durations": {"direct": {"value": 3, "unit": "working_days"}}})]
    )
    return r


def events(received: str, ended: str | None = None, agency: str = DISTRICT, leg_to: str | None = None) -> list:
    out = [
        CaseEvent(
            "r",
            "case.received",
            "K1",
            vn(received),
            agency,
            {"procedure_code": "P1", "level": "district", "channel": "direct"},
            seq=1,
        )
    ]
    if leg_to:
        data = {"from_agency": agency, "to_agency": leg_to}
        out.append(CaseEvent("t", "case.transferred", "K1", vn(received).replace(hour=15), agency, data, seq=2))
    if ended:
        out.append(CaseEvent("p", "case.processed", "K1", vn(ended), COMMUNE, {"outcome": "approved"}, seq=3))
    return out


def held(code: str, start: str, end: str | None) -> dict:
    return {"agency_code": code, "from": vn(start), "to": vn(end) if end else None}


# (name, registry with the chain?, received, ended, expected agency_code, expected agency_history)
CASES = [
    (
        "open across the date: the successor holds it from valid_to 00:00",
        False,
        "2025-06-25T09:00:00",
        None,
        COMMUNE,
        [held(DISTRICT, "2025-06-25T09:00:00", HANDOVER), held(COMMUNE, HANDOVER, None)],
    ),
    (
        "finished after the date (by the successor): handed over too",
        False,
        "2025-06-25T09:00:00",
        "2025-07-03T10:00:00",
        COMMUNE,
        [held(DISTRICT, "2025-06-25T09:00:00", HANDOVER), held(COMMUNE, HANDOVER, None)],
    ),
    (
        "finished at the very instant: it was still open then",
        False,
        "2025-06-25T09:00:00",
        HANDOVER,
        COMMUNE,
        [held(DISTRICT, "2025-06-25T09:00:00", HANDOVER), held(COMMUNE, HANDOVER, None)],
    ),
    (
        "finished before the date: stays with the district",
        False,
        "2025-06-25T09:00:00",
        "2025-06-30T16:00:00",
        DISTRICT,
        [],
    ),
    ("received after the date (refused at the door): not moved", False, "2025-07-02T09:00:00", None, DISTRICT, []),
    (
        "a chain of two dissolutions, open across both",
        True,
        "2025-06-25T09:00:00",
        None,
        WARD,
        [
            held(DISTRICT, "2025-06-25T09:00:00", HANDOVER),
            held(COMMUNE, HANDOVER, SECOND),
            held(WARD, SECOND, None),
        ],
    ),
    (
        "a chain, finished between the two dates: the first successor keeps it",
        True,
        "2025-06-25T09:00:00",
        "2025-09-01T10:00:00",
        COMMUNE,
        [held(DISTRICT, "2025-06-25T09:00:00", HANDOVER), held(COMMUNE, HANDOVER, None)],
    ),
]


@pytest.mark.parametrize(
    ("name", "chain", "received", "ended", "agency_code", "history"), CASES, ids=[c[0] for c in CASES]
)
def test_dissolved_agency_hands_its_open_cases_to_the_successor(name, chain, received, ended, agency_code, history):
    state = fold_case(events(received, ended), registry(chain))
    assert state.agency_code == agency_code
    assert state.agency_history == history


def test_the_due_date_stays_as_computed_at_receipt():
    """The calendar of the receiving agency at receipt; a handover never moves due_at."""
    moved = fold_case(events("2025-06-25T09:00:00"), registry())
    plain = fold_case(
        events("2025-06-25T09:00:00"),
        Registry(
            CalendarRules(),
            registry().agencies
            | {DISTRICT: replace(registry().agencies[DISTRICT], valid_to=None, successor_code=None)},
            registry().catalogue,
        ),
    )
    assert moved.due_at == plain.due_at is not None
    assert moved.apology_deadline_at == plain.apology_deadline_at


def test_the_successor_answers_for_the_dissolved_agency_at_fault():
    state = fold_case(events("2025-06-25T09:00:00"), registry())
    assert state.agency_at_fault == COMMUNE
    finished_before = fold_case(events("2025-06-25T09:00:00", "2025-06-30T16:00:00"), registry())
    assert finished_before.agency_at_fault == DISTRICT


def test_an_open_leg_at_a_dissolved_agency_is_answered_for_by_its_successor():
    """A commune's case sent to the district (liên thông leg) before the date: the leg is kept as
    reported, the case stays the commune's, and the district's successor answers for the leg."""
    state = fold_case(events("2025-06-25T09:00:00", agency=OTHER, leg_to=DISTRICT), registry())
    assert state.agency_code == OTHER
    assert state.agency_history == []
    assert [leg.agency_code for leg in state.legs] == [DISTRICT]
    assert state.agency_at_fault == COMMUNE


def test_the_fold_is_the_same_whatever_the_order():
    a = fold_case(events("2025-06-25T09:00:00", "2025-07-03T10:00:00"), registry(True))
    b = fold_case(list(reversed(events("2025-06-25T09:00:00", "2025-07-03T10:00:00"))), registry(True))
    assert a.as_dict() == b.as_dict()


def test_the_door_refuses_a_dissolved_agency_from_valid_to_and_names_the_successor():
    from services.intake.door import dissolved_agency_problem

    r = registry()
    assert dissolved_agency_problem(r, DISTRICT, vn("2025-06-30T23:59:59")) is None  # a late report: accepted
    problem = dissolved_agency_problem(r, DISTRICT, vn(HANDOVER))
    assert problem is not None and DISTRICT in problem and COMMUNE in problem and "agency_code" in problem
    assert dissolved_agency_problem(r, COMMUNE, vn("2026-06-01T09:00:00")) is None


def test_a_successor_takes_over_what_was_dissolved_into_it_through_a_chain():
    r = registry(chain=True)
    assert r.with_predecessors({WARD}) == {WARD, COMMUNE, DISTRICT}
    assert r.with_predecessors({COMMUNE}) == {COMMUNE, DISTRICT}
    assert r.with_predecessors({OTHER}) == {OTHER}


@pytest.mark.parametrize(
    ("valid_to", "successor", "field"),
    [
        (date(2025, 7, 1), "NOPE", "successor_code"),
        (date(2026, 2, 1), COMMUNE, "successor_code"),  # the commune is gone on 2026-01-01
        (date(2025, 6, 1), WARD, "valid_to"),  # the district is dissolved into it later, on 2025-07-01
    ],
)
def test_a_dissolution_that_does_not_fit_the_registry_names_the_field(valid_to, successor, field):
    from shared.domain.registry import RegistryError

    r = registry(chain=True)
    target = COMMUNE if field == "valid_to" else OTHER
    agency = replace(r.agencies[target], valid_to=valid_to, successor_code=successor)
    with pytest.raises(RegistryError) as caught:
        r.check_succession(agency)
    assert caught.value.field == field

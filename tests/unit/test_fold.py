"""The case fold: status, statutory due date, pauses, legs, apology, classification."""

import dataclasses
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.calendar import CalendarRules
from shared.domain.catalogue import Catalogue
from shared.domain.codes import CaseStatus, Level
from shared.domain.fold import CaseEvent, fold_case
from shared.domain.registry import Agency, Registry


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


def make_registry() -> Registry:
    registry = Registry(CalendarRules())
    registry.put_agency(Agency("H12", "UBND tỉnh", Level.PROVINCE))
    registry.put_agency(Agency("H12.STNMT", "Sở Tài nguyên và Môi trường", Level.PROVINCE, "H12"))
    registry.put_agency(Agency("H12.CA", "Công an tỉnh", Level.PROVINCE, "H12"))
    registry.catalogue = Catalogue.from_specs(
        [
            (
                "P.LAND",
                {
                    "name": "Đăng ký biến động đất đai",
                    "field_code": "DD",
                    "durations": {"direct": {"value": 3, "unit": "working_days"}},
                    "supplement_mode": "pause",
                    "fee_bearing": True,
                },
            ),
            (
                "P.BIZ",
                {
                    "name": "Đăng ký hộ kinh doanh",
                    "field_code": "KD",
                    "durations": {
                        "direct": {"value": 5, "unit": "working_days"},
                        "online": {"value": 3, "unit": "working_days"},
                    },
                    "supplement_mode": "restart",
                    "full_online_eligible": True,
                    "legs": [
                        {"agency_code": "H12.STNMT", "duration": {"value": 1, "unit": "working_days"}},
                        {"agency_code": "H12.CA", "duration": {"value": 1, "unit": "working_days"}},
                    ],
                },
            ),
        ]
    )
    return registry


REGISTRY = make_registry()


def ev(n: int, kind: str, at: str, data: dict | None = None, case: str = "C1", seq: int | None = None):
    return CaseEvent(
        event_id=f"e{n}",
        type=kind,
        case_code=case,
        occurred_at=vn(at),
        agency_code="H12.STNMT",
        data=data or {},
        seq=n if seq is None else seq,
    )


RECEIVED = {
    "procedure_code": "P.LAND",
    "field_code": "DD",
    "level": "province",
    "channel": "direct",
    "online_mode": None,
}


def test_received_case_gets_statutory_due_and_apology_deadline() -> None:
    state = fold_case([ev(1, "case.received", "2026-03-16T09:00:00", RECEIVED)], REGISTRY)
    assert state.status is CaseStatus.PENDING
    assert state.due_at == vn("2026-03-19T09:00:00")
    assert state.apology_deadline_at == vn("2026-03-18T09:00:00")
    assert state.fee_bearing is True
    assert state.calendar_version and state.procedure_version == "2000-01-01"


def test_reported_due_date_that_differs_is_flagged() -> None:
    data = {**RECEIVED, "due_at_reported": "2026-03-20T17:00:00+07:00"}
    state = fold_case([ev(1, "case.received", "2026-03-16T09:00:00", data)], REGISTRY)
    assert state.due_mismatch is True
    same = {**RECEIVED, "due_at_reported": "2026-03-19T09:00:00+07:00"}
    assert fold_case([ev(1, "case.received", "2026-03-16T09:00:00", same)], REGISTRY).due_mismatch is False


def test_pause_mode_resumes_remaining_time() -> None:
    events = [
        ev(1, "case.received", "2026-03-16T09:00:00", RECEIVED),
        ev(2, "case.supplement_requested", "2026-03-17T09:00:00"),
        ev(3, "case.supplement_received", "2026-03-19T09:00:00"),
    ]
    state = fold_case(events, REGISTRY)
    assert state.due_at == vn("2026-03-23T09:00:00")
    assert state.supplement_requests == 1
    assert state.status is CaseStatus.PENDING


def test_waiting_for_citizen_stops_the_clock() -> None:
    events = [
        ev(1, "case.received", "2026-03-16T09:00:00", RECEIVED),
        ev(2, "case.supplement_requested", "2026-03-17T09:00:00"),
    ]
    state = fold_case(events, REGISTRY)
    assert state.status is CaseStatus.WAITING_CITIZEN
    assert state.clock_stopped_since == vn("2026-03-17T09:00:00")


def test_restart_mode_counts_full_duration_from_resubmission() -> None:
    received = {**RECEIVED, "procedure_code": "P.BIZ", "channel": "online", "online_mode": "full"}
    events = [
        ev(1, "case.received", "2026-03-16T09:00:00", received),
        ev(2, "case.supplement_requested", "2026-03-17T09:00:00"),
        ev(3, "case.supplement_received", "2026-03-20T10:00:00"),
    ]
    state = fold_case(events, REGISTRY)
    assert state.due_at == vn("2026-03-25T10:00:00")  # 3 working days (online) from Fri 10:00
    assert state.full_online_eligible is True


def test_verification_pause_is_not_counted_only_where_the_procedure_opts_in() -> None:
    # tthc-rules §1.2, §8: time not counted exists only where a specialised law says so (hộ tịch,
    # lý lịch tư pháp verification); a procedure opts in with non_counting_reasons.
    registry = make_registry()
    registry.catalogue.put(
        "P.LAND",
        {
            "name": "Đăng ký biến động đất đai",
            "field_code": "DD",
            "durations": {"direct": {"value": 3, "unit": "working_days"}},
            "non_counting_reasons": ["verification"],
        },
    )
    by_default = fold_case(
        [
            ev(1, "case.received", "2026-03-16T09:00:00", RECEIVED),
            ev(2, "case.paused", "2026-03-17T09:00:00", {"reason_code": "verification"}),
            ev(3, "case.resumed", "2026-03-18T09:00:00", {"reason_code": "verification"}),
        ],
        REGISTRY,
    )
    assert by_default.due_at == vn("2026-03-19T09:00:00")  # the pause counts: no specialised law named
    base = [ev(1, "case.received", "2026-03-16T09:00:00", RECEIVED)]
    verification = fold_case(
        base
        + [
            ev(2, "case.paused", "2026-03-17T09:00:00", {"reason_code": "verification"}),
            ev(3, "case.resumed", "2026-03-18T09:00:00", {"reason_code": "verification"}),
        ],
        registry,
    )
    other = fold_case(
        base
        + [
            ev(2, "case.paused", "2026-03-17T09:00:00", {"reason_code": "other"}),
            ev(3, "case.resumed", "2026-03-18T09:00:00", {"reason_code": "other"}),
        ],
        registry,
    )
    assert verification.due_at == vn("2026-03-20T09:00:00")
    assert other.due_at == vn("2026-03-19T09:00:00")


def test_apology_never_moves_due_and_is_judged_against_one_working_day() -> None:
    events = [
        ev(1, "case.received", "2026-03-16T09:00:00", RECEIVED),
        ev(
            2,
            "apology.issued",
            "2026-03-17T10:00:00",
            {
                "issuer_agency": "H12.STNMT",
                "reason": "Chờ xác minh",
                "new_due_at": "2026-03-25T17:00:00+07:00",
                "issued_at": "2026-03-17T10:00:00+07:00",
            },
        ),
        ev(3, "apology.issued", "2026-03-18T10:00:00", {"issuer_agency": "H12.STNMT", "reason": "again"}),
    ]
    state = fold_case(events, REGISTRY)
    assert state.due_at == vn("2026-03-19T09:00:00")
    assert state.apology is not None and state.apology.on_time is True
    assert state.extra_apologies == 1
    late = fold_case(
        [events[0], ev(2, "apology.issued", "2026-03-18T15:00:00", {"issuer_agency": "H12.STNMT"})],
        REGISTRY,
    )
    assert late.apology is not None and late.apology.on_time is False


def test_end_of_processing_is_the_first_terminal_event_and_classifies() -> None:
    events = [
        ev(1, "case.received", "2026-03-16T09:00:00", RECEIVED),
        ev(2, "case.processed", "2026-03-19T08:00:00", {"outcome": "approved"}),
        ev(3, "case.returned", "2026-03-20T08:00:00", {"e_result": True, "result_channel": "online"}),
    ]
    state = fold_case(events, REGISTRY)
    assert state.end_at == vn("2026-03-19T08:00:00")
    assert state.status is CaseStatus.RETURNED
    assert state.on_time is True and state.result_dated == "on_time"
    late = fold_case([events[0], ev(2, "case.processed", "2026-03-20T08:00:00")], REGISTRY)
    assert late.on_time is False and late.result_dated == "late"
    early = fold_case([events[0], ev(2, "case.processed", "2026-03-18T08:00:00")], REGISTRY)
    assert early.result_dated == "early"
    # same date, later hour: late on exact instants (766), on time on dates (Biểu 06)
    edge = fold_case([events[0], ev(2, "case.processed", "2026-03-19T10:00:00")], REGISTRY)
    assert edge.on_time is False and edge.result_dated == "on_time"


def test_more_than_one_supplement_request_is_late_for_766() -> None:
    events = [
        ev(1, "case.received", "2026-03-16T09:00:00", RECEIVED),
        ev(2, "case.supplement_requested", "2026-03-16T10:00:00"),
        ev(3, "case.supplement_received", "2026-03-16T11:00:00"),
        ev(4, "case.supplement_requested", "2026-03-16T14:00:00"),
        ev(5, "case.supplement_received", "2026-03-16T15:00:00"),
        ev(6, "case.processed", "2026-03-17T09:00:00", {"outcome": "approved"}),
    ]
    state = fold_case(events, REGISTRY)
    assert state.supplement_requests == 2
    assert state.end_at is not None and state.due_at is not None and state.end_at < state.due_at
    assert state.on_time is False


def test_late_leg_names_the_agency_at_fault() -> None:
    received = {**RECEIVED, "procedure_code": "P.BIZ"}
    events = [
        ev(1, "case.received", "2026-03-16T09:00:00", received),
        ev(2, "case.transferred", "2026-03-16T10:00:00", {"from_agency": "H12", "to_agency": "H12.STNMT"}),
        ev(3, "case.transferred", "2026-03-17T09:00:00", {"from_agency": "H12.STNMT", "to_agency": "H12.CA"}),
        ev(4, "case.processed", "2026-03-20T09:00:00"),
    ]
    state = fold_case(events, REGISTRY)
    assert [leg.late for leg in state.legs] == [False, True]
    assert state.agency_at_fault == "H12.CA"


def test_unknown_procedure_is_reported_not_guessed() -> None:
    state = fold_case([ev(1, "case.received", "2026-03-16T09:00:00", {**RECEIVED, "procedure_code": "X"})], REGISTRY)
    assert state.due_at is None and "unknown_procedure" in state.problems


def test_duplicates_are_ignored() -> None:
    one = ev(1, "case.supplement_requested", "2026-03-17T09:00:00")
    events = [ev(0, "case.received", "2026-03-16T09:00:00", RECEIVED), one, one]
    assert fold_case(events, REGISTRY).supplement_requests == 1


LIFECYCLE = [
    ("case.submitted", {"procedure_code": "P.LAND", "channel": "online"}),
    ("case.received", {**RECEIVED, "channel": "online", "online_mode": "partial"}),
    ("case.supplement_requested", {}),
    ("case.supplement_received", {}),
    ("case.paused", {"reason_code": "financial_obligation"}),
    ("case.resumed", {"reason_code": "financial_obligation"}),
    ("case.paid_online", {"amount": 50000, "gateway": "dvcqg"}),
    ("case.digitized", {"components_digitized": True, "result_digitized": True, "reused": False}),
    ("apology.issued", {"issuer_agency": "H12.STNMT", "reason": "r"}),
    ("case.processed", {"outcome": "approved"}),
    ("case.returned", {"e_result": True, "result_channel": "online"}),
    ("case.rated", {"satisfied": True, "complaint": False}),
]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=20 * 60), min_size=len(LIFECYCLE), max_size=len(LIFECYCLE)),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_fold_is_independent_of_arrival_order(gaps, rng, same_instant) -> None:
    at = vn("2026-03-16T08:00:00")
    events = []
    for i, ((kind, data), gap) in enumerate(zip(LIFECYCLE, gaps, strict=True)):
        if not same_instant:
            at += timedelta(minutes=gap)
        events.append(CaseEvent(f"e{i}", kind, "C1", at, "H12.STNMT", data, seq=i))
    shuffled = events[:]
    rng.shuffle(shuffled)
    # arrival order is the order they came in: re-number seq as they arrived, add a duplicate
    arrived = [
        CaseEvent(e.event_id, e.type, e.case_code, e.occurred_at, e.agency_code, e.data, seq=n)
        for n, e in enumerate(shuffled + shuffled[:2])
    ]
    a, b = fold_case(events, REGISTRY), fold_case(arrived, REGISTRY)
    a_dict, b_dict = a.as_dict(), b.as_dict()
    assert a_dict == b_dict
    # as_dict is dataclasses.asdict without the deep copies: the same dict, no container shared
    assert a_dict == dataclasses.asdict(a)
    a_dict["timeline"][0]["data"]["changed"] = True
    a_dict["pauses"].clear()
    assert "changed" not in a.timeline[0]["data"] and a.pauses

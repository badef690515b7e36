"""The law in force at receipt (issue #19, contract v1.1): rule sets by date, levels, apology timing,
the NĐ 297/2025 group, time not counted, and when an open case counts overdue. One table per rule,
each row with its source."""

from datetime import datetime
from pathlib import Path

import pytest

from services.intake.door import level_not_in_force
from shared.config import load_registry
from shared.domain.calendar import CalendarRules
from shared.domain.catalogue import Catalogue
from shared.domain.codes import ApologyTiming, CaseStatus, Level
from shared.domain.deadlines import Duration, apology_deadline, compute_due
from shared.domain.fold import CaseEvent, fold_case
from shared.domain.registry import Agency, Registry
from shared.domain.rulesets import load_rule_sets

CONFIG = Path(__file__).resolve().parents[2] / "config"
SAMPLE = load_registry(CONFIG)


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


# --- rule sets by receipt date ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("received_at", "expected"),
    [
        ("2016-05-10T09:00:00+07:00", "nd61-2018"),  # before NĐ 61 itself: contract v1.1, "before 2025-07-01"
        ("2018-06-21T08:00:00+07:00", "nd61-2018"),  # NĐ 61/2018 in force 21/06/2018 (tthc-rules §0.1)
        ("2025-06-30T23:59:59+07:00", "nd61-2018"),  # the last second of NĐ 61 + NĐ 107/2021
        ("2025-06-30T17:00:00+00:00", "nd118-2025"),  # 00:00 on 01/07/2025 in Vietnam: NĐ 118 (local day)
        ("2025-07-01T00:00:00+07:00", "nd118-2025"),  # NĐ 118/2025/NĐ-CP in force 01/07/2025 (S-RAG, S-BA)
        ("2026-03-16T09:15:00+07:00", "nd118-2025"),
    ],
)
def test_rule_set_is_the_one_in_force_on_the_local_day_of_receipt(received_at: str, expected: str) -> None:
    assert load_rule_sets().at(datetime.fromisoformat(received_at)).code == expected


@pytest.mark.parametrize(
    ("rule_set", "form_title", "circular"),
    [
        # tthc-rules §2.2: Mẫu 04 of TT 01/2018/TT-VPCP
        ("nd61-2018", "Phiếu xin lỗi và hẹn lại ngày trả kết quả", "01/2018/TT-VPCP"),
        # tthc-rules §2.2, §8: Mẫu 04 of TT 03/2025/TT-VPCP (Bộ Y tế QĐ 3621/2025 BM.04)
        ("nd118-2025", "Phiếu xin lỗi và đề nghị gia hạn thời gian giải quyết", "03/2025/TT-VPCP"),
    ],
)
def test_each_rule_set_names_its_own_apology_form(rule_set: str, form_title: str, circular: str) -> None:
    form = load_rule_sets().get(rule_set).apology_form
    assert form.number == "Mẫu số 04"
    assert form.title == form_title
    assert circular in form.circular


@pytest.mark.parametrize(
    ("level", "received_at", "refused"),
    [
        ("district", "2025-06-30T23:59:59+07:00", False),  # three levels under NĐ 61 (tthc-rules §0.1)
        ("district", "2025-07-01T00:00:00+07:00", True),  # two levels from 01/07/2025 (S-BA)
        ("district", "2026-03-16T09:15:00+07:00", True),  # the case: was accepted (202)
        ("district", "2025-06-30T17:00:00+00:00", True),  # UTC before, local on 01/07
        ("commune", "2026-03-16T09:15:00+07:00", False),
        ("province", "2019-01-02T09:00:00+07:00", False),
        (None, "2026-03-16T09:15:00+07:00", False),
    ],
)
def test_levels_are_those_of_the_rule_set_in_force(level: str | None, received_at: str, refused: bool) -> None:
    problem = level_not_in_force(level, datetime.fromisoformat(received_at))
    assert (problem is not None) is refused
    if refused:
        assert "nd118-2025" in problem and "province, commune" in problem  # type: ignore[operator]


def test_the_fold_keeps_the_rule_set_and_flags_a_level_it_does_not_have() -> None:
    def received(at: str, level: str) -> CaseEvent:
        data = {"procedure_code": "1.012792", "field_code": "G09-DD", "level": level, "channel": "direct"}
        return CaseEvent("e1", "case.received", "C-1", vn(at), "001.30.00.H99", data)

    old = fold_case([received("2025-06-20T09:00:00", "district")], SAMPLE)
    new = fold_case([received("2026-03-16T09:00:00", "district")], SAMPLE)
    assert (old.rule_set, old.problems) == ("nd61-2018", [])
    assert new.rule_set == "nd118-2025"
    assert new.problems == ["level_not_in_rule_set:district:nd118-2025"]


# --- apology timing --------------------------------------------------------------------------

CALENDAR = Registry(CalendarRules()).calendar_for(None)


@pytest.mark.parametrize(
    ("received_at", "duration", "timing", "expected_due", "expected_apology"),
    [
        # NĐ 61 / NĐ 118 (tthc-rules §2.1): at the latest one working day before due
        (
            "2026-03-16T09:00:00",
            (3, "working_days"),
            "one_working_day_before_due",
            "2026-03-19T09:00:00",
            "2026-03-18T09:00:00",
        ),
        # 4 working hours received at 14:00: one working day before due is before the receipt, so
        # the apology is due at the due instant (contract v1.1; tthc-rules §8)
        (
            "2026-03-16T14:00:00",
            (4, "working_hours"),
            "one_working_day_before_due",
            "2026-03-17T08:00:00",
            "2026-03-17T08:00:00",
        ),
        # exactly one working day: one day before due is the receipt itself, allowed
        (
            "2026-03-16T09:00:00",
            (1, "working_days"),
            "one_working_day_before_due",
            "2026-03-17T09:00:00",
            "2026-03-16T09:00:00",
        ),
        # NĐ 297/2025 Điều 6 k5: the apology when the time runs out without a result
        ("2026-03-16T09:00:00", (3, "working_days"), "at_due", "2026-03-19T09:00:00", "2026-03-19T09:00:00"),
    ],
)
def test_apology_deadline_is_never_before_the_receipt(
    received_at: str, duration: tuple[int, str], timing: str, expected_due: str, expected_apology: str
) -> None:
    due = compute_due(CALENDAR, vn(received_at), Duration(*duration)).due_at
    assert due == vn(expected_due)
    apology = apology_deadline(CALENDAR, due, vn(received_at), ApologyTiming(timing))
    assert apology == vn(expected_apology)
    assert apology >= vn(received_at)


def _nd297_case(received_at: str) -> CaseEvent:
    data = {"procedure_code": "2.000580", "field_code": "G09-KD", "level": "commune", "channel": "direct"}
    return CaseEvent("e1", "case.received", "HKD-1", vn(received_at), "001.30.00.H99", data)


@pytest.mark.parametrize(
    ("received_at", "expected_due"),
    [
        # NĐ 297/2025 Điều 6 k2: 16 working days; k3: received within the hour before closing (17:00)
        # → counting starts the next working day (tthc-rules D4, §8)
        ("2026-03-16T15:59:00", "2026-04-07T15:59:00"),  # Mon 15:59: counted from then (Giỗ Tổ not in range)
        (
            "2026-03-16T16:00:00",
            "2026-04-07T17:00:00",
        ),  # Mon 16:00: from Tue 07:00, due at a close
        ("2026-03-16T16:59:00", "2026-04-07T17:00:00"),
    ],
)
def test_the_nd297_group_has_its_cutoff_and_apologises_at_expiry(received_at: str, expected_due: str) -> None:
    state = fold_case([_nd297_case(received_at)], SAMPLE)
    assert state.due_at == vn(expected_due)
    assert state.apology_deadline_at == state.due_at  # Điều 6 k5


def test_a_case_received_before_nd297_keeps_the_rules_in_force_then() -> None:
    # the law in force at receipt (tthc-rules §0.1): NĐ 297/2025 of 17/11/2025 (its Điều 6 k3, k5)
    # is a version of the procedure from that date; a case received earlier has no cut-off and the
    # apology one working day before due
    state = fold_case([_nd297_case("2025-10-01T16:30:00")], SAMPLE)
    assert state.due_at == vn("2025-10-23T16:30:00")  # counted from the receipt itself
    assert state.apology_deadline_at == vn("2025-10-22T16:30:00")


def test_an_apology_is_on_time_when_issued_by_the_apology_deadline() -> None:
    # contract: apology_coverage counts apologies issued by apology_deadline_at (at due for NĐ 297)
    apology = {"issuer_agency": "001.30.00.H99", "reason": "Chờ phối hợp", "new_due_at": "2026-04-20T09:00:00+07:00"}
    at_due = fold_case(
        [
            _nd297_case("2026-03-16T09:00:00"),
            CaseEvent("e2", "apology.issued", "HKD-1", vn("2026-04-07T08:00:00"), "001.30.00.H99", apology),
        ],
        SAMPLE,
    )
    assert at_due.apology is not None and at_due.apology.on_time is True


# --- time not counted: opt-in per procedure ------------------------------------------------------


@pytest.mark.parametrize(
    ("procedure_code", "reason", "counted"),
    [
        ("2.001417", "verification", False),  # lý lịch tư pháp: tra cứu, xác minh (tthc-rules §1.2)
        ("1.004884", "verification", False),  # hộ tịch: xác minh (tthc-rules §1.2)
        ("1.012791", "financial_obligation", False),  # đất đai: nghĩa vụ tài chính (configured, see sources)
        ("1.012792", "verification", True),  # no specialised law named: the time counts (tthc-rules §8)
        ("1.012792", "financial_obligation", True),
        ("1.009972", "other", True),
    ],
)
def test_time_is_not_counted_only_where_the_procedure_opts_in(procedure_code: str, reason: str, counted: bool) -> None:
    version = SAMPLE.catalogue.version_at(procedure_code, vn("2026-03-16T09:00:00"))
    assert (reason not in version.non_counting_reasons) is counted


# --- when an open case counts overdue (S-766DOC 2.1, contract v1.1) ----------------------------


def _registry() -> Registry:
    registry = Registry(CalendarRules())
    registry.put_agency(Agency("H12", "UBND tỉnh", Level.PROVINCE))
    registry.catalogue = Catalogue.from_specs(
        [
            (
                "P3",
                {"name": "Ba ngày", "field_code": "F", "durations": {"direct": {"value": 3, "unit": "working_days"}}},
            ),
            (
                "P3V",
                {
                    "name": "Ba ngày, xác minh không tính",
                    "field_code": "F",
                    "durations": {"direct": {"value": 3, "unit": "working_days"}},
                    "non_counting_reasons": ["verification"],
                },
            ),
        ]
    )
    return registry


OVERDUE_REGISTRY = _registry()


@pytest.mark.parametrize(
    ("procedure", "steps", "status", "expected"),
    [
        # received Mon 16/03 09:00, 3 working days: due Thu 19/03 09:00
        ("P3", [], CaseStatus.PENDING, "2026-03-19T09:00:00"),
        # one request before due, still waiting: judged at the request, within due for good
        ("P3", [("case.supplement_requested", "2026-03-17T09:00:00")], CaseStatus.WAITING_CITIZEN, None),
        # one request after due: overdue from due
        (
            "P3",
            [("case.supplement_requested", "2026-03-20T09:00:00")],
            CaseStatus.WAITING_CITIZEN,
            "2026-03-19T09:00:00",
        ),
        # two requests (the first answered), waiting again: late from the second request
        (
            "P3",
            [
                ("case.supplement_requested", "2026-03-17T09:00:00"),
                ("case.supplement_received", "2026-03-17T15:00:00"),
                ("case.supplement_requested", "2026-03-18T09:00:00"),
            ],
            CaseStatus.WAITING_CITIZEN,
            "2026-03-18T09:00:00",
        ),
        # one request answered: the clock again, due moved by the paused 09:00–11:30 + 13:30–15:00 = 4 h
        (
            "P3",
            [("case.supplement_requested", "2026-03-17T09:00:00"), ("case.supplement_received", "2026-03-17T15:00:00")],
            CaseStatus.PENDING,
            "2026-03-19T15:00:00",
        ),
        # a verification pause the procedure does not count, still open: the clock is stopped
        ("P3V", [("case.paused", "2026-03-17T09:00:00")], CaseStatus.PAUSED, None),
        # the same pause where the law does not exclude it: the clock runs
        ("P3", [("case.paused", "2026-03-17T09:00:00")], CaseStatus.PAUSED, "2026-03-19T09:00:00"),
    ],
)
def test_when_an_open_case_counts_overdue(
    procedure: str, steps: list[tuple[str, str]], status: CaseStatus, expected: str | None
) -> None:
    received = {"procedure_code": procedure, "field_code": "F", "level": "province", "channel": "direct"}
    events = [CaseEvent("e0", "case.received", "C", vn("2026-03-16T09:00:00"), "H12", received, seq=0)]
    for n, (kind, at) in enumerate(steps, start=1):
        data = {"reason_code": "verification"} if kind == "case.paused" else {}
        events.append(CaseEvent(f"e{n}", kind, "C", vn(at), "H12", data, seq=n))
    state = fold_case(events, OVERDUE_REGISTRY)
    assert state.status is status
    assert state.overdue_from == (vn(expected) if expected else None)

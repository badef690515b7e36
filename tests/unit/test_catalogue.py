"""The catalogue: versions by effective date, channel defaults, and parse errors."""

from datetime import datetime

import pytest

from shared.domain.calendar import CalendarRules
from shared.domain.catalogue import Catalogue, UnknownProcedure
from shared.domain.codes import Channel, Level
from shared.domain.deadlines import DeadlineError
from shared.domain.fold import CaseEvent, fold_case
from shared.domain.registry import Agency, Registry, RegistryError

SPEC = {"name": "Thủ tục", "field_code": "F", "durations": {"direct": {"value": 10, "unit": "working_days"}}}


def vn(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


def test_a_case_keeps_the_version_in_force_at_receipt() -> None:
    registry = Registry(CalendarRules())
    registry.put_agency(Agency("A", "A", Level.PROVINCE))
    registry.catalogue.put("P", SPEC)
    registry.catalogue.put(
        "P", {**SPEC, "effective_from": "2026-04-01", "durations": {"direct": {"value": 5, "unit": "working_days"}}}
    )

    def received(at: str) -> CaseEvent:
        data = {"procedure_code": "P", "field_code": "F", "level": "province", "channel": "direct"}
        return CaseEvent("e1", "case.received", "C", vn(at), "A", data)

    before = fold_case([received("2026-03-31T09:00:00")], registry)
    after = fold_case([received("2026-04-01T09:00:00")], registry)
    assert before.duration == {"value": 10, "unit": "working_days"} and before.procedure_version == "2000-01-01"
    assert after.duration == {"value": 5, "unit": "working_days"} and after.procedure_version == "2026-04-01"


def test_online_and_postal_default_to_direct() -> None:
    catalogue = Catalogue.from_specs([("P", SPEC)])
    version = catalogue.version_at("P", vn("2026-03-16T09:00:00"))
    assert version.duration_for(Channel.ONLINE) == version.duration_for(Channel.DIRECT)


def test_unknown_procedure_and_version_before_effective_date() -> None:
    catalogue = Catalogue.from_specs([("P", {**SPEC, "effective_from": "2026-01-01"})])
    with pytest.raises(UnknownProcedure, match="'Q'"):
        catalogue.get("Q")
    with pytest.raises(UnknownProcedure, match="no version in force"):
        catalogue.version_at("P", vn("2025-12-31T09:00:00"))


@pytest.mark.parametrize(
    "spec",
    [
        {"durations": {}},
        {"durations": {"direct": {"value": 1, "unit": "fortnights"}}},
        {"durations": {"direct": {"value": 1, "unit": "working_days"}}, "supplement_mode": "sometimes"},
        {"durations": {"direct": {"value": 1, "unit": "working_days"}}, "cutoff": "14:00"},
    ],
)
def test_bad_procedure_specs_are_rejected(spec) -> None:
    with pytest.raises(DeadlineError):
        Catalogue().put("P", spec)


def test_registry_refuses_unknown_parents_and_cycles() -> None:
    registry = Registry(CalendarRules())
    registry.put_agency(Agency("A", "A", Level.PROVINCE))
    with pytest.raises(RegistryError, match="parent_code"):
        registry.put_agency(Agency("B", "B", Level.COMMUNE, "Z"))
    registry.put_agency(Agency("B", "B", Level.COMMUNE, "A"))
    with pytest.raises(RegistryError, match="cycle"):
        registry.put_agency(Agency("A", "A", Level.PROVINCE, "B"))
    assert registry.subtree("A") == {"A", "B"}

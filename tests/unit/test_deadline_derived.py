"""Derived events of the deadline projection: which folds announce what, and only once."""

from services.deadline.projection import derived_events
from shared.domain.fold import fold_case
from tests.support.folds import RECEIVED, REGISTRY, ev

APOLOGY = {
    "issuer_agency": "000.00.02.H99",
    "reason": "r",
    "new_due_at": "2026-04-10T17:00:00+07:00",
    "issued_at": "2026-03-26T10:00:00+07:00",
}


def kinds(events, previous=None) -> list[str]:
    return [e["type"] for e in derived_events(fold_case(events, REGISTRY), previous)]


def test_apology_issued_through_us_is_announced_once() -> None:
    ours = ev(2, "apology.issued", "2026-03-26T10:00:00", **APOLOGY, issued_by="agency:000.00.02.H99")
    assert "apology.issued" in kinds([RECEIVED, ours])
    previous = {"due_at": fold_case([RECEIVED], REGISTRY).due_at, "apology": {"reason": "r"}}
    assert kinds([RECEIVED, ours], previous) == []


def test_apology_reported_by_a_one_stop_system_is_not_announced() -> None:
    reported = ev(2, "apology.issued", "2026-03-26T10:00:00", **APOLOGY)
    assert kinds([RECEIVED, reported]) == ["deadline.computed"]

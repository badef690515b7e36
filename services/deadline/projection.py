"""The deadline service's case projection: the case document (the fold's state and the fields its
reads use), the derived events it publishes, the timers it re-arms."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from services.deadline.timers import timer_writes
from shared.domain.codes import DerivedEventType
from shared.domain.fold import Apology, CaseState
from shared.domain.registry import Registry
from shared.projection import OtherWrites, ProjectionPort, Staged
from shared.store import Document


def case_document(state: CaseState, events: list[dict[str, Any]], previous: dict[str, Any] | None) -> dict[str, Any]:
    document = state.as_dict()
    document["status"] = state.status.value if state.status else None
    document["open"] = state.received and not state.finished
    document["apology_missing"] = bool(state.received and state.due_at is not None and state.apology is None)
    document["source"] = next((e.get("source") for e in reversed(events) if e.get("source")), None)
    return document


def derived_events(state: CaseState, previous: dict[str, Any] | None) -> list[dict[str, Any]]:
    """deadline.computed when the statutory due instant is set or moves; apology.issued when an
    apology is issued; case.closed at the end."""
    out = []
    before_due = previous.get("due_at") if previous else None
    if state.due_at is not None and (before_due is None or abs((before_due - state.due_at).total_seconds()) >= 1):
        out.append(_deadline_computed(state, state.due_at))
    apology = state.apology
    if apology is not None and apology.issued_by and (previous is None or previous.get("apology") is None):
        out.append(_apology_issued(state, apology))
    if state.end_at is not None and (previous is None or previous.get("end_at") is None):
        out.append(_case_closed(state, state.end_at))
    return out


def _deadline_computed(state: CaseState, due_at: datetime) -> dict[str, Any]:
    return _derived(
        state,
        DerivedEventType.DEADLINE_COMPUTED,
        state.received_at,
        due_at.isoformat(),
        {
            "due_at": due_at.isoformat(),
            "due_at_reported": state.due_at_reported.isoformat() if state.due_at_reported else None,
            "mismatch": state.due_mismatch,
            "apology_deadline_at": state.apology_deadline_at.isoformat() if state.apology_deadline_at else None,
            "calendar_version": state.calendar_version,
        },
    )


def _apology_issued(state: CaseState, apology: Apology) -> dict[str, Any]:
    return _derived(
        state,
        DerivedEventType.APOLOGY_ISSUED,
        apology.issued_at,
        apology.issued_at.isoformat(),
        {
            "issuer_agency": apology.issuer_agency,
            "reason": apology.reason,
            "new_due_at": apology.new_due_at.isoformat() if apology.new_due_at else None,
            "issued_at": apology.issued_at.isoformat(),
            "on_time": apology.on_time,
            "due_at": state.due_at.isoformat() if state.due_at else None,
        },
    )


def _case_closed(state: CaseState, end_at: datetime) -> dict[str, Any]:
    return _derived(
        state,
        DerivedEventType.CASE_CLOSED,
        end_at,
        end_at.isoformat(),
        {
            "end_type": state.end_type,
            "on_time": state.on_time,
            "result_dated": state.result_dated,
            "due_at": state.due_at.isoformat() if state.due_at else None,
            "supplement_requests": state.supplement_requests,
            "apology_on_time": state.apology.on_time if state.apology else None,
            "agency_at_fault": state.agency_at_fault,
        },
    )


def _derived(state: CaseState, kind: DerivedEventType, at: Any, key: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": f"{state.case_code}:{kind.value}:{key}",
        "type": kind.value,
        "schema_version": 1,
        "case_code": state.case_code,
        "occurred_at": at.isoformat() if at else None,
        "agency_code": state.agency_code,
        "data": data,
    }


class DeadlinePort(ProjectionPort[None]):
    """The deadline's case projection: the case document, its derived events (none in a replay),
    and its timers re-armed before each chunk's cases are written (ADR 0011)."""

    def __init__(
        self,
        timers: AsyncCollection[Document],
        registry: Callable[[], Registry],
        due_soon_seconds: int,
        apology_due_seconds: int,
        derives: bool = True,
    ) -> None:
        self.timers = timers
        self.registry = registry
        self.due_soon_seconds = due_soon_seconds
        self.apology_due_seconds = apology_due_seconds
        self.derives = derives

    def document(
        self, state: CaseState, events: list[dict[str, Any]], previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        return case_document(state, events, previous)

    def derive(self, state: CaseState, previous: dict[str, Any] | None) -> list[dict[str, Any]]:
        return derived_events(state, previous) if self.derives else []

    def prelude(self, staged: Staged) -> OtherWrites:
        """The timers of a chunk's cases whose timing changed."""
        writes = timer_writes(
            staged,
            self.registry().calendar_for,
            self.due_soon_seconds,
            datetime.now(UTC),
            self.apology_due_seconds,
        )
        return [(self.timers, writes)]

"""The deadline service's case document: the fold's state, the fields its queries index, its timers."""

from __future__ import annotations

from typing import Any

from shared.domain.codes import DerivedEventType
from shared.domain.fold import CaseState


def case_document(state: CaseState, events: list[dict[str, Any]], previous: dict[str, Any] | None) -> dict[str, Any]:
    document = state.as_dict()
    document["status"] = state.status.value if state.status else None
    document["open"] = state.received and not state.finished
    document["apology_missing"] = bool(state.received and state.due_at is not None and state.apology is None)
    document["source"] = next((e.get("source") for e in reversed(events) if e.get("source")), None)
    return document


def derived_events(state: CaseState, previous: dict[str, Any] | None) -> list[dict[str, Any]]:
    """deadline.computed when the statutory due instant is set or moves; case.closed at the end."""
    out = []
    before_due = previous.get("due_at") if previous else None
    if state.due_at is not None and (before_due is None or abs((before_due - state.due_at).total_seconds()) >= 1):
        out.append(
            _derived(
                state,
                DerivedEventType.DEADLINE_COMPUTED,
                state.received_at,
                f"{state.due_at.isoformat()}",
                {
                    "due_at": state.due_at.isoformat(),
                    "due_at_reported": state.due_at_reported.isoformat() if state.due_at_reported else None,
                    "mismatch": state.due_mismatch,
                    "apology_deadline_at": state.apology_deadline_at.isoformat() if state.apology_deadline_at else None,
                    "calendar_version": state.calendar_version,
                },
            )
        )
    apology = state.apology
    if apology is not None and apology.issued_by and (previous is None or previous.get("apology") is None):
        out.append(
            _derived(
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
        )
    if state.end_at is not None and (previous is None or previous.get("end_at") is None):
        out.append(
            _derived(
                state,
                DerivedEventType.CASE_CLOSED,
                state.end_at,
                state.end_at.isoformat(),
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
        )
    return out


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

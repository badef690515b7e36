"""The compact per-case facts the indicators are computed from."""

from __future__ import annotations

from typing import Any

from shared.domain.fold import CaseState


def case_facts(state: CaseState, events: list[dict[str, Any]], previous: dict[str, Any] | None) -> dict[str, Any]:
    """The fact document of a folded case: what `shared.domain.indicators` and
    `shared.domain.counters` read (`events` and `previous` are part of the projection's signature)."""
    apology = state.apology
    return {
        "agency_code": state.agency_code,
        "level": state.level,
        "field_code": state.field_code,
        "procedure_code": state.procedure_code,
        "channel": state.channel,
        "online_mode": state.online_mode,
        "full_online_eligible": state.full_online_eligible,
        "fee_bearing": state.fee_bearing,
        "status": state.status.value if state.status else None,
        "received_at": state.received_at,
        "due_at": state.due_at,
        "overdue_from": state.overdue_from,  # pending and overdue from then (S-766DOC 2.1, contract v1.1)
        "agency_history": state.agency_history,  # who held the case when (agency succession, v1.1)
        "rule_set": state.rule_set,
        "end_at": state.end_at,
        "clock_stopped_since": state.clock_stopped_since,
        "supplement_requests": state.supplement_requests,
        "on_time": state.on_time,
        "result_dated": state.result_dated,
        "paid_online": state.paid_online,
        "components_digitized": state.components_digitized,
        "result_digitized": state.result_digitized,
        "reused": state.reused,
        "e_result": state.e_result,
        "result_channel": state.result_channel,
        "supplement_requests_over_one": state.supplement_requests > 1,
        "apology_issued_at": apology.issued_at if apology else None,
        "apology_on_time": apology.on_time if apology else None,
        "satisfied": state.satisfied,
        "complaint": state.complaint,
        "agency_at_fault": state.agency_at_fault,
        "problems": state.problems,
    }

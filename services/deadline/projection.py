"""The deadline service's case document: the fold's state plus the fields its queries index."""

from __future__ import annotations

from typing import Any

from shared.domain.fold import CaseState


def case_document(state: CaseState, events: list[dict[str, Any]]) -> dict[str, Any]:
    document = state.as_dict()
    document["status"] = state.status.value if state.status else None
    document["open"] = state.received and not state.finished
    return document

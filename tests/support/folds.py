"""Case events for unit tests of the fold and what is derived from it (no I/O)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.config import load_registry
from shared.domain.fold import CaseEvent

REGISTRY = load_registry("config")
CASE = "000.00.02.H99-260316-0001"


def ev(n: int, kind: str, at: str, **data: Any) -> CaseEvent:
    """Event n of CASE, at a Vietnam local time."""
    return CaseEvent(f"e{n}", kind, CASE, datetime.fromisoformat(at + "+07:00"), "000.00.02.H99", data, seq=n)


RECEIVED = ev(
    1,
    "case.received",
    "2026-03-16T09:15:00",
    procedure_code="1.012790",
    field_code="G09-DD",
    level="province",
    channel="direct",
)

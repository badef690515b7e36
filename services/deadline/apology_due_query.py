"""The apology-due rule (shared/domain/apology_due.py) as the store reads it: a query for the list,
an aggregation expression for the gauges' counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def apology_due_match(window_end: datetime) -> dict[str, Any]:
    """The apology-due rule (`shared.domain.apology_due.apology_due`) as a store query, with the
    list's `due_at ≥ as_of`: no apology, the apology deadline at most the window's end; since the
    apology deadline is never after due, that is "in the window, or passed while due has not"."""
    return {"apology": None, "apology_deadline_at": {"$ne": None, "$lte": window_end}}


def apology_due_expression(as_of: datetime, window_end: datetime) -> dict[str, Any]:
    """The same rule as an aggregation expression over an open case (for counting in a `$group`)."""
    return {
        "$and": [
            {"$eq": ["$apology", None]},
            {"$eq": ["$clock_stopped_since", None]},
            {"$ne": ["$apology_deadline_at", None]},  # null sorts before dates
            {"$ne": ["$due_at", None]},
            {"$lte": ["$apology_deadline_at", window_end]},
            {"$or": [{"$gte": ["$apology_deadline_at", as_of]}, {"$gte": ["$due_at", as_of]}]},
        ]
    }

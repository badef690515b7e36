"""Agencies change (contract v1.1): which stored cases a dissolution concerns. Shared by the
deadline and metrics projections, which both fold those cases again (ADR 0014, 0015)."""

from __future__ import annotations

from typing import Any

from shared.domain.fold import dissolution_instant
from shared.domain.registry import Agency, Registry


def succession_changed(before: Agency | None, after: Agency) -> bool:
    old = (before.valid_to, before.successor_code) if before is not None else (None, None)
    return old != (after.valid_to, after.successor_code)


def stale_handover_query(registry: Registry, codes: set[str] | None = None) -> dict[str, Any] | None:
    """The cases whose holder the fold now changes: held by a dissolved agency (of `codes`, or
    any), received before it ended and not finished before; None when there is none to look for."""
    branches: list[dict[str, Any]] = []
    for agency in registry.agencies.values():
        if agency.valid_to is None or not agency.successor_code or (codes is not None and agency.code not in codes):
            continue
        instant = dissolution_instant(agency.valid_to)
        branches.append(
            {
                "agency_code": agency.code,
                "received_at": {"$lt": instant},
                "$or": [{"end_at": None}, {"end_at": {"$gte": instant}}],
            }
        )
    return {"$or": branches} if branches else None

"""Agencies change (contract v1.1): which stored cases a dissolution concerns. Shared by the
deadline and metrics projections, which both fold those cases again with `SuccessionRefold`
(ADR 0014, 0015)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from prometheus_client import Counter
from pymongo.asynchronous.collection import AsyncCollection

from shared.domain.fold import dissolution_instant
from shared.domain.registry import Agency, Registry
from shared.periodic import Periodic
from shared.registry_sync import RegistryState
from shared.store import Document

log = logging.getLogger(__name__)
CHUNK = 500  # cases per refold (one projection write each)


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


class RefoldingProjection(Protocol):
    """What the re-fold job needs of a projection's service context."""

    registry_state: RegistryState
    collection: AsyncCollection[Document]

    @property
    def registry(self) -> Registry: ...

    async def refold(self, codes: list[str]) -> None: ...


class SuccessionRefold:
    """Folds the stored cases a dissolution concerns again, through the projection (its lock, its
    writes, its derived effects), so they show under the successor without waiting for an event:

    - at start, once the registry has caught up (a dissolution put while the service was down);
    - a few seconds after each change of an agency's valid_to or successor_code on the registry
      topic: the cases held by it or by the agencies dissolved into it, and those whose
      `agency_history` names one of them (a changed or withdrawn dissolution).

    No index on the cases (ADR 0009): a dissolution is rare, and the query scans them once."""

    def __init__(self, name: str, context: RefoldingProjection, refolded: Counter, interval_s: float = 2.0) -> None:
        self.name = name
        self.context = context
        self.refolded = refolded
        self.pending: set[str] | None = None  # None: everything (at start)
        self.periodic = Periodic(f"{name}-succession-refold", interval_s, self.run)
        context.registry_state.agency_listeners.append(self.agency_changed)

    def agency_changed(self, before: Agency | None, after: Agency) -> None:
        if succession_changed(before, after) and self.pending is not None:
            self.pending.add(after.code)

    def start(self) -> None:
        self.periodic.start()

    async def stop(self) -> None:
        await self.periodic.stop()

    async def run(self) -> int:
        """One round: refold what the changes since the last round call for; the count refolded."""
        if self.pending is not None and not self.pending:
            return 0
        changed, self.pending = self.pending, set()
        try:
            codes = await self.cases_to_refold(changed)
            for start in range(0, len(codes), CHUNK):
                await self.context.refold(codes[start : start + CHUNK])
        except BaseException:
            self.pending = None if changed is None else self.pending | changed  # next round, again
            raise
        if codes:
            self.refolded.inc(len(codes))
            log.info("cases refolded after an agency change", extra={"projection": self.name, "cases": len(codes)})
        return len(codes)

    async def cases_to_refold(self, changed: set[str] | None) -> list[str]:
        registry = self.context.registry
        related = None if changed is None else registry.with_predecessors(set(changed))
        queries = []
        stale = stale_handover_query(registry, related)
        if stale is not None:
            queries.append(stale)
        if related:
            queries.append({"agency_history.agency_code": {"$in": sorted(related)}})
        if not queries:
            return []
        query = queries[0] if len(queries) == 1 else {"$or": queries}
        return sorted({doc["_id"] async for doc in self.context.collection.find(query, {"_id": 1})})

"""Agencies change (contract v1.1): the metrics facts follow a dissolution put after a case's last
event, as the deadline's case documents do (ADR 0014, services/deadline/succession.py).

The fold hands a case over from the registry alone (`hand_over`), and the projection folds a case
when an event of it arrives; the admin route refuses a `valid_to` after today, so a dissolution is
always put on or after its day, and a case open then but quiet since would keep the dissolved
agency as its holder in the figures until its next event. This job folds those facts again through
the projection (facts and aggregate buckets in one transaction, the in-memory copy moved after it
commits; ADR 0007, 0015):

- at start, once the registry has caught up (a dissolution put while the service was down);
- a few seconds after each change of an agency's valid_to or successor_code on the registry topic:
  the cases held by it or by the agencies dissolved into it, and those whose `agency_history`
  names one of them (a changed or withdrawn dissolution).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import Counter

from shared.domain.registry import Agency
from shared.periodic import Periodic
from shared.succession import stale_handover_query, succession_changed

if TYPE_CHECKING:
    from services.metrics.context import MetricsContext

log = logging.getLogger(__name__)

FACTS_REFOLDED = Counter(
    "tthc_metrics_cases_refolded_total", "Case facts folded again after an agency was dissolved into a successor"
)
CHUNK = 500  # cases per refold (one transaction each)


class FactsSuccessionRefold:
    """Collects the agencies whose dissolution changed; folds their cases' facts again every few seconds."""

    def __init__(self, context: MetricsContext, interval_s: float = 2.0) -> None:
        self.context = context
        self.pending: set[str] | None = None  # None: everything (at start)
        self.periodic = Periodic("metrics-succession-refold", interval_s, self.run)
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
            FACTS_REFOLDED.inc(len(codes))
            log.info("case facts refolded after an agency change", extra={"cases": len(codes)})
        return len(codes)

    async def cases_to_refold(self, changed: set[str] | None) -> list[str]:
        registry = self.context.registry
        queries = []
        related = None if changed is None else registry.with_predecessors(set(changed))
        stale = stale_handover_query(registry, related)
        if stale is not None:
            queries.append(stale)
        if related:
            queries.append({"agency_history.agency_code": {"$in": sorted(related)}})
        if not queries:
            return []
        query = queries[0] if len(queries) == 1 else {"$or": queries}
        return sorted({doc["_id"] async for doc in self.context.collection.find(query, {"_id": 1})})

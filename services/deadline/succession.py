"""Agencies change (contract v1.1): when an agency is dissolved into a successor, the deadline
projection folds its cases again, so that they show under the successor at once (ADR 0014).

The fold hands a case over from the registry's data alone (shared/domain/fold.py `hand_over`);
a case is folded when an event of it arrives, so a dissolution put after the last event of a case
would otherwise wait for the next one. This job finds, in the store, the cases the registry now
hands over differently from what their documents say, and folds them again through the projection
(same lock, same writes, timers, open-case index and derived events as a consumer batch):

- at start, once the registry has caught up (a dissolution put while the service was down);
- after each change of an agency's valid_to or successor_code seen on the registry topic: the
  cases of that agency, of the agencies dissolved into it, and of every agency a case's history
  names among those (a changed or withdrawn dissolution).

Which cases: held by a dissolved agency (`agency_code`), received before its valid_to instant and
not finished before it (those the fold now hands over); or whose `agency_history` names a changed
agency. No index on the cases (ADR 0009): a dissolution is rare, and the query scans them once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import Counter

from shared.domain.registry import Agency
from shared.periodic import Periodic
from shared.succession import stale_handover_query, succession_changed

if TYPE_CHECKING:
    from services.deadline.context import DeadlineContext

log = logging.getLogger(__name__)

CASES_REFOLDED = Counter(
    "tthc_deadline_cases_refolded_total", "Cases folded again after an agency was dissolved into a successor"
)
CHUNK = 500  # cases per refold (one projection write each)


class SuccessionRefold:
    """Collects the agencies whose dissolution changed; folds their cases again every few seconds."""

    def __init__(self, context: DeadlineContext, interval_s: float = 2.0) -> None:
        self.context = context
        self.pending: set[str] | None = None  # None: everything (at start)
        self.periodic = Periodic("succession-refold", interval_s, self.run)
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
            CASES_REFOLDED.inc(len(codes))
            log.info("cases refolded after an agency change", extra={"cases": len(codes)})
        return len(codes)

    async def cases_to_refold(self, changed: set[str] | None) -> list[str]:
        registry = self.context.registry
        queries = []
        if changed is None:
            stale = stale_handover_query(registry)
            if stale is not None:
                queries.append(stale)
        else:
            related = registry.with_predecessors(set(changed))
            stale = stale_handover_query(registry, related)
            if stale is not None:
                queries.append(stale)
            queries.append({"agency_history.agency_code": {"$in": sorted(related)}})
        if not queries:
            return []
        query = queries[0] if len(queries) == 1 else {"$or": queries}
        return sorted({doc["_id"] async for doc in self.context.cases.find(query, {"_id": 1})})

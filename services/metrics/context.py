"""The metrics service's context: the facts projection and the indicator gauges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import ConsumerRecord
from fastapi import Request
from prometheus_client import Counter

from services.metrics.aggregates import COARSE, COLLECTIONS, FINE, bucket_writes, fine_query, fine_selected
from services.metrics.exposition import IndicatorGauges
from services.metrics.mirror import BucketMirror
from services.metrics.projection import BucketChanges, MetricsPort
from shared.generations import FIRST, named
from shared.projection import ProjectionRun
from shared.service import ProjectionContext
from shared.settings import Settings
from shared.store import Document, store_tuning
from shared.succession import SuccessionRefold

FACTS_REFOLDED = Counter(
    "tthc_metrics_cases_refolded_total", "Case facts folded again after an agency was dissolved into a successor"
)

log = logging.getLogger(__name__)
# On MongoDB, the facts an indicator reads when the aggregates cannot answer (a procedure, or a field
# over part of a month, indicators.load_facts): the filter's equality, then the `end_at: null` branch
# (open cases) or the ended since the period's start, then the received range.
FACT_INDEXES: dict[str, list[tuple[str, int]]] = {
    "procedure_end_received": [("procedure_code", 1), ("end_at", 1), ("received_at", 1)],
    "field_end_received": [("field_code", 1), ("end_at", 1), ("received_at", 1)],
}
BUCKET_INDEX = [("agency", 1), ("p", 1)]  # an agency's buckets up to a month (buckets_queries)
# bump when the bucket layout or a counter's meaning changes: the next start rebuilds them
AGGREGATES_VERSION = 8
# an older layout's collections: the days of the coarse buckets, the fine buckets (now their `f`)
FORMER_AGGREGATES = ("agg_c_d", "agg_f_m")


class MetricsContext(ProjectionContext[BucketChanges]):
    service = "metrics"
    group_id = "tthc-metrics"

    def __init__(self, settings: Settings, generation: int = FIRST) -> None:
        """`generation`: whose collections and consumer group (shared/generations.py)."""
        super().__init__(settings, "facts", generation=generation)
        self.aggregates = {name: self.db[named(f"agg_{name}", generation)] for name in COLLECTIONS}
        self.meta = self.db[named("meta", generation)]
        self.mirror = BucketMirror(self.aggregates)
        # the copy is usable while this process is the only writer
        self.project(MetricsPort(self.aggregates), owners=[self.mirror])
        self.gauges = IndicatorGauges(self)
        # an agency dissolved into a successor: the cases it concerns folded again
        self.succession = SuccessionRefold("metrics", self, FACTS_REFOLDED)
        # a consumer batch and a re-fold settle the copy and move it by their changes one at a time
        self._writing = asyncio.Lock()

    async def apply(self, records: list[ConsumerRecord]) -> None:
        quiet, records = self.split_quiet(records)
        async with self._writing:
            await self.mirror.settle()
            if quiet:
                await self._moving_mirror(self.quiet_projection.applying(quiet))
            if records:
                await self._moving_mirror(self.projection.applying(records))

    async def refold(self, codes: list[str]) -> None:
        """Stored facts folded again under the current registry (shared/succession.py),
        written like a batch: facts and bucket deltas in one transaction, the copy moved after."""
        await self.documents_snapshot.forget()  # these writes come from no record of the log
        async with self._writing:
            await self.mirror.settle()
            await self._moving_mirror(self.projection.refolding(codes))

    async def _moving_mirror(self, run: ProjectionRun[BucketChanges]) -> None:
        """The copy moved by the bucket changes of each transaction that committed (a batch, or
        part of one applied apart from a case at fault; never an attempt retried)."""
        async with contextlib.aclosing(run):
            async for landed in run:
                if landed.companion:
                    self.mirror.applied(landed.companion)

    async def find_buckets(
        self, collection: str, query: dict[str, Any], fields: dict[str, int], rollup_days: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """The buckets of a `buckets_queries` query: from memory when the copy is exact (summed per
        month with `rollup_days`, see BucketMirror.find), else the store."""
        if self.mirror.usable:
            return self.mirror.find(collection, query, rollup_days)
        if collection == FINE:  # views of the stored buckets' `f` counters
            stored, wanted = fine_query(query)
            projection = {k: v for k, v in fields.items() if k not in ("c", "d")} | {"agency": 1, "level": 1, "f": 1}
            return fine_selected([b async for b in self.aggregates[COARSE].find(stored, projection)], wanted)
        return [b async for b in self.aggregates[collection].find(query, fields)]

    async def start(self) -> None:
        await self.ensure_indexes()
        await self.backfill()
        await super().start()
        self.gauges.start()
        self.succession.start()

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("received_at", 1)])
        for collection in self.aggregates.values():
            await collection.create_index([("p", 1)])
        if store_tuning(self.collection).list_indexes:  # MongoDB: replicas read the store (docs/replicas.md)
            for name, keys in FACT_INDEXES.items():
                await self.collection.create_index(keys, name=name)
            for collection in self.aggregates.values():
                await collection.create_index(BUCKET_INDEX, name="agency_p")

    async def backfill(self) -> None:
        """Facts written before the aggregates existed (an upgrade): build the buckets once, before
        the consumer starts, and mark them built."""
        meta = self.meta
        if await meta.find_one({"_id": "aggregates", "version": AGGREGATES_VERSION}):
            return
        started, count = time.perf_counter(), 0
        for collection in self.aggregates.values():
            await collection.delete_many({})
        for former in FORMER_AGGREGATES:
            await self.db[named(former, self.generation)].drop()
        batch: list[tuple[None, Document]] = []

        async def flush() -> None:
            for name, ops in bucket_writes(batch).items():
                await self.aggregates[name].bulk_write(ops, ordered=False)

        async for fact in self.collection.find({"received_at": {"$ne": None}}, {"events": 0}):
            batch.append((None, fact))
            if len(batch) == 2000:
                await flush()
                count += len(batch)
                batch = []
        await flush()
        count += len(batch)
        await meta.replace_one({"_id": "aggregates"}, {"_id": "aggregates", "version": AGGREGATES_VERSION}, upsert=True)
        log.info("aggregates built from the facts", extra={"facts": count, "seconds": time.perf_counter() - started})

    async def stop(self) -> None:
        await self.succession.stop()
        await self.gauges.stop()
        await super().stop()

    async def quiesce(self) -> None:
        """Nothing applied or refolded any more; the indicators still answer."""
        await self.succession.stop()
        await super().quiesce()


def get_context(request: Request) -> MetricsContext:
    context: MetricsContext = request.app.state.context
    return context

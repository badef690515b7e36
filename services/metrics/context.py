"""The metrics service's context: the facts projection and the indicator gauges."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import ConsumerRecord
from fastapi import Request
from prometheus_client import Counter

from services.metrics.aggregates import COLLECTIONS, bucket_writes, changes, writes_of
from services.metrics.exposition import IndicatorGauges
from services.metrics.facts import case_facts
from services.metrics.mirror import BucketMirror
from shared.service import ProjectionContext
from shared.settings import Settings
from shared.succession import SuccessionRefold

FACTS_REFOLDED = Counter(
    "tthc_metrics_cases_refolded_total", "Case facts folded again after an agency was dissolved into a successor"
)

log = logging.getLogger(__name__)
# bump when the bucket layout or a counter's meaning changes: the next start rebuilds them
AGGREGATES_VERSION = 7  # 7: holders and transfer counters (ADR 0015); 6: digE (766 4.2)


class MetricsContext(ProjectionContext):
    service = "metrics"
    group_id = "tthc-metrics"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "facts", case_facts, companion=self.aggregate)
        self.aggregates = {name: self.db[f"agg_{name}"] for name in COLLECTIONS}
        self.mirror = BucketMirror(self.aggregates)
        self.consumer.owners.append(self.mirror)  # usable while this process is the only writer
        self.gauges = IndicatorGauges(self)
        self._changes: dict | None = None
        self.projection.attempts = self
        # an agency dissolved into a successor: the cases it concerns folded again
        self.succession = SuccessionRefold("metrics", self, FACTS_REFOLDED)
        # a consumer batch and a re-fold each hand their bucket deltas to `committed` through
        # `_changes`: one at a time, or one would move the copy by the other's deltas (or lose them)
        self._writing = asyncio.Lock()

    def aggregate(self, pairs: list) -> list:
        self._changes = changes(pairs)
        return [(self.aggregates[name], ops) for name, ops in writes_of(self._changes).items()]

    def begin(self) -> None:
        self._changes = None

    def committed(self) -> None:
        """A transaction committed (a batch, or part of one applied apart from a case at fault):
        move the copy by the same deltas."""
        if self._changes:
            self.mirror.applied(self._changes)
        self._changes = None

    async def apply(self, records: list[ConsumerRecord]) -> None:
        async with self._writing:
            await self.mirror.settle()
            self._changes = None
            await self.projection.apply(records)
            self._changes = None

    async def refold(self, codes: list[str]) -> None:
        """Stored facts folded again under the current registry (shared/succession.py),
        written like a batch: facts and bucket deltas in one transaction, the copy moved after."""
        async with self._writing:
            await self.mirror.settle()
            self._changes = None
            await self.projection.refold(codes)
            self._changes = None

    async def find_buckets(
        self, collection: str, query: dict[str, Any], fields: dict[str, int], rollup_days: set[str] | None = None
    ) -> list[dict]:
        """The buckets of a `buckets_queries` query: from memory when the copy is exact (summed per
        month with `rollup_days`, see BucketMirror.find), else the store."""
        if self.mirror.usable:
            return self.mirror.find(collection, query, rollup_days)
        return [b async for b in self.aggregates[collection].find(query, fields)]

    async def start(self) -> None:
        await self.collection.create_index([("received_at", 1)])
        for collection in self.aggregates.values():
            await collection.create_index([("p", 1)])
        await self.backfill()
        await super().start()
        self.gauges.start()
        self.succession.start()

    async def backfill(self) -> None:
        """Facts written before the aggregates existed (an upgrade): build the buckets once, before
        the consumer starts, and mark them built."""
        meta = self.db["meta"]
        if await meta.find_one({"_id": "aggregates", "version": AGGREGATES_VERSION}):
            return
        started, count = time.perf_counter(), 0
        for collection in self.aggregates.values():
            await collection.delete_many({})
        await self.db["agg_c_d"].drop()  # version 3 kept the days in a collection of their own
        batch: list = []

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


def get_context(request: Request) -> MetricsContext:
    context: MetricsContext = request.app.state.context
    return context

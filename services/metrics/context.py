"""The metrics service's context: the facts projection and the indicator gauges."""

from __future__ import annotations

import logging
import time

from fastapi import Request

from services.metrics.aggregates import COLLECTIONS, bucket_writes
from services.metrics.exposition import IndicatorGauges
from services.metrics.facts import case_facts
from shared.service import ProjectionContext
from shared.settings import Settings

log = logging.getLogger(__name__)
AGGREGATES_VERSION = 3  # bump when the bucket layout changes: the next start rebuilds them


class MetricsContext(ProjectionContext):
    service = "metrics"
    group_id = "tthc-metrics"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "facts", case_facts, companion=self.aggregate)
        self.aggregates = {name: self.db[f"agg_{name}"] for name in COLLECTIONS}
        self.gauges = IndicatorGauges(self)

    def aggregate(self, pairs: list) -> list:
        return [(self.aggregates[name], ops) for name, ops in bucket_writes(pairs).items()]

    async def start(self) -> None:
        await self.collection.create_index([("received_at", 1)])
        for collection in self.aggregates.values():
            await collection.create_index([("p", 1)])
        await self.backfill()
        await super().start()
        self.gauges.start()

    async def backfill(self) -> None:
        """Facts written before the aggregates existed (an upgrade): build the buckets once, before
        the consumer starts, and mark them built."""
        meta = self.db["meta"]
        if await meta.find_one({"_id": "aggregates", "version": AGGREGATES_VERSION}):
            return
        started, count = time.perf_counter(), 0
        for collection in self.aggregates.values():
            await collection.delete_many({})
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
        await self.gauges.stop()
        await super().stop()


def get_context(request: Request) -> MetricsContext:
    context: MetricsContext = request.app.state.context
    return context

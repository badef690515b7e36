"""The metrics service's context: the facts projection and its consumer."""

from __future__ import annotations

from aiokafka import ConsumerRecord
from fastapi import Request

from services.metrics.exposition import IndicatorGauges
from services.metrics.facts import case_facts
from shared.kafka import BatchConsumer
from shared.projection import CaseProjection
from shared.service import ServiceContext
from shared.settings import Settings

GROUP_ID = "tthc-metrics"


class MetricsContext(ServiceContext):
    service = "metrics"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.projection = CaseProjection(
            "metrics", self.db.facts, lambda: self.registry, case_facts, self.publisher, settings.dlq_topic
        )
        self.consumer = BatchConsumer(
            bootstrap=settings.kafka_bootstrap,
            topics=[settings.case_events_topic],
            group_id=GROUP_ID,
            handler=self.apply,
            max_records=settings.poll_max_records,
            poll_timeout_ms=settings.poll_timeout_ms,
        )
        self.gauges = IndicatorGauges(self)

    async def apply(self, records: list[ConsumerRecord]) -> None:
        await self.projection.apply(records)

    async def start(self) -> None:
        await self.db.facts.create_index([("received_at", 1)])
        await super().start()
        self.consumer.start()
        self.gauges.start()

    async def stop(self) -> None:
        await self.gauges.stop()
        await self.consumer.stop()
        await super().stop()

    def readiness(self) -> dict:
        return {**super().readiness(), "consumer": self.consumer.ready}


def get_context(request: Request) -> MetricsContext:
    context: MetricsContext = request.app.state.context
    return context

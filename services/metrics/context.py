"""What the metrics service's parts share: settings, store, registry, consumer."""

from __future__ import annotations

from aiokafka import ConsumerRecord
from fastapi import Request

from services.metrics.facts import case_facts
from shared.config import load_registry
from shared.domain.registry import Registry
from shared.kafka import BatchConsumer, Publisher
from shared.projection import CaseProjection
from shared.settings import Settings
from shared.store import mongo_client, service_database
from shared.web import Principal, authenticate

GROUP_ID = "tthc-metrics"


class MetricsContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mongo = mongo_client(settings.mongo_uri)
        self.db = service_database(self.mongo, settings, "metrics")
        self.registry: Registry = load_registry(settings.config_dir)
        self.publisher = Publisher(settings.kafka_bootstrap, client_id="tthc-metrics")
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

    async def apply(self, records: list[ConsumerRecord]) -> None:
        await self.projection.apply(records)

    async def start(self) -> None:
        await self.db.facts.create_index([("received_at", 1)])
        await self.publisher.start()
        self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.publisher.stop()
        self.mongo.close()

    def principal(self, request: Request) -> Principal:
        return authenticate(request, self.settings.admin_token)


def get_context(request: Request) -> MetricsContext:
    context: MetricsContext = request.app.state.context
    return context

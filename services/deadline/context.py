"""The deadline service's context: the case projection and its consumer."""

from __future__ import annotations

from aiokafka import ConsumerRecord
from fastapi import Request

from services.deadline.projection import case_document
from shared.kafka import BatchConsumer
from shared.projection import CaseProjection
from shared.service import ServiceContext
from shared.settings import Settings

GROUP_ID = "tthc-deadline"


class DeadlineContext(ServiceContext):
    service = "deadline"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.projection = CaseProjection(
            "deadline", self.db.cases, lambda: self.registry, case_document, self.publisher, settings.dlq_topic
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
        await self.db.cases.create_index([("status", 1), ("due_at", 1)])
        await self.db.cases.create_index([("agency_code", 1), ("due_at", 1)])
        await super().start()
        self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await super().stop()

    def readiness(self) -> dict:
        return {**super().readiness(), "consumer": self.consumer.ready}


def get_context(request: Request) -> DeadlineContext:
    context: DeadlineContext = request.app.state.context
    return context

"""The deadline service's context: the case projection, the timers, the webhooks, the gauges."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import ConsumerRecord
from fastapi import Request

from services.deadline.gauges import CaseGauges
from services.deadline.open_cases import OpenCaseIndex
from services.deadline.projection import case_document, derived_events
from services.deadline.timers import Sweeper, next_check_at
from services.deadline.webhooks import WebhookDispatcher
from shared.domain.fold import CaseState
from shared.service import ProjectionContext
from shared.settings import Settings


class DeadlineContext(ProjectionContext):
    service = "deadline"
    group_id = "tthc-deadline"

    def __init__(self, settings: Settings, collection: str = "cases") -> None:
        self.due_soon_seconds = round(settings.due_soon_working_hours * 3600)
        super().__init__(settings, collection, self.to_document, derive=derived_events)
        self.cases = self.collection
        self.open_cases = OpenCaseIndex(self.cases)
        self.consumer.ownership = self.open_cases  # usable while this process is the only writer
        self.sweeper = Sweeper(self, settings.timer_interval_s)
        self.webhooks = WebhookDispatcher(self)
        self.gauges = CaseGauges(self)

    def to_document(
        self, state: CaseState, events: list[dict[str, Any]], previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        document = case_document(state, events, previous)
        probe = {**document, "_id": state.case_code, "emitted": (previous or {}).get("emitted", [])}
        calendar = self.registry.calendar_for(state.agency_code)
        document["next_check_at"] = next_check_at(probe, calendar, self.due_soon_seconds)
        return document

    async def apply(self, records: list[ConsumerRecord]) -> None:
        result = await self.projection.apply(records)
        self.open_cases.written(result.written)
        self.open_cases.ensure_loading()  # after a load that failed
        if result.derived:
            await self.publish_derived(result.derived)  # before the consumer commits

    async def publish_derived(self, events: list[dict[str, Any]]) -> None:
        messages = [(e["case_code"].encode(), json.dumps(e, ensure_ascii=False, default=str).encode()) for e in events]
        await self.publisher.publish(self.settings.deadline_events_topic, messages, timeout=30)
        await self.webhooks.enqueue(events)

    async def start(self) -> None:
        await self.cases.create_index([("next_check_at", 1)])
        await self.cases.create_index([("open", 1), ("due_at", 1)])
        # no (agency_code, due_at) index any more: the lists read the in-memory open cases (ADR 0008),
        # and every index costs each upsert; stores made before keep theirs, unused but harmless
        await super().start()
        self.sweeper.start()
        self.webhooks.start()
        self.gauges.start()

    async def stop(self) -> None:
        await self.gauges.stop()
        await self.webhooks.stop()
        await self.sweeper.stop()
        await super().stop()


def get_context(request: Request) -> DeadlineContext:
    context: DeadlineContext = request.app.state.context
    return context

"""The deadline service's context: the case projection, the timers, the webhooks, the gauges."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import ConsumerRecord
from fastapi import Request
from motor.motor_asyncio import AsyncIOMotorCollection

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
        await ensure_case_indexes(self.cases)
        await super().start()
        self.sweeper.start()
        self.webhooks.start()
        self.gauges.start()

    async def stop(self) -> None:
        await self.gauges.stop()
        await self.webhooks.stop()
        await self.sweeper.stop()
        await super().stop()


# One secondary index: open cases by their next timer. The sweeper reads its range (open, due
# now), the open-case index loads its prefix (open). Every index costs each case write on this
# store (its catalogue is read per write: two indexes took 40 % off bare upserts, one 25 %), so the
# ones earlier versions made are dropped; the lists read the in-memory open cases (ADR 0008, 0009).
CASE_INDEX = [("open", 1), ("next_check_at", 1)]
OBSOLETE_INDEXES = ("next_check_at_1", "open_1_due_at_1", "agency_code_1_due_at_1")


async def ensure_case_indexes(cases: AsyncIOMotorCollection) -> None:
    await cases.create_index(CASE_INDEX)
    existing = await cases.index_information()
    for name in OBSOLETE_INDEXES:
        if name in existing:
            await cases.drop_index(name)


def get_context(request: Request) -> DeadlineContext:
    context: DeadlineContext = request.app.state.context
    return context

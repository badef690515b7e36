"""The deadline service's context: the case projection, the timers, the webhooks, the gauges."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from fastapi import Request
from motor.motor_asyncio import AsyncIOMotorCollection
from prometheus_client import Counter
from pymongo import UpdateOne

from services.deadline.gauges import CaseGauges
from services.deadline.open_cases import OpenCaseIndex
from services.deadline.projection import case_document, derived_events
from services.deadline.timers import TIMER_INDEX, Sweeper, timer_inputs, timer_writes
from services.deadline.webhooks import WebhookDispatcher
from shared.domain.fold import CaseState
from shared.projection import OtherWrites, Staged
from shared.service import ProjectionContext
from shared.settings import Settings
from shared.succession import SuccessionRefold

CASES_REFOLDED = Counter(
    "tthc_deadline_cases_refolded_total", "Cases folded again after an agency was dissolved into a successor"
)


class DeadlineContext(ProjectionContext):
    service = "deadline"
    group_id = "tthc-deadline"

    def __init__(self, settings: Settings, collection: str = "cases") -> None:
        self.due_soon_seconds = round(settings.due_soon_working_hours * 3600)
        self.apology_due_seconds = round(settings.apology_due_working_hours * 3600)
        super().__init__(
            settings, collection, self.to_document, derive=derived_events, prelude=self.arm_timers, keep=is_open
        )
        self.cases = self.collection
        self.timers = self.db[f"{collection}_timers"]
        self.open_cases = OpenCaseIndex(self.cases)
        self.consumer.owners.append(self.open_cases)  # usable while this process is the only writer
        self.sweeper = Sweeper(self, settings.timer_interval_s)
        self.webhooks = WebhookDispatcher(self)
        self.gauges = CaseGauges(self)
        # an agency dissolved into a successor: the cases it concerns folded again
        self.succession = SuccessionRefold("deadline", self, CASES_REFOLDED)
        self._writing = asyncio.Lock()  # a batch and a refold: one at a time (`projection.landed`)

    def to_document(
        self, state: CaseState, events: list[dict[str, Any]], previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        return case_document(state, events, previous)

    def arm_timers(self, staged: Staged) -> OtherWrites:
        """The timers of a chunk's cases whose timing changed, written before the cases (ADR 0011)."""
        writes = timer_writes(
            staged, self.registry.calendar_for, self.due_soon_seconds, datetime.now(UTC), self.apology_due_seconds
        )
        return [(self.timers, writes)]

    async def apply(self, records: list[ConsumerRecord]) -> None:
        """A consumer batch: each chunk's cases go into the open-case index and its derived events
        are published as soon as its write lands, while the next chunk is written (they were the
        batch's tail, with the store idle); all published before the consumer commits."""
        await self._landing(lambda: self.projection.apply(records))

    async def refold(self, codes: list[str]) -> None:
        """Stored cases folded again (shared/succession.py), written like a batch."""
        await self._landing(lambda: self.projection.refold(codes))

    async def _landing(self, write: Callable[[], Awaitable[object]]) -> None:
        async with self._writing:
            await self._landing_alone(write)

    async def _landing_alone(self, write: Callable[[], Awaitable[object]]) -> None:
        publishing: list[asyncio.Future[None]] = []

        def landed(written: list[tuple[str, dict[str, Any]]], derived: list[dict[str, Any]]) -> None:
            self.open_cases.written(written)
            if derived:
                publishing.append(asyncio.ensure_future(self.publish_derived(derived)))

        self.projection.landed = landed
        try:
            await write()
        finally:
            self.projection.landed = None
            outcomes = await asyncio.gather(*publishing, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # not committed: the batch comes again
        self.open_cases.ensure_loading()  # after a load that failed

    async def publish_derived(self, events: list[dict[str, Any]]) -> None:
        messages = [(e["case_code"].encode(), json.dumps(e, ensure_ascii=False, default=str).encode()) for e in events]
        await self.publisher.publish(self.settings.deadline_events_topic, messages, timeout=30)
        await self.webhooks.enqueue(events)

    async def start(self) -> None:
        await ensure_case_indexes(self.cases, self.timers)
        await super().start()
        self.sweeper.start()
        self.webhooks.start()
        self.gauges.start()
        self.succession.start()

    async def stop(self) -> None:
        await self.succession.stop()
        await self.gauges.stop()
        await self.webhooks.stop()
        await self.sweeper.stop()
        await super().stop()


def is_open(document: dict[str, Any]) -> bool:
    """The cases whose documents the projection keeps in memory: an ended case rarely hears more."""
    return bool(document.get("open"))


# No secondary index on the cases: every index costs each case write on this store (its catalogue
# is read per write: two indexes took 40 % off bare upserts, one 25 %). The timers have theirs (the
# sweeper reads its range); the lists read the in-memory open cases (ADR 0008, 0009, 0011).
OBSOLETE_INDEXES = ("next_check_at_1", "open_1_due_at_1", "agency_code_1_due_at_1", "open_1_next_check_at_1")
LEGACY_TIMER_INDEX = "open_1_next_check_at_1"  # timers kept on the case documents, before ADR 0011


async def ensure_case_indexes(cases: AsyncIOMotorCollection, timers: AsyncIOMotorCollection) -> None:
    await timers.create_index(TIMER_INDEX)
    existing = await cases.index_information()
    if LEGACY_TIMER_INDEX in existing:
        await move_legacy_timers(cases, timers)
    for name in OBSOLETE_INDEXES:
        if name in existing:
            await cases.drop_index(name)


async def move_legacy_timers(cases: AsyncIOMotorCollection, timers: AsyncIOMotorCollection) -> None:
    """Timers kept on the case documents (before ADR 0011) move to their own collection, marks
    and all, once: the cases' index is dropped after, so a restart does not move them again."""
    batch: list[UpdateOne] = []
    async for case in cases.find({"open": True}, {"events": 0, "timeline": 0}):
        timer = {
            "next_check_at": case.get("next_check_at"),
            "inputs": timer_inputs(case),
            "armed_at": datetime.now(UTC),
            "emitted": case.get("emitted", []),
        }
        batch.append(UpdateOne({"_id": case["_id"]}, {"$setOnInsert": timer}, upsert=True))
        if len(batch) == 1000:
            await timers.bulk_write(batch, ordered=False)
            batch = []
    if batch:
        await timers.bulk_write(batch, ordered=False)


def get_context(request: Request) -> DeadlineContext:
    context: DeadlineContext = request.app.state.context
    return context

"""The deadline service's context: the case projection, the timers, the webhooks, the gauges."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from fastapi import Request
from prometheus_client import Counter
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from services.deadline.gauges import CaseGauges
from services.deadline.open_cases import OpenCaseIndex
from services.deadline.projection import DeadlinePort
from services.deadline.timers import TIMER_INDEX, Sweeper, timer_inputs
from services.deadline.webhooks import WebhookDispatcher
from shared.generations import FIRST
from shared.projection import ProjectionRun
from shared.service import ProjectionContext
from shared.settings import Settings
from shared.store import Document, store_tuning
from shared.succession import SuccessionRefold

CASES_REFOLDED = Counter(
    "tthc_deadline_cases_refolded_total", "Cases folded again after an agency was dissolved into a successor"
)


class DeadlineContext(ProjectionContext[None]):
    service = "deadline"
    group_id = "tthc-deadline"

    def __init__(
        self, settings: Settings, collection: str = "cases", replay: bool = False, generation: int = FIRST
    ) -> None:
        """`replay`: a rebuild's projection, which publishes no derived events and dead-letters
        nothing again (services/deadline/rebuild.py). `generation`: whose collections and
        consumer group (shared/generations.py)."""
        super().__init__(settings, collection, keep=is_open, generation=generation)
        self.due_soon_seconds = round(settings.due_soon_working_hours * 3600)
        self.apology_due_seconds = round(settings.apology_due_working_hours * 3600)
        self.cases = self.collection
        self.timers = self.db[f"{self.collection.name}_timers"]
        self.open_cases = OpenCaseIndex(self.cases)

        def port(derives: bool) -> DeadlinePort:
            return DeadlinePort(
                self.timers, lambda: self.registry, self.due_soon_seconds, self.apology_due_seconds, derives=derives
            )

        self.port = port(not replay)
        # the open-case index is usable while this process is the only writer
        self.project(self.port, owners=[self.open_cases], dead_letters=not replay, quiet_port=port(False))
        self.sweeper = Sweeper(self, settings.timer_interval_s)
        self.webhooks = WebhookDispatcher(settings, self.db["webhook_deliveries"], self.registry_state)
        self.gauges = CaseGauges(self)
        # an agency dissolved into a successor: the cases it concerns folded again
        self.succession = SuccessionRefold("deadline", self, CASES_REFOLDED)
        # a batch and a re-fold one at a time, publications included: a case's derived events in order
        self._writing = asyncio.Lock()

    async def apply(self, records: list[ConsumerRecord]) -> None:
        """A consumer batch: each chunk's cases go into the open-case index and its derived events
        are published as soon as its write lands, while the next chunk is written; all published
        before the consumer commits. After a switch, the records the previous generation already
        derived from are applied first, deriving nothing (ADR 0020)."""
        quiet, records = self.split_quiet(records)
        if quiet:
            await self._index_and_publish(self.quiet_projection.applying(quiet))
        if records:
            await self._index_and_publish(self.projection.applying(records))

    async def refold(self, codes: list[str]) -> None:
        """Stored cases folded again (shared/succession.py), written like a batch."""
        await self.open_cases.forget_snapshot()  # these writes come from no record of the log
        await self.documents_snapshot.forget()
        await self._index_and_publish(self.projection.refolding(codes))

    async def _index_and_publish(self, run: ProjectionRun[None]) -> None:
        async with self._writing:
            await self._index_and_publish_alone(run)

    async def _index_and_publish_alone(self, run: ProjectionRun[None]) -> None:
        publishing: list[asyncio.Future[None]] = []
        try:
            async with contextlib.aclosing(run):
                async for landed in run:
                    self.open_cases.written(landed.written)
                    if landed.derived:
                        publishing.append(asyncio.ensure_future(self.publish_derived(landed.derived)))
        except BaseException:
            self.open_cases.discard()  # a chunk may have landed in part: the index may miss some of it
            raise
        finally:
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
        await self.webhooks.ensure_indexes()
        await super().start()
        self.sweeper.start()
        self.webhooks.start()
        self.gauges.start()
        self.succession.start()

    async def stop(self) -> None:
        await self.succession.stop()  # first: a refold writes cases the snapshots would lack
        # side by side, within the stop grace (deploy/local/infra.py STOP_GRACE_S): the consumer
        # applies and commits the batch in hand and saves the snapshots (it waits on none of these)
        await asyncio.gather(self.gauges.stop(), self.webhooks.stop(), self.sweeper.stop(), self.consumer.stop())
        await super().stop()

    async def before_leaving(self, offsets: Mapping[str, int | None]) -> None:
        await self.open_cases.save(offsets)  # the lists' first
        await super().before_leaving(offsets)

    async def quiesce(self) -> None:
        """Nothing applied, swept, refolded or delivered any more; the lists and cases still answer."""
        await self.succession.stop()
        await self.sweeper.stop()
        await super().quiesce()
        await self.webhooks.stop()

    async def inherit(self, previous: ProjectionContext[Any]) -> None:
        """The marks of the transitions the previous generation published: a transition whose
        event id is marked is not published again (a case whose due instant the new rule moved
        has new ids, published once)."""
        if isinstance(previous, DeadlineContext):
            await copy_marks(previous.timers, self.timers)


async def copy_marks(source: AsyncCollection[Document], target: AsyncCollection[Document]) -> int:
    """Add each timer's marks in `source` to the same case's timer in `target` (created, unarmed,
    for a case without one: a later arming keeps them)."""
    batch: list[UpdateOne] = []
    copied = 0
    async for timer in source.find({"emitted.0": {"$exists": True}}, {"emitted": 1}):
        batch.append(
            UpdateOne({"_id": timer["_id"]}, {"$addToSet": {"emitted": {"$each": timer["emitted"]}}}, upsert=True)
        )
        if len(batch) == 1000:
            await target.bulk_write(batch, ordered=False)
            copied, batch = copied + len(batch), []
    if batch:
        await target.bulk_write(batch, ordered=False)
    return copied + len(batch)


def is_open(document: dict[str, Any]) -> bool:
    """The cases whose documents the projection keeps in memory: an ended case rarely hears more."""
    return bool(document.get("open"))


# On the stand-in, no secondary index on the cases: every index costs each case write there (ADR
# 0009) and its planner scans a list query anyway; the lists read the in-memory open cases (ADR
# 0008). On MongoDB, where replicas answer lists from the store (docs/replicas.md), the open cases
# of a scope in due order: the `end_at: null` branch of a list's filter pins `end_at`, so a scan
# walks the open cases only, never the closed history; `(due_at, _id)` is the lists' sort and cursor.
LIST_INDEXES: dict[str, list[tuple[str, int]]] = {
    "list_due": [("end_at", 1), ("due_at", 1), ("_id", 1)],  # province-wide lists (no agency filter)
    "list_agency_due": [("agency_code", 1), ("end_at", 1), ("due_at", 1), ("_id", 1)],  # an agency's subtree
    "open_cases": [("open", 1)],  # the gauges' aggregation and the open-case index's load
}
OBSOLETE_INDEXES = ("next_check_at_1", "open_1_due_at_1", "agency_code_1_due_at_1", "open_1_next_check_at_1")
LEGACY_TIMER_INDEX = "open_1_next_check_at_1"  # the index of timers kept on the case documents


async def ensure_case_indexes(cases: AsyncCollection[Document], timers: AsyncCollection[Document]) -> None:
    await timers.create_index(TIMER_INDEX)
    existing = await cases.index_information()
    if LEGACY_TIMER_INDEX in existing:
        await move_legacy_timers(cases, timers)
    for name in OBSOLETE_INDEXES:
        if name in existing:
            await cases.drop_index(name)
    await ensure_list_indexes(cases, existing)


async def ensure_list_indexes(cases: AsyncCollection[Document], existing: Mapping[str, Any]) -> None:
    """The list indexes on MongoDB; none on the stand-in (dropped if a store changed profile)."""
    if store_tuning(cases).list_indexes:
        for name, keys in LIST_INDEXES.items():
            await cases.create_index(keys, name=name)
    else:
        for name in LIST_INDEXES:
            if name in existing:
                await cases.drop_index(name)


async def move_legacy_timers(cases: AsyncCollection[Document], timers: AsyncCollection[Document]) -> None:
    """Timers kept on the case documents (a store written by an older release) move to their own
    collection, marks and all, once: the cases' index is dropped after, so a restart does not move
    them again (ADR 0011)."""
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

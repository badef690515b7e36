"""Prometheus gauges of the case population, refreshed every few seconds from the in-memory open
cases (ADR 0008), or by one aggregation over the store when another member also writes cases (not
while this process loads the index: the gauges keep their last values for those seconds).

Labels are agency and level only (a province has tens of agencies, never case codes); every known
agency's series exists from the start, at 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from prometheus_client import Gauge
from pymongo.asynchronous.collection import AsyncCollection

from services.deadline.apology_due_query import apology_due_expression
from services.deadline.open_cases import OpenCaseIndex
from services.deadline.timers import Sweeper
from shared.domain.registry import Registry
from shared.kafka import topic_partitions
from shared.periodic import Periodic
from shared.settings import Settings
from shared.store import Document

log = logging.getLogger(__name__)

OPEN = Gauge("tthc_cases_open", "Cases received and not finished", ["agency", "level"])
OVERDUE = Gauge(
    "tthc_cases_overdue",
    "Open cases counted overdue (past due; a case waiting for the citizen is judged at its request)",
    ["agency", "level"],
)
DUE_SOON = Gauge("tthc_cases_due_soon", "Open cases due within the due-soon working time", ["agency", "level"])
APOLOGY_MISSING = Gauge(
    "tthc_cases_apology_missing",
    "Open cases past their apology deadline (one working day before due) with no apology",
    ["agency", "level"],
)
APOLOGY_DUE_SOON = Gauge(
    "tthc_cases_apology_due_soon",
    "Open cases with no apology whose apology deadline is within the apology-due working time, or passed "
    "while due has not (GET /v1/cases/apology-due)",
    ["agency", "level"],
)
DLQ_MESSAGES = Gauge("tthc_dlq_messages", "Records on the dead-letter topic", ["topic"])
SWEEP_SECONDS = Gauge("tthc_timer_sweep_duration_seconds", "Duration of the last timer sweep")
GAUGES = (OPEN, OVERDUE, DUE_SOON, APOLOGY_MISSING, APOLOGY_DUE_SOON)
KINDS = ("open", "overdue", "soon", "missing", "apology_due")


# The fold's `overdue_from`; a document written before it existed has no such field (a missing
# field is neither null nor a date to $ne/$lt): it counts from due unless its clock is stopped, as
# the in-memory index judges it (open_cases._overdue_from).
OVERDUE_FROM = {
    "$ifNull": [
        "$overdue_from",
        {"$cond": [{"$eq": [{"$ifNull": ["$clock_stopped_since", None]}, None]}, "$due_at", None]},
    ]
}


class CasePopulation(Protocol):
    """What the gauges read: the registry and thresholds, the in-memory open cases or else the
    store's, the sweeper's last duration, and where the dead-letter topic is."""

    settings: Settings
    due_soon_seconds: int
    apology_due_seconds: int
    open_cases: OpenCaseIndex
    cases: AsyncCollection[Document]
    sweeper: Sweeper

    @property
    def registry(self) -> Registry: ...


class CaseGauges:
    def __init__(self, context: CasePopulation, interval_s: float = 10.0) -> None:
        self.context = context
        self.interval_s = interval_s
        self.periodic = Periodic("case-gauges", interval_s, self.refresh_all)
        self._offsets: AIOKafkaConsumer | None = None  # one long-lived client for the DLQ's offsets

    def start(self) -> None:
        self.periodic.start()

    async def stop(self) -> None:
        await self.periodic.stop(15)
        if self._offsets is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._offsets.stop(), 5)

    async def refresh_all(self) -> None:
        await self.refresh(datetime.now(UTC))
        await self.refresh_dlq()

    async def refresh(self, now: datetime) -> None:
        registry = self.context.registry
        calendar = registry.calendar_for(None)
        horizon = calendar.add_working_time(now, self.context.due_soon_seconds)
        apology_horizon = calendar.add_working_time(now, self.context.apology_due_seconds)
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for known in registry.agencies.values():
            counts[(known.code, known.level.value)] = dict.fromkeys(KINDS, 0)
        index = self.context.open_cases
        if index.usable:  # from the in-memory open cases (ADR 0008): no scan of the store at each refresh
            counts.update(index.tallies(now, horizon, apology_horizon))
        elif index.loading or index.unassigned:
            # the index is being loaded from the store, or may be as soon as the consumer has its
            # partitions (right after a start): a scan of every case now would compete with that
            # load (on a large store neither would finish); keep the last values
            return
        else:
            async for row in await self.context.cases.aggregate(self.pipeline(now, horizon, apology_horizon)):
                key = (row["_id"].get("agency") or "unknown", row["_id"].get("level") or "unknown")
                counts[key] = {k: row[k] for k in KINDS}
        for (agency, level), values in counts.items():
            OPEN.labels(agency, level).set(values["open"])
            OVERDUE.labels(agency, level).set(values["overdue"])
            DUE_SOON.labels(agency, level).set(values["soon"])
            APOLOGY_MISSING.labels(agency, level).set(values["missing"])
            APOLOGY_DUE_SOON.labels(agency, level).set(values["apology_due"])
        SWEEP_SECONDS.set(self.context.sweeper.last_sweep_seconds)

    @staticmethod
    def pipeline(now: datetime, horizon: datetime, apology_horizon: datetime) -> list[dict[str, Any]]:
        """The open cases' counts per agency and level, as the in-memory index tallies them."""
        return [
            {"$match": {"open": True}},
            {
                "$group": {
                    "_id": {"agency": "$agency_code", "level": "$level"},
                    "open": {"$sum": 1},
                    "overdue": _count(_overdue(now)),
                    "soon": _count(_due_soon(now, horizon)),
                    "missing": _count(_apology_missing(now)),
                    "apology_due": _count(apology_due_expression(now, apology_horizon)),
                }
            },
        ]

    async def refresh_dlq(self) -> None:
        topic = self.context.settings.dlq_topic
        if self._offsets is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.context.settings.kafka_bootstrap, group_id=None)
            await consumer.start()
            self._offsets = consumer
        partitions = await topic_partitions(self._offsets, topic)
        if partitions:
            starts = await self._offsets.beginning_offsets(partitions)
            ends = await self._offsets.end_offsets(partitions)
            DLQ_MESSAGES.labels(topic).set(sum(ends[tp] - starts[tp] for tp in partitions))


def _count(condition: dict[str, Any]) -> dict[str, Any]:
    return {"$sum": {"$cond": [condition, 1, 0]}}


def _overdue(now: datetime) -> dict[str, Any]:
    # the fold's overdue_from (S-766DOC 2.1); null sorts before dates
    return {"$and": [{"$ne": [OVERDUE_FROM, None]}, {"$lt": [OVERDUE_FROM, now]}]}


def _due_soon(now: datetime, horizon: datetime) -> dict[str, Any]:
    return {
        "$and": [
            {"$gte": ["$due_at", now]},
            {"$lte": ["$due_at", horizon]},
            {"$eq": ["$clock_stopped_since", None]},
        ]
    }


def _apology_missing(now: datetime) -> dict[str, Any]:
    return {
        "$and": [
            {"$ne": ["$apology_deadline_at", None]},  # null sorts before dates
            {"$lt": ["$apology_deadline_at", now]},
            {"$eq": ["$apology", None]},
        ]
    }

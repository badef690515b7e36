"""Quarantined cases: a record a projection cannot fold or write stops its own case, nothing else.

Contract v1.1 ("Nothing stops the pipeline"): the record goes to the dead-letter topic with the
reason and the exception's class, its case is marked (one small document per case, beside the
projection's collection), the rest of the batch is applied and committed. An operator reads the
marks (`GET /v1/admin/quarantine`) and, once the cause is mended (a registry entry, a new version
of the service), retries a case: its quarantined records are read back from the log at their
offsets and published again, unchanged, so whichever replica holds the case's partition folds them
like any other record; the projections dedupe them on (source, event_id) if they were applied.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from fastapi import APIRouter, Query, Request
from prometheus_client import Counter, Gauge
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from shared.kafka import Publisher
from shared.settings import Settings
from shared.store import Document
from shared.web import ApiError, Principal, error_responses

log = logging.getLogger(__name__)

QUARANTINED_CASES = Gauge("tthc_quarantined_cases", "Cases with records a projection could not apply", ["projection"])
RECORDS_QUARANTINED = Counter(
    "tthc_projection_records_quarantined_total", "Records a projection could not fold or write", ["projection"]
)
RECORDS_KEPT_PER_CASE = 100  # the latest quarantined records' positions a mark keeps
DLQ_VALUE_MAX_BYTES = 256 * 1024  # a dead letter carries at most this much of the record's value


@dataclass(frozen=True)
class Poison:
    """One record that could not be applied, and why."""

    record: ConsumerRecord
    reason: str
    exception: str  # the exception's class name
    case_code: str | None = None  # None when the record names no case (undecodable, no key)
    event: dict[str, Any] | None = None  # the decoded event, when it decoded


def poison_of(record: ConsumerRecord, exc: BaseException, reason: str | None = None, **known: Any) -> Poison:
    return Poison(record, (reason or f"{type(exc).__name__}: {exc}")[:2000], type(exc).__name__, **known)


def dead_letter(projection: str, poison: Poison) -> tuple[bytes, bytes]:
    record = poison.record
    value = record.value or b""
    envelope = {
        "projection": projection,
        "reason": poison.reason,
        "exception": poison.exception,
        "case_code": poison.case_code,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode("utf-8", "replace") if record.key else None,
        "value": value[:DLQ_VALUE_MAX_BYTES].decode("utf-8", "replace"),
        "value_truncated": len(value) > DLQ_VALUE_MAX_BYTES,
        "headers": {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())},
    }
    key = f"{record.topic}:{record.partition}:{record.offset}".encode()
    return key, json.dumps(envelope, ensure_ascii=False, default=str).encode()


class Quarantine:
    """The marks of one projection's quarantined cases and the dead letters that go with them."""

    def __init__(
        self, projection: str, marks: AsyncCollection[Document], dead_letters: Publisher | None, dlq_topic: str
    ) -> None:
        self.projection = projection
        self.marks = marks
        self.dead_letters = dead_letters  # None in a replay: the live consumer sent them already
        self.dlq_topic = dlq_topic

    async def hold(self, poisons: Sequence[Poison]) -> None:
        """Dead-letter the records and mark their cases; raises if either did not land (the batch is
        then not committed, and comes again)."""
        if not poisons:
            return
        if self.dead_letters is not None:
            messages = [dead_letter(self.projection, p) for p in poisons]
            await self.dead_letters.publish(self.dlq_topic, messages, timeout=30)
        now = datetime.now(UTC)
        by_case: dict[str, list[Poison]] = {}
        for poison in poisons:
            if poison.case_code:
                by_case.setdefault(poison.case_code, []).append(poison)
        writes = [self._mark(code, items, now) for code, items in by_case.items()]
        if writes:
            await self.marks.bulk_write(writes, ordered=False)
        RECORDS_QUARANTINED.labels(self.projection).inc(len(poisons))
        log.warning(
            "records quarantined",
            extra={
                "projection": self.projection,
                "records": len(poisons),
                "cases": sorted(by_case)[:20],
                "reason": poisons[0].reason[:300],
            },
        )
        await self.refresh()

    def _mark(self, case_code: str, items: list[Poison], now: datetime) -> UpdateOne:
        last = items[-1]
        agency = next((p.event.get("agency_code") for p in items if p.event), None)
        positions = [
            {
                "topic": p.record.topic,
                "partition": p.record.partition,
                "offset": p.record.offset,
                "event_id": (p.event or {}).get("event_id"),
                "type": (p.event or {}).get("type"),
                "reason": p.reason,
                "exception": p.exception,
                "at": now,
            }
            for p in items
        ]
        fields: dict[str, Any] = {"reason": last.reason, "exception": last.exception, "updated_at": now}
        if agency:
            fields["agency_code"] = agency
        return UpdateOne(
            {"_id": case_code},
            {
                "$set": fields,
                "$setOnInsert": {"since": now},
                "$push": {"records": {"$each": positions, "$slice": -RECORDS_KEPT_PER_CASE}},
            },
            upsert=True,
        )

    async def refresh(self) -> int:
        count = await self.marks.count_documents({})
        QUARANTINED_CASES.labels(self.projection).set(count)
        return count

    async def get(self, case_code: str) -> dict[str, Any] | None:
        return await self.marks.find_one({"_id": case_code})

    async def listing(self, limit: int, after: str | None = None) -> list[dict[str, Any]]:
        query = {"_id": {"$gt": after}} if after else {}
        return [m async for m in self.marks.find(query, {"records": {"$slice": -5}}).sort("_id", 1).limit(limit)]

    async def requeue(self, case_code: str, bootstrap: str, publisher: Publisher) -> int:
        """The case's quarantined records, read back from the log and published again; the mark is
        lifted first, so a record that fails again marks the case anew."""
        mark = await self.get(case_code)
        if mark is None:
            raise ApiError(404, f"case {case_code!r} is not quarantined", code="not_quarantined")
        positions = {(r["topic"], r["partition"], r["offset"]) for r in mark.get("records", [])}
        records = await read_records(bootstrap, sorted(positions))
        if not records:
            raise ApiError(
                409,
                f"the quarantined records of {case_code!r} are no longer in the log",
                code="records_gone",
            )
        # only the mark as read: one a batch extended meanwhile stays (its new records are not requeued)
        await self.marks.delete_one({"_id": case_code, "updated_at": mark["updated_at"]})
        by_headers: dict[tuple[tuple[str, bytes], ...], list[tuple[bytes, bytes]]] = {}
        for record in records:
            headers = tuple(record.headers or ())
            by_headers.setdefault(headers, []).append((record.key or case_code.encode(), record.value or b""))
        for headers, messages in by_headers.items():
            await publisher.publish(records[0].topic, messages, timeout=30, headers=list(headers))
        log.info("quarantined records published again", extra={"case_code": case_code, "records": len(records)})
        await self.refresh()
        return len(records)


async def read_records(
    bootstrap: str, positions: Sequence[tuple[str, int, int]], timeout_s: float = 10.0
) -> list[ConsumerRecord]:
    """The records at these (topic, partition, offset) positions that the log still holds."""
    if not positions:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found = []
    try:
        for topic, partition, offset in positions:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            try:
                async with asyncio.timeout(timeout_s):
                    while True:
                        record = await consumer.getone(tp)
                        if record.offset >= offset:
                            break
            except TimeoutError:
                continue
            if record.offset == offset:
                found.append(record)
    finally:
        await consumer.stop()
    return found


# ---- admin routes (deadline and metrics) -----------------------------------------------------

router = APIRouter(tags=["quarantine"])


class QuarantineHolder(Protocol):
    """What the quarantine routes need of a projection service's context."""

    quarantine: Quarantine
    settings: Settings
    publisher: Publisher

    def require_admin(self, request: Request) -> Principal: ...


def _context(request: Request) -> QuarantineHolder:
    context: QuarantineHolder = request.app.state.context
    context.require_admin(request)
    return context


def _public(mark: dict[str, Any]) -> dict[str, Any]:
    return {
        "case_code": mark["_id"],
        "agency_code": mark.get("agency_code"),
        "reason": mark.get("reason"),
        "exception": mark.get("exception"),
        "since": mark.get("since"),
        "updated_at": mark.get("updated_at"),
        "records": [
            {k: r.get(k) for k in ("partition", "offset", "event_id", "type", "reason", "exception")}
            for r in mark.get("records", [])
        ],
    }


@router.get(
    "/v1/admin/quarantine",
    summary="Cases with records this projection could not apply (admin)",
    responses=error_responses(401, 403, 422),
)
async def list_quarantine(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=64, description="the last case_code of the previous page"),
) -> dict[str, Any]:
    context = _context(request)
    marks = await context.quarantine.listing(limit, cursor)
    total = await context.quarantine.refresh()
    items = [_public(m) for m in marks]
    return {
        "projection": context.quarantine.projection,
        "total": total,
        "items": items,
        "next_cursor": items[-1]["case_code"] if len(items) == limit else None,
    }


@router.post(
    "/v1/admin/quarantine/{case_code}/retry",
    status_code=202,
    summary="Fold a quarantined case again from the log (admin)",
    responses=error_responses(401, 403, 404, 409, 503),
)
async def retry_quarantined(case_code: str, request: Request) -> dict[str, Any]:
    context = _context(request)
    try:
        count = await context.quarantine.requeue(case_code, context.settings.kafka_bootstrap, context.publisher)
    except ApiError:
        raise
    except Exception as exc:  # the broker or the store is away: retry later
        log.warning("quarantine retry failed", extra={"case_code": case_code, "error": repr(exc)})
        raise ApiError(
            503, "the broker or the store is unavailable; retry later", headers={"Retry-After": "5"}
        ) from exc
    return {"case_code": case_code, "requeued": count}

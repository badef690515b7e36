"""Webhooks: the source system and the agency at fault hear of due-soon, apology-required, overdue.

Each delivery has an idempotency key (the derived event id and the target), is stored before it is
sent (the delivery log ops can query), is signed (HMAC-SHA256 of the body with TTHC_WEBHOOK_SECRET,
header X-TTHC-Signature: sha256=<hex>), and is retried with exponential backoff until it succeeds
or runs out of attempts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import APIRouter, Query, Request
from prometheus_client import Counter
from pymongo.errors import BulkWriteError

from shared.domain.codes import DerivedEventType
from shared.periodic import Periodic

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

NOTIFIED = {DerivedEventType.DUE_SOON.value, DerivedEventType.APOLOGY_REQUIRED.value, DerivedEventType.OVERDUE.value}
DELIVERIES = Counter("tthc_webhook_deliveries_total", "Webhook delivery attempts", ["outcome"])


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDispatcher:
    def __init__(self, context: Any, poll_s: float = 1.0) -> None:
        self.context = context
        self.poll_s = poll_s
        self.client: httpx.AsyncClient | None = None
        self.periodic = Periodic("webhooks", poll_s, self._round)

    @property
    def log(self) -> Any:
        return self.context.db.webhook_deliveries

    def targets(self, event: dict[str, Any]) -> list[tuple[str, str]]:
        """(kind, url) of everyone to notify of this event."""
        registry_state = self.context.registry_state
        out = []
        fault = event["data"].get("agency_at_fault") or event.get("agency_code")
        agency = registry_state.registry.agencies.get(fault)
        if agency is not None and agency.webhook_url:
            out.append((f"agency:{agency.code}", agency.webhook_url))
        source = event["data"].get("source")
        credential = registry_state.credential_named(source) if source else None
        if credential is not None and credential.webhook_url:
            out.append((f"source:{credential.name}", credential.webhook_url))
        return out

    async def enqueue(self, events: list[dict[str, Any]]) -> int:
        now = datetime.now(UTC)
        documents = []
        for event in events:
            if event["type"] not in NOTIFIED:
                continue
            for target, url in self.targets(event):
                key = hashlib.sha256(f"{event['event_id']}|{target}|{url}".encode()).hexdigest()[:32]
                documents.append(
                    {
                        "_id": key,
                        "event_id": event["event_id"],
                        "case_code": event["case_code"],
                        "type": event["type"],
                        "target": target,
                        "url": url,
                        "body": json.dumps(event, ensure_ascii=False, default=str),
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                        "last_error": None,
                    }
                )
        if not documents:
            return 0
        try:
            await self.log.insert_many(documents, ordered=False)
        except BulkWriteError:
            pass  # the same delivery was queued before (a replay): the key makes it once
        return len(documents)

    def start(self) -> None:
        self.client = httpx.AsyncClient(timeout=self.context.settings.webhook_timeout_s)
        self.periodic.start()

    async def stop(self) -> None:
        await self.periodic.stop(15)
        if self.client is not None:
            await self.client.aclose()

    async def _round(self) -> None:
        assert self.client is not None
        await self.deliver_due(self.client)

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        now = datetime.now(UTC)
        due = [doc async for doc in self.log.find({"status": "pending", "next_attempt_at": {"$lte": now}}).limit(100)]
        await asyncio.gather(*(self._deliver(client, doc) for doc in due))
        return len(due)

    async def _deliver(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> None:
        body = delivery["body"].encode()
        headers = {
            "content-type": "application/json",
            "Idempotency-Key": delivery["_id"],
            "X-TTHC-Event": delivery["type"],
            "X-TTHC-Signature": signature(self.context.settings.webhook_secret, body),
        }
        attempts = delivery["attempts"] + 1
        try:
            response = await client.post(delivery["url"], content=body, headers=headers)
            ok, error = 200 <= response.status_code < 300, f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, error = False, repr(exc)
        now = datetime.now(UTC)
        if ok:
            update = {"status": "delivered", "attempts": attempts, "delivered_at": now, "last_error": None}
            DELIVERIES.labels("delivered").inc()
        elif attempts >= self.context.settings.webhook_max_attempts:
            update = {"status": "failed", "attempts": attempts, "last_error": error}
            DELIVERIES.labels("failed").inc()
        else:
            backoff = timedelta(seconds=min(2**attempts, 3600))
            update = {"attempts": attempts, "last_error": error, "next_attempt_at": now + backoff}
            DELIVERIES.labels("retry").inc()
        await self.log.update_one({"_id": delivery["_id"]}, {"$set": update})


@router.get("/v1/webhooks/deliveries")
async def list_deliveries(
    request: Request,
    status: str | None = Query(None, pattern="^(pending|delivered|failed)$"),
    case_code: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """The delivery log (admin)."""
    context = request.app.state.context
    context.require_admin(request)
    query: dict[str, Any] = {}
    if status:
        query["status"] = status
    if case_code:
        query["case_code"] = case_code
    cursor = context.db.webhook_deliveries.find(query, {"body": 0}).sort("created_at", -1).limit(limit)
    return [{**doc, "idempotency_key": doc.pop("_id")} async for doc in cursor]

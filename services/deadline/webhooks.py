"""Webhooks: the source system and the agency at fault hear of due-soon, apology-due-soon,
apology-required and overdue.

Each delivery has an idempotency key (the derived event id and the target), is stored before it is
sent (the delivery log ops can query), is signed over a timestamp (shared/webhooks.py: header
X-TTHC-Timestamp = unix seconds, X-TTHC-Signature = sha256=<hex> of HMAC-SHA256 with
TTHC_WEBHOOK_SECRET over f"{timestamp}.".encode() + body), and is retried with exponential backoff
until it succeeds or runs out of attempts.

Never unsigned: with no secret configured (TTHC_WEBHOOK_SECRET or TTHC_WEBHOOK_SECRET_FILE) a
delivery is logged as `not_sent` with its reason and counted, not attempted. A URL the policy
refuses (shared/webhooks.UrlPolicy: checked again for the address its host resolves to at each
attempt) is `not_sent` likewise.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Query, Request
from prometheus_client import Counter
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from shared.domain.codes import DerivedEventType
from shared.periodic import Periodic
from shared.registry_sync import RegistryState
from shared.service import context_of
from shared.settings import Settings
from shared.store import Document
from shared.webhooks import HostUnresolved, UrlPolicy, WebhookUrlRefused, signed_headers

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

NOTIFIED = {
    DerivedEventType.DUE_SOON.value,
    DerivedEventType.APOLOGY_DUE_SOON.value,
    DerivedEventType.APOLOGY_REQUIRED.value,
    DerivedEventType.OVERDUE.value,
}
DELIVERIES = Counter("tthc_webhook_deliveries_total", "Webhook delivery attempts", ["outcome"])


OUTCOME_MARGIN_S = 10.0  # of a claim's lease, kept for the write of the attempt's outcome
NO_SECRET = "no webhook secret is configured (TTHC_WEBHOOK_SECRET): webhooks are never sent unsigned"
for _outcome in ("delivered", "failed", "retry", "not_sent"):
    DELIVERIES.labels(_outcome)


def webhook_secret(settings: Settings) -> str:
    """TTHC_WEBHOOK_SECRET, else the content of TTHC_WEBHOOK_SECRET_FILE; "" when neither gives one."""
    if settings.webhook_secret:
        return settings.webhook_secret
    if settings.webhook_secret_file:
        try:
            return Path(settings.webhook_secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            log.error("cannot read the webhook secret file", extra={"error": repr(exc)})
    return ""


class WebhookDispatcher:
    def __init__(
        self,
        settings: Settings,
        deliveries: AsyncCollection[Document],
        registry_state: RegistryState,
        poll_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.log = deliveries  # the delivery log, queried by ops
        self.registry_state = registry_state  # the agencies' and source systems' webhook URLs
        self.poll_s = poll_s
        self.client: httpx.AsyncClient | None = None
        self.periodic = Periodic("webhooks", poll_s, self._round)
        self.secret = webhook_secret(settings)
        self.policy = UrlPolicy.from_setting(settings.webhook_allowed_networks)
        if not self.secret:
            log.warning(NO_SECRET)

    def targets(self, event: dict[str, Any]) -> list[tuple[str, str]]:
        """(kind, url) of everyone to notify of this event."""
        registry_state = self.registry_state
        out = []
        fault = event["data"].get("agency_at_fault") or event.get("agency_code")
        agency = registry_state.registry.agencies.get(fault) if fault else None
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
        not_sent = 0
        for event in events:
            if event["type"] not in NOTIFIED:
                continue
            for target, url in self.targets(event):
                key = hashlib.sha256(f"{event['event_id']}|{target}|{url}".encode()).hexdigest()[:32]
                reason = self.refusal(url)
                not_sent += reason is not None
                documents.append(
                    {
                        "_id": key,
                        "event_id": event["event_id"],
                        "case_code": event["case_code"],
                        "type": event["type"],
                        "target": target,
                        "url": url,
                        "body": json.dumps(event, ensure_ascii=False, default=str),
                        "status": "pending" if reason is None else "not_sent",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                        "last_error": None,
                        "reason": reason,
                    }
                )
        if not documents:
            return 0
        try:
            await self.log.insert_many(documents, ordered=False)
        except BulkWriteError:
            pass  # the same delivery was queued before (a replay): the key makes it once
        if not_sent:
            DELIVERIES.labels("not_sent").inc(not_sent)
            log.warning("webhooks not sent", extra={"count": not_sent, "reason": documents[0]["reason"]})
        return len(documents)

    def refusal(self, url: str) -> str | None:
        """Why a delivery to `url` will not be attempted (no secret, a refused URL), or None."""
        if not self.secret:
            return NO_SECRET
        try:
            self.policy.check_url(url)
        except WebhookUrlRefused as exc:
            return f"webhook URL refused: {exc}"
        return None

    def start(self) -> None:
        self.client = httpx.AsyncClient(timeout=self.settings.webhook_timeout_s)
        self.periodic.start()

    async def stop(self) -> None:
        await self.periodic.stop(15)
        if self.client is not None:
            await self.client.aclose()

    async def _round(self) -> None:
        assert self.client is not None
        await self.deliver_due(self.client)

    async def ensure_indexes(self) -> None:
        await self.log.create_index([("status", 1), ("next_attempt_at", 1)], name="pending_due")
        await self.log.create_index([("case_code", 1), ("created_at", -1)], name="by_case")

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """Attempt the pending deliveries that are due and that this replica claims first."""
        now = datetime.now(UTC)
        due = [doc async for doc in self.log.find({"status": "pending", "next_attempt_at": {"$lte": now}}).limit(100)]
        claims = await asyncio.gather(*(self._claim(doc, now) for doc in due), return_exceptions=True)
        for claim in claims:
            if isinstance(claim, Exception):
                log.warning("webhook claim failed", extra={"error": repr(claim)})  # tried again next round
        claimed = [claim for claim in claims if isinstance(claim, dict)]
        await asyncio.gather(*(self._deliver(client, doc) for doc in claimed))
        return len(claimed)

    async def _claim(self, delivery: dict[str, Any], now: datetime) -> dict[str, Any] | None:
        """The delivery as this replica claimed it, or None if another replica claimed it first.

        Every replica reads the same pending deliveries; a conditional update of the attempt time it
        read moves that time past a lease, so one of them sends it. A replica that dies while
        sending leaves the delivery pending: another claims it once the lease has run out (the
        receiver's idempotency key makes that second post harmless). The outcome is written only
        while the claim holds (`_deliver`), so a send that outlived its lease cannot overwrite the
        outcome of the replica that claimed it next.
        """
        until = now + timedelta(seconds=self._lease_s())
        until = until.replace(microsecond=until.microsecond // 1000 * 1000)  # the store keeps milliseconds
        result = await self.log.update_one(
            {"_id": delivery["_id"], "status": "pending", "next_attempt_at": delivery["next_attempt_at"]},
            {"$set": {"next_attempt_at": until}},
        )
        return {**delivery, "next_attempt_at": until} if result.modified_count == 1 else None

    def _lease_s(self) -> float:
        """How long a claim holds: an attempt (bounded by `_attempt_s`) and the write of its outcome."""
        return 2 * self.settings.webhook_timeout_s + 30

    def _attempt_s(self, delivery: dict[str, Any]) -> float:
        """The longest this attempt (the URL's check and the post) may take: httpx's timeout bounds
        each step of a post, not the whole (a receiver that drips its answer holds it longer), and
        the outcome must be written while the claim holds (until the claim's attempt time, less
        OUTCOME_MARGIN_S for the write)."""
        until: datetime = delivery["next_attempt_at"]
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        return max(0.0, (until - datetime.now(UTC)).total_seconds() - OUTCOME_MARGIN_S)

    async def _deliver(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> None:
        claim = {"_id": delivery["_id"], "status": "pending", "next_attempt_at": delivery["next_attempt_at"]}
        reason: str | None = None
        ok, error = False, ""
        budget = self._attempt_s(delivery)
        try:
            async with asyncio.timeout(budget):
                reason, resolved_error = await self._checked(delivery["url"])
                if reason is None and resolved_error is not None:
                    error = resolved_error
                elif reason is None:
                    ok, error = await self._post(client, delivery)
        except TimeoutError:
            ok, error = False, f"no answer within {budget:.0f} s"
        except Exception as exc:  # whatever else the attempt met: an attempt that failed, counted
            ok, error = False, repr(exc)
        if reason is not None:
            outcome, fields = "not_sent", {"status": "not_sent", "reason": reason}
            log.warning("webhook not sent", extra={"idempotency_key": delivery["_id"], "reason": reason})
        else:
            outcome, fields = self._after_attempt(delivery, ok, error)
        written = await self.log.update_one(claim, {"$set": fields})
        if written.modified_count == 0:
            log.warning("webhook outcome not written: the claim ran out", extra={"idempotency_key": delivery["_id"]})
            return
        DELIVERIES.labels(outcome).inc()  # counted once it is the log's

    async def _checked(self, url: str) -> tuple[str | None, str | None]:
        """(why the delivery is not sent, or None; why its host could not be resolved, or None)."""
        reason = self.refusal(url)
        if reason is not None:
            return reason, None
        try:
            await self.policy.check_resolved(url)  # what the name points to now
        except WebhookUrlRefused as exc:
            return f"webhook URL refused: {exc}", None
        except HostUnresolved as exc:
            return None, repr(exc)
        return None, None

    async def _post(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> tuple[bool, str]:
        body = delivery["body"].encode()
        headers = {
            "content-type": "application/json",
            "Idempotency-Key": delivery["_id"],
            "X-TTHC-Event": delivery["type"],
            **signed_headers(self.secret, int(time.time()), body),
        }
        try:
            response = await client.post(delivery["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            return False, repr(exc)
        return 200 <= response.status_code < 300, f"HTTP {response.status_code}"

    def _after_attempt(self, delivery: dict[str, Any], ok: bool, error: str) -> tuple[str, dict[str, Any]]:
        """The outcome of an attempt (delivered, failed for good, or retried later) and the
        delivery's fields after it."""
        attempts = delivery["attempts"] + 1
        now = datetime.now(UTC)
        if ok:
            return "delivered", {"status": "delivered", "attempts": attempts, "delivered_at": now, "last_error": None}
        if attempts >= self.settings.webhook_max_attempts:
            return "failed", {"status": "failed", "attempts": attempts, "last_error": error}
        backoff = timedelta(seconds=min(2**attempts, 3600))
        return "retry", {"attempts": attempts, "last_error": error, "next_attempt_at": now + backoff}


@router.get("/v1/webhooks/deliveries")
async def list_deliveries(
    request: Request,
    status: str | None = Query(None, pattern="^(pending|delivered|failed|not_sent)$"),
    case_code: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """The delivery log (admin)."""
    context = context_of(request)
    context.require_admin(request)
    query: dict[str, Any] = {}
    if status:
        query["status"] = status
    if case_code:
        query["case_code"] = case_code
    cursor = context.db.webhook_deliveries.find(query, {"body": 0}).sort("created_at", -1).limit(limit)
    return [{**doc, "idempotency_key": doc.pop("_id")} async for doc in cursor]

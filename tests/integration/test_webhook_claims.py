"""Two deadline replicas share one webhook delivery log: each delivery is posted once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from services.deadline.webhooks import DELIVERIES, WebhookDispatcher
from shared.registry_sync import RegistryState
from shared.settings import Settings
from shared.store import mongo_client
from tests.integration.test_pull_mode import running

pytestmark = pytest.mark.integration


def delivery(url: str, n: int, now: datetime) -> dict:
    event = {"event_id": f"e{n}", "case_code": f"C{n}", "type": "case.overdue", "data": {}}
    return {
        "_id": f"k{n}",
        "event_id": event["event_id"],
        "case_code": event["case_code"],
        "type": event["type"],
        "target": "agency:X",
        "url": url,
        "body": json.dumps(event),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "last_error": None,
        "reason": None,
    }


async def test_two_replicas_post_each_delivery_once(settings: Settings) -> None:
    settings = settings.model_copy(update={"webhook_secret": "s3cret"})
    posts: list[str] = []
    receiver_fails: list[bool] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> Response:
        posts.append(request.headers["idempotency-key"])
        await asyncio.sleep(0.05)  # both replicas are in their round at once
        return Response(status_code=500 if receiver_fails else 200)

    client = mongo_client(settings.mongo_uri)
    log = client[f"{settings.mongo_db}_deadline"][f"webhook_claims_{uuid.uuid4().hex[:8]}"]
    state = RegistryState.seeded(settings)
    replicas = [WebhookDispatcher(settings, log, state) for _ in range(2)]
    await replicas[0].ensure_indexes()
    now = datetime.now(UTC) - timedelta(seconds=1)
    try:
        async with running(receiver) as url, httpx.AsyncClient(timeout=5) as http:
            await log.insert_many([delivery(f"{url}/hook", n, now) for n in range(30)])
            sent = await asyncio.gather(*(r.deliver_due(http) for r in replicas))
            assert sum(sent) == 30  # every delivery claimed by exactly one of them
            assert sorted(posts) == sorted(f"k{n}" for n in range(30))
            assert await log.count_documents({"status": "delivered"}) == 30
            assert await asyncio.gather(*(r.deliver_due(http) for r in replicas)) == [0, 0]
            # a replica that died while sending: its lease runs out and the other one sends it
            await log.insert_one(delivery(f"{url}/hook", 99, now))
            lost = await log.find_one({"_id": "k99"})
            assert lost is not None
            stale = await replicas[0]._claim(lost, now)  # claimed, not sent yet
            assert stale is not None
            assert await replicas[1].deliver_due(http) == 0  # the lease holds
            await log.update_one({"_id": "k99"}, {"$set": {"next_attempt_at": now}})  # the lease ran out
            assert await replicas[1].deliver_due(http) == 1
            assert posts.count("k99") == 1
            # the first replica's send outlived its lease: its outcome does not overwrite the other's
            receiver_fails.append(True)
            retries = DELIVERIES.labels("retry")._value.get()
            await replicas[0]._deliver(http, stale)
            assert posts.count("k99") == 2
            assert DELIVERIES.labels("retry")._value.get() == retries  # counted only what the log holds
            after = await log.find_one({"_id": "k99"})
            assert after is not None and (after["status"], after["attempts"], after["last_error"]) == (
                "delivered",
                1,
                None,
            )
    finally:
        await log.drop()
        await client.close()


async def test_an_attempt_is_bounded_so_that_its_outcome_is_written_while_the_claim_holds(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver that never answers in full (httpx's timeout bounds each read, not the whole post)
    cannot hold an attempt past its lease: the attempt ends, and is retried later."""
    settings = settings.model_copy(update={"webhook_secret": "s3cret"})
    receiver = FastAPI()
    answered = asyncio.Event()  # set once the test is done: the server's shutdown waits for the handler

    @receiver.post("/hook")
    async def hook(request: Request) -> Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answered.wait(), 30)
        return Response(status_code=200)

    client = mongo_client(settings.mongo_uri)
    log = client[f"{settings.mongo_db}_deadline"][f"webhook_claims_{uuid.uuid4().hex[:8]}"]
    dispatcher = WebhookDispatcher(settings, log, RegistryState.seeded(settings))
    # the lease: 10.5 s, of which OUTCOME_MARGIN_S (10) for the outcome's write: 0.5 s to attempt
    monkeypatch.setattr(WebhookDispatcher, "_lease_s", lambda self: 10.5)
    now = datetime.now(UTC) - timedelta(seconds=1)
    try:
        async with running(receiver) as url, httpx.AsyncClient(timeout=60) as http:
            await log.insert_one(delivery(f"{url}/hook", 1, now))
            retries = DELIVERIES.labels("retry")._value.get()
            before = datetime.now(UTC)
            assert await asyncio.wait_for(dispatcher.deliver_due(http), 20) == 1
            after = await log.find_one({"_id": "k1"})
            assert after is not None
            assert (after["status"], after["attempts"]) == ("pending", 1)
            assert after["last_error"].startswith("no answer within")
            assert after["next_attempt_at"] >= before + timedelta(seconds=2)  # the first backoff
            assert DELIVERIES.labels("retry")._value.get() == retries + 1
            answered.set()
    finally:
        await log.drop()
        await client.close()

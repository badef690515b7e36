"""Pull mode against a fake one-stop server started in the test (loopback only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Response

from deploy.local import infra
from services.intake.app import create_app
from shared.settings import Settings
from shared.store import mongo_client
from tests.conftest import serve
from tests.support.events import case_code, received
from tests.support.kafka_tools import eventually, read_topic

pytestmark = pytest.mark.integration


def fake_one_stop(events: list[dict], faults: list[str]) -> FastAPI:
    """Pages through `events` by an integer cursor; `faults` are served first, in order."""
    app = FastAPI()
    app.state.calls = 0

    @app.get("/changes")
    async def changes(limit: int = 10, cursor: str = "0") -> Response:
        app.state.calls += 1
        if faults:
            fault = faults.pop(0)
            if fault == "slow":
                await asyncio.sleep(2)
            return Response(status_code=500, content=b"boom")
        start = int(cursor)
        page = events[start : start + limit]
        body = {"items": page, "next_cursor": str(start + len(page)), "has_more": start + limit < len(events)}
        return Response(json.dumps(body), media_type="application/json")

    return app


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[str]:
    port = infra.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_pull_survives_faults_and_restart_without_duplicates_or_gaps(
    settings: Settings, kafka, tmp_path: Path
) -> None:
    events = [{**received(case_code()), "event_id": f"pull-{i}"} for i in range(25)]
    events.insert(7, {**received(case_code()), "event_id": "pull-bad", "occurred_at": "2026-03-16T09:00:00"})
    source = fake_one_stop(events, faults=["slow", "error"])
    async with running(source) as url:
        config = tmp_path / "pull.json"
        config.write_text(
            json.dumps(
                [
                    {
                        "name": "fake",
                        "url": f"{url}/changes",
                        "agency_codes": ["000.00.00.H99"],
                        "page_size": 10,
                        "interval_s": 0.2,
                        "timeout_s": 0.5,
                    }
                ]
            )
        )
        pulling = settings.model_copy(update={"pull_config": str(config)})
        mongo = mongo_client(settings.mongo_uri)
        cursors = mongo[f"{settings.mongo_db}_intake"].pull_cursors

        async def cursor_at_least(n: int):
            doc = await cursors.find_one({"_id": "fake"})
            return doc is not None and int(doc["cursor"]) >= n

        async with serve(create_app(pulling)):
            await eventually(lambda: cursor_at_least(10), timeout=30)
        # the intake stopped mid-stream; a new one resumes from the stored cursor
        async with serve(create_app(pulling)):
            await eventually(lambda: cursor_at_least(len(events)), timeout=30)

        records = await read_topic(kafka.bootstrap, settings.case_events_topic)
        ids = [r["value"]["event_id"] for r in records]
        assert sorted(ids) == sorted(f"pull-{i}" for i in range(25))  # every one, once
        rejects = [doc async for doc in mongo[f"{settings.mongo_db}_intake"].pull_rejects.find()]
        assert [r["item"]["event_id"] for r in rejects] == ["pull-bad"]
        assert "timezone" in rejects[0]["details"][0]["msg"]
        assert source.state.calls >= 5  # two faults, then three pages at least
        await mongo.close()

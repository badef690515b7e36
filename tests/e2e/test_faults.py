"""Faults in the middle of a stream: kill -9 of each service, duplicates, poison records.

The stream is the simulator's province (events and DVCQG snapshots, late, out of order, twice).
Afterwards: every figure of the metrics service equals the simulator's oracle (nothing acknowledged
lost, nothing counted twice), the deadline service holds every case once, and the dead-letter topic
holds exactly the poison records. Bounded: ~300 cases, loopback, a few minutes at most.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local import infra
from shared.settings import Settings
from simulator import wire
from simulator.__main__ import expectations, plan, settle
from simulator.workdays import VN
from tests.conftest import ADMIN_TOKEN, AUTH, settings_env
from tests.support.intake import post_until_acknowledged
from tests.support.kafka_tools import eventually, produce_raw, read_topic

pytestmark = pytest.mark.e2e

FIRST, LAST, SEED, PER_DAY, BATCH = date(2026, 9, 7), date(2026, 10, 4), 11, 15.0, 40


def province() -> tuple[list[Any], list[tuple[str, Any]], dict[str, Any]]:
    horizon = datetime.combine(LAST + timedelta(days=1), time(0), VN)
    cases = plan(SEED, FIRST, LAST, PER_DAY, horizon)
    items = wire.stream(cases, SEED)
    return cases, wire.batches(items, BATCH), expectations(cases, FIRST, LAST)


@pytest.fixture
async def stack(settings: Settings, run_dir: Path) -> AsyncIterator[infra.Services]:
    folder = run_dir / f"faults-{settings.topic_prefix}"
    async with infra.running_services(folder, settings_env(settings), ready_timeout=60) as services:
        yield services


async def test_kill_9_duplicates_and_poison_lose_nothing_and_count_nothing_twice(
    stack: infra.Services, settings: Settings, kafka
) -> None:
    urls, processes = stack.urls, stack.processes
    intake = urls["intake"]
    cases, requests, wanted = province()
    assert len(requests) > 24
    faults = {
        4: ("deadline", "kill"),
        8: ("deadline", "start"),
        11: ("metrics", "kill"),
        15: ("metrics", "start"),
        19: ("intake", "kill"),
        20: ("intake", "start"),
    }
    async with httpx.AsyncClient(timeout=30) as client:
        for index, (path, body) in enumerate(requests):
            if index in faults:
                name, action = faults[index]
                if action == "kill":
                    processes[name].kill()
                    if name == "intake":
                        asyncio.get_running_loop().call_later(2, processes[name].start)
                else:
                    processes[name].start()
            await post_until_acknowledged(client, f"{intake}{path}", body)
            if index % 6 == 0:  # a one-stop system resending what it already sent: a flood of duplicates
                await post_until_acknowledged(client, f"{intake}{path}", body)
        for name in ("deadline", "metrics"):
            await infra.wait_http(f"{urls[name]}/readyz", timeout=60, process=processes[name])

        poison = [(b"poison-1", b"{not json"), (b"poison-2", json.dumps({"type": "case.received"}).encode())]
        await produce_raw(kafka.bootstrap, settings.case_events_topic, poison)

        figures, diffs = await settle(urls["metrics"], ADMIN_TOKEN, wanted, timeout=120)
        assert diffs == [], "\n".join(diffs[:30])
        assert figures > 100

        async def every_case_once():
            stats = (await client.get(f"{urls['deadline']}/v1/stats", headers=AUTH)).json()
            return stats if stats["cases_received"] == len(cases) else None

        stats = await eventually(every_case_once, timeout=120, interval=1)
    assert stats["cases"] == len(cases)
    assert stats["cases_open"] == sum(1 for c in cases if c.end_at is None)

    async def dead_letters():
        records = await read_topic(kafka.bootstrap, settings.dlq_topic)
        return records if len(records) >= 4 else None

    records = await eventually(dead_letters, timeout=60)
    by_projection: dict[str, set[str]] = {}
    for record in records:
        by_projection.setdefault(record["value"]["projection"], set()).add(record["value"]["key"])
    assert by_projection == {"deadline": {"poison-1", "poison-2"}, "metrics": {"poison-1", "poison-2"}}
    assert len(records) == 4

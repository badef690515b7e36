"""Faults in the middle of a stream: kill -9 of each service, duplicates, poison records.

Afterwards: every acknowledged event is applied once (the counts equal what the client sent, no
more), and the dead-letter topic holds exactly the poison records. Bounded: 1,500 cases, loopback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from deploy.local import infra
from shared.settings import Settings
from tests.conftest import AUTH, settings_env
from tests.support.events import case_code, event, received
from tests.support.kafka_tools import eventually, produce_raw, read_topic

pytestmark = pytest.mark.e2e

CASES = 1500
BATCH = 50


@pytest.fixture
async def stack(settings: Settings, run_dir: Path) -> AsyncIterator[dict]:
    ports = {name: infra.free_port() for name in infra.SERVICES}
    folder = run_dir / f"faults-{settings.topic_prefix}"
    processes = {
        name: infra.service_process(name, ports[name], folder, settings_env(settings)) for name in infra.SERVICES
    }
    for process in processes.values():
        process.start()
    for name, process in processes.items():
        await infra.wait_http(f"http://127.0.0.1:{ports[name]}/readyz", timeout=60, process=process)
    try:
        yield {"ports": ports, "processes": processes}
    finally:
        for process in processes.values():
            process.stop()


async def post_until_acknowledged(client: httpx.AsyncClient, url: str, body: dict) -> list[dict]:
    """What a one-stop system does: resend until the intake says 202 (bounded)."""
    for _ in range(120):
        try:
            response = await client.post(url, json=body, headers=AUTH)
            if response.status_code == 202:
                return response.json()["accepted"]
            assert response.status_code == 503, response.text
        except httpx.TransportError:
            pass  # the intake is down: try again
        await asyncio.sleep(0.5)
    raise AssertionError("the intake never acknowledged the batch")


async def test_kill_9_duplicates_and_poison_lose_nothing_and_count_nothing_twice(
    stack: dict, settings: Settings, kafka
) -> None:
    ports, processes = stack["ports"], stack["processes"]
    intake = f"http://127.0.0.1:{ports['intake']}/v1/events"
    codes = [case_code() for _ in range(CASES)]
    batches = [
        [received(code, at="2026-03-16T09:15:00+07:00") for code in codes[i : i + BATCH]]
        for i in range(0, CASES, BATCH)
    ]
    processed = [event("case.processed", code, "2026-03-20T09:00:00+07:00", outcome="approved") for code in codes[:300]]
    faults = {
        5: ("deadline", "kill"),
        9: ("deadline", "start"),
        12: ("metrics", "kill"),
        16: ("metrics", "start"),
        20: ("intake", "kill"),
        21: ("intake", "start"),
    }
    async with httpx.AsyncClient(timeout=30) as client:
        for index, batch in enumerate(batches):
            if index in faults:
                name, action = faults[index]
                if action == "kill":
                    processes[name].kill()
                    if name == "intake":
                        asyncio.get_running_loop().call_later(2, processes[name].start)
                else:
                    processes[name].start()
            await post_until_acknowledged(client, intake, {"events": batch})
            if index % 7 == 0:  # a one-stop system resending what it already sent
                again = await post_until_acknowledged(client, intake, {"events": batch})
                assert all(a["duplicate"] for a in again)
        await post_until_acknowledged(client, intake, {"events": processed})
        for name in ("deadline", "metrics"):
            await infra.wait_http(f"http://127.0.0.1:{ports[name]}/readyz", timeout=60, process=processes[name])

        poison = [(b"poison-1", b"{not json"), (b"poison-2", json.dumps({"type": "case.received"}).encode())]
        await produce_raw(kafka.bootstrap, settings.case_events_topic, poison)

        async def counted():
            deadline = (await client.get(f"http://127.0.0.1:{ports['deadline']}/v1/stats", headers=AUTH)).json()
            answer = (
                await client.get(
                    f"http://127.0.0.1:{ports['metrics']}/v1/indicators", params={"period": "2026-03"}, headers=AUTH
                )
            ).json()
            done = deadline["cases"] == CASES and answer["finished"]["total"] == len(processed)
            return (deadline, answer) if done and answer["received"]["total"] == CASES else None

        deadline, answer = await eventually(counted, timeout=120, interval=1)
    assert deadline == {"cases": CASES, "cases_received": CASES, "cases_open": CASES - len(processed)}
    assert answer["received"]["total"] == CASES  # not one more: no double count after the kills
    assert answer["pending"]["total"] == CASES - len(processed)

    async def dead_letters():
        records = await read_topic(kafka.bootstrap, settings.dlq_topic)
        return records if len(records) >= 4 else None

    records = await eventually(dead_letters, timeout=60)
    by_projection: dict[str, set[str]] = {}
    for record in records:
        by_projection.setdefault(record["value"]["projection"], set()).add(record["value"]["key"])
    assert by_projection == {"deadline": {"poison-1", "poison-2"}, "metrics": {"poison-1", "poison-2"}}
    assert len(records) == 4

"""Stop and restart the store and the broker under running services: /readyz says so, recovers by
itself, and what was acknowledged before and after the outages is applied once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from deploy.local import infra
from shared.settings import Settings
from tests.conftest import ADMIN_TOKEN, AUTH, settings_env
from tests.support.events import case_code, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.e2e


async def ready(client: httpx.AsyncClient, url: str) -> dict:
    response = await client.get(f"{url}/readyz")
    return {"status": response.status_code, **response.json()["checks"]}


async def test_readyz_follows_outages_and_the_pipeline_resumes(tmp_path: Path) -> None:
    kafka = infra.KafkaBroker(tmp_path, infra.free_port(), infra.free_port())
    mongo = infra.MongoServer(tmp_path, infra.free_port())
    kafka.start()
    mongo.start()
    processes = []
    try:
        await kafka.wait_ready()
        await mongo.wait_ready()
        await infra.create_topics(kafka.bootstrap, partitions=3)
        settings = Settings(
            kafka_bootstrap=kafka.bootstrap,
            mongo_uri=mongo.uri,
            admin_token=ADMIN_TOKEN,
            config_dir=str(infra.REPO / "config"),
            publish_timeout_s=3.0,
        )
        ports = {name: infra.free_port() for name in ("intake", "deadline")}
        processes = [infra.service_process(n, p, tmp_path / "svc", settings_env(settings)) for n, p in ports.items()]
        for process, port in zip(processes, ports.values(), strict=True):
            process.start()
            await infra.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60, process=process)
        intake, deadline = (f"http://127.0.0.1:{p}" for p in ports.values())
        before, after = case_code(), case_code()
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.post(f"{intake}/v1/events", json=received(before), headers=AUTH)).status_code == 202

            mongo.stop()
            down = await eventually(lambda: _when(ready(client, deadline), lambda r: r["status"] == 503), timeout=30)
            assert down["store"] is False and down["broker"] is True
            mongo.start()
            await mongo.wait_ready()
            await eventually(lambda: _when(ready(client, deadline), lambda r: r["status"] == 200), timeout=60)

            kafka.stop()
            down = await eventually(lambda: _when(ready(client, intake), lambda r: r["status"] == 503), timeout=60)
            assert down["broker"] is False
            refused = await client.post(f"{intake}/v1/events", json=received(after), headers=AUTH)
            assert refused.status_code == 503 and "retry-after" in refused.headers
            kafka.start()
            await kafka.wait_ready()
            await eventually(lambda: _when(ready(client, intake), lambda r: r["status"] == 200), timeout=90)

            async def accepted() -> bool:
                response = await client.post(f"{intake}/v1/events", json=received(after), headers=AUTH)
                return response.status_code == 202

            await eventually(accepted, timeout=60, interval=1)

            async def both_applied():
                stats = (await client.get(f"{deadline}/v1/stats", headers=AUTH)).json()
                return stats if stats["cases"] == 2 else None

            assert (await eventually(both_applied, timeout=90, interval=1))["cases_received"] == 2
    finally:
        for process in processes:
            process.stop()
        kafka.stop()
        mongo.stop()


async def _when(awaitable, predicate):
    value = await awaitable
    return value if predicate(value) else None

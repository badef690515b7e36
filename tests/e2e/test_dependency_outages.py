"""Stop and restart the store and the broker under running services, in the middle of a stream.

/readyz says so and recovers by itself; the simulated province posted before, during and after the
outages (a one-stop system retries what the intake refused) ends with every figure of the metrics
service equal to the simulator's oracle, and every case once in the deadline service."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest

from deploy.local import infra
from shared.settings import Settings
from simulator import wire
from simulator.__main__ import expectations, plan, settle
from simulator.workdays import VN
from tests.conftest import ADMIN_TOKEN, AUTH, settings_env
from tests.support.events import case_code, received
from tests.support.intake import post_until_acknowledged
from tests.support.kafka_tools import eventually

FIRST, LAST, SEED = date(2026, 6, 1), date(2026, 6, 21), 21
OUTSIDE = "2026-07-15T09:00:00+07:00"

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
        ports = {name: infra.free_port() for name in ("intake", "deadline", "metrics")}
        processes = [infra.service_process(n, p, tmp_path / "svc", settings_env(settings)) for n, p in ports.items()]
        for process, port in zip(processes, ports.values(), strict=True):
            process.start()
            await infra.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60, process=process)
        intake, deadline, metrics = (f"http://127.0.0.1:{p}" for p in ports.values())
        horizon = datetime.combine(LAST + timedelta(days=1), time(0), VN)
        cases = plan(SEED, FIRST, LAST, 10.0, horizon)
        requests = wire.batches(wire.stream(cases, SEED), 40)
        thirds = [requests[i::3] for i in range(3)]
        before, after = case_code(), case_code()  # received after the simulated span: outside its figures
        async with httpx.AsyncClient(timeout=30) as client:
            assert (
                await client.post(f"{intake}/v1/events", json=received(before, at=OUTSIDE), headers=AUTH)
            ).status_code == 202
            for path, body in thirds[0]:
                await post_until_acknowledged(client, f"{intake}{path}", body)

            mongo.stop()
            down = await eventually(lambda: _when(ready(client, deadline), lambda r: r["status"] == 503), timeout=30)
            assert down["store"] is False and down["broker"] is True
            # The intake checks case owners in the store (v1.1): it answers 503 meanwhile, and the
            # one-stop system keeps resending until the store is back.
            refused = await client.post(f"{intake}{thirds[1][0][0]}", json=thirds[1][0][1], headers=AUTH)
            assert refused.status_code == 503 and "retry-after" in refused.headers

            async def resend(requests: list) -> None:
                for path, body in requests:
                    await post_until_acknowledged(client, f"{intake}{path}", body)

            sending = asyncio.create_task(resend(thirds[1]))
            await asyncio.sleep(3)
            mongo.start()
            await mongo.wait_ready()
            await sending
            await eventually(lambda: _when(ready(client, deadline), lambda r: r["status"] == 200), timeout=60)

            kafka.stop()
            down = await eventually(lambda: _when(ready(client, intake), lambda r: r["status"] == 503), timeout=60)
            assert down["broker"] is False
            refused = await client.post(f"{intake}/v1/events", json=received(after, at=OUTSIDE), headers=AUTH)
            assert refused.status_code == 503 and "retry-after" in refused.headers
            kafka.start()
            await kafka.wait_ready()
            await eventually(lambda: _when(ready(client, intake), lambda r: r["status"] == 200), timeout=90)

            async def accepted() -> bool:
                response = await client.post(f"{intake}/v1/events", json=received(after, at=OUTSIDE), headers=AUTH)
                return response.status_code == 202

            await eventually(accepted, timeout=60, interval=1)
            for path, body in thirds[2]:
                await post_until_acknowledged(client, f"{intake}{path}", body)

            async def all_applied():
                stats = (await client.get(f"{deadline}/v1/stats", headers=AUTH)).json()
                return stats if stats["cases"] == len(cases) + 2 else None

            assert (await eventually(all_applied, timeout=120, interval=1))["cases_received"] == len(cases) + 2
            wanted = expectations(cases, FIRST, LAST)
            figures, diffs = await settle(metrics, ADMIN_TOKEN, wanted, timeout=120)
            assert diffs == [], "\n".join(diffs[:30])
            assert figures > 50
    finally:
        for process in processes:
            process.stop()
        kafka.stop()
        mongo.stop()


async def _when(awaitable, predicate):
    value = await awaitable
    return value if predicate(value) else None

"""The three services as real processes against the real broker and store."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from deploy.local import infra
from shared.settings import Settings
from tests.conftest import AUTH, settings_env
from tests.support.events import case_code, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(settings: Settings, run_dir: Path) -> AsyncIterator[dict[str, str]]:
    folder = run_dir / f"e2e-{settings.topic_prefix}"
    async with infra.running_services(folder, settings_env(settings), ready_timeout=60) as services:
        yield services.urls | {"_run": str(run_dir)}
    assert not any(process.running() for process in services.processes.values())


async def test_posted_event_shows_up_in_deadline_and_metrics(stack: dict[str, str]) -> None:
    code = case_code()
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{stack['intake']}/v1/events", json=received(code), headers=AUTH)
        assert response.status_code == 202

        async def in_deadline():
            r = await client.get(f"{stack['deadline']}/v1/cases/{code}", headers=AUTH)
            return r.json() if r.status_code == 200 else None

        async def in_metrics():
            r = await client.get(f"{stack['metrics']}/v1/stats", headers=AUTH)
            return r.json()["cases_received"] >= 1

        case = await eventually(in_deadline, timeout=30)
        await eventually(in_metrics, timeout=30)
        assert case["due_at"] == "2026-03-30T09:15:00+07:00"

        for url in stack.values():
            if not url.startswith("http"):
                continue
            assert (await client.get(f"{url}/healthz")).json() == {"status": "ok"}
            metrics = await client.get(f"{url}/metrics")
            assert metrics.status_code == 200 and "tthc_" in metrics.text
            assert (await client.get(f"{url}/openapi.json")).status_code == 200


async def test_service_stops_on_sigterm(settings: Settings, run_dir: Path) -> None:
    port = infra.free_port()
    process = infra.service_process("deadline", port, run_dir / "sigterm", settings_env(settings))
    process.start()
    await infra.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60, process=process)
    process.signal(signal.SIGTERM)
    assert infra.wait_gone(process.popen.pid, 30)
    log = process.log_file.read_text()
    assert "Application shutdown complete" in log

"""Schemathesis against the running intake: no 5xx, no response that breaks the schema."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from deploy.local import infra
from shared.domain.codes import EventType
from shared.events import EVENT_ADAPTER, example_event
from shared.settings import Settings
from tests.conftest import ADMIN_TOKEN, settings_env

pytestmark = pytest.mark.e2e


def test_every_event_type_has_a_valid_example() -> None:
    for event_type in EventType:
        EVENT_ADAPTER.validate_python(example_event(event_type))


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(settings: Settings, run_dir: Path) -> None:
    port = infra.free_port()
    process = infra.service_process("intake", port, run_dir / "schemathesis", settings_env(settings))
    process.start()
    try:
        await infra.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60, process=process)
        async with httpx.AsyncClient() as client:
            document = (await client.get(f"http://127.0.0.1:{port}/openapi.json")).json()
        examples = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["examples"]
        assert {e for e in examples if e != "batch"} == {t.value for t in EventType}
        exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        assert exe, "schemathesis is not installed in the venv"
        result = await asyncio.to_thread(
            subprocess.run,
            [
                exe,
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance",
                "--max-examples",
                "25",
                "--max-time",
                "180",
                "--seed",
                "7",
                "--request-timeout",
                "20",
                "--workers",
                "1",
                "--continue-on-failure",
                "-H",
                f"Authorization: Bearer {ADMIN_TOKEN}",
                "--phases",
                "examples,coverage,fuzzing",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    finally:
        process.stop()

"""Schemathesis against the running deadline, metrics and web services (real broker and store, the
admin token): every operation, no 5xx for whatever input the schemas allow or break."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.local import infra
from services.web.app import COOKIE
from shared.settings import Settings
from tests.conftest import ADMIN_TOKEN, settings_env

pytestmark = pytest.mark.e2e

RUN_LIMIT_S = 420  # each service's run stops by itself well before; this bounds a hung one


async def schemathesis(base: str, *headers: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert exe, "schemathesis is not installed in the venv"
    arguments = [
        exe,
        "run",
        f"{base}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "20",
        "--seed",
        "7",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--phases",
        "examples,coverage,fuzzing",
        "--suppress-health-check",
        "all",
    ]
    for header in headers:
        arguments += ["-H", header]
    return await asyncio.to_thread(subprocess.run, arguments, capture_output=True, text=True, timeout=RUN_LIMIT_S)


async def test_deadline_metrics_and_web_answer_no_5xx(settings: Settings, run_dir: Path) -> None:
    env = settings_env(settings)
    ports = {name: infra.free_port() for name in ("deadline", "metrics", "web")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    web_env = env | {"TTHC_DEADLINE_URL": urls["deadline"], "TTHC_METRICS_URL": urls["metrics"]}
    processes = {
        name: infra.service_process(name, ports[name], run_dir / f"boundary-{name}", web_env if name == "web" else env)
        for name in ports
    }
    for process in processes.values():
        process.start()
    try:
        for name, process in processes.items():
            await infra.wait_http(f"{urls[name]}/healthz", timeout=90, process=process)
        for name in ("deadline", "metrics"):
            await infra.wait_http(f"{urls[name]}/readyz", timeout=90, process=processes[name])
        bearer = f"Authorization: Bearer {ADMIN_TOKEN}"
        runs = {
            "deadline": await schemathesis(urls["deadline"], bearer),
            "metrics": await schemathesis(urls["metrics"], bearer),
            "web": await schemathesis(urls["web"], f"Cookie: {COOKIE}={ADMIN_TOKEN}"),
        }
        for name, result in runs.items():
            (run_dir / f"schemathesis-{name}.txt").write_text(result.stdout + result.stderr)
            print(f"==== {name}\n{result.stdout}")
        for name, result in runs.items():
            assert result.returncode == 0, f"{name}:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
            assert re.search(r"\d+ passed", result.stdout), result.stdout
    finally:
        for process in processes.values():
            process.stop()

"""A real Prometheus scrapes the three services; every dashboard panel's query and every rule
returns data."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from deploy.local import infra
from shared.settings import Settings
from tests.conftest import AUTH, settings_env
from tests.support.events import case_code, event, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.e2e
DEPLOY = infra.REPO / "deploy"


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.stem}: {panel['title']}", target["expr"].replace("$agency", ".*")))
    return out


def rule_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "tthc.yml").read_text(encoding="utf-8"))
    out = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                out.append((rule["record"], rule["record"]))
                out.append((rule["record"] + " expr", rule["expr"]))
            else:
                out.append((rule["alert"], rule["annotations"]["value_query"]))
    return out


@pytest.fixture
async def services(settings: Settings, run_dir: Path) -> AsyncIterator[dict[str, int]]:
    ports = {name: infra.free_port() for name in infra.SERVICES}
    quick = settings.model_copy(update={"timer_interval_s": 1.0})
    processes = [
        infra.service_process(name, ports[name], run_dir / f"prom-{settings.topic_prefix}", settings_env(quick))
        for name in infra.SERVICES
    ]
    for process in processes:
        process.start()
    try:
        for name, process in zip(infra.SERVICES, processes, strict=True):
            await infra.wait_http(f"http://127.0.0.1:{ports[name]}/readyz", timeout=60, process=process)
        yield ports
    finally:
        for process in processes:
            process.stop()


async def test_every_panel_and_rule_returns_data(services: dict[str, int], run_dir: Path) -> None:
    exe = shutil.which("prometheus")
    assert exe, "prometheus is not installed (Debian package prometheus; .ci/run installs it)"
    code = case_code()
    async with httpx.AsyncClient(timeout=30) as client:
        posted = await client.post(
            f"http://127.0.0.1:{services['intake']}/v1/events",
            json={
                "events": [
                    received(code),
                    received(case_code()),
                    event("case.processed", code, "2026-04-20T09:00:00+07:00", outcome="approved"),
                ]
            },
            headers=AUTH,
        )
        assert posted.status_code == 202
    folder = run_dir / "prometheus"
    folder.mkdir(exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "rules" / "tthc.yml")],
        "scrape_configs": [
            {"job_name": f"tthc-{name}", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for name, port in services.items()
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = infra.free_port()
    prometheus = infra.ManagedProcess(
        "prometheus",
        [
            exe,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={folder / 'data'}",
        ],
        folder,
        marker=str(folder / "prometheus.yml"),
    )
    prometheus.start()
    try:
        await infra.wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=60, process=prometheus)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def result(query: str) -> list:
                body = (await client.get("/api/v1/query", params={"query": query})).json()
                assert body["status"] == "success", body
                return body["data"]["result"]

            missing: list[str] = []
            for name, query in [*panel_queries(), *rule_queries()]:

                async def has_data(q: str = query) -> bool:
                    return bool(await result(q))

                try:
                    await eventually(has_data, timeout=45, interval=1)
                except AssertionError:
                    missing.append(f"{name}: {query}")
            assert not missing, "queries with no data:\n" + "\n".join(missing)
    finally:
        prometheus.stop()

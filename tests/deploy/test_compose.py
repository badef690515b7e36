"""docker-compose.yml, validated by docker-compose itself and checked against what the code reads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.infra import REPO
from shared.settings import env_names

SERVICE_PORTS = {"intake": 8081, "deadline": 8082, "metrics": 8083}


def compose_config() -> dict[str, Any]:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is not installed (Debian package docker-compose; .ci/run installs it)"
    result = subprocess.run(
        [exe, "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_file_is_valid_and_names_the_services_the_code_has() -> None:
    config = compose_config()
    services = config["services"]
    assert {"kafka", "mongo", "intake", "deadline", "metrics", "prometheus", "grafana"} <= set(services)
    known = set(env_names())
    for name, port in SERVICE_PORTS.items():
        service = services[name]
        command = service["command"]
        assert f"services.{name}.app:create_app" in command and str(port) in command
        assert (REPO / "services" / name / "app.py").exists()
        published = service["ports"][0]
        if isinstance(published, str):  # docker-compose 1.x keeps "host_ip:published:target"
            host_ip, host_port, target = published.split("/")[0].split(":")
            published = {"host_ip": host_ip, "published": int(host_port), "target": int(target)}
        assert published["published"] == port and published["host_ip"] == "127.0.0.1"
        env = service["environment"]
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables the code does not read: {unknown}"
        assert env["TTHC_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert "replicaSet=rs0" in env["TTHC_MONGO_URI"]


def test_kafka_runs_in_kraft_mode_and_mongo_as_a_replica_set() -> None:
    services = compose_config()["services"]
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["kafka"]["image"].startswith("apache/kafka:3.")
    assert "--replSet" in services["mongo"]["command"]
    assert "rs.initiate" in " ".join(services["mongo"]["healthcheck"]["test"])


def test_prometheus_scrapes_every_service_and_grafana_is_provisioned() -> None:
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert targets == {f"{name}:{port}" for name, port in SERVICE_PORTS.items()}
    datasource = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_readme_settings_table_is_the_one_the_code_generates() -> None:
    from shared.settings import markdown_table

    assert markdown_table() in (REPO / "README.md").read_text(encoding="utf-8")


def test_deadline_signs_webhooks_with_a_generated_secret() -> None:
    services = compose_config()["services"]
    deadline = services["deadline"]
    assert deadline["depends_on"]["secrets"]["condition"] == "service_completed_successfully"
    secret_file = deadline["environment"]["TTHC_WEBHOOK_SECRET_FILE"]
    mounted = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in deadline["volumes"]]
    assert any(secret_file.startswith(target + "/") for target in mounted)
    generator = " ".join(services["secrets"]["command"])
    assert secret_file in generator and "token_urlsafe" in generator


def test_make_up_generates_the_webhook_secret_once_and_lists_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploy.local import stack

    monkeypatch.setattr(stack, "STACK", tmp_path)
    monkeypatch.delenv("TTHC_WEBHOOK_SECRET", raising=False)
    first = stack.webhook_secret()
    assert len(first) >= 32 and stack.webhook_secret() == first
    assert (tmp_path / "webhook_secret").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("TTHC_WEBHOOK_SECRET", "mine")
    assert stack.webhook_secret() == "mine"
    env = {"TTHC_ADMIN_TOKEN": "a", "TTHC_WEBHOOK_SECRET": first, "TTHC_KAFKA_BOOTSTRAP": "k", "TTHC_MONGO_URI": "m"}
    assert f"TTHC_WEBHOOK_SECRET={first}\n" in stack.write_env(env).read_text()

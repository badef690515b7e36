"""Session fixtures: a real Kafka broker and a real MongoDB-wire store on free loopback ports.

Integration and end-to-end tests use these, never mocks. Each test gets its own topic prefix and
database prefix, so tests share one broker and one store without seeing each other's data.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from deploy.local import infra
from shared.settings import Settings

ADMIN_TOKEN = "test-admin-token"


def pytest_configure(config: pytest.Config) -> None:
    """A terminated run (CI time limit, timeout) tears down like Ctrl-C: the session fixtures then
    stop the broker and store they started instead of leaving them behind."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


_counter = itertools.count()


@pytest.fixture(scope="session")
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tthc-test-"))
    yield path
    if not os.environ.get("TTHC_KEEP_TEST_DATA"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
async def kafka(run_dir: Path) -> AsyncIterator[infra.KafkaBroker]:
    broker = infra.KafkaBroker(run_dir, infra.free_port(), infra.free_port())
    broker.start()
    try:
        await broker.wait_ready()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
async def mongo(run_dir: Path) -> AsyncIterator[infra.MongoServer]:
    server = infra.MongoServer(run_dir, infra.free_port())
    server.start()
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def settings(kafka: infra.KafkaBroker, mongo: infra.MongoServer) -> Settings:
    """Settings for one test: its own topics (created here) and its own databases."""
    n = next(_counter)
    prefix = f"t{n}-"
    await infra.create_topics(kafka.bootstrap, prefix=prefix, partitions=3)
    return Settings(
        kafka_bootstrap=kafka.bootstrap,
        mongo_uri=mongo.uri,
        mongo_db=f"test{n}",
        topic_prefix=prefix,
        admin_token=ADMIN_TOKEN,
        config_dir=str(infra.REPO / "config"),
        publish_timeout_s=5.0,
        poll_timeout_ms=100,
        store_profile="standin",  # the test store is SecantusDB
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a service process needs to run with these settings."""
    return {f"TTHC_{name.upper()}": str(value) for name, value in settings.model_dump().items()}


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An app in-process with its lifespan (consumers, producers) running, and a client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            yield client


AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

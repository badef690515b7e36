"""A throwaway broker and store on free loopback ports, for the simulator and the benchmarks: started
for one run, stopped and removed with everything in them when it ends."""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from deploy.local import infra
from shared.settings import Settings

ADMIN_TOKEN = "throwaway-admin-token"


@dataclass
class Infra:
    kafka: infra.KafkaBroker
    mongo: infra.MongoServer
    run_dir: Path

    def settings(self, prefix: str) -> Settings:
        return Settings(
            kafka_bootstrap=self.kafka.bootstrap,
            mongo_uri=self.mongo.uri,
            mongo_db=prefix.strip("-").replace("-", "_"),
            topic_prefix=prefix,
            admin_token=ADMIN_TOKEN,
            config_dir=str(infra.REPO / "config"),
            log_level="WARNING",
            store_profile="standin",  # the throwaway store is SecantusDB
        )


def _exit_on_sigterm() -> None:
    """SIGTERM (a timeout, an operator) unwinds like Ctrl-C, so the finally blocks stop the
    broker, the store and the services this run started."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@contextlib.asynccontextmanager
async def infrastructure() -> AsyncIterator[Infra]:
    _exit_on_sigterm()
    run_dir = Path(tempfile.mkdtemp(prefix="tthc-throwaway-"))
    kafka = infra.KafkaBroker(run_dir, infra.free_port(), infra.free_port(), heap_mb=512)
    mongo = infra.MongoServer(run_dir, infra.free_port())
    kafka.start()
    mongo.start()
    try:
        await kafka.wait_ready()
        await mongo.wait_ready()
        yield Infra(kafka, mongo, run_dir)
    finally:
        kafka.stop()
        mongo.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def store() -> AsyncIterator[infra.MongoServer]:
    """A throwaway store alone (no broker), for a benchmark of the store's clients."""
    _exit_on_sigterm()
    run_dir = Path(tempfile.mkdtemp(prefix="tthc-throwaway-"))
    mongo = infra.MongoServer(run_dir, infra.free_port())
    mongo.start()
    try:
        await mongo.wait_ready()
        yield mongo
    finally:
        mongo.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def env_of(settings: Settings) -> dict[str, str]:
    """The environment a service process reads these settings from."""
    return {f"TTHC_{k.upper()}": str(v) for k, v in settings.model_dump().items()}

"""SoleWriterCopy: a failed load is retried by a timer when no batch comes to retry it."""

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Gauge

from shared import sole_writer
from shared.sole_writer import SoleWriterCopy


class Flaky(SoleWriterCopy):
    name = "flaky"

    def __init__(self, failures: int) -> None:
        super().__init__(Gauge("flaky_usable", "test", registry=CollectorRegistry()))
        self.failures = failures
        self.attempts = 0

    async def load(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise RuntimeError("operation cancelled")  # what a swamped store gave


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sole_writer, "RETRY_FIRST_S", 0.01)


async def wait_for(condition, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (a flag the code under test sets from a timer)
            await asyncio.sleep(0.005)


def test_failed_loads_are_retried_without_a_batch() -> None:
    async def scenario() -> None:
        copy = Flaky(failures=3)
        await copy.assigned(sole_owner=True)
        assert copy.loading and not copy.usable
        await wait_for(lambda: copy.usable)  # nothing calls ensure_loading: the timer does
        assert copy.attempts == 4 and copy.loads == 1 and not copy.loading

    asyncio.run(scenario())


def test_revocation_stops_the_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sole_writer, "RETRY_FIRST_S", 0.2)  # revoked well before the retry is due

    async def scenario() -> None:
        copy = Flaky(failures=1)
        await copy.assigned(sole_owner=True)
        await wait_for(lambda: copy.attempts == 1)
        copy.revoked()  # another member may write now: this copy must not load
        await asyncio.sleep(0.5)
        assert copy.attempts == 1 and not copy.usable and not copy.loading

    asyncio.run(scenario())


def test_not_the_only_writer_never_loads() -> None:
    async def scenario() -> None:
        copy = Flaky(failures=0)
        await copy.assigned(sole_owner=False)
        await asyncio.sleep(0.05)
        assert copy.attempts == 0 and not copy.loading and not copy.usable

    asyncio.run(scenario())

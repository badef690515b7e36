"""SoleWriterCopy: failed loads retried by a timer; the copy kept over a rebalance that leaves every
partition in the next generation, loaded again after any other; readers wait for a load, a little."""

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry, Gauge

from shared import sole_writer
from shared.kafka import Membership
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
        assert copy.unassigned and not copy.loading  # after a start: not known yet
        await copy.assigned(sole_owner=False)
        assert not copy.unassigned
        await asyncio.sleep(0.05)
        assert copy.attempts == 0 and not copy.loading and not copy.usable

    asyncio.run(scenario())


class Slow(SoleWriterCopy):
    """A load that waits until the test lets it finish."""

    name = "slow"

    def __init__(self) -> None:
        super().__init__(Gauge("slow_usable", "test", registry=CollectorRegistry()))
        self.attempts = 0
        self.release = asyncio.Event()

    async def load(self) -> None:
        self.attempts += 1
        await self.release.wait()


def member(generation: int, member_id: str = "m1") -> Membership:
    return Membership(member_id, generation, {"t:0": 5})


def test_a_rebalance_that_gives_back_every_partition_next_generation_keeps_the_copy() -> None:
    async def scenario() -> None:
        copy = Slow()
        copy.release.set()
        await copy.assigned(True, member(1))
        await wait_for(lambda: copy.usable)
        copy.revoked()
        assert not copy.usable  # at once: the store answers until the group has settled
        await copy.assigned(True, member(2))
        assert copy.usable and copy.attempts == 1  # nobody else held a partition: not loaded again

    asyncio.run(scenario())


def test_a_load_in_progress_survives_a_rebalance_that_keeps_every_partition() -> None:
    async def scenario() -> None:
        copy = Slow()
        await copy.assigned(True, member(4))
        await wait_for(lambda: copy.attempts == 1)
        copy.revoked()
        await copy.assigned(True, member(5))
        copy.release.set()
        await wait_for(lambda: copy.usable)
        assert copy.attempts == 1 and copy.loads == 1

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "between, then",
    [
        ([(False, member(2))], member(3)),  # another member held partitions in generation 2
        ([], member(3)),  # a generation passed without this member (it left, or was dropped)
        ([], member(2, "m2")),  # the consumer restarted: a new member, whatever the generation
    ],
)
def test_a_copy_is_loaded_again_when_another_member_may_have_written(between, then) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        copy = Slow()
        copy.release.set()
        await copy.assigned(True, member(1))
        await wait_for(lambda: copy.usable)
        for sole, membership in between:
            copy.revoked()
            await copy.assigned(sole, membership)
            assert not copy.usable and not copy.loaded
        copy.revoked()
        copy.release.clear()
        await copy.assigned(True, then)
        assert not copy.usable and copy.loading
        await wait_for(lambda: copy.attempts == 2)
        copy.release.set()
        await wait_for(lambda: copy.usable)

    asyncio.run(scenario())


def test_a_load_that_ends_after_a_revocation_is_not_usable_until_the_next_assignment() -> None:
    async def scenario() -> None:
        copy = Slow()
        await copy.assigned(True, member(1))
        await wait_for(lambda: copy.attempts == 1)
        copy.revoked()
        copy.release.set()
        await wait_for(lambda: copy.loaded)
        assert not copy.usable  # another member may be writing now
        await copy.assigned(True, member(2))
        assert copy.usable and copy.attempts == 1

    asyncio.run(scenario())


def test_a_reader_waits_for_a_load_in_progress_then_reads_the_copy() -> None:
    async def scenario() -> None:
        copy = Slow()
        await copy.assigned(True, member(1))
        asyncio.get_running_loop().call_later(0.2, copy.release.set)
        started = time.monotonic()
        assert await copy.wait_usable()
        assert 0.15 < time.monotonic() - started < 2

    asyncio.run(scenario())


def test_a_reader_waits_no_longer_than_wait_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sole_writer, "WAIT_S", 0.3)

    async def scenario() -> None:
        copy = Slow()  # never released
        await copy.assigned(True, member(1))
        started = time.monotonic()
        assert not await copy.wait_usable()
        assert 0.2 < time.monotonic() - started < 1.5
        started = time.monotonic()
        assert not await copy.wait_usable()  # the wait is over for this load: the store answers at once
        assert time.monotonic() - started < 0.1

    asyncio.run(scenario())


def test_a_reader_does_not_wait_while_another_member_holds_partitions() -> None:
    async def scenario() -> None:
        copy = Slow()
        await copy.assigned(False, member(1))
        started = time.monotonic()
        assert not await copy.wait_usable()
        assert time.monotonic() - started < 0.1

    asyncio.run(scenario())


def test_a_copy_is_unassigned_from_a_revocation_to_the_next_assignment() -> None:
    async def scenario() -> None:
        copy = Slow()
        await copy.assigned(sole_owner=True, membership=member(1))
        assert not copy.unassigned and copy.loading
        copy.revoked()
        assert copy.unassigned and not copy.loading
        await copy.assigned(sole_owner=True, membership=member(2))
        assert not copy.unassigned
        copy.release.set()

    asyncio.run(scenario())


def test_unassigned_holds_only_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy discarded without a rebalance (its partitions still held), or a broker away: readers
    that wait while it is unassigned (the gauges) go on after UNASSIGNED_WAIT_S."""

    async def scenario() -> None:
        copy = Slow()
        await copy.assigned(sole_owner=True, membership=member(1))
        copy.discard()
        assert copy.unassigned
        monkeypatch.setattr(sole_writer, "UNASSIGNED_WAIT_S", 0.0)
        assert not copy.unassigned
        copy.release.set()

    asyncio.run(scenario())

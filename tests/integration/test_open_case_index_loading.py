"""The deadline's open-case index while it loads, on the real store: a load from the snapshot that
fails or is cancelled is retried from the same snapshot, from the chunk it stopped at (what this
process wrote meanwhile still wins), and a list asked while the only writer loads answers 503 with
Retry-After without a single query to the case collection (counted by the store client's command
monitoring)."""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import AutoReconnect

from services.deadline import open_cases
from services.deadline.app import create_app as deadline_app
from services.deadline.open_cases import HEAD, OpenCaseIndex
from shared import sole_writer, store
from shared.domain.calendar import VN_TZ
from shared.kafka import Membership
from shared.settings import Settings
from shared.store import mongo_client
from tests.conftest import AUTH, serve
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.integration

NOW = datetime.now(VN_TZ).replace(microsecond=0)
OFFSETS = {"t:0": 5, "t:1": 7, "t:2": None}


def case(day: int) -> dict[str, Any]:
    received = NOW - timedelta(days=day)
    return {
        "agency_code": "A",
        "level": "province",
        "channel": "online",
        "status": "processing",
        "received_at": received,
        "due_at": received + timedelta(days=3),
        "open": True,
    }


def held_loads(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Every OpenCaseIndex load waits until the event returned is set."""
    release = asyncio.Event()
    load = OpenCaseIndex.load

    async def held_load(self: OpenCaseIndex) -> None:
        await release.wait()
        await load(self)

    monkeypatch.setattr(OpenCaseIndex, "load", held_load)
    return release


async def wait_done(index: OpenCaseIndex) -> None:
    task = index.ensure_loading()
    assert task is not None
    await asyncio.wait([task])


@pytest.mark.parametrize("failure", [AutoReconnect("connection pool reset"), asyncio.CancelledError()])
async def test_a_load_that_fails_midway_is_retried_from_the_snapshot(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    client = mongo_client(settings.mongo_uri, "standin")
    cases = client[f"{settings.mongo_db}_deadline"]["cases"]
    await cases.insert_many([{"_id": f"C{day}", **case(day)} for day in range(1, 6)])
    monkeypatch.setattr(open_cases, "CHUNK_ROWS", 2)  # the snapshot in three chunks
    first = OpenCaseIndex(cases)
    await first.assigned(True, Membership("m1", 1, OFFSETS))
    await wait_done(first)
    assert first.loaded_from == "scan" and await first.save(OFFSETS)
    # behind the snapshot's back: a scan would find it, the snapshot does not hold it
    await cases.insert_one({"_id": "BEHIND", **case(2)})

    read_chunk = open_cases.read_chunk
    calls: list[int] = []

    def read_once_failing(*args: Any) -> None:
        calls.append(len(args[1]))
        if len(calls) == 2:  # the second chunk: the first one is read
            raise failure
        read_chunk(*args)

    monkeypatch.setattr(open_cases, "read_chunk", read_once_failing)
    index = OpenCaseIndex(cases)
    await index.assigned(True, Membership("m2", 1, OFFSETS))
    await wait_done(index)
    assert len(calls) == 2 and not index.loaded and index.loading
    # the snapshot is out of the store (no other start meets it) but kept for the retry
    assert await index.snapshots.find_one({"_id": HEAD}) is None
    # a write of this process between the attempts: newer than the snapshot's row
    index.written([("C1", {**case(1), "due_at": NOW + timedelta(days=9)})])
    await wait_done(index)
    assert index.usable and index.loaded_from == "snapshot"
    assert len(calls) == 4  # the retry read the two chunks left, not the first again
    assert set(index.cases) == {f"C{day}" for day in range(1, 6)}  # not BEHIND: not a scan
    assert index.cases["C1"].due_at == NOW + timedelta(days=9)
    # installed: the next load reads the store
    index.discard()
    await index.assigned(True, Membership("m2", 3, OFFSETS))
    await wait_done(index)
    assert index.loaded_from == "scan" and "BEHIND" in index.cases
    await client.close()


async def test_a_snapshot_chunk_that_cannot_be_read_is_given_up_for_a_scan(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose content fails every time (not the store: the chunk) would fail every retry:
    the load gives the snapshot up and scans, and the lists do not stay 503."""
    client = mongo_client(settings.mongo_uri, "standin")
    cases = client[f"{settings.mongo_db}_deadline"]["cases"]
    await cases.insert_many([{"_id": f"C{day}", **case(day)} for day in range(1, 6)])
    monkeypatch.setattr(open_cases, "CHUNK_ROWS", 2)
    first = OpenCaseIndex(cases)
    await first.assigned(True, Membership("m1", 1, OFFSETS))
    await wait_done(first)
    assert await first.save(OFFSETS)
    read_chunk = open_cases.read_chunk
    calls: list[int] = []

    def unreadable_second(*args: Any) -> None:
        calls.append(len(args[1]))
        if len(calls) == 2:
            raise ValueError("a column shorter than the others")
        read_chunk(*args)

    monkeypatch.setattr(open_cases, "read_chunk", unreadable_second)
    index = OpenCaseIndex(cases)
    await index.assigned(True, Membership("m2", 1, OFFSETS))
    await wait_done(index)
    assert index.loaded and index.usable and index.loaded_from == "scan" and not index.loading
    assert set(index.cases) == {f"C{day}" for day in range(1, 6)}
    await client.close()


async def test_every_assignment_takes_the_snapshot_out_before_a_record_is_applied(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taken out by the load task instead, a process that writes a case and dies before its load
    began would leave a snapshot that lacks the write for a start with the same offsets. (The
    consumer applies no record before the owners' `before_applying` returned:
    test_consumer_assignment_gate.py.)"""
    client = mongo_client(settings.mongo_uri, "standin")
    cases = client[f"{settings.mongo_db}_deadline"]["cases"]
    await cases.insert_many([{"_id": f"C{day}", **case(day)} for day in range(1, 4)])
    first = OpenCaseIndex(cases)
    await first.assigned(True, Membership("m1", 1, OFFSETS))
    await wait_done(first)
    assert await first.save(OFFSETS)
    release = held_loads(monkeypatch)
    # a replica given some of the partitions writes cases the snapshot lacks: it takes the head out
    partial = OpenCaseIndex(cases)
    await partial.assigned(False, Membership("m2", 2, OFFSETS))
    await partial.before_applying()  # what the consumer awaits before it applies a record
    assert await partial.snapshots.find_one({"_id": HEAD}) is None
    assert not partial.loading and partial._claimed is None
    # the only writer: out of the store before a record is applied, its load not begun, and loaded from it
    assert await first.save(OFFSETS)
    index = OpenCaseIndex(cases)
    await index.assigned(True, Membership("m3", 3, OFFSETS))
    await index.before_applying()
    assert await index.snapshots.find_one({"_id": HEAD}) is None
    assert index.loading and not index.loaded
    release.set()
    await wait_done(index)
    assert index.usable and index.loaded_from == "snapshot"
    assert set(index.cases) == {"C1", "C2", "C3"}
    await client.close()


class CaseQueries(monitoring.CommandListener):
    """The commands sent to the case collection of a database, counted while `on`."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.on = False
        self.seen: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on and event.database_name == self.database and event.command.get(event.command_name) == "cases":
            self.seen.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_list_asked_while_the_only_writer_loads_is_503_and_reads_nothing_from_the_store(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = CaseQueries(f"{settings.mongo_db}_deadline")
    monkeypatch.setattr(store, "AsyncMongoClient", functools.partial(AsyncMongoClient, event_listeners=[queries]))
    monkeypatch.setattr(sole_writer, "WAIT_S", 0.5)
    release = held_loads(monkeypatch)
    app = deadline_app(settings)
    index: OpenCaseIndex = app.state.context.open_cases
    params: dict[str, str | int] = {"as_of": (NOW + timedelta(days=5)).isoformat(), "limit": 5}
    async with serve(app) as deadline:
        await eventually(lambda: _true(index.loading and index._assigned), timeout=30)
        queries.on = True
        for path in ("/v1/cases/overdue", "/v1/cases/due-soon", "/v1/cases/apology-due"):
            response = await deadline.get(path, params=params, headers=AUTH)
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "5"
            assert response.json()["error"]["code"] == "unavailable"
        assert queries.seen == []
        release.set()
        await eventually(lambda: _true(index.usable), timeout=30)
        assert "find" in queries.seen  # the load's scan: the listener does see the case collection
        seen = len(queries.seen)
        response = await deadline.get("/v1/cases/overdue", params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        assert len(queries.seen) == seen  # from memory
        # not the only writer (several replicas): the store answers, as before
        index.revoked()
        await index.assigned(False)
        response = await deadline.get("/v1/cases/overdue", params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        assert len(queries.seen) > seen


async def _true(value: object) -> bool | None:
    return bool(value) or None

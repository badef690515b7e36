"""Motor against PyMongo's own asyncio API (`pymongo.AsyncMongoClient`), on the three store paths the
deadline service leans on, in one run against one store, the drivers in turn (Motor, PyMongo, Motor,
PyMongo, …) on the same data, each round on a fresh database:

- write: the deadline's case projection itself (shared/projection.py with the port of
  services/deadline/projection.py) applying consumer batches: a case.received event for each case
  (new cases: read as absent, their timers inserted first, the cases inserted), then one later
  event for each (known cases: read by `_id` in the store profile's small queries, nothing held in
  memory, as after a restart; replaced whole), events/s (one event per case: documents/s);
- list: overdue-list pages read from the store as the service reads them when its in-memory index
  cannot answer (services/deadline/lists.py: its query, sort, limit + 1 and cursor, and the
  `count_documents` of the list's total), ms per page, p50 and p99;
- index load: the open-case index's scan of the store (services/deadline/open_cases.py: the open
  cases, the fields a row needs, in batches of 20,000, each read into an index entry), seconds and
  rows/s (the sorted keys built afterwards are left out: the same work for either driver).

Motor runs each operation in a thread of its pool, its BSON and socket work off the event loop;
PyMongo's asyncio API runs it all on the loop, no thread. So the process's CPU seconds (the
threads' included) and the store's are reported beside each figure (on a machine with few cores
the client, its threads and the store compete for them), and the longest a 10 ms timer on the
event loop fired late meanwhile: what any other request of the process would have waited (the
timer's own wake-ups are in the CPU figures, alike for both drivers). The write path's lag is
mostly the fold of a batch, the same for both.

About 2.5 minutes at the default sizes on two shared cores.

Sizes: BENCH_DRIVER_CASES (5,000), BENCH_DRIVER_ROUNDS (2 per driver), BENCH_DRIVER_PAGES (10 list
pages per round), BENCH_DRIVER_BATCH (the consumer's batch, Settings.poll_max_records).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from aiokafka import ConsumerRecord

from bench.deadline import events, follow_ups
from bench.harness import percentile
from deploy.local import throwaway
from deploy.local.infra import REPO
from services.deadline.context import DeadlineContext, ensure_case_indexes
from services.deadline.lists import ListFilters, _documents, list_total
from services.deadline.open_cases import OpenCaseIndex
from services.deadline.projection import DeadlinePort
from shared.config import load_registry
from shared.domain.registry import Registry
from shared.projection import CaseProjection
from shared.quarantine import Quarantine
from shared.settings import Settings
from shared.store import client_options, mongo_client, use_profile

DATABASE = "bench_driver"
PAGE = 50  # rows per list page, the lists' default


def motor_client(uri: str) -> Any:
    """A Motor client with the options of the services' client (motor: a development dependency,
    kept for this comparison)."""
    from motor.motor_asyncio import AsyncIOMotorClient

    client = AsyncIOMotorClient(uri, **client_options("standin"))
    use_profile(client, "standin")  # the throwaway store is SecantusDB
    return client


def pymongo_client(uri: str) -> Any:
    """The services' client (shared/store.py)."""
    return mongo_client(uri, "standin")


DRIVERS: dict[str, Callable[[str], Any]] = {"motor": motor_client, "pymongo": pymongo_client}


async def close(client: Any) -> None:
    """Motor's close is a plain call, PyMongo's a coroutine."""
    closed = client.close()
    if inspect.isawaitable(closed):
        await closed


def records(items: list[dict[str, Any]]) -> list[ConsumerRecord]:
    """The events as the consumer hands them to the projection (one partition, in order)."""
    out = []
    for offset, item in enumerate(items):
        key, value = item["case_code"].encode(), json.dumps(item).encode()
        out.append(ConsumerRecord("bench", 0, offset, 0, 0, key, value, None, len(key), len(value), []))
    return out


def batches(items: list[ConsumerRecord], size: int) -> Iterator[list[ConsumerRecord]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class StoreCpu:
    """CPU seconds of the store's process (user + system), from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick


@dataclass
class Timed:
    seconds: float
    cpu_s: float  # this process, its threads included
    store_cpu_s: float
    loop_lag_s: float  # the longest a 10 ms timer on the event loop fired late meanwhile


TICK_S = 0.01


class Clock:
    def __init__(self, store: StoreCpu) -> None:
        self.store = store

    @contextlib.asynccontextmanager
    async def timing(self, out: list[Timed]) -> AsyncIterator[None]:
        """Wall, CPU and the store's CPU seconds of the block, and how long the event loop was held
        up meanwhile (what every other request of the process waits: the work the driver does on
        the loop)."""
        lag = [0.0]

        async def tick() -> None:
            while True:
                due = time.perf_counter() + TICK_S
                await asyncio.sleep(TICK_S)
                lag[0] = max(lag[0], time.perf_counter() - due)

        ticker = asyncio.ensure_future(tick())
        wall, cpu, store = time.perf_counter(), time.process_time(), self.store.seconds()
        try:
            yield
        finally:
            elapsed = Timed(time.perf_counter() - wall, time.process_time() - cpu, self.store.seconds() - store, 0.0)
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        elapsed.loop_lag_s = lag[0]
        out.append(elapsed)


@dataclass
class Data:
    received: list[ConsumerRecord]
    later: list[ConsumerRecord]
    registry: Registry
    settings: Settings
    batch: int
    pages: int
    as_of: datetime | None = None  # the overdue list's instant, chosen on the first round's data


class _StoreOnly:
    """What the list code asks of the deadline's context to read a list from the store: the cases,
    and an in-memory index that cannot answer."""

    loading = False  # not the only writer loading its index: the store answers

    def __init__(self, cases: Any) -> None:
        self.cases = cases
        self.open_cases = self

    async def ready(self, as_of: datetime) -> bool:
        return False


async def write_path(client: Any, data: Data, clock: Clock) -> dict[str, list[Timed]]:
    db = client[DATABASE]
    cases, timers = db["cases"], db["cases_timers"]
    await ensure_case_indexes(cases, timers)  # as the service starts: the timers' index on this store
    settings = data.settings
    port = DeadlinePort(
        timers,
        lambda: data.registry,
        round(settings.due_soon_working_hours * 3600),
        round(settings.apology_due_working_hours * 3600),
    )
    quarantine = Quarantine("deadline", db["cases_quarantine"], None, settings.dlq_topic)
    projection: CaseProjection[None] = CaseProjection("deadline", cases, lambda: data.registry, port, quarantine)
    timed: dict[str, list[Timed]] = {"new": [], "known": []}
    for phase, items in (("new", data.received), ("known", data.later)):
        async with clock.timing(timed[phase]):
            for batch in batches(items, data.batch):
                result = await projection.apply(batch)
                if result.applied != len(batch):
                    raise AssertionError(f"{phase}: {result.applied} of {len(batch)} events applied")
    return timed


async def choose_as_of(cases: Any) -> datetime:
    """An instant at which about half the cases are overdue."""
    dues = sorted([d["due_at"] async for d in cases.find({}, {"due_at": 1})])
    return cast(datetime, dues[len(dues) // 2])


async def list_path(client: Any, data: Data, clock: Clock) -> tuple[list[Timed], int]:
    """Overdue pages followed by their cursor (from the start again at the list's end), each with
    the list's total; the rows listed on the first page."""
    cases = client[DATABASE]["cases"]
    if data.as_of is None:
        data.as_of = await choose_as_of(cases)
    context = cast(DeadlineContext, _StoreOnly(cases))
    filters = ListFilters("overdue", data.as_of, None, None, None, None, None, None, None)
    timed: list[Timed] = []
    after: tuple[Any, str] | None = None
    total = 0
    for _ in range(data.pages):
        async with clock.timing(timed):
            documents = await _documents(context, filters, "due_at", after, PAGE + 1)
            total = await list_total(context, filters)
        page = documents[:PAGE]
        after = (page[-1]["due_at"], page[-1]["_id"]) if len(documents) > PAGE else None
        if not page:
            raise AssertionError("the overdue list is empty")
    return timed, total


async def index_load(client: Any, clock: Clock) -> tuple[list[Timed], int]:
    index = OpenCaseIndex(client[DATABASE]["cases"])
    timed: list[Timed] = []
    async with clock.timing(timed):
        loaded = await index._scan()
    return timed, len(loaded.cases) + len(loaded.undated)


async def one_round(driver: str, uri: str, data: Data, clock: Clock) -> dict[str, Any]:
    client = DRIVERS[driver](uri)
    try:
        await client.drop_database(DATABASE)
        written = await write_path(client, data, clock)
        pages, listed = await list_path(client, data, clock)
        load, rows = await index_load(client, clock)
    finally:
        await close(client)
    return {
        "new": written["new"],
        "known": written["known"],
        "pages": pages,
        "load": load,
        "listed": listed,
        "rows": rows,
    }


def _sum(timed: list[Timed]) -> Timed:
    return Timed(
        sum(t.seconds for t in timed),
        sum(t.cpu_s for t in timed),
        sum(t.store_cpu_s for t in timed),
        max(t.loop_lag_s for t in timed),
    )


def summary(rounds: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """One driver's figures over its rounds: rates and seconds are medians of the rounds' figures,
    and the best round's (on a shared machine, the one least disturbed; each round is listed too);
    page latencies are pooled over the rounds."""

    def per_round(key: str) -> list[Timed]:
        return [_sum(r[key]) for r in rounds]

    out: dict[str, Any] = {}
    for key in ("new", "known"):
        timed = per_round(key)
        out[f"write_{key}_docs_per_s"] = round(statistics.median(n / t.seconds for t in timed))
        out[f"write_{key}_best_docs_per_s"] = round(max(n / t.seconds for t in timed))
        out[f"write_{key}_rounds_docs_per_s"] = [round(n / t.seconds) for t in timed]
        out[f"write_{key}_cpu_s"] = round(statistics.median(t.cpu_s for t in timed), 2)
        out[f"write_{key}_store_cpu_s"] = round(statistics.median(t.store_cpu_s for t in timed), 2)
        out[f"write_{key}_loop_lag_max_ms"] = round(max(t.loop_lag_s for t in timed) * 1000, 1)
    pages = [t for r in rounds for t in r["pages"]]
    out["list_p50_ms"] = round(percentile([t.seconds for t in pages], 50) * 1000, 1)
    out["list_p99_ms"] = round(percentile([t.seconds for t in pages], 99) * 1000, 1)
    out["list_cpu_ms_per_page"] = round(statistics.mean(t.cpu_s for t in pages) * 1000, 1)
    out["list_store_cpu_ms_per_page"] = round(statistics.mean(t.store_cpu_s for t in pages) * 1000, 1)
    out["list_loop_lag_max_ms"] = round(max(t.loop_lag_s for t in pages) * 1000, 1)
    load = per_round("load")
    rows = rounds[0]["rows"]
    out["index_load_s"] = round(statistics.median(t.seconds for t in load), 3)
    out["index_load_best_s"] = round(min(t.seconds for t in load), 3)
    out["index_load_rounds_s"] = [round(t.seconds, 3) for t in load]
    out["index_load_rows_per_s"] = round(rows / out["index_load_s"])
    out["index_load_cpu_s"] = round(statistics.median(t.cpu_s for t in load), 3)
    out["index_load_store_cpu_s"] = round(statistics.median(t.store_cpu_s for t in load), 3)
    out["index_load_loop_lag_max_ms"] = round(max(t.loop_lag_s for t in load) * 1000, 1)
    return out


# pymongo / motor, figure by figure: above 1 PyMongo is faster for a rate, slower for a latency or seconds
RATIOS = (
    "write_new_docs_per_s",
    "write_known_docs_per_s",
    "list_p50_ms",
    "list_p99_ms",
    "index_load_s",
    "index_load_rows_per_s",
    "write_new_best_docs_per_s",
    "write_known_best_docs_per_s",
    "index_load_best_s",
)


def ratios(motor: dict[str, Any], pymongo: dict[str, Any]) -> dict[str, float]:
    return {key: round(pymongo[key] / motor[key], 3) for key in RATIOS}


def sizes() -> dict[str, int]:
    return {
        "cases": int(os.environ.get("BENCH_DRIVER_CASES", "5000")),
        "rounds_per_driver": int(os.environ.get("BENCH_DRIVER_ROUNDS", "2")),
        "list_pages_per_round": int(os.environ.get("BENCH_DRIVER_PAGES", "10")),
        "batch": int(os.environ.get("BENCH_DRIVER_BATCH", str(Settings().poll_max_records))),
    }


async def run_async() -> dict[str, Any]:
    size = sizes()
    n = size["cases"]
    settings = Settings()
    gc.set_threshold(settings.gc_threshold, *gc.get_threshold()[1:])  # as a service process runs
    received = events(n)
    data = Data(
        records(received),
        records(follow_ups(received)),
        load_registry(REPO / "config"),
        settings,
        size["batch"],
        size["list_pages_per_round"],
    )
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in DRIVERS}
    async with throwaway.store() as mongo:
        clock = Clock(StoreCpu(mongo.process.started_pid))
        for turn in range(size["rounds_per_driver"]):
            # in turn, the first of each pair swapped every round (ABBA…): a drift of the machine
            # or of the store falls on both alike
            for driver in DRIVERS if turn % 2 == 0 else tuple(reversed(DRIVERS)):
                rounds[driver].append(await one_round(driver, mongo.uri, data, clock))
    figures = {driver: summary(done, n) for driver, done in rounds.items()}
    return report(figures, rounds, size, data)


def report(
    figures: dict[str, dict[str, Any]], rounds: dict[str, list[dict[str, Any]]], size: dict[str, int], data: Data
) -> dict[str, Any]:
    first = rounds["motor"][0]
    return {
        "name": "driver",
        "what": (
            "Motor vs pymongo.AsyncMongoClient on the deadline's store paths, in turn on the same data: "
            "the projection's writes (docs/s), overdue pages from the store (ms), the open-case index scan"
        ),
        "sizes": {
            **size,
            "overdue_listed": first["listed"],
            "open_rows_loaded": first["rows"],
            "as_of": data.as_of.isoformat() if data.as_of else None,
        },
        "machine": f"{os.cpu_count()} cores; Motor offloads each operation to a thread, PyMongo async runs on the loop",
        "motor": figures["motor"],
        "pymongo": figures["pymongo"],
        "ratios_pymongo_over_motor": ratios(figures["motor"], figures["pymongo"]),
    }


def run() -> dict[str, Any]:
    return asyncio.run(run_async())


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, ensure_ascii=False))

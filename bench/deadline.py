"""The deadline service at 100,000 open cases, against the raw store measured in the same run.

- applied events/s: 20,000 case.received events produced straight to the topic, applied by a real
  deadline process (consume → fold → bulk write → commit), vs raw bulk upserts (replacements) of the
  same documents into a bare collection (the `$set` form of the same upserts is reported beside it);
  then one later event for each of those cases (what most of a real stream is), against the same
  limit and against replacement upserts of the cases' new documents over their old ones (the limit
  of a stream of known cases): new cases are inserted, known ones replaced whole, and the timers
  are their own documents, armed when a case's timing changes (ADR 0010, 0011); the known cases are
  read from the documents the process holds of what it wrote (ADR 0012), with how many it held and
  its RSS; the timers that came due meanwhile are fired (its sweeper's interval is an hour here);
  then, restarted after a graceful stop, a third event for each case: the documents it
  held put back from the stop's snapshot (ADR 0023); then, restarted after a kill (nothing held), a
  fourth: known cases read from the store;
- the rest of the 100,000 open cases are then written straight into the store (behind the
  service's back, so the bench deletes the index snapshot its last stop saved), and the service
  restarted twice: first its in-memory open-case index (ADR 0008) is loaded by a scan of the
  store, then, after that process's graceful stop, from the snapshot it saved: the seconds until
  the index is usable, the overdue list's latencies meanwhile (asked one after another; those
  answered 503 while the index loads are counted), whether the first page then equals the store's,
  and the RSS;
- p99 of an overdue-list page (50 rows, keyset pagination) over HTTP at 100,000 open cases, from
  that index, and of the same query straight to the store;
- the timer sweep over the 100,000 open cases when no timer is due (what runs every interval), and
  when the 10,000 earliest timers come due at once (each fires, is published and marked).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymongo import InsertOne
from pymongo.asynchronous.collection import AsyncCollection

from bench.harness import (
    applied_rate,
    dumps,
    percentile,
    raw_bulk_upsert_rate,
    raw_produce_rate,
    scrape,
    store_client,
    wait_gauge,
)
from deploy.local import infra
from deploy.local.throwaway import ADMIN_TOKEN, Infra, env_of, infrastructure
from services.deadline.context import DeadlineContext
from shared.config import load_registry
from shared.domain.calendar import VN_TZ
from shared.domain.fold import CaseEvent, CaseState, fold_case
from shared.domain.registry import Registry
from shared.settings import Settings

APPLIED_SERIES = 'tthc_projection_events_applied_total{projection="deadline"}'
HELD_SERIES = (
    'tthc_projection_cache_reads_total{projection="deadline",source="memory"}',
    'tthc_projection_cache_reads_total{projection="deadline",source="store"}',
    'tthc_projection_cache_bytes{projection="deadline"}',
    'tthc_projection_cache_documents{projection="deadline"}',
)
RESTORED_SERIES = 'tthc_projection_cache_restored_total{projection="deadline"}'
LIST_SERIES = (
    'tthc_deadline_list_reads_total{source="memory"}',
    'tthc_deadline_list_reads_total{source="store"}',
)
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PAGES = int(os.environ.get("BENCH_DEADLINE_PAGES", "100"))
RAW_PAGES = 5
RETRY_AFTER_503_S = 1.0  # a list answered 503 while the index loads: asked again after this
IDLE_SWEEPS = 6
Collection = AsyncCollection[dict[str, Any]]


def events(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    registry = load_registry(infra.REPO / "config")
    agencies = [a for a in registry.agencies.values() if a.parent_code and a.valid_to is None]
    procedures = list(registry.catalogue.procedures)
    start = datetime(2026, 11, 2, 7, 30, tzinfo=VN_TZ)
    out = []
    for i in range(n):
        agency = rng.choice(agencies)
        received = start + timedelta(minutes=rng.randrange(0, 20 * 24 * 60))
        out.append(
            {
                "event_id": f"bd-{i}",
                "type": "case.received",
                "schema_version": 1,
                "case_code": f"{agency.code}-261102-{i:06d}",
                "occurred_at": received.isoformat(),
                "agency_code": agency.code,
                "data": {
                    "procedure_code": rng.choice(procedures),
                    "field_code": "G09",
                    "level": agency.level.value,
                    "channel": rng.choice(["direct", "online", "postal"]),
                    "online_mode": None,
                },
            }
        )
    return out


def follow_ups(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One later event for each of these cases (digitized or paid online, 20 hours after receipt):
    what most of a real stream is, events for cases the service already holds."""
    out = []
    for i, item in enumerate(received):
        kind, data = (
            ("case.digitized", {"components_digitized": True, "result_digitized": False, "reused": False})
            if i % 2
            else ("case.paid_online", {"amount": 50000, "gateway": "dvcqg"})
        )
        at = datetime.fromisoformat(item["occurred_at"]) + timedelta(hours=20)
        out.append({**item, "event_id": f"bd-f{i}", "type": kind, "occurred_at": at.isoformat(), "data": data})
    return out


def ratings(received: list[dict[str, Any]], tag: str = "g") -> list[dict[str, Any]]:
    """One more event for each case (a rating, two days after receipt: no change of timing, as the
    follow-ups), for the known cases applied after a restart (`tag`: another one, after a crash)."""
    out = []
    for i, item in enumerate(received):
        at = datetime.fromisoformat(item["occurred_at"]) + timedelta(days=2, minutes=len(tag) - 1)
        data = {"satisfied": tag == "g", "complaint": False}
        event = {"event_id": f"bd-{tag}{i}", "type": "case.rated", "occurred_at": at.isoformat(), "data": data}
        out.append({**item, **event})
    return out


async def produce(bootstrap: str, topic: str, items: list[dict[str, Any]]) -> float:
    """Events onto the topic, keyed by case code, as intake publishes them (its rate, unused here)."""
    return await raw_produce_rate(bootstrap, topic, [dumps(e) for e in items], [e["case_code"].encode() for e in items])


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def documents_of(
    context: DeadlineContext, items: list[dict[str, Any]], later: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The case documents the projection writes for these case.received events (with `later`: once
    each case's later event is applied too)."""
    out = []
    for state, events in folded(items, context.registry, later):
        document = context.port.document(state, events, None)
        document["_id"] = state.case_code
        document["events"] = events
        out.append(document)
    return out


def folded(
    items: list[dict[str, Any]], registry: Registry, later: list[dict[str, Any]] | None = None
) -> Iterator[tuple[CaseState, list[dict[str, Any]]]]:
    """Each case.received event's case folded, with its later event when `later` is given."""
    for i, item in enumerate(items):
        events = [item] if later is None else [item, later[i]]
        yield fold_case([CaseEvent.from_dict({**e, "seq": n}) for n, e in enumerate(events)], registry), events


def timers_of(context: DeadlineContext, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timer documents the projection arms for these new cases."""
    [(_, writes)] = context.port.prelude([(d["_id"], None, d) for d in documents])
    return [w._doc for w in writes if isinstance(w, InsertOne)]  # inserts: the cases are new


@dataclass
class _Bench:
    """One run's stack and the deadline process's settings; `measured` collects the raw figures."""

    env: Infra
    settings: Settings
    context: DeadlineContext  # for its document shape and, later, the sweep
    port: int
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.asynccontextmanager
    async def deadline_process(self, crash: bool = False) -> AsyncIterator[infra.ManagedProcess]:
        """The deadline process, stopped gracefully at the end (or killed: `crash`)."""
        process = infra.service_process("deadline", self.port, self.env.run_dir, env_of(self.settings))
        process.start()
        try:
            await infra.wait_http(f"{self.base}/healthz", timeout=60, process=process)
            yield process
        finally:
            stopping = time.perf_counter()
            if crash:
                process.kill()
            else:
                process.stop(timeout=infra.STOP_GRACE_S["deadline"])
                self.measured.setdefault("stops", []).append(round(time.perf_counter() - stopping, 1))

    async def produce(self, items: list[dict[str, Any]]) -> float:
        return await produce(self.env.kafka.bootstrap, self.settings.case_events_topic, items)


async def _raw_limits(bench: _Bench, received: list[dict[str, Any]], later: list[dict[str, Any]]) -> None:
    documents = documents_of(bench.context, received)
    uri = bench.env.mongo.uri
    bench.measured["raw_upsert"] = await raw_bulk_upsert_rate(uri, documents)
    bench.measured["raw_set"] = await raw_bulk_upsert_rate(uri, documents, form="set")
    # the known cases' limit: replacement upserts of their new documents over the old ones
    known = documents_of(bench.context, received, later)
    bench.measured["raw_existing"] = await raw_bulk_upsert_rate(uri, known, existing=documents)
    bench.measured["raw_produce"] = await bench.produce(received)


async def _applied(bench: _Bench, applied_n: int, later: list[dict[str, Any]]) -> None:
    """New cases, then a later event for each (known cases, held in memory), through the service."""
    async with bench.deadline_process() as process:
        bench.measured["applied"] = await applied_rate(bench.base, "deadline", applied_n, timeout=1800)
        bench.measured["before_known"] = await scrape(bench.base, *HELD_SERIES)
        await bench.produce(later)
        bench.measured["applied_known"] = await applied_rate(
            bench.base, "deadline", len(later), timeout=1800, after=applied_n
        )
        bench.measured["held"] = await scrape(bench.base, *HELD_SERIES)
        bench.measured["rss_held"] = rss_mib(process.started_pid)


async def _applied_after_restart(bench: _Bench, third: list[dict[str, Any]], after_crash: bool = False) -> None:
    """The same known cases after a restart: after a graceful stop, the documents the process held
    are put back from the stop's snapshot (ADR 0023); after a crash (`after_crash`) nothing is
    held and each case is read from the store (ADR 0012). This process is killed at the end, for
    the crash that follows."""
    key = "crash" if after_crash else "cold"
    async with bench.deadline_process(crash=not after_crash):
        # its open-case index loads first (a scan of the store that would slow these reads)
        await wait_gauge(bench.base, "tthc_deadline_open_cases_index_usable", 1.0, timeout=1800)
        already = (await scrape(bench.base, APPLIED_SERIES)).get(APPLIED_SERIES, 0.0)
        await bench.produce(third)
        bench.measured[f"applied_{key}"] = await applied_rate(
            bench.base, "deadline", len(third), timeout=1800, after=already
        )
        bench.measured[key] = await scrape(bench.base, *HELD_SERIES, RESTORED_SERIES)


async def _swept(bench: _Bench) -> None:
    """The timers that came due while the first process ran, fired now (in-process, against the same
    store), as its sweeper would have every interval: the process runs here with an hour's interval,
    and the next start's first round would otherwise fire them all while the restart is measured."""
    await bench.context.publisher.start()
    bench.measured["swept_before_restart"] = await bench.context.sweeper.sweep(datetime.now(UTC))
    await bench.context.publisher.stop()


async def _insert_the_rest(bench: _Bench, cases: Collection, rest: list[dict[str, Any]]) -> None:
    """The other open cases, straight into the store."""
    context = bench.context
    t0 = time.perf_counter()
    for first_item in range(0, len(rest), 5000):
        chunk = documents_of(context, rest[first_item : first_item + 5000])
        await context.timers.insert_many(timers_of(context, chunk), ordered=False)  # first, as the service
        await cases.insert_many(chunk, ordered=False)
    bench.measured["insert_rate"] = len(rest) / (time.perf_counter() - t0) if rest else None


async def _overdue_pages(base: str, as_of: str) -> list[float]:
    """Seconds per overdue-list page, PAGES pages followed by their cursor, from the service's index."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await client.get("/v1/cases/overdue", params={"as_of": as_of, "limit": 50}, headers=AUTH)  # warm-up
        cursor = None
        for _ in range(PAGES):
            params: dict[str, str | int] = {"as_of": as_of, "limit": 50, **({"cursor": cursor} if cursor else {})}
            t0 = time.perf_counter()
            response = await client.get("/v1/cases/overdue", params=params, headers=AUTH)
            latencies.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text
            cursor = response.json()["next_cursor"]
            assert len(response.json()["items"]) == 50
    return latencies


async def _raw_pages(cases: Collection, as_of: str) -> tuple[list[float], list[str]]:
    """What the index replaces: the same filter, sort and limit straight to the store (a few only:
    each scans and sorts the open cases on this store); and the codes of the first page."""
    raw_latencies: list[float] = []
    query = {"open": True, "clock_stopped_since": None, "due_at": {"$lt": datetime.fromisoformat(as_of)}}
    codes: list[str] = []
    for _ in range(RAW_PAGES):
        t0 = time.perf_counter()
        found = cases.find(query, {"events": 0, "timeline": 0}).sort([("due_at", 1), ("_id", 1)]).limit(51)
        codes = [d["_id"] async for d in found]
        raw_latencies.append(time.perf_counter() - t0)
    return raw_latencies, codes


async def _lists_while_loading(base: str, as_of: str, loaded: asyncio.Event) -> tuple[list[float], int]:
    """Seconds per overdue-list page asked one after another from /healthz until the index is usable
    (what an officer sees right after a restart), and how many were answered 503 (the index still
    loading: the next is asked a second later, sooner than its Retry-After, to follow the load
    closely without competing with it)."""
    latencies: list[float] = []
    unavailable = 0
    async with httpx.AsyncClient(base_url=base, timeout=1800) as client:
        while not loaded.is_set():
            t0 = time.perf_counter()
            response = await client.get("/v1/cases/overdue", params={"as_of": as_of, "limit": 50}, headers=AUTH)
            latencies.append(time.perf_counter() - t0)
            if response.status_code == 503:
                assert response.headers.get("Retry-After"), response.headers
                unavailable += 1
                await asyncio.sleep(RETRY_AFTER_503_S)
                continue
            assert response.status_code == 200, response.text
    return latencies, unavailable


async def _restart(bench: _Bench, as_of: str) -> dict[str, Any]:
    """A restart at `n` open cases: seconds until the index is usable (from /healthz, and from the
    process's start), and the overdue list's latencies meanwhile, with where it was read."""
    started = time.perf_counter()
    async with bench.deadline_process() as process:
        healthy = time.perf_counter()
        loaded = asyncio.Event()
        lists = asyncio.create_task(_lists_while_loading(bench.base, as_of, loaded))
        load = await wait_gauge(bench.base, "tthc_deadline_open_cases_index_usable", 1.0, timeout=1800)
        loaded.set()
        latencies, unavailable = await lists
        reads = await scrape(bench.base, *LIST_SERIES)
        await asyncio.sleep(2)
        return {
            "load": load,
            "from_start": healthy - started + load,
            "during": latencies,
            "unavailable": unavailable,
            "store_reads": reads.get(LIST_SERIES[1], 0.0),
            "rss": rss_mib(process.started_pid),
            "latencies": await _overdue_pages(bench.base, as_of),
            "first_page": await _first_page(bench.base, as_of),
        }


async def _first_page(base: str, as_of: str) -> list[str]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        response = await client.get("/v1/cases/overdue", params={"as_of": as_of, "limit": 50}, headers=AUTH)
    return [item["case_code"] for item in response.json()["items"]]


async def _pages(bench: _Bench, cases: Collection) -> None:
    """Two restarts: the first after the store was written behind the service's back (no snapshot
    can hold those cases: the index scans the store), the second after that process's graceful stop
    (it saved its snapshot, services/deadline/open_cases.py)."""
    await bench.context.open_cases.forget_snapshot()
    as_of = (datetime.now(UTC) + timedelta(days=90)).isoformat()
    bench.measured["scan"] = await _restart(bench, as_of)
    bench.measured["snapshot"] = await _restart(bench, as_of)
    bench.measured["raw_latencies"], raw_first = await _raw_pages(cases, as_of)
    bench.measured["exact"] = [bench.measured[kind]["first_page"] == raw_first[:50] for kind in ("scan", "snapshot")]


async def _sweeps(context: DeadlineContext, swept_n: int) -> dict[str, Any]:
    """The sweep, in-process against the same store (the service is stopped)."""
    await context.publisher.start()
    idle_sweeps = []
    nothing = 0
    for _ in range(IDLE_SWEEPS):  # the first right after the service stopped, then as every interval
        t0 = time.perf_counter()
        nothing += await context.sweeper.sweep(datetime.now(UTC) - timedelta(days=365))
        idle_sweeps.append(time.perf_counter() - t0)
    # the `swept_n` earliest timers come due: every one fires and is marked
    armed = context.timers.find({"next_check_at": {"$ne": None}}, {"next_check_at": 1}).sort("next_check_at", 1)
    checks = [d["next_check_at"] async for d in armed]
    nth = checks[min(swept_n, len(checks)) - 1]  # fewer armed than `swept_n` at a small size: all of them
    t0 = time.perf_counter()
    published = await context.sweeper.sweep(nth)
    due_sweep = time.perf_counter() - t0
    await context.publisher.stop()
    return {"idle_sweeps": idle_sweeps, "nothing": nothing, "published": published, "due_sweep": due_sweep}


async def run_async(n: int = 100_000, applied_n: int = 20_000, swept_n: int = 10_000) -> dict[str, Any]:
    """`applied_n` cases go through the service (the applied rate, against raw upserts of as many
    documents into an empty collection); the rest of the `n` open cases are written straight into
    the store (this store's upserts slow as a collection grows, so streaming 100,000 takes most of
    an hour); then the page, index load, RSS and sweep measures run at `n` open cases."""
    items = events(n)
    async with infrastructure() as env:
        settings = env.settings("bd-").model_copy(update={"timer_interval_s": 3600.0})
        await infra.create_topics(env.kafka.bootstrap, prefix="bd-")
        bench = _Bench(env, settings, DeadlineContext(settings), infra.free_port())
        later = follow_ups(items[:applied_n])
        await _raw_limits(bench, items[:applied_n], later)
        mongo = store_client(env.mongo.uri)
        cases = mongo[f"{settings.mongo_db}_deadline"].cases
        await _applied(bench, applied_n, later)
        await _swept(bench)
        await _applied_after_restart(bench, ratings(items[:applied_n]))
        await _applied_after_restart(bench, ratings(items[:applied_n], "hh"), after_crash=True)
        m = bench.measured
        applied_phases = {"new": m["applied"], "known": m["applied_known"], "known_after_restart": m["applied_cold"]}
        progress = {"raw_existing": m["raw_existing"], **applied_phases, "raw": m["raw_upsert"], **m["held"]}
        print(json.dumps(progress), file=sys.stderr, flush=True)
        await _insert_the_rest(bench, cases, items[applied_n:n])
        try:
            await _pages(bench, cases)
        finally:
            await mongo.close()
        m |= await _sweeps(bench.context, swept_n)
        await bench.context.mongo.close()
    return _report(m, n, applied_n, swept_n)


def _report(m: dict[str, Any], n: int, applied_n: int, swept_n: int) -> dict[str, Any]:
    held, before_known, cold = m["held"], m["before_known"], m["cold"]
    scan, snapshot = m["scan"], m["snapshot"]
    latencies, raw_latencies, idle_sweeps = snapshot["latencies"], m["raw_latencies"], m["idle_sweeps"]
    raw_upsert, raw_existing = m["raw_upsert"], m["raw_existing"]
    applied_known, applied_cold, applied_crash = m["applied_known"], m["applied_cold"], m["applied_crash"]
    p99 = percentile(latencies, 99)
    return {
        "name": "deadline",
        "what": f"deadline service at {n} open cases ({applied_n} applied through it), SecantusDB, Kafka 2.3, 2 cores",
        "raw_store_bulk_upsert_docs_per_s": round(raw_upsert),
        "raw_store_set_upsert_docs_per_s": round(m["raw_set"]),
        "raw_idempotent_producer_msgs_per_s": round(m["raw_produce"]),
        "applied_events_per_s": round(m["applied"]),
        "applied_ratio_of_raw_upsert": round(m["applied"] / raw_upsert, 2),
        "applied_known_cases_events_per_s": round(applied_known),
        "applied_known_cases_ratio_of_raw_upsert": round(applied_known / raw_upsert, 2),
        "raw_store_bulk_upsert_over_existing_docs_per_s": round(raw_existing),
        "applied_known_cases_ratio_of_raw_upsert_over_existing": round(applied_known / raw_existing, 2),
        "applied_known_cases_read_from_memory": held.get(HELD_SERIES[0], 0.0) - before_known.get(HELD_SERIES[0], 0.0),
        "applied_known_cases_read_from_store": held.get(HELD_SERIES[1], 0.0) - before_known.get(HELD_SERIES[1], 0.0),
        "held_documents": held.get(HELD_SERIES[3], 0.0),
        "held_mib": round(held.get(HELD_SERIES[2], 0.0) / 2**20, 1),
        "rss_mib_holding_them": round(m["rss_held"], 1),
        "applied_known_cases_after_restart_events_per_s": round(applied_cold),
        "applied_known_cases_after_restart_ratio_of_raw_upsert_over_existing": round(applied_cold / raw_existing, 2),
        "applied_known_cases_after_restart_read_from_store": cold.get(HELD_SERIES[1], 0.0),
        "applied_known_cases_after_restart_read_from_memory": cold.get(HELD_SERIES[0], 0.0),
        "documents_put_back_at_restart": cold.get(RESTORED_SERIES, 0.0),
        "timer_transitions_fired_before_the_restarts": m["swept_before_restart"],
        "applied_known_cases_after_crash_events_per_s": round(applied_crash),
        "applied_known_cases_after_crash_ratio_of_raw_upsert_over_existing": round(applied_crash / raw_existing, 2),
        "applied_known_cases_after_crash_read_from_store": m["crash"].get(HELD_SERIES[1], 0.0),
        "store_insert_docs_per_s_up_to_n": round(m["insert_rate"]) if m["insert_rate"] else None,
        "open_cases": n,
        "overdue_page_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "overdue_page_p99_ms": round(p99 * 1000, 1),
        "pages_measured": PAGES,
        "raw_store_page_query_p99_ms": round(percentile(raw_latencies, 99) * 1000, 1),
        "raw_store_queries_measured": RAW_PAGES,
        "overdue_page_p99_ratio_to_raw_query": round(p99 / percentile(raw_latencies, 99), 4),
        "open_case_index_load_seconds": round(snapshot["load"], 1),
        "open_case_index_load_seconds_from_process_start": round(snapshot["from_start"], 1),
        "overdue_page_p99_ms_during_load": _p99_ms(snapshot["during"]),
        "overdue_pages_during_load": len(snapshot["during"]),
        "overdue_pages_during_load_from_store": snapshot["store_reads"],
        "overdue_pages_during_load_503": snapshot["unavailable"],
        "open_case_index_scan_load_seconds": round(scan["load"], 1),
        "open_case_index_scan_load_seconds_from_process_start": round(scan["from_start"], 1),
        "overdue_page_p99_ms_during_scan_load": _p99_ms(scan["during"]),
        "overdue_pages_during_scan_load": len(scan["during"]),
        "overdue_pages_during_scan_load_from_store": scan["store_reads"],
        "overdue_pages_during_scan_load_503": scan["unavailable"],
        "overdue_page_p99_ms_after_scan_load": _p99_ms(scan["latencies"]),
        "first_page_equals_store_after_scan_and_snapshot_loads": m["exact"],
        "deadline_graceful_stop_seconds": m.get("stops", []),
        "rss_mib_at_open_cases": round(snapshot["rss"], 1),
        "sweep_seconds_nothing_due_first": round(idle_sweeps[0], 3),
        "sweep_seconds_nothing_due_median_of_next": round(sorted(idle_sweeps[1:])[len(idle_sweeps[1:]) // 2], 4),
        "sweep_nothing_due_published": m["nothing"],
        "sweep_cases_due": swept_n,
        "sweep_seconds_cases_due": round(m["due_sweep"], 1),
        "sweep_transitions_published": m["published"],
        **_verdict(m, p99),
    }


def _p99_ms(latencies: list[float]) -> float | None:
    return round(percentile(latencies, 99) * 1000, 1) if latencies else None


def _verdict(m: dict[str, Any], page_p99: float) -> dict[str, Any]:
    return {
        "targets": {
            "applied_ratio_of_raw_upsert": ">= 0.6",
            "applied_known_cases_ratio_of_raw_upsert_over_existing": ">= 0.6",
            "applied_known_cases_after_restart_ratio_of_raw_upsert_over_existing": ">= 0.6",
            "overdue_page_p99_ms": "<= 50",
            "open_case_index_load_seconds": "<= 10",
        },
        "met": {
            "applied": m["applied"] / m["raw_upsert"] >= 0.6,
            "applied_known_cases": m["applied_known"] / m["raw_existing"] >= 0.6,
            "applied_known_cases_after_restart": m["applied_cold"] / m["raw_existing"] >= 0.6,
            "page_p99": page_p99 <= 0.05,
            "index_load": m["snapshot"]["load"] <= 10 and all(m["exact"]),
        },
    }


def run() -> dict[str, Any]:
    n = int(os.environ.get("BENCH_DEADLINE_CASES", "100000"))
    applied = int(os.environ.get("BENCH_DEADLINE_APPLIED", "20000"))
    return asyncio.run(run_async(n, min(applied, n), min(10_000, n)))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

"""The deadline service at 100,000 open cases, against the raw store measured in the same run.

- applied events/s: case.received events produced straight to the topic, applied by a real deadline
  process (consume → fold → bulk write → commit), vs raw bulk upserts of same-shaped documents;
- p99 of an overdue-list page (50 rows, keyset pagination) over HTTP at 100,000 open cases, answered
  from the in-memory open-case index (ADR 0008), and the same query straight to the store;
- the time to load that index again after a restart;
- RSS of the deadline process at 100,000 open cases;
- time to sweep the 100,000 open cases for due timers when every timer is due (each case publishes
  three transitions and gets its marks), and when none is.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from motor.motor_asyncio import AsyncIOMotorClient

from bench.harness import (
    ADMIN_TOKEN,
    dumps,
    env_of,
    infrastructure,
    percentile,
    raw_bulk_upsert_rate,
    raw_produce_rate,
    wait_gauge,
)
from deploy.local import infra
from services.deadline.context import DeadlineContext
from shared.config import load_registry
from shared.domain.calendar import VN_TZ
from shared.domain.fold import CaseEvent, fold_case

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PAGES = int(os.environ.get("BENCH_DEADLINE_PAGES", "30"))


def events(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    registry = load_registry(infra.REPO / "config")
    agencies = [a for a in registry.agencies.values() if a.parent_code]
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


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_async(n: int = 100_000) -> dict[str, Any]:
    items = events(n)
    async with infrastructure() as env:
        settings = env.settings("bd-").model_copy(update={"timer_interval_s": 3600.0})
        await infra.create_topics(env.kafka.bootstrap, prefix="bd-")
        # the raw store limit, with documents shaped like the projection's
        registry = load_registry(infra.REPO / "config")
        context = DeadlineContext(settings)
        sample = []
        for item in items[:20_000]:
            state = fold_case([CaseEvent.from_dict({**item, "seq": 0})], registry)
            document = context.to_document(state, [item], None)
            document["_id"] = item["case_code"]
            document["events"] = [item]
            sample.append(document)
        raw_upsert = await raw_bulk_upsert_rate(env.mongo.uri, sample)
        raw_produce = await raw_produce_rate(
            env.kafka.bootstrap,
            settings.case_events_topic,
            [dumps(e) for e in items],
            [e["case_code"].encode() for e in items],
        )

        port = infra.free_port()
        process = infra.service_process("deadline", port, env.run_dir, env_of(settings))
        started = time.perf_counter()
        process.start()
        mongo: AsyncIOMotorClient = AsyncIOMotorClient(env.mongo.uri)
        cases = mongo[f"{settings.mongo_db}_deadline"].cases
        try:
            await infra.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, process=process)
            first = None
            while True:
                count = await cases.estimated_document_count()
                if count and first is None:
                    first = time.perf_counter()
                if count >= n:
                    break
                if time.perf_counter() - started > 1800:
                    raise TimeoutError(f"only {count} of {n} applied")
                await asyncio.sleep(0.5)
            applied_rate = n / (time.perf_counter() - (first or started))
            await asyncio.sleep(2)
            rss = rss_mib(process.popen.pid)
            base = f"http://127.0.0.1:{port}"
            await wait_gauge(base, "tthc_deadline_open_cases_index_usable", 1.0, timeout=600)

            as_of = (datetime.now(UTC) + timedelta(days=90)).isoformat()
            # the raw limit: the same filter, sort and limit straight to the store
            raw_latencies: list[float] = []
            as_of_dt = datetime.fromisoformat(as_of)
            query = {"open": True, "clock_stopped_since": None, "due_at": {"$lt": as_of_dt}}
            for _ in range(PAGES):
                t0 = time.perf_counter()
                _ = [
                    d
                    async for d in cases.find(query, {"events": 0, "timeline": 0})
                    .sort([("due_at", 1), ("_id", 1)])
                    .limit(51)
                ]
                raw_latencies.append(time.perf_counter() - t0)
            latencies: list[float] = []
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                cursor = None
                for _ in range(PAGES):
                    params = {"as_of": as_of, "limit": 50, **({"cursor": cursor} if cursor else {})}
                    t0 = time.perf_counter()
                    response = await client.get("/v1/cases/overdue", params=params, headers=AUTH)
                    latencies.append(time.perf_counter() - t0)
                    assert response.status_code == 200, response.text
                    cursor = response.json()["next_cursor"]
            # a restart: the open-case index is loaded again from the store
            process.stop()
            process = infra.service_process("deadline", port, env.run_dir, env_of(settings))
            process.start()
            await infra.wait_http(f"{base}/healthz", timeout=60, process=process)
            index_load = await wait_gauge(base, "tthc_deadline_open_cases_index_usable", 1.0, timeout=900)
            rss_reloaded = rss_mib(process.popen.pid)
        finally:
            process.stop()
            mongo.close()

        # the sweep, in-process against the same store (the service is stopped)
        context = DeadlineContext(settings)
        await context.publisher.start()
        t0 = time.perf_counter()
        nothing = await context.sweeper.sweep(datetime.now(UTC) - timedelta(days=365))
        idle_sweep = time.perf_counter() - t0
        t0 = time.perf_counter()
        published = await context.sweeper.sweep(datetime.now(UTC) + timedelta(days=120))
        full_sweep = time.perf_counter() - t0
        await context.publisher.stop()
        context.mongo.close()
    return {
        "name": "deadline",
        "what": f"deadline service at {n} open cases (SecantusDB store, Kafka 2.3 broker, 2 cores shared)",
        "raw_store_bulk_upsert_docs_per_s": round(raw_upsert),
        "raw_idempotent_producer_msgs_per_s": round(raw_produce),
        "applied_events_per_s": round(applied_rate),
        "applied_ratio_of_raw_upsert": round(applied_rate / raw_upsert, 2),
        "overdue_page_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "overdue_page_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "raw_store_page_query_p99_ms": round(percentile(raw_latencies, 99) * 1000, 1),
        "overdue_page_p99_ratio_to_raw_query": round(percentile(latencies, 99) / percentile(raw_latencies, 99), 2),
        "pages_measured": PAGES,
        "rss_mib_at_open_cases": round(rss, 1),
        "open_case_index_load_seconds_after_restart": round(index_load, 1),
        "rss_mib_after_restart": round(rss_reloaded, 1),
        "sweep_seconds_nothing_due": round(idle_sweep, 3),
        "sweep_seconds_all_due": round(full_sweep, 1),
        "sweep_transitions_published": published,
        "sweep_nothing_due_published": nothing,
        "targets": {"applied_ratio_of_raw_upsert": ">= 0.6", "overdue_page_p99_ms": "<= 50"},
        "met": applied_rate / raw_upsert >= 0.6 and percentile(latencies, 99) <= 0.05,
    }


def run() -> dict[str, Any]:
    n = int(os.environ.get("BENCH_DEADLINE_CASES", "100000"))
    return asyncio.run(run_async(n))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

"""The metrics service: indicator query latency as the case count grows, and applied events/s.

- applied events/s: case.received events on the topic applied by a real metrics process (facts and
  aggregates in one transaction), vs raw bulk upserts of same-shaped fact documents (same run,
  same store); then one later event for each of those cases (known facts, replaced whole), vs
  replacement upserts of their new documents over the old ones; then, restarted after a graceful
  stop (the facts it held put back from the stop's snapshot, ADR 0023), a third event for each
  case, and restarted after a kill (nothing held, each case's facts read from the store), a fourth,
  vs the same limit;
- p50/p99 of GET /v1/indicators at 10,000, 100,000 and 1,000,000 cases (facts spread over two
  years, 80 % finished, with their aggregates, loaded straight into the store): a month, a quarter,
  an explicit range with partial months, one agency's month, and a field + channel filter; 100
  passes over the five after a first pass, whose times (each filtered selection's months summed
  cold) are reported apart; no events are applied meanwhile;
- RSS of the metrics process after the queries.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from bench.deadline import events, folded, follow_ups, ratings, rss_mib
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
from services.metrics.aggregates import COLLECTIONS, bucket_writes, buckets_queries
from services.metrics.context import AGGREGATES_VERSION
from services.metrics.facts import case_facts
from shared.config import load_registry
from shared.domain.calendar import VN_TZ
from shared.domain.indicators import parse_period
from shared.settings import Settings

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
QUERIES = 100  # passes over QUERY_SET after the first (which is reported on its own)
RAW_QUERIES = 10


def facts_for(items: list[dict[str, Any]], later: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The fact documents the projection writes for these case.received events (with `later`: once
    each case's later event is applied too)."""
    out = []
    for state, history in folded(items, load_registry(infra.REPO / "config"), later):
        document = case_facts(state, history, None)
        document["_id"] = state.case_code
        document["events"] = history
        out.append(document)
    return out


QUERY_SET = [
    {"period": "2026-11"},
    {"period": "2026-Q3"},
    {"period": "2026-02-10..2026-04-17"},
    {"period": "2026-11", "agency": "000.00.02.H99"},
    {"period": "2026-11", "field": "G09-DD", "channel": "online"},
]


def spread_facts(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """Case facts as the projection writes them, received over 2025–2026, most of them finished."""
    rng = random.Random(seed)
    registry = load_registry(infra.REPO / "config")
    agencies = [a for a in registry.agencies.values() if a.parent_code and a.valid_to is None]
    procedures = list(registry.catalogue.procedures.values())
    start = datetime(2025, 1, 1, 7, 30, tzinfo=VN_TZ)
    out = []
    for i in range(n):
        agency, procedure = rng.choice(agencies), rng.choice(procedures)
        received = start + timedelta(minutes=rng.randrange(0, 700 * 24 * 60))
        due = received + timedelta(days=rng.randint(3, 40))
        end = received + timedelta(days=rng.randint(1, 50)) if rng.random() < 0.8 else None
        channel = rng.choice(["direct", "online", "postal"])
        out.append(
            {
                "_id": f"{agency.code}-bm-{i:07d}",
                "agency_code": agency.code,
                "level": agency.level.value,
                "field_code": procedure.field_code,
                "procedure_code": procedure.code,
                "channel": channel,
                "online_mode": "full" if channel == "online" and rng.random() < 0.5 else None,
                "full_online_eligible": procedure.current.full_online_eligible,
                "fee_bearing": procedure.current.fee_bearing,
                "received_at": received,
                "due_at": due,
                "end_at": end,
                "on_time": None if end is None else end <= due,
                "result_dated": None
                if end is None
                else ("early" if end.date() < due.date() else "on_time" if end.date() == due.date() else "late"),
                "supplement_requests": rng.choice([0, 0, 0, 1, 2]),
                "paid_online": rng.random() < 0.3,
                "components_digitized": rng.random() < 0.7,
                "reused": rng.random() < 0.2,
                "apology_on_time": rng.choice([None, None, True, False]),
                "satisfied": rng.choice([None, True]),
                "complaint": rng.random() < 0.02,
            }
        )
    return out


async def _applied_rates(env: Infra, settings: Settings, port: int, applied_n: int) -> dict[str, Any]:
    """Events/s a real metrics process applies, new cases then known ones, against the raw store."""
    items = events(applied_n)
    sample_facts = facts_for(items)
    raw_upsert = await raw_bulk_upsert_rate(env.mongo.uri, sample_facts)
    raw_set = await raw_bulk_upsert_rate(env.mongo.uri, sample_facts, form="set")
    later = follow_ups(items)
    # the known facts' limit: replacement upserts of their new documents over the old ones
    raw_existing = await raw_bulk_upsert_rate(env.mongo.uri, facts_for(items, later), existing=sample_facts)
    topic = settings.case_events_topic
    await raw_produce_rate(
        env.kafka.bootstrap, topic, [dumps(e) for e in items], [e["case_code"].encode() for e in items]
    )
    process = infra.service_process("metrics", port, env.run_dir, env_of(settings))
    process.start()
    try:
        await infra.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, process=process)
        applied = await applied_rate(f"http://127.0.0.1:{port}", "metrics", applied_n, timeout=1200)
        await raw_produce_rate(
            env.kafka.bootstrap, topic, [dumps(e) for e in later], [e["case_code"].encode() for e in later]
        )
        applied_known = await applied_rate(
            f"http://127.0.0.1:{port}", "metrics", len(later), timeout=1200, after=applied_n
        )
    finally:
        process.stop()
    after_restart, restored = await _applied_after_restart(env, settings, port, ratings(items))
    after_crash, _ = await _applied_after_restart(env, settings, port, ratings(items, "hh"), after_crash=True)
    return {
        "raw_store_bulk_upsert_docs_per_s": round(raw_upsert),
        "raw_store_set_upsert_docs_per_s": round(raw_set),
        "applied_events_per_s": round(applied),
        "applied_ratio_of_raw_upsert": round(applied / raw_upsert, 2),
        "applied_known_cases_events_per_s": round(applied_known),
        "raw_store_bulk_upsert_over_existing_docs_per_s": round(raw_existing),
        "applied_known_cases_ratio_of_raw_upsert_over_existing": round(applied_known / raw_existing, 2),
        "applied_known_cases_after_restart_events_per_s": round(after_restart),
        "applied_known_cases_after_restart_ratio_of_raw_upsert_over_existing": round(after_restart / raw_existing, 2),
        "facts_put_back_at_restart": restored,
        "applied_known_cases_after_crash_events_per_s": round(after_crash),
        "applied_known_cases_after_crash_ratio_of_raw_upsert_over_existing": round(after_crash / raw_existing, 2),
    }


async def _applied_after_restart(
    env: Infra, settings: Settings, port: int, third: list[dict[str, Any]], after_crash: bool = False
) -> tuple[float, float]:
    """One more event for each case after a restart, once the aggregate copy is loaded: after a
    graceful stop (the facts held put back), or after a kill (`after_crash`: each case's facts read
    from the store). Events/s, and the facts put back. The process is killed at the end of the
    first, for the crash that follows."""
    process = infra.service_process("metrics", port, env.run_dir, env_of(settings))
    process.start()
    base = f"http://127.0.0.1:{port}"
    try:
        await infra.wait_http(f"{base}/healthz", timeout=60, process=process)
        await wait_gauge(base, "tthc_metrics_buckets_mirror_usable", 1.0, timeout=1200)
        series = 'tthc_projection_events_applied_total{projection="metrics"}'
        already = (await scrape(base, series)).get(series, 0.0)
        await raw_produce_rate(
            env.kafka.bootstrap,
            settings.case_events_topic,
            [dumps(e) for e in third],
            [e["case_code"].encode() for e in third],
        )
        rate = await applied_rate(base, "metrics", len(third), timeout=1200, after=already)
        restored = 'tthc_projection_cache_restored_total{projection="metrics"}'
        return rate, (await scrape(base, restored)).get(restored, 0.0)
    finally:
        if after_crash:
            process.stop()
        else:
            process.kill()


async def _empty_aggregates(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db.facts.drop()
    for name in COLLECTIONS:
        await db[f"agg_{name}"].drop()
    await db.meta.replace_one({"_id": "aggregates"}, {"_id": "aggregates", "version": AGGREGATES_VERSION}, upsert=True)


async def _load(db: AsyncDatabase[dict[str, Any]], facts: list[dict[str, Any]]) -> float:
    """Seconds to write these facts and their aggregates straight into the store."""
    t0 = time.perf_counter()
    for start in range(0, len(facts), 5000):
        await db.facts.insert_many(facts[start : start + 5000])
    for name, writes in bucket_writes((None, fact) for fact in facts).items():
        for start in range(0, len(writes), 1000):
            await db[f"agg_{name}"].bulk_write(writes[start : start + 1000], ordered=False)
    return time.perf_counter() - t0


async def _raw_month_reads(db: AsyncDatabase[dict[str, Any]]) -> list[float]:
    """The raw limit the bucket copy replaces: reading the month query's buckets from the store."""
    raw: list[float] = []
    for _ in range(RAW_QUERIES):
        t0 = time.perf_counter()
        for collection, query in buckets_queries(parse_period("2026-11"), "c", None, {}):
            _ = [b async for b in db[f"agg_{collection}"].find(query, {"_id": 0, "f": 0})]
        raw.append(time.perf_counter() - t0)
    return raw


async def _query_latencies(base_url: str) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(ms of each query's first pass, seconds of each later pass by query)."""
    latencies: dict[str, list[float]] = {}
    first: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=300) as client:
        # the first pass after the load sums the months of each filtered selection (the
        # province-wide sums are made at load): reported apart, as the cold cost
        for n in range(1 + QUERIES):
            for params in QUERY_SET:
                t0 = time.perf_counter()
                response = await client.get("/v1/indicators", params=params, headers=AUTH)
                elapsed = time.perf_counter() - t0
                assert response.status_code == 200, response.text
                if n == 0:
                    first[_label(params)] = round(elapsed * 1000, 1)
                else:
                    latencies.setdefault(_label(params), []).append(elapsed)
    return first, latencies


async def _queries_at(
    env: Infra, settings: Settings, port: int, db: AsyncDatabase[dict[str, Any]], size: int
) -> dict[str, Any]:
    """A metrics process started over the `size` facts in the store: its load, its query times, its RSS."""
    result: dict[str, Any] = {}
    process = infra.service_process("metrics", port, env.run_dir, env_of(settings))
    process.start()
    try:
        await infra.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=300, process=process)
        # the bucket copy in memory (ADR 0008): loaded when the consumer gets its partitions
        mirror_seconds = await wait_gauge(
            f"http://127.0.0.1:{port}", "tthc_metrics_buckets_mirror_usable", 1.0, timeout=900
        )
        result[f"mirror_load_seconds_at_{size}"] = round(mirror_seconds, 2)
        raw = await _raw_month_reads(db)
        result[f"raw_store_month_buckets_read_p99_ms_at_{size}"] = round(percentile(raw, 99) * 1000, 1)
        first, latencies = await _query_latencies(f"http://127.0.0.1:{port}")
        result[f"indicators_first_query_after_load_ms_at_{size}"] = first
        every = [v for values in latencies.values() for v in values]
        result[f"indicators_month_p50_ms_at_{size}"] = round(percentile(latencies["2026-11"], 50) * 1000, 1)
        result[f"indicators_month_p99_ms_at_{size}"] = round(percentile(latencies["2026-11"], 99) * 1000, 1)
        result[f"indicators_all_queries_p99_ms_at_{size}"] = round(percentile(every, 99) * 1000, 1)
        result[f"indicators_p99_ms_by_query_at_{size}"] = {
            label: round(percentile(values, 99) * 1000, 1) for label, values in latencies.items()
        }
        result[f"rss_mib_at_{size}"] = round(rss_mib(process.started_pid), 1)
    finally:
        process.stop()
    return result


def _verdict(result: dict[str, Any], sizes: tuple[int, ...]) -> dict[str, Any]:
    small, large = sizes[0], sizes[-1]
    p99_large = result[f"indicators_all_queries_p99_ms_at_{large}"]
    growth = round(p99_large / result[f"indicators_all_queries_p99_ms_at_{small}"], 2)
    return {
        "p99_growth_factor": growth,
        "targets": {
            f"indicators_p99_ms_at_{large}": "<= 20",
            "p99_growth_smallest_to_largest": "<= 2x",
            "applied_ratio_of_raw_upsert": ">= 0.6",
            "applied_known_cases_ratio_of_raw_upsert_over_existing": ">= 0.6",
            "applied_known_cases_after_restart_ratio_of_raw_upsert_over_existing": ">= 0.6",
        },
        "met": {
            "p99": p99_large <= 20,
            "growth": growth <= 2,
            "applied": result["applied_ratio_of_raw_upsert"] >= 0.6,
            "applied_known_cases": result["applied_known_cases_ratio_of_raw_upsert_over_existing"] >= 0.6,
            "applied_known_cases_after_restart": (
                result["applied_known_cases_after_restart_ratio_of_raw_upsert_over_existing"] >= 0.6
            ),
        },
    }


async def run_async(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), applied_n: int = 20_000) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": "metrics",
        "what": "metrics service: indicator query latency by case count (aggregates in memory), applied events/s"
        " (SecantusDB)",
    }
    async with infrastructure() as env:
        settings = env.settings("bm-")
        await infra.create_topics(env.kafka.bootstrap, prefix="bm-")
        port = infra.free_port()
        result.update(await _applied_rates(env, settings, port, applied_n))
        mongo = store_client(env.mongo.uri)
        db = mongo[f"{settings.mongo_db}_metrics"]
        # the queries at growing sizes: facts and their aggregates straight into the store
        await _empty_aggregates(db)
        all_facts = spread_facts(max(sizes))
        inserted, load_seconds = 0, 0.0
        for size in sizes:
            load_seconds += await _load(db, all_facts[inserted:size])
            inserted = size
            result[f"buckets_at_{size}"] = {n: await db[f"agg_{n}"].estimated_document_count() for n in COLLECTIONS}
            result.update(await _queries_at(env, settings, port, db, size))
        insert_rate = inserted / load_seconds
        await mongo.close()
    result["facts_and_buckets_load_docs_per_s"] = round(insert_rate)
    result.update(_verdict(result, sizes))
    return result


def _label(params: dict[str, str]) -> str:
    return " ".join(f"{v}" for v in params.values())


def run() -> dict[str, Any]:
    sizes = tuple(int(s) for s in os.environ.get("BENCH_METRICS_SIZES", "10000,100000,1000000").split(","))
    return asyncio.run(run_async(sizes))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

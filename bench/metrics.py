"""The metrics service: indicator query latency as the case count grows, and applied events/s.

- applied events/s: case.received events on the topic applied by a real metrics process, vs raw
  bulk upserts of same-shaped fact documents (same run, same store);
- p50/p99 of GET /v1/indicators (one month, whole province) at 10,000 and 100,000 cases, facts
  bulk-inserted straight into the store (the projection's speed is measured separately above);
- RSS of the metrics process after the queries.
1,000,000 cases are not run: the query grows linearly with the cases (it folds the period's facts
in the service), so at 1M each query would take minutes; the result gives the growth factor.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx
from motor.motor_asyncio import AsyncIOMotorClient

from bench.deadline import events, rss_mib
from bench.harness import ADMIN_TOKEN, dumps, env_of, infrastructure, percentile, raw_bulk_upsert_rate, raw_produce_rate
from deploy.local import infra
from services.metrics.facts import case_facts
from shared.config import load_registry
from shared.domain.fold import CaseEvent, fold_case

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
QUERIES = 10


def facts_for(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    registry = load_registry(infra.REPO / "config")
    out = []
    for item in items:
        state = fold_case([CaseEvent.from_dict({**item, "seq": 0})], registry)
        document = case_facts(state, [item], None)
        document["_id"] = item["case_code"]
        document["events"] = [item]
        out.append(document)
    return out


async def run_async(sizes: tuple[int, ...] = (10_000, 100_000), applied_n: int = 10_000) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": "metrics",
        "what": "metrics service: indicator query latency by case count, applied events/s (SecantusDB, 2 cores)",
    }
    async with infrastructure() as env:
        settings = env.settings("bm-")
        await infra.create_topics(env.kafka.bootstrap, prefix="bm-")
        items = events(max(sizes))
        all_facts = facts_for(items)
        raw_upsert = await raw_bulk_upsert_rate(env.mongo.uri, all_facts[:10_000])
        sample = items[:applied_n]
        await raw_produce_rate(
            env.kafka.bootstrap,
            settings.case_events_topic,
            [dumps(e) for e in sample],
            [e["case_code"].encode() for e in sample],
        )
        mongo: AsyncIOMotorClient = AsyncIOMotorClient(env.mongo.uri)
        facts = mongo[f"{settings.mongo_db}_metrics"].facts
        port = infra.free_port()
        process = infra.service_process("metrics", port, env.run_dir, env_of(settings))
        process.start()
        try:
            await infra.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, process=process)
            started, first = time.perf_counter(), None
            while (count := await facts.estimated_document_count()) < applied_n:
                if count and first is None:
                    first = time.perf_counter()
                if time.perf_counter() - started > 1200:
                    raise TimeoutError(f"{count} of {applied_n} applied")
                await asyncio.sleep(0.5)
            applied_rate = applied_n / (time.perf_counter() - (first or started))
        finally:
            process.stop()
        result.update(
            raw_store_bulk_upsert_docs_per_s=round(raw_upsert),
            applied_events_per_s=round(applied_rate),
            applied_ratio_of_raw_upsert=round(applied_rate / raw_upsert, 2),
        )
        # the query at growing sizes: facts straight into the store
        await facts.drop()
        inserted, load_seconds = 0, 0.0
        for size in sizes:
            t0 = time.perf_counter()
            for start in range(inserted, size, 2000):
                await facts.insert_many(
                    [{k: v for k, v in f.items() if k != "events"} for f in all_facts[start : min(size, start + 2000)]]
                )
            load_seconds += time.perf_counter() - t0
            inserted = size
            process = infra.service_process("metrics", port, env.run_dir, env_of(settings))
            process.start()
            try:
                await infra.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, process=process)
                latencies = []
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
                    for _ in range(QUERIES):
                        t0 = time.perf_counter()
                        response = await client.get("/v1/indicators", params={"period": "2026-11"}, headers=AUTH)
                        latencies.append(time.perf_counter() - t0)
                        assert response.status_code == 200, response.text
                result[f"indicators_p50_ms_at_{size}"] = round(percentile(latencies, 50) * 1000, 1)
                result[f"indicators_p99_ms_at_{size}"] = round(percentile(latencies, 99) * 1000, 1)
                result[f"rss_mib_at_{size}"] = round(rss_mib(process.popen.pid), 1)
            finally:
                process.stop()
        insert_rate = inserted / load_seconds
        mongo.close()
    small, large = sizes[0], sizes[-1]
    result.update(
        fact_insert_docs_per_s=round(insert_rate),
        minutes_to_load_1m_facts_at_that_rate=round(1_000_000 / insert_rate / 60, 1),
        p99_growth_factor=round(result[f"indicators_p99_ms_at_{large}"] / result[f"indicators_p99_ms_at_{small}"], 1),
        targets={
            "indicators_p99_ms_at_1000000": "<= 20",
            "p99_growth_10k_to_1m": "<= 2x",
            "applied_ratio_of_raw_upsert": ">= 0.6",
        },
        met=False,
        not_run="1,000,000 cases: the query is linear in the cases (see p99_growth_factor); minutes per query at 1M",
    )
    return result


def run() -> dict[str, Any]:
    sizes = tuple(int(s) for s in os.environ.get("BENCH_METRICS_SIZES", "10000,100000").split(","))
    return asyncio.run(run_async(sizes))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

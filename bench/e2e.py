"""End to end: events/s from the intake to the metrics service, and the lag, at 10k, 100k and 1M events.

One broker, one store and the three services as real processes (the deadline service consumes the
same topic at the same time, as in production). The simulator's province is posted to the intake
(half our events, half DVCQG snapshots, late, out of order and duplicated items included), 4
clients in parallel, batches of 500. A sampler reads, every 0.25 s, the topic's end offsets and the
offsets the metrics consumer group committed; a record's lag is the time from the first sample that
saw it on the topic to the first sample that saw it committed by the metrics service (after its
facts were written), so it is measured to ±0.25 s. Steady state = the middle 80 % of the records.
Raw limits in the same run: idempotent aiokafka produce, aiokafka consume, store bulk upserts.

Sizes up to BENCH_E2E_STREAMED_MAX items (default 100,000) are streamed whole, one after the other
into the same stack. A larger size is measured as history plus a window: the services are stopped,
the stores get the documents of the cases the missing items would have made (≈ 3.6 items a case,
received and mostly finished in 2024, written straight into the deadline's cases and the metrics'
facts and buckets, their timers already fired), the services start again (the deadline's open-case
index and the metrics' bucket copy load), and a window of BENCH_E2E_WINDOW items (default 20,000)
is streamed and measured. Streaming all 1,000,000 items takes hours on this store; what grows with
the size is the store, and that the window measures.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import random
import time
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from bench.deadline import rss_mib
from bench.harness import (
    dumps,
    percentile,
    raw_bulk_upsert_rate,
    raw_consume_rate,
    raw_produce_rate,
    store_client,
    wait_gauge,
)
from deploy.local import infra
from deploy.local.throwaway import ADMIN_TOKEN, Infra, env_of, infrastructure
from services.deadline.context import DeadlineContext
from services.metrics.aggregates import bucket_writes
from services.metrics.facts import case_facts
from shared.config import load_registry
from shared.domain.fold import CaseEvent, fold_case
from shared.settings import Settings
from simulator import wire
from simulator.__main__ import plan
from simulator.workdays import VN

SAMPLE_S = 0.25
ITEMS_PER_CASE = 3.6  # the simulator's mix, measured


def province(n_items: int, seed: int) -> list[wire.Item]:
    """About n_items items over a year of the simulated province."""
    first, last = date(2025, 1, 1), date(2025, 12, 31)
    per_day = n_items / ITEMS_PER_CASE / 250
    horizon = datetime.combine(last + timedelta(days=1), clock_time(0), VN)
    items = wire.stream(plan(seed, first, last, per_day, horizon), seed)
    return items[:n_items]


class Sampler:
    """Topic end offsets and the metrics group's committed offsets, every SAMPLE_S."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.ends: list[tuple[float, int]] = []  # (t, total end offset)
        self.commits: list[tuple[float, int]] = []  # (t, total committed)
        self.stop = asyncio.Event()
        self.started = asyncio.Event()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await consumer.start()
        await admin.start()
        try:
            count = 0
            while count == 0:
                await consumer._client.force_metadata_update()
                count = len(consumer.partitions_for_topic(self.topic) or [])
            partitions = [TopicPartition(self.topic, p) for p in range(count)]
            while not self.stop.is_set():
                now = time.perf_counter()
                ends = await consumer.end_offsets(partitions)
                committed = await admin.list_consumer_group_offsets(self.group, partitions=partitions)
                self.ends.append((now, sum(ends.values())))
                self.commits.append((now, sum(max(o.offset, 0) for o in committed.values())))
                self.started.set()
                await asyncio.sleep(SAMPLE_S)
        finally:
            await admin.close()
            await consumer.stop()

    def lags(self, base: int, last: int) -> list[float]:
        """The lag of every record in (base, last], in seconds (one value per record, ±SAMPLE_S)."""
        end_values = [v for _, v in self.ends]
        out: list[float] = []
        previous = base
        for t, committed in self.commits:
            if committed <= previous:
                continue
            for offset in range(previous + 1, min(committed, last) + 1):
                seen = bisect.bisect_left(end_values, offset)
                out.append(max(0.0, t - self.ends[min(seen, len(self.ends) - 1)][0]))
            previous = committed
            if previous >= last:
                break
        return out


async def one_size(urls: dict[str, str], bootstrap: str, topic: str, n_items: int, seed: int) -> dict[str, Any]:
    items = province(n_items, seed)
    sampler = Sampler(bootstrap, topic, "tthc-metrics")
    task = asyncio.create_task(sampler.run())
    await sampler.started.wait()
    base = sampler.ends[-1][1]
    started = time.perf_counter()
    sent = await wire.post(items, urls["intake"], ADMIN_TOKEN, batch=500, concurrency=4)
    posted = time.perf_counter() - started
    await asyncio.sleep(2 * SAMPLE_S)
    last = sampler.ends[-1][1]
    deadline = time.perf_counter() + 3600
    while sampler.commits[-1][1] < last:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"metrics committed {sampler.commits[-1][1] - base} of {last - base}")
        await asyncio.sleep(SAMPLE_S)
    done = sampler.commits[-1][0]
    sampler.stop.set()
    await task
    events = last - base
    lags = sampler.lags(base, last)
    # steady state: from the 10th to the 90th percentile record's commit
    t10 = _time_of(sampler.commits, base + events // 10)
    t90 = _time_of(sampler.commits, base + events * 9 // 10)
    steady = (events * 8 // 10) / (t90 - t10) if t90 > t10 else None
    return {
        "items_posted": sent["events"] + sent["snapshots"],
        "events_on_topic": events,
        "post_seconds": round(posted, 1),
        "intake_items_per_s": round(len(items) / posted),
        "end_to_end_seconds": round(done - started, 1),
        "end_to_end_events_per_s": round(events / (done - started)),
        "steady_events_per_s": round(steady) if steady else None,
        "lag_p50_s": round(percentile(lags, 50), 2),
        "lag_p99_s": round(percentile(lags, 99), 2),
        "lag_max_s": round(max(lags), 2),
    }


def _time_of(commits: list[tuple[float, int]], offset: int) -> float:
    for t, committed in commits:
        if committed >= offset:
            return t
    return commits[-1][0]


def history_events(i: int, rng: random.Random, agencies: list[Any], procedures: list[Any]) -> list[dict[str, Any]]:
    """A case of 2024: received, and finished in 85 % of cases."""
    agency, procedure = rng.choice(agencies), rng.choice(procedures)
    day = date(2024, 1, 2) + timedelta(days=rng.randrange(0, 360))
    received = datetime.combine(day, clock_time(rng.randint(7, 15), rng.randrange(60)), VN)
    code = f"{agency.code}-hist-{i:07d}"
    out = [
        {
            "event_id": f"hist-{i}-r",
            "type": "case.received",
            "schema_version": 1,
            "case_code": code,
            "occurred_at": received.isoformat(),
            "agency_code": agency.code,
            "data": {
                "procedure_code": procedure.code,
                "field_code": procedure.field_code,
                "level": agency.level.value,
                "channel": rng.choice(["direct", "online", "postal"]),
                "online_mode": None,
            },
        }
    ]
    if rng.random() < 0.85:
        end = received + timedelta(days=rng.randint(1, 30), hours=rng.randint(0, 3))
        out.append(
            {
                "event_id": f"hist-{i}-p",
                "type": "case.processed",
                "schema_version": 1,
                "case_code": code,
                "occurred_at": end.isoformat(),
                "agency_code": agency.code,
                "data": {"outcome": "approved"},
            }
        )
    return [{**e, "seq": n} for n, e in enumerate(out)]


async def preload_history(settings: Settings, uri: str, cases: int, seed: int = 7) -> dict[str, Any]:
    """The documents `cases` cases leave in both projections, written straight into the store."""
    rng = random.Random(seed)
    registry = load_registry(infra.REPO / "config")
    agencies = [a for a in registry.agencies.values() if a.parent_code and a.valid_to is None]
    procedures = list(registry.catalogue.procedures.values())
    deadline = DeadlineContext(settings)  # only for its document shape
    mongo = store_client(uri)
    cases_db, metrics_db = mongo[f"{settings.mongo_db}_deadline"], mongo[f"{settings.mongo_db}_metrics"]
    started = time.perf_counter()
    try:
        for first in range(0, cases, 5000):
            documents, facts = [], []
            for i in range(first, min(cases, first + 5000)):
                events = history_events(i, rng, agencies, procedures)
                state = fold_case([CaseEvent.from_dict(e) for e in events], registry)
                document = deadline.port.document(state, events, None)
                document.update(_id=state.case_code, events=events)  # no timer: long fired
                documents.append(document)
                facts.append(case_facts(state, events, None) | {"_id": state.case_code, "events": events})
            buckets = bucket_writes((None, fact) for fact in facts).items()
            await asyncio.gather(  # the collections are independent: let the store overlap them
                cases_db.cases.insert_many(documents, ordered=False),
                metrics_db.facts.insert_many(facts, ordered=False),
                *(metrics_db[f"agg_{name}"].bulk_write(writes, ordered=False) for name, writes in buckets),
            )
    finally:
        await mongo.close()
        await deadline.mongo.close()
    return {"history_cases": cases, "history_load_seconds": round(time.perf_counter() - started, 1)}


async def _raw_limits(env: Infra, settings: Settings) -> dict[str, float]:
    """Produce, consume and bulk-upsert rates of the simulated province's events, on a topic of their own."""
    sample = [i.body for i in province(20_000, 99) if i.kind == "event"][:10_000]
    admin = AIOKafkaAdminClient(bootstrap_servers=env.kafka.bootstrap)
    await admin.start()
    await admin.create_topics(
        [NewTopic("be-raw", num_partitions=settings.case_events_partitions, replication_factor=1)]
    )
    await admin.close()
    values, keys = [dumps(e) for e in sample], [e["case_code"].encode() for e in sample]
    return {
        "produce": await raw_produce_rate(env.kafka.bootstrap, "be-raw", values, keys),
        "consume": await raw_consume_rate(env.kafka.bootstrap, "be-raw", len(sample)),
        "upsert": await raw_bulk_upsert_rate(env.mongo.uri, [{"_id": e["case_code"], **e} for e in sample]),
    }


async def _in_memory_copies_loaded(urls: dict[str, str]) -> dict[str, float]:
    """Seconds until the deadline's open-case index and the metrics' bucket copy are usable."""
    index = await wait_gauge(urls["deadline"], "tthc_deadline_open_cases_index_usable", 1, 1800)
    buckets = await wait_gauge(urls["metrics"], "tthc_metrics_buckets_mirror_usable", 1, 1800)
    return {"open_case_index_load_seconds": round(index, 1), "bucket_copy_load_seconds": round(buckets, 1)}


def _against_raw(measured: dict[str, Any], raw: dict[str, float], services: infra.Services) -> dict[str, Any]:
    rate = measured["end_to_end_events_per_s"]
    measured["ratio_of_raw_produce"] = round(rate / raw["produce"], 3)
    measured["ratio_of_raw_upsert"] = round(rate / raw["upsert"], 3)
    measured["rss_mib"] = {p.name: round(rss_mib(p.started_pid), 1) for p in services.processes.values()}
    return measured


async def run_async(sizes: tuple[int, ...]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": "e2e",
        "what": "intake → Kafka → metrics (deadline consuming alongside), simulated province, SecantusDB, 2 cores",
    }
    streamed_max = int(os.environ.get("BENCH_E2E_STREAMED_MAX", "100000"))
    window = int(os.environ.get("BENCH_E2E_WINDOW", "20000"))
    async with infrastructure() as env:
        settings = env.settings("be-")
        await infra.create_topics(env.kafka.bootstrap, prefix="be-")
        raw = await _raw_limits(env, settings)
        result["raw_produce_msgs_per_s"] = round(raw["produce"])
        result["raw_consume_msgs_per_s"] = round(raw["consume"])
        result["raw_store_bulk_upsert_docs_per_s"] = round(raw["upsert"])
        items_so_far = 0
        stack = infra.running_services(env.run_dir, env_of(settings))
        services: infra.Services | None = await stack.__aenter__()
        try:
            for index, size in enumerate(sizes):
                extra: dict[str, Any] = {}
                streamed = size
                if size > streamed_max:  # history straight into the stores, then a window streamed
                    streamed = min(window, size)
                    await stack.__aexit__(None, None, None)
                    services = None
                    history_cases = round(max(0, size - items_so_far - streamed) / ITEMS_PER_CASE)
                    extra = await preload_history(settings, env.mongo.uri, history_cases)
                    stack = infra.running_services(env.run_dir, env_of(settings), ready_timeout=600)
                    services = await stack.__aenter__()
                    extra |= await _in_memory_copies_loaded(services.urls)
                    extra["streamed_window_items"] = streamed
                assert services is not None
                topic = settings.case_events_topic
                measured = await one_size(services.urls, env.kafka.bootstrap, topic, streamed, 100 + index)
                items_so_far += streamed + round(extra.get("history_cases", 0) * ITEMS_PER_CASE)
                result[f"at_{size}"] = _against_raw(measured | extra, raw, services)
                print(json.dumps({f"at_{size}": result[f"at_{size}"]}), flush=True)
        finally:
            if services is not None:
                await stack.__aexit__(None, None, None)
    return result


def run() -> dict[str, Any]:
    sizes = tuple(int(s) for s in os.environ.get("BENCH_E2E_SIZES", "10000,100000,1000000").split(","))
    return asyncio.run(run_async(sizes))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

"""Several replicas of deadline and metrics: the applied rate with one and two, and the failover time.

- raw limits, same run, same broker and store: the idempotent producer's rate (producing the
  events measured), bulk replacement upserts of the deadline's case documents and of the metrics'
  fact documents into a bare collection;
- applied events/s of each projection with one replica and with two (the members of one consumer
  group on a topic of six partitions): the group formed first, then the events produced at the
  producer's rate (faster than either applies them), the rate summed over the replicas' own
  counters;
- failover: two deadline and two metrics replicas consume a steady stream (new cases, keyed by case
  code); one of each is killed with SIGKILL. Reported: the seconds from the kill until, on every
  partition, an event produced after the kill is committed by the group (the survivor took the dead
  member's partitions), until every such first event's case page answers from the surviving
  deadline, and until the survivors' in-memory copies are usable again (they hold every partition:
  ADR 0008, docs/replicas.md). The group's session timeout bounds the first part: the broker
  notices the dead member only when its heartbeats stop for that long.

Sizes by environment: BENCH_FAILOVER_EVENTS (events per applied-rate run, 4,000),
BENCH_FAILOVER_RATE (events/s of the steady stream, 100), BENCH_FAILOVER_STEADY_S (seconds of the
stream before the kill, 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from bench.deadline import documents_of, events
from bench.harness import dumps, raw_bulk_upsert_rate, raw_produce_rate, wait_gauge
from bench.metrics import facts_for
from deploy.local import infra
from deploy.local.throwaway import ADMIN_TOKEN, Infra, env_of, infrastructure
from services.deadline.context import DeadlineContext
from services.metrics.context import MetricsContext
from shared.kafka import SESSION_TIMEOUT_MS
from shared.settings import Settings

PARTITIONS = 6
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GROUPS = {"deadline": DeadlineContext.group_id, "metrics": MetricsContext.group_id}
USABLE = {"deadline": "tthc_deadline_open_cases_index_usable", "metrics": "tthc_metrics_buckets_mirror_usable"}
TIMEOUT_S = 600.0


@contextlib.asynccontextmanager
async def replicas(
    env: Infra, settings: Settings, names: list[str]
) -> AsyncIterator[tuple[dict[str, str], dict[str, infra.ManagedProcess]]]:
    """Service processes (`deadline`, `deadline-2`, ...) on free ports, ready: their base URLs and
    the processes (each stopped on the way out, by pid)."""
    run_dir = env.run_dir / settings.topic_prefix
    async with infra.running_services(run_dir, env_of(settings), tuple(names), ready_timeout=120) as services:
        yield services.urls, services.processes


async def members(bootstrap: str, group: str) -> int:
    """Members of a consumer group once it is stable (0 while it rebalances)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        _, _, state, _, _, found, *_ = response.groups[0]
        return len(found) if state == "Stable" else 0
    finally:
        await admin.close()


async def wait_members(bootstrap: str, group: str, count: int) -> None:
    deadline = time.monotonic() + 120
    while await members(bootstrap, group) != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{group} did not settle at {count} members")
        await asyncio.sleep(0.5)


async def applied(client: httpx.AsyncClient, urls: list[str], projection: str) -> float:
    """The events these processes applied, summed from their own counters."""
    series = f'tthc_projection_events_applied_total{{projection="{projection}"}} '
    total = 0.0
    for url in urls:
        text = (await client.get(f"{url}/metrics")).text
        total += next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(series)), 0.0)
    return total


async def applied_rate(urls: list[str], projection: str, expected: int) -> float:
    """Events/s from the first applied batch seen to the last event (summed over the replicas)."""
    first: tuple[float, float] | None = None
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            count, now = await applied(client, urls, projection), time.perf_counter()
            if count and first is None:
                first = (now, count)
            if count >= expected and first is not None and count > first[1]:
                return (count - first[1]) / (now - first[0])
            if count >= expected:
                raise RuntimeError(f"all {expected} events applied in the first batch seen; produce more")
            if now - started > TIMEOUT_S:
                raise TimeoutError(f"{count:.0f} of {expected} applied")
            await asyncio.sleep(0.2)


async def rate_with(env: Infra, projection: str, count: int, items: list[dict[str, Any]]) -> float:
    """One run: `count` replicas of a projection, a topic of its own, the group formed, then the
    events produced and applied."""
    settings = env.settings(f"fo-{projection}{count}-")
    await infra.create_topics(env.kafka.bootstrap, prefix=settings.topic_prefix, partitions=PARTITIONS)
    names = [projection] + [f"{projection}-{n}" for n in range(2, count + 1)]
    async with replicas(env, settings, names) as (urls, _):
        await wait_members(env.kafka.bootstrap, GROUPS[projection], count)
        await produce(env.kafka.bootstrap, settings.case_events_topic, items)
        return await applied_rate(list(urls.values()), projection, len(items))


async def produce(bootstrap: str, topic: str, items: list[dict[str, Any]]) -> float:
    return await raw_produce_rate(bootstrap, topic, [dumps(e) for e in items], [e["case_code"].encode() for e in items])


async def raw_limits(env: Infra, items: list[dict[str, Any]]) -> dict[str, float]:
    settings = env.settings("fo-raw-")
    await infra.create_topics(env.kafka.bootstrap, prefix=settings.topic_prefix, partitions=PARTITIONS)
    context = DeadlineContext(settings)
    try:
        documents = documents_of(context, items)
    finally:
        await context.mongo.close()
    return {
        "produce": await produce(env.kafka.bootstrap, settings.case_events_topic, items),
        "deadline_upsert": await raw_bulk_upsert_rate(env.mongo.uri, documents),
        "metrics_upsert": await raw_bulk_upsert_rate(env.mongo.uri, facts_for(items)),
    }


class Stream:
    """New cases at a steady rate; each event's partition and when it was produced."""

    def __init__(self, bootstrap: str, topic: str, items: list[dict[str, Any]], rate: float) -> None:
        self.bootstrap, self.topic, self.items, self.rate = bootstrap, topic, items, rate
        self.sent: list[tuple[float, int, str]] = []  # (monotonic, partition, case code)
        self.stop = asyncio.Event()

    async def run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True, acks="all")
        await producer.start()
        try:
            started = time.monotonic()
            for n, item in enumerate(self.items):
                if self.stop.is_set():
                    break
                await asyncio.sleep(max(0.0, started + n / self.rate - time.monotonic()))
                meta = await producer.send_and_wait(self.topic, dumps(item), key=item["case_code"].encode())
                self.sent.append((time.monotonic(), meta.partition, item["case_code"]))
        finally:
            await producer.stop()

    def first_after(self, instant: float) -> dict[int, str]:
        """The first case produced after `instant` on each partition."""
        out: dict[int, str] = {}
        for at, partition, code in self.sent:
            if at > instant:
                out.setdefault(partition, code)
        return out


async def committed_past(bootstrap: str, group: str, ends: dict[TopicPartition, int]) -> None:
    """Until the group committed past `ends` on every partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            committed = await admin.list_consumer_group_offsets(group, partitions=list(ends))
            if all(committed[tp].offset > end for tp, end in ends.items() if tp in committed):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group} never committed past the kill")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(
            [TopicPartition(topic, p) for p in range(PARTITIONS)]
        )
        return ends
    finally:
        await consumer.stop()


async def pages_answer(base: str, stream: Stream, killed_at: float) -> None:
    """Until each partition's first case produced after the kill answers from the survivor."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while len(firsts := stream.first_after(killed_at)) < PARTITIONS:  # noqa: ASYNC110 (the stream's own pace)
            await asyncio.sleep(0.1)
        pending = set(firsts.values())
        deadline = time.monotonic() + TIMEOUT_S
        while pending:
            for code in list(pending):
                if (await client.get(f"/v1/cases/{code}", headers=AUTH)).status_code == 200:
                    pending.discard(code)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} cases produced after the kill never answered")
            await asyncio.sleep(0.1)


async def timed(since: float, work: Awaitable[Any]) -> float:
    """Seconds from `since` until `work` is done."""
    await work
    return round(time.monotonic() - since, 2)


async def failover(env: Infra, items: list[dict[str, Any]], rate: float, steady_s: float) -> dict[str, float]:
    settings = env.settings("fo-kill-")
    bootstrap, topic = env.kafka.bootstrap, settings.case_events_topic
    await infra.create_topics(bootstrap, prefix=settings.topic_prefix, partitions=PARTITIONS)
    names = ["deadline", "deadline-2", "metrics", "metrics-2"]
    stream = Stream(bootstrap, topic, items, rate)
    async with replicas(env, settings, names) as (urls, processes):
        for group in GROUPS.values():
            await wait_members(bootstrap, group, 2)
        running = asyncio.create_task(stream.run())
        try:
            await asyncio.sleep(steady_s)
            ends = await end_offsets(bootstrap, topic)
            killed_at = time.monotonic()
            for name in ("deadline-2", "metrics-2"):  # SIGKILL, by pid
                processes[name].kill()
            results = await asyncio.gather(
                timed(killed_at, committed_past(bootstrap, GROUPS["deadline"], ends)),
                timed(killed_at, committed_past(bootstrap, GROUPS["metrics"], ends)),
                timed(killed_at, pages_answer(urls["deadline"], stream, killed_at)),
                timed(killed_at, wait_gauge(urls["deadline"], USABLE["deadline"], 1.0, timeout=TIMEOUT_S)),
                timed(killed_at, wait_gauge(urls["metrics"], USABLE["metrics"], 1.0, timeout=TIMEOUT_S)),
            )
        finally:
            stream.stop.set()
            await asyncio.gather(running, return_exceptions=True)
    keys = ("deadline_committed", "metrics_committed", "deadline_pages", "deadline_index", "metrics_buckets")
    return dict(zip(keys, results, strict=True)) | {"produced": len(stream.sent)}


async def run_async(n: int, rate: float, steady_s: float) -> dict[str, Any]:
    items = events(n + int(rate * (steady_s + 120)), seed=5)
    measured, stream_items = items[:n], items[n:]
    async with infrastructure() as env:
        raw = await raw_limits(env, measured)
        rates = {
            f"{projection}_{count}": await rate_with(env, projection, count, measured)
            for projection in ("deadline", "metrics")
            for count in (1, 2)
        }
        killed = await failover(env, stream_items, rate, steady_s)
    return report(n, rate, raw, rates, killed)


def report(
    n: int, rate: float, raw: dict[str, float], rates: dict[str, float], killed: dict[str, float]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "failover",
        "what": f"one and two replicas of deadline and metrics on {PARTITIONS} partitions ({n} new cases each run); "
        f"SIGKILL of one of two under a stream of {rate:g} events/s; SecantusDB, 2 cores",
        "raw_idempotent_producer_msgs_per_s": round(raw["produce"]),
        "raw_store_bulk_upsert_case_docs_per_s": round(raw["deadline_upsert"]),
        "raw_store_bulk_upsert_fact_docs_per_s": round(raw["metrics_upsert"]),
    }
    for projection in ("deadline", "metrics"):
        limit = raw[f"{projection}_upsert"]
        for count in (1, 2):
            value = rates[f"{projection}_{count}"]
            out[f"{projection}_applied_events_per_s_{count}_replica{'s' if count > 1 else ''}"] = round(value)
            out[f"{projection}_applied_ratio_of_raw_upsert_{count}_replica{'s' if count > 1 else ''}"] = round(
                value / limit, 2
            )
        out[f"{projection}_two_replicas_over_one"] = round(rates[f"{projection}_2"] / rates[f"{projection}_1"], 2)
    out |= {
        "session_timeout_s": SESSION_TIMEOUT_MS / 1000,
        "failover_deadline_committed_past_kill_s": killed["deadline_committed"],
        "failover_metrics_committed_past_kill_s": killed["metrics_committed"],
        "failover_deadline_case_pages_after_kill_s": killed["deadline_pages"],
        "failover_deadline_open_case_index_usable_s": killed["deadline_index"],
        "failover_metrics_bucket_copy_usable_s": killed["metrics_buckets"],
        "stream_events_produced": killed["produced"],
    }
    return out


def run() -> dict[str, Any]:
    n = int(os.environ.get("BENCH_FAILOVER_EVENTS", "4000"))
    rate = float(os.environ.get("BENCH_FAILOVER_RATE", "100"))
    steady_s = float(os.environ.get("BENCH_FAILOVER_STEADY_S", "10"))
    return asyncio.run(run_async(n, rate, steady_s))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, ensure_ascii=False))

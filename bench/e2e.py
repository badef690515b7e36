"""End to end: events/s from the intake to the metrics service, and the lag, at 10k, 100k and 1M events.

One broker, one store and the three services as real processes (the deadline service consumes the
same topic at the same time, as in production). The simulator's province is posted to the intake
(half our events, half DVCQG snapshots, late, out of order and duplicated items included), 4
clients in parallel, batches of 500. A sampler reads, every 0.25 s, the topic's end offsets and the
offsets the metrics consumer group committed; a record's lag is the time from the first sample that
saw it on the topic to the first sample that saw it committed by the metrics service (after its
facts were written), so it is measured to ±0.25 s. Steady state = the middle 80 % of the records.
Raw limits in the same run: idempotent aiokafka produce, aiokafka consume, store bulk upserts.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import time
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from bench.deadline import rss_mib
from bench.harness import (
    ADMIN_TOKEN,
    dumps,
    env_of,
    infrastructure,
    percentile,
    raw_bulk_upsert_rate,
    raw_consume_rate,
    raw_produce_rate,
)
from deploy.local import infra
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


async def run_async(sizes: tuple[int, ...]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": "e2e",
        "what": "intake → Kafka → metrics (deadline consuming alongside), simulated province, SecantusDB, 2 cores",
    }
    async with infrastructure() as env:
        settings = env.settings("be-")
        await infra.create_topics(env.kafka.bootstrap, prefix="be-")
        # raw limits, on a topic of their own
        sample = [i.body for i in province(20_000, 99) if i.kind == "event"][:10_000]
        admin = AIOKafkaAdminClient(bootstrap_servers=env.kafka.bootstrap)
        await admin.start()
        await admin.create_topics(
            [NewTopic("be-raw", num_partitions=settings.case_events_partitions, replication_factor=1)]
        )
        await admin.close()
        values, keys = [dumps(e) for e in sample], [e["case_code"].encode() for e in sample]
        raw_produce = await raw_produce_rate(env.kafka.bootstrap, "be-raw", values, keys)
        raw_consume = await raw_consume_rate(env.kafka.bootstrap, "be-raw", len(sample))
        raw_upsert = await raw_bulk_upsert_rate(env.mongo.uri, [{"_id": e["case_code"], **e} for e in sample])
        result.update(
            raw_produce_msgs_per_s=round(raw_produce),
            raw_consume_msgs_per_s=round(raw_consume),
            raw_store_bulk_upsert_docs_per_s=round(raw_upsert),
        )
        async with infra.running_services(env.run_dir, env_of(settings)) as services:
            for index, size in enumerate(sizes):
                topic = settings.case_events_topic
                measured = await one_size(services.urls, env.kafka.bootstrap, topic, size, 100 + index)
                measured["ratio_of_raw_produce"] = round(measured["end_to_end_events_per_s"] / raw_produce, 3)
                measured["ratio_of_raw_upsert"] = round(measured["end_to_end_events_per_s"] / raw_upsert, 3)
                measured["rss_mib"] = {p.name: round(rss_mib(p.popen.pid), 1) for p in services.processes.values()}
                result[f"at_{size}"] = measured
                print(json.dumps({f"at_{size}": measured}), flush=True)
    return result


def run() -> dict[str, Any]:
    sizes = tuple(int(s) for s in os.environ.get("BENCH_E2E_SIZES", "10000,100000,1000000").split(","))
    return asyncio.run(run_async(sizes))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

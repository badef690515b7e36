"""What the benchmarks share: the raw limits of the broker and the store, and readings of a service's
/metrics (their broker and store: deploy.local.throwaway)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient, ReplaceOne, UpdateOne

from shared.kafka import MAX_BATCH_BYTES
from shared.store import TUNINGS


async def raw_produce_rate(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes]) -> float:
    """The raw limit: an idempotent aiokafka producer (acks=all), messages/s, all acks awaited."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5, max_batch_size=MAX_BATCH_BYTES
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value=v, key=k) for k, v in zip(keys, values, strict=True)]
        for future in futures:
            await future
        return len(values) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def raw_bulk_upsert_rate(
    uri: str,
    documents: list[dict[str, Any]],
    batch: int = 1000,
    form: str = "replace",
    existing: list[dict[str, Any]] | None = None,
) -> float:
    """The raw limit of the store: upserts of whole documents in unordered bulk writes into a bare
    collection (only `_id`), docs/s. `form="replace"` (the limit: replacement upserts) or `"set"`
    (`$set` of every field: slower on SecantusDB, which checks a `$set`'s paths pairwise; reported
    beside the limit, never used as it). `existing`: documents
    written first, untimed (the same `_id`s: the timed upserts then replace them)."""
    client = store_client(uri)
    collection = client["bench_raw"]["upserts"]
    await collection.drop()
    try:
        for start in range(0, len(existing or ()), batch):
            await collection.insert_many((existing or [])[start : start + batch], ordered=False)
        started = time.perf_counter()
        for start in range(0, len(documents), batch):
            chunk = documents[start : start + batch]
            if form == "replace":
                writes: list[Any] = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in chunk]
            else:
                writes = [UpdateOne({"_id": d["_id"]}, {"$set": d}, upsert=True) for d in chunk]
            await collection.bulk_write(writes, ordered=False)
        return len(documents) / (time.perf_counter() - started)
    finally:
        await collection.drop()
        await client.close()


def store_client(uri: str) -> AsyncMongoClient[dict[str, Any]]:
    """A bench's own client of the throwaway store (raw limits, loads): it writes as the services
    write to the stand-in (shared/store.py: no retryable writes)."""
    return AsyncMongoClient(uri, retryWrites=TUNINGS["standin"].retry_writes)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


async def raw_consume_rate(bootstrap: str, topic: str, expected: int) -> float:
    """The raw limit of reading: a fresh aiokafka consumer group from the start, batches, messages/s."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{time.monotonic_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=1000,
    )
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            seen += sum(len(records) for records in batches.values())
            if batches:
                await consumer.commit()
            if time.perf_counter() - started > 600:
                raise TimeoutError(f"read {seen} of {expected}")
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def applied_rate(base_url: str, projection: str, expected: int, timeout: float, after: float = 0) -> float:
    """Events/s a projection applies at steady state, from its own counter over HTTP: the events
    applied after the first batch was seen, over the time since (`after`: what the counter stood at
    before these `expected` events were produced). The store does no work for it: SecantusDB scans
    a collection to count it, which would slow the very writes measured."""
    series = f'tthc_projection_events_applied_total{{projection="{projection}"}} '
    started = time.perf_counter()
    first: tuple[float, float] | None = None
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        while True:
            text = (await client.get("/metrics")).text
            total = next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(series)), 0.0)
            count = max(total - after, 0.0)
            now = time.perf_counter()
            if count and first is None:
                first = (now, count)
            if count >= expected and first is not None and count > first[1]:
                return (count - first[1]) / (now - first[0])
            if count >= expected:  # all in the first batch seen: no steady state to measure
                raise RuntimeError(f"all {expected} events were applied before a second batch; produce more")
            if now - started > timeout:
                raise TimeoutError(f"only {count:.0f} of {expected} applied in {timeout} s")
            await asyncio.sleep(0.2)


async def scrape(base_url: str, *series: str) -> dict[str, float]:
    """The values of these series (name with labels, as /metrics writes them) on a service now."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        text = (await client.get("/metrics")).text
    values = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in series:
            values[name] = float(value)
    return values


async def wait_gauge(base_url: str, name: str, value: float, timeout: float) -> float:
    """Seconds until the service's /metrics shows `name` at `value` (e.g. an in-memory copy loaded)."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        while True:
            text = (await client.get("/metrics")).text
            for line in text.splitlines():
                if line.startswith(name + " ") and float(line.split()[1]) == value:
                    return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{name} did not reach {value} in {timeout} s")
            await asyncio.sleep(0.2)

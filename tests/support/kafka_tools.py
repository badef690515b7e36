"""Test helpers that read and write topics directly (the real broker, no mocks)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.kafka import topic_partitions

T = TypeVar("T")


async def read_topic(bootstrap: str, topic: str, settle: float = 0.5) -> list[dict[str, Any]]:
    """Every record now on `topic`, decoded, with its key, partition and offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10 + settle
        while time.monotonic() < deadline:
            done = all([(await consumer.position(tp)) >= ends[tp] for tp in partitions])
            if done:
                break
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    out.append(
                        {
                            "key": r.key.decode() if r.key else None,
                            "partition": r.partition,
                            "offset": r.offset,
                            "value": json.loads(r.value),
                            "headers": dict(r.headers or ()),
                        }
                    )
        return out
    finally:
        await consumer.stop()


async def produce_raw(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 20.0, interval: float = 0.2) -> T:
    """Polls `check` until it returns something truthy; fails with its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")

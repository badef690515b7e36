"""The consumer applies no record of an assignment before its owners were told of it and were ready
for it, on the real broker: aiokafka fetches for a new assignment before its rebalance listener
returns, so an owner that takes a snapshot out of the store, or starts a copy's load, would
otherwise meet records already applied. What was fetched meanwhile comes again, from the committed
offsets: each record is applied once. An owner that takes its time to get ready (`before_applying`,
the store slow) does it after the rebalance, while the member heartbeats: it keeps its membership."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from shared.kafka import BatchConsumer, Membership
from shared.settings import Settings
from tests.support.kafka_tools import eventually, produce_raw

pytestmark = pytest.mark.integration


class SlowOwner:
    """An owner whose `assigned` takes its time (a store away for a while), and records when it returned."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.ready = asyncio.Event()
        self.told = False
        self.assignments = 0

    def revoked(self) -> None:
        self.told = False

    async def assigned(self, sole_owner: bool, membership: Membership | None = None) -> None:
        self.entered.set()
        await self.release.wait()
        self.assignments += 1

    async def before_applying(self) -> None:
        await self.ready.wait()
        self.told = True


async def test_no_record_is_applied_before_the_owners_were_told_and_each_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched_early: list[bool] = []
    settle = BatchConsumer._settle

    async def spied(self: BatchConsumer, consumer: Any, fetched: bool) -> None:
        fetched_early.append(fetched)
        await settle(self, consumer, fetched)

    monkeypatch.setattr(BatchConsumer, "_settle", spied)
    topic = settings.case_events_topic
    await produce_raw(settings.kafka_bootstrap, topic, [(f"k{n}".encode(), f"v{n}".encode()) for n in range(30)])
    owner = SlowOwner()
    applied: list[bytes] = []
    early: list[bytes] = []

    async def handler(records: list[ConsumerRecord]) -> None:
        (applied if owner.told else early).extend(r.value for r in records)

    consumer = BatchConsumer(
        bootstrap=settings.kafka_bootstrap, topics=[topic], group_id="gate-test", handler=handler, owners=[owner]
    )
    consumer.start()
    try:
        await asyncio.wait_for(owner.entered.wait(), 60)
        await asyncio.sleep(3)  # assigned, records fetched, the listener still waiting (no heartbeat)
        assert early == [] and applied == []
        owner.release.set()
        # the rebalance is over; the owner gets ready for longer than the session timeout (10 s)
        await asyncio.sleep(12)
        assert early == [] and applied == []
        assert owner.assignments == 1  # heartbeats went on: not expired, no second assignment
        owner.ready.set()

        async def all_applied() -> bool | None:
            return len(applied) >= 30 or None

        await eventually(all_applied, timeout=30)
        await asyncio.sleep(1)
        assert early == []
        assert sorted(applied) == sorted(f"v{n}".encode() for n in range(30))  # each once
        assert True in fetched_early  # records were fetched before the owner was ready: fetched again
    finally:
        await consumer.stop()

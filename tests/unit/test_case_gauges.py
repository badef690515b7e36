"""The case gauges never scan the store while the open-case index is, or may soon be, loading."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from services.deadline.gauges import CaseGauges
from shared import sole_writer
from shared.config import load_registry
from shared.kafka import Membership
from tests.support.copies import HeldCopy

REGISTRY = load_registry(Path(__file__).resolve().parents[2] / "config")


class Cases:
    def __init__(self) -> None:
        self.aggregations = 0

    async def aggregate(self, pipeline: list[dict[str, Any]]) -> Any:
        self.aggregations += 1
        return _Rows()


class _Rows:
    def __aiter__(self) -> "_Rows":
        return self

    async def __anext__(self) -> dict[str, Any]:
        raise StopAsyncIteration


def test_the_store_is_counted_only_once_another_member_may_write() -> None:
    saved = sole_writer.UNASSIGNED_WAIT_S

    async def scenario() -> None:
        index, cases = HeldCopy(), Cases()
        context = SimpleNamespace(
            registry=REGISTRY,
            due_soon_seconds=8 * 3600,
            apology_due_seconds=8 * 3600,
            open_cases=index,
            cases=cases,
            sweeper=SimpleNamespace(last_sweep_seconds=0.0),
        )
        gauges = CaseGauges(context)  # type: ignore[arg-type]
        now = datetime.now(UTC)
        await gauges.refresh(now)  # just started: no partitions yet
        await index.assigned(sole_owner=True, membership=Membership("m1", 1, {"t:0": 5}))
        await gauges.refresh(now)  # the only writer, loading
        assert cases.aggregations == 0
        index.revoked()
        await gauges.refresh(now)  # a rebalance
        assert cases.aggregations == 0
        await index.assigned(sole_owner=False)  # another member writes too: the store answers
        await gauges.refresh(now)
        assert cases.aggregations == 1
        index.revoked()  # then no assignment for longer than the wait: the gauges count again
        sole_writer.UNASSIGNED_WAIT_S = 0.0
        try:
            await gauges.refresh(now)
        finally:
            sole_writer.UNASSIGNED_WAIT_S = saved
        assert cases.aggregations == 2
        index.release.set()

    asyncio.run(scenario())

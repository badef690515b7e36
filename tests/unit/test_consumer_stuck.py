"""When a consumer is stuck (contract v1.1): restarted from the same offsets three times in a row,
or records waiting and nothing applied for the stall time. No broker: the rule alone."""

from __future__ import annotations

import time

from shared.kafka import BatchConsumer


async def nothing(records: list) -> None:
    return None


def consumer(stall_s: float = 60.0) -> BatchConsumer:
    return BatchConsumer(bootstrap="127.0.0.1:1", topics=["t"], group_id="g-unit", handler=nothing, stall_s=stall_s)


def test_three_restarts_in_a_row_are_stuck_two_are_not() -> None:
    c = consumer()
    c.restarts_in_a_row = 2
    assert c.stuck_reason() is None
    c.restarts_in_a_row = 3
    assert c.stuck_reason() == "consumer g-unit restarted 3 times from the same offsets"


def test_records_waiting_with_nothing_applied_past_the_stall_time_are_stuck() -> None:
    c = consumer(stall_s=60)
    c.waiting = 5
    c.progress_at = time.monotonic() - 59
    assert c.stuck_reason() is None
    c.progress_at = time.monotonic() - 61
    assert "5 records waiting and none applied for 61 s" in (c.stuck_reason() or "")
    c.waiting = 0  # idle with nothing to do is not stuck
    assert c.stuck_reason() is None


async def test_readiness_says_why_it_is_not_ready() -> None:
    c = consumer()
    assert await c.readiness() == "consumer g-unit is not connected to the broker"
    c.connected = True
    assert await c.readiness() is True
    c.restarts_in_a_row = 3
    assert "restarted 3 times" in str(await c.readiness())

"""The store client's options by profile: the stand-in's heartbeat outwaits a long query, and its
writes are not retryable writes (SecantusDB's record of them slows every write as it fills)."""

from __future__ import annotations

import pytest

from shared.store import TUNINGS, mongo_client


@pytest.mark.parametrize(("profile", "seconds"), [("mongodb", 3.0), ("standin", 120.0)])
async def test_the_monitor_waits_for_a_heartbeat_as_long_as_the_profile_says(profile: str, seconds: float) -> None:
    client = mongo_client("mongodb://127.0.0.1:9", profile)  # type: ignore[arg-type]
    try:
        options = client.options
        # pymongo's monitor waits `connect_timeout` for a heartbeat's answer, then resets the pool
        assert options.pool_options.connect_timeout == seconds == TUNINGS[profile].monitor_timeout_ms / 1000
        assert options.server_selection_timeout == 3.0  # an operation still fails fast when the store is gone
    finally:
        await client.close()


@pytest.mark.parametrize(("profile", "retried"), [("mongodb", True), ("standin", False)])
async def test_writes_are_retryable_writes_on_mongodb_only(profile: str, retried: bool) -> None:
    client = mongo_client("mongodb://127.0.0.1:9", profile)  # type: ignore[arg-type]
    try:
        assert client.options.retry_writes is retried
    finally:
        await client.close()

"""A registry record written past the admin routes that cannot be read or applied is passed over:
the follower catches up and applies the records after it (no single record stops a consumer)."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from shared.registry_sync import RegistryFollower, RegistryState
from shared.settings import Settings
from tests.support.kafka_tools import produce_raw

pytestmark = pytest.mark.integration


async def test_unreadable_registry_records_are_passed_over_and_the_rest_applied(settings: Settings, kafka) -> None:
    good = {"name": "Phòng mới", "level": "province", "parent_code": "000.00.00.H99"}
    await produce_raw(
        kafka.bootstrap,
        settings.registry_topic,
        [
            (b"agency:000.99.01.H99", b"{not json"),
            (b"credential:sk_x", json.dumps({"unexpected": 1}).encode()),
            (b"procedure:9.9", json.dumps({"versions": [{"durations": "nope"}]}).encode()),
            (b"agency:000.99.02.H99", json.dumps(good).encode()),
        ],
    )
    refused = REGISTRY.get_sample_value("tthc_registry_records_refused_total") or 0
    state = RegistryState.seeded(settings)
    follower = RegistryFollower(settings, state)
    follower.start()
    try:
        assert await follower.wait_caught_up(30)
        assert "000.99.02.H99" in state.registry.agencies
        assert "9.9" not in state.registry.catalogue.procedures and "9.9" not in state.procedure_specs
        assert (REGISTRY.get_sample_value("tthc_registry_records_refused_total") or 0) - refused == 3
    finally:
        await follower.stop()

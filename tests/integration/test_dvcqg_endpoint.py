"""POST /v1/dvcqg/hoso against the real broker and store."""

from __future__ import annotations

import pytest

from services.intake.app import create_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.kafka_tools import read_topic

pytestmark = pytest.mark.integration

SNAPSHOT = {
    "MaHoSo": "000.00.02.H99-260316-0777",
    "MaTTHC": "1.012790",
    "MaLinhVuc": "G09-DD",
    "KenhThucHien": 1,
    "TrangThaiHoSo": 4,
    "NgayTiepNhan": "20260316091500",
    "NgayHenTra": "20260330091500",
}


async def test_snapshots_become_events_once(settings: Settings, kafka) -> None:
    async with serve(create_app(settings)) as client:
        first = await client.post("/v1/dvcqg/hoso", json=SNAPSHOT, headers=AUTH)
        again = await client.post("/v1/dvcqg/hoso", json=[SNAPSHOT, SNAPSHOT], headers=AUTH)
        done = {**SNAPSHOT, "TrangThaiHoSo": 9, "NgayKetThucXuLy": "20260320160000"}
        finished = await client.post("/v1/dvcqg/hoso", json=done, headers=AUTH)
    assert first.status_code == 202 and len(first.json()["accepted"]) == 1
    assert again.status_code == 202 and again.json()["accepted"] == []
    assert [a["event_id"] for a in finished.json()["accepted"]] == ["dvcqg:000.00.02.H99-260316-0777:processed"]
    records = await read_topic(kafka.bootstrap, settings.case_events_topic)
    assert sorted(r["value"]["type"] for r in records) == ["case.processed", "case.received"]


async def test_unknown_procedure_and_bad_dates_are_named_and_nothing_is_published(settings: Settings, kafka) -> None:
    async with serve(create_app(settings)) as client:
        unknown = await client.post("/v1/dvcqg/hoso", json=[SNAPSHOT, {**SNAPSHOT, "MaTTHC": "0.0"}], headers=AUTH)
        bad_date = await client.post("/v1/dvcqg/hoso", json={**SNAPSHOT, "NgayTiepNhan": "16/03/2026"}, headers=AUTH)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"] == [{"loc": [1, "MaTTHC"], "msg": "unknown procedure_code '0.0'"}]
    assert bad_date.status_code == 422
    assert bad_date.json()["error"]["details"][0]["loc"] == ["NgayTiepNhan"]
    assert await read_topic(kafka.bootstrap, settings.case_events_topic, settle=0) == []

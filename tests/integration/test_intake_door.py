"""Bounds at the door (contract v1.1) through the real intake: 422 naming the field, nothing published."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest

from services.intake.app import create_app
from shared.domain.calendar import VN_TZ
from shared.settings import Settings
from shared.store import mongo_client
from tests.conftest import AUTH, serve
from tests.integration.test_pull_mode import fake_one_stop, running
from tests.support.events import case_code, event, received
from tests.support.kafka_tools import eventually, read_topic

pytestmark = pytest.mark.integration


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_out_of_bounds_events_are_named_on_every_path_and_nothing_is_published(settings: Settings, kafka) -> None:
    good = received(case_code())
    far = received(case_code(), at="9999-12-31T23:59:59-12:00")
    ancient = received(case_code(), at="0001-01-01T00:00:00+07:00")
    cases = [
        # a well-formed batch (the fast path) with one event out of bounds
        ({"events": [good, far]}, [[1, "occurred_at"]]),
        (ancient, [["occurred_at"]]),  # one event (the slow path)
        (
            {"events": [received(case_code(), due_at_reported="9999-12-31T23:59:59-12:00")]},
            [[0, "data", "due_at_reported"]],
        ),
        ({"events": [event("case.paused", case_code(), "2026-03-17T09:00:00+07:00", reason_code="other")]}, []),
        ({"events": [good, {**good, "case_code": "000.00.02.H99/261116/1"}]}, [[1, "case_code"]]),
        ({"events": [good, {**good, "case_code": "Hồ sơ 1"}]}, [[1, "case_code"]]),
        ({"events": [received(case_code(), note="x" * 17_000)]}, [[0, "data"]]),
        ({"events": [received(case_code(), at="2025-07-01T08:00:00+07:00", level="district")]}, [[0, "data", "level"]]),
        ({"events": [good, {k: v for k, v in good.items() if k != "type"}]}, [[1, "type"]]),
        ({**good, "type": "case.teleported"}, [["type"]]),
    ]
    async with serve(create_app(settings)) as client:
        for body, locs in cases:
            response = await client.post("/v1/events", json=body, headers=AUTH)
            if not locs:  # the control: a valid batch is accepted
                assert response.status_code == 202, response.text
                continue
            assert response.status_code == 422, (body, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid"
            assert [d["loc"] for d in error["details"]] == locs, error
    records = await read_topic(kafka.bootstrap, settings.case_events_topic)
    assert [r["value"]["type"] for r in records] == ["case.paused"]


async def test_timestamps_follow_the_earliest_event_setting_and_now(settings: Settings) -> None:
    later = settings.model_copy(update={"earliest_event": datetime(2026, 1, 1, tzinfo=VN_TZ)})
    tomorrow_and_more = (datetime.now(VN_TZ) + timedelta(days=1, minutes=5)).isoformat()
    async with serve(create_app(later)) as client:
        old = await client.post("/v1/events", json=received(case_code(), at="2025-12-31T23:59:00+07:00"), headers=AUTH)
        ahead = await client.post(
            "/v1/events", json={"events": [received(case_code(), at=tomorrow_and_more)]}, headers=AUTH
        )
        fine = await client.post("/v1/events", json=received(case_code(), at="2026-01-01T00:00:00+07:00"), headers=AUTH)
    assert old.status_code == 422 and old.json()["error"]["details"][0]["loc"] == ["occurred_at"]
    assert ahead.status_code == 422 and ahead.json()["error"]["details"][0]["loc"] == [0, "occurred_at"]
    assert fine.status_code == 202, fine.text


async def test_deep_bodies_are_400_quickly_never_a_500(settings: Settings) -> None:
    async with serve(create_app(settings)) as client:
        started = time.monotonic()
        deep = await client.post(
            "/v1/events", content=b"[" * 100_000, headers={**AUTH, "content-type": "application/json"}
        )
        elapsed = time.monotonic() - started
        # 31 levels of extras inside a batch: the body nests 34 deep though pydantic would accept it
        nested = {"events": [received(case_code(), extra=_nested(30))]}
        batch = await client.post("/v1/events", json=nested, headers=AUTH)
        snapshots = await client.post(
            "/v1/dvcqg/hoso",
            content=b"{" + b'"a":{' * 40 + b"}" * 41,
            headers={**AUTH, "content-type": "application/json"},
        )
    for response in (deep, batch, snapshots):
        assert response.status_code == 400, response.text
        assert "32" in response.json()["error"]["message"]
    assert elapsed < 2


async def test_calendar_override_the_calendar_cannot_use_is_422_at_put(settings: Settings) -> None:
    base = {"name": "UBND xã Thử", "level": "commune", "parent_code": "000.00.00.H99"}
    cases = [
        ({"office_hours": [["13:30", "17:00"], ["07:00", "11:30"]]}, ["body", "calendar", "office_hours"]),
        ({"office_hours": [["08:00", "08:00"]]}, ["body", "calendar", "office_hours"]),
        ({"office_hours": []}, ["body", "calendar", "office_hours"]),
        ({"days_off": ["2026-13-01"]}, ["body", "calendar", "days_off", 0]),
        ({"first_year": 1, "last_year": 9999}, ["body", "calendar", "first_year"]),
        ({"days_off": ["2026-05-04"], "working_days": ["2026-05-04"]}, ["body", "calendar"]),
    ]
    async with serve(create_app(settings)) as client:
        for override, loc in cases:
            response = await client.put(
                "/v1/admin/agencies/999.30.01.H99", json={**base, "calendar": override}, headers=AUTH
            )
            assert response.status_code == 422, (override, response.text)
            assert [d["loc"] for d in response.json()["error"]["details"]] == [loc]
        usable = {"office_hours": [["07:30", "11:30"], ["13:30", "17:30"]], "days_off": ["2026-05-04"]}
        ok = await client.put("/v1/admin/agencies/999.30.01.H99", json={**base, "calendar": usable}, headers=AUTH)
        listed = await client.get("/v1/admin/agencies", headers=AUTH)
    assert ok.status_code == 200, ok.text
    assert ok.json()["calendar"] == usable
    assert sum(a["agency_code"] == "999.30.01.H99" for a in listed.json()) == 1


async def test_pull_mode_sets_aside_out_of_bounds_items(settings: Settings, kafka, tmp_path) -> None:
    good = {**received(case_code()), "event_id": "pull-good"}
    far = {**received(case_code(), at="9999-12-31T23:59:59-12:00"), "event_id": "pull-far"}
    slash = {**received(case_code()), "case_code": "000.00.02.H99/1", "event_id": "pull-slash"}
    source = fake_one_stop([far, good, slash], faults=[])
    async with running(source) as url:
        config = tmp_path / "pull.json"
        spec = {"name": "door", "url": f"{url}/changes", "agency_codes": ["000.00.00.H99"], "interval_s": 0.2}
        config.write_text(json.dumps([spec]))
        mongo = mongo_client(settings.mongo_uri)
        rejects = mongo[f"{settings.mongo_db}_intake"].pull_rejects

        async def set_aside() -> bool:
            return await rejects.count_documents({}) >= 2

        async with serve(create_app(settings.model_copy(update={"pull_config": str(config)}))):
            await eventually(set_aside, timeout=30)
        found = {doc["item"]["event_id"]: doc["details"] async for doc in rejects.find()}
        await mongo.close()
    assert sorted(found) == ["pull-far", "pull-slash"]  # each set aside with the page's 422 details
    assert [d["loc"] for d in found["pull-far"]] == [[0, "occurred_at"], [2, "case_code"]]
    records = await read_topic(kafka.bootstrap, settings.case_events_topic)
    assert [r["value"]["event_id"] for r in records] == ["pull-good"]

"""POST /v1/events against the real broker: validation, all-or-nothing, acks, duplicates, 503."""

from __future__ import annotations

import pytest

from deploy.local import infra
from services.intake.app import create_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.events import case_code, event, received
from tests.support.kafka_tools import read_topic

pytestmark = pytest.mark.integration


async def test_event_is_published_keyed_by_case_code_after_ack(settings: Settings, kafka) -> None:
    code = case_code()
    async with serve(create_app(settings)) as client:
        response = await client.post("/v1/events", json=received(code), headers=AUTH)
    assert response.status_code == 202, response.text
    [accepted] = response.json()["accepted"]
    assert accepted["duplicate"] is False and accepted["event_id"].startswith("d-")
    records = await read_topic(kafka.bootstrap, settings.case_events_topic)
    assert [r["key"] for r in records] == [code]
    assert records[0]["value"]["event_id"] == accepted["event_id"]
    assert records[0]["value"]["occurred_at"] == "2026-03-16T09:15:00+07:00"


async def test_batch_is_all_or_nothing_with_item_indexed_errors(settings: Settings, kafka) -> None:
    good = received(case_code())
    naive = received(case_code(), at="2026-03-16T09:15:00")
    unknown = received(case_code(), procedure_code="9.999999")
    async with serve(create_app(settings)) as client:
        response = await client.post("/v1/events", json={"events": [good, naive, unknown]}, headers=AUTH)
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert {"loc": [1, "occurred_at"], "msg": "Input should have timezone info"} in details
    assert any(d["loc"] == [2, "data", "procedure_code"] and "9.999999" in d["msg"] for d in details)
    assert all(d["loc"][0] in (1, 2) for d in details)
    assert await read_topic(kafka.bootstrap, settings.case_events_topic, settle=0) == []


async def test_unknown_agency_is_named(settings: Settings) -> None:
    body = received(case_code("000.00.77.H99"))
    async with serve(create_app(settings)) as client:
        response = await client.post("/v1/events", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {"loc": ["agency_code"], "msg": "unknown agency_code '000.00.77.H99'"}
    ]


async def test_repeated_event_id_is_accepted_and_marked_duplicate(settings: Settings, kafka) -> None:
    body = {**received(case_code()), "event_id": "client-42"}
    async with serve(create_app(settings)) as client:
        first = await client.post("/v1/events", json=body, headers=AUTH)
        second = await client.post("/v1/events", json={"events": [body, body]}, headers=AUTH)
    assert first.json()["accepted"] == [{"event_id": "client-42", "duplicate": False}]
    assert second.status_code == 202
    assert second.json()["accepted"] == [
        {"event_id": "client-42", "duplicate": True},
        {"event_id": "client-42", "duplicate": True},
    ]
    records = await read_topic(kafka.bootstrap, settings.case_events_topic)
    assert len(records) == 1


async def test_derived_event_id_is_deterministic(settings: Settings) -> None:
    body = received(case_code())
    async with serve(create_app(settings)) as client:
        a = (await client.post("/v1/events", json=body, headers=AUTH)).json()["accepted"][0]
        b = (await client.post("/v1/events", json=body, headers=AUTH)).json()["accepted"][0]
    assert a["event_id"] == b["event_id"] and b["duplicate"] is True


@pytest.mark.parametrize(
    "headers, status",
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"Authorization": "Basic abc"}, 401)],
)
async def test_credentials_are_required(settings: Settings, headers, status) -> None:
    async with serve(create_app(settings)) as client:
        response = await client.post("/v1/events", json=received(case_code()), headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == "unauthorized"


async def test_malformed_json_is_400_and_oversized_body_is_413(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 2000})
    async with serve(create_app(small)) as client:
        json_headers = {**AUTH, "content-type": "application/json"}
        bad = await client.post("/v1/events", content=b"{not json", headers=json_headers)
        big = await client.post("/v1/events", json={"events": [received(case_code())] * 20}, headers=AUTH)
        batch = await client.post("/v1/events", json={"events": []}, headers=AUTH)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
    assert big.status_code == 413
    assert batch.status_code == 422


async def test_batch_over_the_limit_is_refused(settings: Settings) -> None:
    async with serve(create_app(settings)) as client:
        response = await client.post("/v1/events", json={"events": [received(case_code())] * 1001}, headers=AUTH)
    assert response.status_code == 422
    assert "1000" in response.json()["error"]["message"]


async def test_broker_down_gives_503_with_retry_after_never_202(settings: Settings) -> None:
    dead = settings.model_copy(
        update={
            "kafka_bootstrap": f"127.0.0.1:{infra.free_port()}",
            "publish_timeout_s": 2.0,
            "registry_catch_up_s": 0.5,
        }
    )
    async with serve(create_app(dead)) as client:
        response = await client.post("/v1/events", json=received(case_code()), headers=AUTH)
        ready = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.json()["error"]["code"] == "unavailable"
    assert ready.status_code == 503 and ready.json()["checks"]["broker"] is False


async def test_every_event_type_of_the_contract_is_accepted(settings: Settings, kafka) -> None:
    code = case_code()
    at = "2026-03-16T10:00:00+07:00"
    events = [
        event("case.submitted", code, at, procedure_code="1.012790", channel="online"),
        received(code),
        event("case.receipt_refused", code, at, reason="Hồ sơ không thuộc thẩm quyền"),
        event("case.supplement_requested", code, at, reason="Thiếu giấy tờ"),
        event("case.supplement_received", code, at),
        event("case.paused", code, at, reason_code="verification"),
        event("case.resumed", code, at, reason_code="verification"),
        event("case.transferred", code, at, from_agency="000.00.02.H99", to_agency="000.00.13.H99"),
        event("case.processed", code, at, outcome="approved"),
        event("case.returned", code, at, e_result=True, result_channel="online"),
        event("case.withdrawn", code, at),
        event("case.stopped", code, at, reason="r"),
        event("case.paid_online", code, at, amount=50000, gateway="dvcqg"),
        event("case.digitized", code, at, components_digitized=True, result_digitized=False, reused=True),
        event("case.rated", code, at, satisfied=True, complaint=False),
        event(
            "apology.issued",
            code,
            at,
            issuer_agency="000.00.02.H99",
            reason="r",
            new_due_at="2026-04-01T17:00:00+07:00",
            issued_at=at,
        ),
    ]
    async with serve(create_app(settings)) as client:
        response = await client.post("/v1/events", json={"events": events}, headers=AUTH)
    assert response.status_code == 202, response.text
    records = await read_topic(kafka.bootstrap, settings.case_events_topic)
    assert sorted(r["value"]["type"] for r in records) == sorted(e["type"] for e in events)

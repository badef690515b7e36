"""Trust at the boundary (contract v1.1): case ownership and per-source event ids at the intake,
through POST /v1/events, POST /v1/dvcqg/hoso and pull mode, against the real broker and store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.intake.app import create_app
from services.intake.owner_turns import OwnerTurns
from services.intake.ownership import OWNER_WRITE_RACES, OWNERS_COLLECTION, Ledger, bucket_of
from shared.events import EVENT_ADAPTER
from shared.settings import Settings
from shared.store import mongo_client
from tests.conftest import AUTH, serve
from tests.integration.test_pull_mode import fake_one_stop, running
from tests.support.events import case_code, event, received
from tests.support.kafka_tools import eventually, read_topic

pytestmark = pytest.mark.integration

A = "000.00.02.H99"  # Sở Nông nghiệp và Môi trường
B = "000.00.03.H99"  # Sở Tài chính
C = "000.00.13.H99"  # Công an tỉnh
AT = "2026-03-18T09:00:00+07:00"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_agency(body: dict[str, Any], agency: str) -> dict[str, Any]:
    return {**body, "agency_code": agency}


async def source_key(client: httpx.AsyncClient, name: str, *agencies: str) -> tuple[str, str]:
    """A new source-system key: (key, credential id)."""
    created = await client.post(
        "/v1/admin/source-systems", json={"name": name, "agency_codes": list(agencies)}, headers=AUTH
    )
    assert created.status_code == 201, created.text
    return created.json()["key"], created.json()["id"]


async def records_of(kafka, settings: Settings, code: str) -> list[dict[str, Any]]:
    return [r for r in await read_topic(kafka.bootstrap, settings.case_events_topic) if r["key"] == code]


async def test_another_agencys_key_cannot_act_on_a_case_and_nothing_is_published(settings: Settings, kafka) -> None:
    code, own = case_code(A), case_code(B)
    async with serve(create_app(settings)) as client:
        key_a, _ = await source_key(client, "mot-cua-a", A)
        key_b, _ = await source_key(client, "mot-cua-b", B)
        assert (await client.post("/v1/events", json=received(code), headers=bearer(key_a))).status_code == 202
        withdraw = as_agency(event("case.withdrawn", code, AT), B)
        single = await client.post("/v1/events", json=withdraw, headers=bearer(key_b))
        batch = await client.post("/v1/events", json={"events": [received(own), withdraw]}, headers=bearer(key_b))
        # the owner's key still may
        by_a = await client.post("/v1/events", json=event("case.withdrawn", code, AT), headers=bearer(key_a))
    assert single.status_code == 403, single.text
    assert code in single.json()["error"]["message"]
    assert [d["loc"] for d in single.json()["error"]["details"]] == [["case_code"]]
    assert batch.status_code == 403
    assert [d["loc"] for d in batch.json()["error"]["details"]] == [[1, "case_code"]]
    assert by_a.status_code == 202
    records = await read_topic(kafka.bootstrap, settings.case_events_topic)
    assert [(r["key"], r["value"]["type"]) for r in records if r["key"] in (code, own)] == [
        (code, "case.received"),
        (code, "case.withdrawn"),
    ]
    assert [r["value"]["agency_code"] for r in records if r["key"] == code] == [A, A]


async def test_a_receipt_that_would_move_a_case_is_a_conflict_for_everyone(settings: Settings, kafka) -> None:
    code = case_code(A)
    async with serve(create_app(settings)) as client:
        key_a, _ = await source_key(client, "mot-cua-a", A)
        key_b, _ = await source_key(client, "mot-cua-b", B)
        assert (await client.post("/v1/events", json=received(code), headers=bearer(key_a))).status_code == 202
        moved = as_agency(received(code), B)
        by_b = await client.post("/v1/events", json={"events": [moved]}, headers=bearer(key_b))
        by_admin = await client.post("/v1/events", json=moved, headers=AUTH)
        resent = await client.post("/v1/events", json=received(code, at=AT), headers=bearer(key_a))
    assert by_b.status_code == 409, by_b.text
    assert by_b.json()["error"]["code"] == "conflict" and code in by_b.json()["error"]["message"]
    assert [d["loc"] for d in by_b.json()["error"]["details"]] == [[0, "case_code"]]
    assert by_admin.status_code == 409
    assert resent.status_code == 202  # the owner's own receipt again is no move
    assert [r["value"]["agency_code"] for r in await records_of(kafka, settings, code)] == [A, A]


async def test_after_a_transfer_the_new_handlers_key_may_send_events(settings: Settings, kafka) -> None:
    code = case_code(A)
    processed = as_agency(event("case.processed", code, "2026-03-20T09:00:00+07:00", outcome="approved"), C)
    async with serve(create_app(settings)) as client:
        key_a, _ = await source_key(client, "mot-cua-a", A)
        key_c, _ = await source_key(client, "mot-cua-c", C)
        transfer = event("case.transferred", code, AT, from_agency=A, to_agency=C)
        before = await client.post("/v1/events", json=processed, headers=bearer(key_c))  # not yet received
        assert before.status_code == 202  # a first event before the receipt: C is the provisional owner
        other = case_code(A)
        await client.post("/v1/events", json=received(other), headers=bearer(key_a))
        too_early = await client.post(
            "/v1/events", json={**processed, "case_code": other}, headers=bearer(key_c)
        )  # received by A, not transferred yet
        moved = await client.post("/v1/events", json={**transfer, "case_code": other}, headers=bearer(key_a))
        after = await client.post("/v1/events", json={**processed, "case_code": other}, headers=bearer(key_c))
        # and in one batch: received, transferred, then an event by the new handler (admin token)
        third = case_code(A)
        batch = [received(third), {**transfer, "case_code": third}, {**processed, "case_code": third}]
        in_one = await client.post("/v1/events", json={"events": batch}, headers=AUTH)
        by_c = await client.post(
            "/v1/events",
            json=as_agency(event("case.returned", third, AT, e_result=True, result_channel="online"), C),
            headers=bearer(key_c),
        )
    assert too_early.status_code == 403, too_early.text
    assert moved.status_code == 202 and after.status_code == 202, after.text
    assert in_one.status_code == 202 and by_c.status_code == 202, by_c.text
    assert [r["value"]["type"] for r in await records_of(kafka, settings, other)] == [
        "case.received",
        "case.transferred",
        "case.processed",
    ]
    db = mongo_client(settings.mongo_uri)[f"{settings.mongo_db}_intake"]
    ledger = await Ledger.load(db[OWNERS_COLLECTION], {other, third})
    owners = {code: (state.owner, state.handler) for code, state in ledger.cases.items()}
    await db.client.close()
    assert owners == {other: (A, C), third: (A, C)}


async def test_event_id_is_unique_per_source(settings: Settings, kafka) -> None:
    code = case_code(A)
    body = {**received(code), "event_id": "mc-0001"}
    async with serve(create_app(settings)) as client:
        key_a, ident = await source_key(client, "mot-cua-a", A)
        key_a2, ident2 = await source_key(client, "mot-cua-a-2", A)
        first = await client.post("/v1/events", json=body, headers=bearer(key_a))
        other_key = await client.post("/v1/events", json=body, headers=bearer(key_a2))
        by_admin = await client.post("/v1/events", json=body, headers=AUTH)
        again = await client.post("/v1/events", json=body, headers=bearer(key_a))
        # the source is the credential, not the secret: a rotated key is the same source
        rotated = (await client.post(f"/v1/admin/credentials/{ident}/rotate", headers=AUTH)).json()["key"]
        after_rotation = await client.post("/v1/events", json=body, headers=bearer(rotated))
    fresh = [{"event_id": "mc-0001", "duplicate": False}]
    assert first.json()["accepted"] == fresh
    assert other_key.status_code == 202 and other_key.json()["accepted"] == fresh
    assert by_admin.json()["accepted"] == fresh
    assert again.json()["accepted"] == [{"event_id": "mc-0001", "duplicate": True}]
    assert after_rotation.json()["accepted"] == [{"event_id": "mc-0001", "duplicate": True}]
    records = await records_of(kafka, settings, code)
    assert [r["value"]["event_id"] for r in records] == ["mc-0001"] * 3
    assert [r["headers"]["source"] for r in records] == [ident.encode(), ident2.encode(), b"admin"]
    assert ident.startswith("sk_") and ident != ident2


async def test_a_source_key_may_only_submit(settings: Settings) -> None:
    async with serve(create_app(settings)) as client:
        key, _ = await source_key(client, "mot-cua-a", A)
        token = (await client.post("/v1/admin/agency-tokens", json={"agency_code": A}, headers=AUTH)).json()["token"]
        reads = ["/v1/me", "/v1/procedures", "/v1/admin/credentials", "/v1/admin/agencies"]
        by_key = [(await client.get(path, headers=bearer(key))).status_code for path in reads]
        by_token = [(await client.get(path, headers=bearer(token))).status_code for path in reads[:2]]
        by_admin = [(await client.get(path, headers=AUTH)).status_code for path in reads]
        nobody = (await client.get("/v1/me")).status_code
        health = (await client.get("/healthz", headers=bearer(key))).status_code
        submits = (await client.post("/v1/events", json=received(case_code(A)), headers=bearer(key))).status_code
    assert by_key == [403] * len(reads)
    assert by_token == [200, 200] and by_admin == [200] * len(reads)
    assert nobody == 401 and health == 200 and submits == 202


SNAPSHOT = {
    "MaTTHC": "1.012790",
    "MaLinhVuc": "G09-DD",
    "KenhThucHien": 1,
    "TrangThaiHoSo": 2,
    "NgayTiepNhan": "20260316091500",
    "NgayHenTra": "20260330091500",
}


async def test_dvcqg_snapshots_follow_the_same_rules(settings: Settings, kafka) -> None:
    code, own, via_events = case_code(A), case_code(B), case_code(A)
    snapshot = {**SNAPSHOT, "MaHoSo": code}
    withdrawn_by_b = {**snapshot, "DonViXuLy": B, "TrangThaiHoSo": 7, "NgayKetThucXuLy": "20260318090000"}
    new_of_b = {**SNAPSHOT, "MaHoSo": own}
    async with serve(create_app(settings)) as client:
        key_a, _ = await source_key(client, "mot-cua-a", A)
        key_b, _ = await source_key(client, "mot-cua-b", B)
        assert (await client.post("/v1/dvcqg/hoso", json=snapshot, headers=bearer(key_a))).status_code == 202
        single = await client.post("/v1/dvcqg/hoso", json=withdrawn_by_b, headers=bearer(key_b))
        batch = await client.post("/v1/dvcqg/hoso", json=[new_of_b, withdrawn_by_b], headers=bearer(key_b))
        quiet = await client.post(  # implies no new event, still not B's case
            "/v1/dvcqg/hoso", json={**snapshot, "DonViXuLy": B, "TrangThaiHoSo": 4}, headers=bearer(key_b)
        )
        # B's own case alone: its events were not remembered by the refused batch
        alone = await client.post("/v1/dvcqg/hoso", json=new_of_b, headers=bearer(key_b))
        # a case received through /v1/events by A, then a snapshot naming B as its receiver: 409
        await client.post("/v1/events", json=received(via_events), headers=bearer(key_a))
        moved = await client.post(
            "/v1/dvcqg/hoso", json=[{**SNAPSHOT, "MaHoSo": via_events, "DonViXuLy": B}], headers=AUTH
        )
    assert single.status_code == 403, single.text
    assert single.json()["error"]["details"][0]["loc"] == ["MaHoSo"] and code in single.json()["error"]["message"]
    assert batch.status_code == 403 and [d["loc"] for d in batch.json()["error"]["details"]] == [[1, "MaHoSo"]]
    assert quiet.status_code == 403
    assert alone.status_code == 202 and [a["event_id"] for a in alone.json()["accepted"]] == [f"dvcqg:{own}:received"]
    assert moved.status_code == 409 and moved.json()["error"]["details"][0]["loc"] == [0, "MaHoSo"]
    assert [r["value"]["type"] for r in await records_of(kafka, settings, code)] == ["case.received"]
    assert [r["value"]["agency_code"] for r in await records_of(kafka, settings, via_events)] == [A]


async def test_pull_mode_sets_aside_what_the_source_may_not_send(settings: Settings, kafka, tmp_path: Path) -> None:
    theirs, moved, own = case_code(A), case_code(A), case_code(B)
    items = [
        {**as_agency(event("case.withdrawn", theirs, AT), B), "event_id": "p-1"},
        {**as_agency(received(moved), B), "event_id": "p-2"},
        {**received(own), "event_id": "shared-1"},  # the id the admin token used: another source's event
        {**event("case.processed", own, AT, outcome="approved"), "event_id": "p-3"},
    ]
    config = tmp_path / "pull.json"
    async with serve(create_app(settings)) as client:
        for code in (theirs, moved):
            assert (await client.post("/v1/events", json=received(code), headers=AUTH)).status_code == 202
        admin_first = await client.post("/v1/events", json={**received(own), "event_id": "shared-1"}, headers=AUTH)
    assert admin_first.json()["accepted"] == [{"event_id": "shared-1", "duplicate": False}]
    async with running(fake_one_stop(items, faults=[])) as url:
        spec = {"name": "so-tc", "url": f"{url}/changes", "agency_codes": [B], "page_size": 10, "interval_s": 0.2}
        config.write_text(json.dumps([spec]))
        mongo = mongo_client(settings.mongo_uri)
        db = mongo[f"{settings.mongo_db}_intake"]

        async def page_done() -> bool:
            doc = await db.pull_cursors.find_one({"_id": "so-tc"})
            return doc is not None and doc["cursor"] == str(len(items))

        async with serve(create_app(settings.model_copy(update={"pull_config": str(config)}))):
            await eventually(page_done, timeout=30)
        rejects = {doc["item"]["event_id"]: doc async for doc in db.pull_rejects.find()}
        await mongo.close()
    assert sorted(rejects) == ["p-1", "p-2"]
    assert theirs in rejects["p-1"]["error"] and rejects["p-1"]["details"][0]["loc"] == [0, "case_code"]
    assert "cannot move" in rejects["p-2"]["error"]
    assert [r["value"]["type"] for r in await records_of(kafka, settings, theirs)] == ["case.received"]
    assert [r["value"]["agency_code"] for r in await records_of(kafka, settings, moved)] == [A]
    pulled = await records_of(kafka, settings, own)
    assert [(r["value"]["event_id"], r["headers"]["source"]) for r in pulled] == [
        ("shared-1", b"admin"),
        ("shared-1", b"pull:so-tc"),
        ("p-3", b"pull:so-tc"),
    ]


async def test_two_requests_writing_one_bucket_both_land_and_the_first_receipt_wins(settings: Settings) -> None:
    first, second = f"{A}-261116-0000101", f"{A}-261116-0000102"  # neighbours: one bucket document
    client = mongo_client(settings.mongo_uri)
    owners = client[f"{settings.mongo_db}_intake"][OWNERS_COLLECTION]
    try:
        one = await Ledger.load(owners, {first})
        two = await Ledger.load(owners, {first, second})  # read before `one` wrote: `first` looks new
        one.admit([EVENT_ADAPTER.validate_python(received(first))], {A}, [["case_code"]])
        by_b = as_agency(received(first), B)
        two.admit([EVENT_ADAPTER.validate_python(e) for e in (received(second), by_b)], None, [[0], [1]])
        await one.save(owners)
        await two.save(owners)  # finds the bucket written: applies its events again to what is there
        after = await Ledger.load(owners, {first, second})
        # both read the bucket as it is now; the second's conditional replace misses, then lands
        third = f"{A}-261116-0000103"
        one, two = await Ledger.load(owners, {first}), await Ledger.load(owners, {third})
        transfer = event("case.transferred", first, AT, from_agency=A, to_agency=C)
        one.admit([EVENT_ADAPTER.validate_python(transfer)], {A}, [["case_code"]])
        two.admit([EVENT_ADAPTER.validate_python(received(third))], {A}, [["case_code"]])
        await one.save(owners)
        await two.save(owners)
        last = await Ledger.load(owners, {first, second, third})
        documents = await owners.count_documents({})
    finally:
        await client.close()
    assert after.cases[first].owner == A and after.cases[second].owner == A
    assert {code: (s.owner, s.handler) for code, s in last.cases.items()} == {
        first: (A, C),
        second: (A, A),
        third: (A, A),
    }
    assert documents == 1


async def test_requests_of_one_process_write_a_bucket_in_turn_without_racing(settings: Settings) -> None:
    codes = [f"{A}-261117-00002{i:02d}" for i in range(8)]  # neighbours: one bucket document
    client = mongo_client(settings.mongo_uri)
    owners = client[f"{settings.mongo_db}_intake"][OWNERS_COLLECTION]
    turns = OwnerTurns()
    races = OWNER_WRITE_RACES._value.get()

    async def one_request(code: str) -> None:
        async with turns.reading({bucket_of(code)[0]}) as read_at:
            ledger = await Ledger.load(owners, {code})
            ledger.admit([EVENT_ADAPTER.validate_python(received(code))], {A}, [["case_code"]])
            await asyncio.sleep(0)  # every request has read the bucket before any writes it
            await ledger.save(owners, turns, read_at)

    try:
        await asyncio.gather(*(one_request(code) for code in codes))
        last = await Ledger.load(owners, set(codes))
        documents = await owners.count_documents({})
    finally:
        await client.close()
    assert OWNER_WRITE_RACES._value.get() == races  # each built on the one before, none read again
    assert {code: state.owner for code, state in last.cases.items()} == dict.fromkeys(codes, A)
    assert documents == 1
    assert not turns._readers and not turns._written and not turns._locks  # nothing kept after them

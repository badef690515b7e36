"""Agencies change (contract v1.1), with the real broker and store: a district dissolved into a
commune hands its open cases over (agency_code, agency_history), they show in the successor's
lists and read with its token, and events naming the district dated from valid_to are refused."""

from __future__ import annotations

from datetime import datetime

import pytest
from pymongo import AsyncMongoClient

from services.deadline.app import create_app as deadline_app
from services.deadline.rebuild import rebuild
from services.intake.app import create_app as intake_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.events import LAND_PROCEDURE, event, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.integration

PROVINCE = "000.00.00.H99"
DISTRICT = "000.91.00.H99"  # made up for the test: "UBND huyện Thử"
SUCCESSOR = "091.30.00.H99"
HANDOVER = datetime.fromisoformat("2025-07-01T00:00:00+07:00")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def put_agencies(intake) -> None:
    for code, body in (
        (DISTRICT, {"name": "UBND huyện Thử", "level": "district", "parent_code": PROVINCE}),
        (SUCCESSOR, {"name": "UBND xã Thử Mới", "level": "commune", "parent_code": PROVINCE}),
    ):
        answer = await intake.put(f"/v1/admin/agencies/{code}", json=body, headers=AUTH)
        assert answer.status_code == 200, answer.text


async def credentials(intake, kind: str, agency: str) -> str:
    if kind == "source":
        answer = await intake.post(
            "/v1/admin/source-systems", json={"name": agency, "agency_codes": [agency]}, headers=AUTH
        )
        return answer.json()["key"]
    answer = await intake.post("/v1/admin/agency-tokens", json={"agency_code": agency}, headers=AUTH)
    return answer.json()["token"]


async def test_a_dissolved_district_hands_its_open_cases_to_the_successor(settings: Settings) -> None:
    code = f"{DISTRICT}-250620-00001"
    finished_before = f"{DISTRICT}-250610-00002"
    async with serve(intake_app(settings)) as intake, serve(deadline_app(settings)) as deadline:
        await put_agencies(intake)
        district_key = await credentials(intake, "source", DISTRICT)
        successor_key = await credentials(intake, "source", SUCCESSOR)
        successor_token = await credentials(intake, "agency", SUCCESSOR)
        district_token = await credentials(intake, "agency", DISTRICT)
        opened = received(code, at="2025-06-20T09:00:00+07:00", level="district", channel="direct", online_mode=None)
        early = received(
            finished_before, at="2025-06-10T09:00:00+07:00", level="district", channel="direct", online_mode=None
        )
        done = event("case.processed", finished_before, "2025-06-20T10:00:00+07:00", outcome="approved")
        answer = await intake.post("/v1/events", json={"events": [opened, early, done]}, headers=bearer(district_key))
        assert answer.status_code == 202, answer.text

        async def case(case_code: str, headers=AUTH):
            return await deadline.get(f"/v1/cases/{case_code}", headers=headers)

        async def held_by(case_code: str, agency: str):
            found = await case(case_code)
            return found.status_code == 200 and found.json()["agency_code"] == agency and found.json()

        await eventually(lambda: held_by(code, DISTRICT))
        await eventually(lambda: held_by(finished_before, DISTRICT))

        # the dissolution, put after the case's events: the deadline service folds the case again
        dissolution = {
            "name": "UBND huyện Thử",
            "level": "district",
            "parent_code": PROVINCE,
            "valid_to": "2025-07-01",
            "successor_code": SUCCESSOR,
        }
        answer = await intake.put(f"/v1/admin/agencies/{DISTRICT}", json=dissolution, headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["valid_to"], answer.json()["successor_code"]) == ("2025-07-01", SUCCESSOR)

        moved = await eventually(lambda: held_by(code, SUCCESSOR))
        history = [
            (h["agency_code"], _instant(h["from"]), _instant(h["to"]), h["name"]) for h in moved["agency_history"]
        ]
        assert history == [
            (DISTRICT, _instant("2025-06-20T09:00:00+07:00"), HANDOVER, "UBND huyện Thử"),
            (SUCCESSOR, HANDOVER, None, "UBND xã Thử Mới"),
        ]
        assert moved["rule_set"] == "nd61-2018"
        assert moved["agency_at_fault"] == SUCCESSOR
        stays = (await case(finished_before)).json()
        assert (stays["agency_code"], stays["agency_history"]) == (DISTRICT, [])

        # the successor's system reports the case it took over (its key holds the district's cases)
        later = event("case.supplement_requested", code, "2025-07-03T09:00:00+07:00", reason="thiếu giấy tờ")
        later["agency_code"] = SUCCESSOR
        answer = await intake.post("/v1/events", json=later, headers=bearer(successor_key))
        assert answer.status_code == 202, answer.text
        await eventually(lambda: _status(case(code), "waiting_citizen"))
        resumed = event("case.supplement_received", code, "2025-07-04T09:00:00+07:00")
        resumed["agency_code"] = SUCCESSOR
        assert (await intake.post("/v1/events", json=resumed, headers=bearer(successor_key))).status_code == 202
        await eventually(lambda: _status(case(code), "pending"))

        # the successor's list and token; the district's old token still reads the case it held
        async def listed():
            await eventually(lambda: _known(deadline, successor_token))
            page = await deadline.get(
                "/v1/cases/overdue", params={"agency": SUCCESSOR}, headers=bearer(successor_token)
            )
            return page.status_code == 200 and [i for i in page.json()["items"] if i["case_code"] == code]

        rows = await eventually(listed)
        assert rows[0]["agency_code"] == SUCCESSOR
        assert (await case(code, bearer(successor_token))).status_code == 200
        await eventually(lambda: _known(deadline, district_token))
        assert (await case(code, bearer(district_token))).status_code == 200
        assert (await case(finished_before, bearer(successor_token))).status_code == 404

        # an event naming the district dated from valid_to: 422 naming agency_code and the successor
        stale = event("case.processed", code, "2025-07-01T08:00:00+07:00", outcome="approved")
        refused = await intake.post("/v1/events", json=stale, headers=AUTH)
        assert refused.status_code == 422, refused.text
        details = refused.json()["error"]["details"]
        assert details[0]["loc"] == ["agency_code"]
        assert SUCCESSOR in details[0]["msg"] and DISTRICT in details[0]["msg"]
        # a late report of the old period naming the district is accepted
        late = event(
            "case.digitized",
            code,
            "2025-06-25T09:00:00+07:00",
            components_digitized=True,
            result_digitized=False,
            reused=False,
        )
        answer = await intake.post("/v1/events", json=late, headers=bearer(district_key))
        assert answer.status_code == 202, answer.text

        # a rebuild from the log, with the registry the services hold, hands the case over the same way
        await rebuild(settings, "cases_rebuilt")
        mongo = AsyncMongoClient(settings.mongo_uri)
        try:
            rebuilt = await mongo[f"{settings.mongo_db}_deadline"]["cases_rebuilt"].find_one({"_id": code})
        finally:
            await mongo.close()
        assert rebuilt["agency_code"] == SUCCESSOR
        assert [h["agency_code"] for h in rebuilt["agency_history"]] == [DISTRICT, SUCCESSOR]

        # the same on the DVCQG endpoint
        snapshot = {
            "MaHoSo": f"{DISTRICT}-250702-00003",
            "MaTTHC": LAND_PROCEDURE,
            "MaLinhVuc": "G09-DD",
            "KenhThucHien": 1,
            "DonViXuLy": DISTRICT,
            "NgayTiepNhan": "20250702090000",
            "TrangThaiHoSo": 4,
        }
        refused = await intake.post("/v1/dvcqg/hoso", json=snapshot, headers=AUTH)
        assert refused.status_code == 422, refused.text
        messages = [d["msg"] for d in refused.json()["error"]["details"]]
        assert any(SUCCESSOR in m and "agency_code" in m for m in messages), messages


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


async def _status(answer, status: str) -> bool:
    found = await answer
    return found.status_code == 200 and found.json()["status"] == status


async def _known(service, token: str) -> bool:
    return (await service.get("/v1/me", headers=bearer(token))).status_code != 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"valid_to": "2025-13-01", "successor_code": SUCCESSOR}, "valid_to"),
        ({"valid_to": "2025-07-01", "successor_code": "999.99.99.H99"}, "successor_code"),
        ({"successor_code": SUCCESSOR}, "valid_to"),
        ({"valid_to": "2999-07-01", "successor_code": SUCCESSOR}, "valid_to"),
    ],
)
async def test_a_dissolution_that_does_not_fit_is_422_naming_the_field(settings: Settings, change, field) -> None:
    async with serve(intake_app(settings)) as intake:
        await put_agencies(intake)
        body = {"name": "UBND huyện Thử", "level": "district", "parent_code": PROVINCE, **change}
        answer = await intake.put(f"/v1/admin/agencies/{DISTRICT}", json=body, headers=AUTH)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["details"][0]["loc"] == ["body", field]


async def test_a_successor_dissolved_first_or_a_cycle_is_422(settings: Settings) -> None:
    async with serve(intake_app(settings)) as intake:
        await put_agencies(intake)
        base = {"level": "commune", "parent_code": PROVINCE}
        gone = {**base, "name": "UBND xã Thử Mới", "valid_to": "2025-06-01", "successor_code": "001.30.00.H99"}
        assert (await intake.put(f"/v1/admin/agencies/{SUCCESSOR}", json=gone, headers=AUTH)).status_code == 200
        body = {"name": "UBND huyện Thử", "level": "district", "parent_code": PROVINCE}
        first = {**body, "valid_to": "2025-07-01", "successor_code": SUCCESSOR}
        answer = await intake.put(f"/v1/admin/agencies/{DISTRICT}", json=first, headers=AUTH)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["details"][0]["loc"] == ["body", "successor_code"]
        assert "dissolved" in answer.json()["error"]["message"]
        # SUCCESSOR → 001 (2025-06-01); 001 → SUCCESSOR would go round
        back = {"name": "UBND Phường Bắc Sơn", **base, "valid_to": "2025-08-01", "successor_code": SUCCESSOR}
        answer = await intake.put("/v1/admin/agencies/001.30.00.H99", json=back, headers=AUTH)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["details"][0]["loc"][1] in ("successor_code", "valid_to")

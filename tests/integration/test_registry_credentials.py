"""Registries and credentials: changes reach the other services without a restart; scopes hold."""

from __future__ import annotations

import pytest

from services.deadline.app import create_app as deadline_app
from services.intake.app import create_app as intake_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.events import AGENCY, COMMUNE, case_code, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_new_agency_and_procedure_reach_the_deadline_service(settings: Settings) -> None:
    async with serve(intake_app(settings)) as intake, serve(deadline_app(settings)) as deadline:
        agency = await intake.put(
            "/v1/admin/agencies/002.30.99.H99",
            json={
                "name": "UBND Xã Mới",
                "level": "commune",
                "parent_code": "000.00.00.H99",
                "calendar": {"office_hours": [["08:00", "12:00"], ["13:00", "17:00"]]},
            },
            headers=AUTH,
        )
        assert agency.status_code == 200, agency.text
        procedure = await intake.put(
            "/v1/admin/procedures/9.000001",
            json={
                "name": "Thủ tục mới",
                "field_code": "G09-HT",
                "durations": {"direct": {"value": 2, "unit": "working_days"}},
            },
            headers=AUTH,
        )
        assert procedure.status_code == 200, procedure.text

        async def computed():
            r = await deadline.post(
                "/v1/deadlines/compute",
                json={
                    "received_at": "2026-03-16T07:00:00+07:00",
                    "procedure_code": "9.000001",
                    "agency_code": "002.30.99.H99",
                },
            )
            return r.json() if r.status_code == 200 else None

        answer = await eventually(computed)
        assert answer["due_at"] == "2026-03-17T17:00:00+07:00"  # 2 × 8 h from 08:00 on 08–12/13–17 hours
        # the intake accepts events for the new codes at once
        event = received(case_code("002.30.99.H99"), procedure_code="9.000001", level="commune")
        assert (await intake.post("/v1/events", json=event, headers=AUTH)).status_code == 202


async def test_procedure_versions_accumulate(settings: Settings) -> None:
    async with serve(intake_app(settings)) as intake:
        spec = {"name": "T", "field_code": "F", "durations": {"direct": {"value": 5, "unit": "working_days"}}}
        await intake.put("/v1/admin/procedures/9.000002", json=spec, headers=AUTH)
        await intake.put(
            "/v1/admin/procedures/9.000002",
            json={
                **spec,
                "effective_from": "2026-07-01",
                "durations": {"direct": {"value": 3, "unit": "working_days"}},
            },
            headers=AUTH,
        )
        current = (await intake.get("/v1/admin/procedures/9.000002", headers=AUTH)).json()
    assert [v.get("effective_from") for v in current["versions"]] == [None, "2026-07-01"]


@pytest.mark.parametrize(
    "path, body, loc",
    [
        ("/v1/admin/agencies/X", {"name": "x", "level": "galaxy"}, ["body", "level"]),
        ("/v1/admin/agencies/X", {"name": "x", "level": "commune", "parent_code": "NOPE"}, ["body", "parent_code"]),
        (
            "/v1/admin/procedures/P",
            {"name": "p", "field_code": "F", "durations": {"direct": {"value": -1, "unit": "working_days"}}},
            ["body", "durations", "direct"],
        ),
        (
            "/v1/admin/procedures/P",
            {"name": "p", "field_code": "F", "durations": {"online": {"value": 1, "unit": "working_days"}}},
            ["body", "durations"],
        ),
    ],
)
async def test_bad_registry_changes_are_422_naming_the_field(settings: Settings, path, body, loc) -> None:
    async with serve(intake_app(settings)) as intake:
        response = await intake.put(path, json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"][: len(loc)] == loc


async def test_source_key_is_scoped_rotatable_and_revocable(settings: Settings) -> None:
    async with serve(intake_app(settings)) as intake:
        created = await intake.post(
            "/v1/admin/source-systems", json={"name": "mot-cua-so-nnmt", "agency_codes": [AGENCY]}, headers=AUTH
        )
        assert created.status_code == 201
        key, ident = created.json()["key"], created.json()["id"]
        listed = (await intake.get("/v1/admin/credentials", headers=AUTH)).json()
        assert all("hash" not in c and "key" not in c for c in listed)

        own = await intake.post("/v1/events", json=received(case_code(AGENCY)), headers=bearer(key))
        other = await intake.post("/v1/events", json=received(case_code(COMMUNE)), headers=bearer(key))
        admin_only = await intake.put(
            "/v1/admin/agencies/Z", json={"name": "z", "level": "commune"}, headers=bearer(key)
        )
        assert own.status_code == 202
        assert other.status_code == 403 and COMMUNE in other.json()["error"]["message"]
        assert admin_only.status_code == 403

        rotated = await intake.post(f"/v1/admin/credentials/{ident}/rotate", headers=AUTH)
        new_key = rotated.json()["key"]
        assert (await intake.post("/v1/events", json=received(case_code()), headers=bearer(key))).status_code == 401
        assert (await intake.post("/v1/events", json=received(case_code()), headers=bearer(new_key))).status_code == 202

        await intake.delete(f"/v1/admin/credentials/{ident}", headers=AUTH)
        assert (await intake.post("/v1/events", json=received(case_code()), headers=bearer(new_key))).status_code == 401


async def test_agency_token_reads_only_its_subtree(settings: Settings) -> None:
    province_case, commune_case = case_code(AGENCY), case_code(COMMUNE)
    async with serve(intake_app(settings)) as intake, serve(deadline_app(settings)) as deadline:
        token = (await intake.post("/v1/admin/agency-tokens", json={"agency_code": AGENCY}, headers=AUTH)).json()[
            "token"
        ]
        root = (
            await intake.post("/v1/admin/agency-tokens", json={"agency_code": "000.00.00.H99"}, headers=AUTH)
        ).json()["token"]
        for code in (province_case, commune_case):
            level = "commune" if code == commune_case else "province"
            assert (await intake.post("/v1/events", json=received(code, level=level), headers=AUTH)).status_code == 202
        # an agency token cannot submit events
        assert (await intake.post("/v1/events", json=received(case_code()), headers=bearer(token))).status_code == 403

        async def status(code: str, tok: str) -> int:
            return (await deadline.get(f"/v1/cases/{code}", headers=bearer(tok))).status_code

        await eventually(lambda: _is(status(province_case, token), 200))
        await eventually(lambda: _is(status(commune_case, root), 200))
        assert await status(commune_case, token) == 404  # outside its subtree: as if absent (contract v1.1)


async def _is(awaitable, expected) -> bool:
    return (await awaitable) == expected


async def test_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    tight = settings.model_copy(update={"rate_limit_per_s": 0.5, "rate_limit_burst": 2})
    async with serve(intake_app(tight)) as intake:
        key = (
            await intake.post("/v1/admin/source-systems", json={"name": "s", "agency_codes": [AGENCY]}, headers=AUTH)
        ).json()["key"]
        codes = [
            (await intake.post("/v1/events", json=received(case_code()), headers=bearer(key))).status_code
            for _ in range(4)
        ]
        limited = await intake.post("/v1/events", json=received(case_code()), headers=bearer(key))
    assert codes[:2] == [202, 202] and 429 in codes
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1

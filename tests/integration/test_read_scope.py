"""Contract v1.1: a source-system key may only submit; reading is for agency tokens (their subtree)
and admin, and a case outside the caller's subtree answers 404, as if absent."""

from __future__ import annotations

import pytest

from services.deadline.app import create_app as deadline_app
from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.events import AGENCY, COMMUNE, case_code, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_source_keys_cannot_read_and_cases_outside_the_subtree_are_absent(settings: Settings) -> None:
    code = case_code(AGENCY)
    async with (
        serve(intake_app(settings)) as intake,
        serve(deadline_app(settings)) as deadline,
        serve(metrics_app(settings)) as metrics,
    ):
        key = (
            await intake.post("/v1/admin/source-systems", json={"name": "s", "agency_codes": [AGENCY]}, headers=AUTH)
        ).json()["key"]
        officer = (await intake.post("/v1/admin/agency-tokens", json={"agency_code": COMMUNE}, headers=AUTH)).json()[
            "token"
        ]
        assert (await intake.post("/v1/events", json=received(code), headers=bearer(key))).status_code == 202

        async def applied():
            return (await deadline.get(f"/v1/cases/{code}", headers=AUTH)).status_code == 200

        await eventually(applied)

        async def known(service, token):  # the services follow the registry topic: the new credentials arrive
            return (await service.get("/v1/me", headers=bearer(token))).status_code != 401

        for service in (deadline, metrics):
            await eventually(lambda s=service: known(s, key))
            await eventually(lambda s=service: known(s, officer))
        reads = [
            await deadline.get(f"/v1/cases/{code}", headers=bearer(key)),
            await deadline.get("/v1/cases/overdue", headers=bearer(key)),
            await metrics.get("/v1/indicators", params={"period": "2026-03"}, headers=bearer(key)),
        ]
        assert [r.status_code for r in reads] == [403, 403, 403]
        assert all("only submit" in r.json()["error"]["message"] for r in reads)
        outside = await deadline.get(f"/v1/cases/{code}", headers=bearer(officer))
        absent = await deadline.get(f"/v1/cases/{case_code(COMMUNE)}", headers=bearer(officer))
        assert (outside.status_code, absent.status_code) == (404, 404)
        assert outside.json()["error"]["message"] == absent.json()["error"]["message"].replace(
            case_code_of(absent), code
        )


def case_code_of(response) -> str:
    return response.json()["error"]["message"].split("'")[1]

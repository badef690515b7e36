"""National sync counts through the metrics service (real broker and store): only the admin enters
them, bad input is 422 naming the field, and the 766 index scores 1.4 (and 3.3) from them."""

from __future__ import annotations

import pytest

from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.events import AGENCY, case_code, event, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.integration

TOP = "000.00.00.H99"
MONTH = "2026-12"
ROUTE = f"/v1/admin/sync-counts/{AGENCY}/{MONTH}"


def items(index: dict) -> dict[str, dict]:
    return {i["item"]: i for g in index["groups"] for i in g["items"]}


async def test_sync_counts_admin_route_and_766_item_1_4(settings: Settings) -> None:
    both, components_only, direct = case_code(), case_code(), case_code()
    events = [
        received(both, at="2026-12-01T09:00:00+07:00", channel="online", online_mode="full"),
        event(
            "case.digitized",
            both,
            "2026-12-01T09:10:00+07:00",
            components_digitized=True,
            result_digitized=True,
            reused=False,
        ),
        received(components_only, at="2026-12-01T10:00:00+07:00", channel="online"),
        event(
            "case.digitized",
            components_only,
            "2026-12-01T10:10:00+07:00",
            components_digitized=True,
            result_digitized=False,
            reused=False,
        ),
        received(direct, at="2026-12-01T11:00:00+07:00", channel="direct"),
    ]
    params = {"period": MONTH, "agency": AGENCY}
    async with serve(intake_app(settings)) as intake, serve(metrics_app(settings)) as metrics:
        assert (await intake.post("/v1/events", json={"events": events}, headers=AUTH)).status_code == 202

        async def projected():
            r = await metrics.get("/v1/indicators", params=params, headers=AUTH)
            return r.json() if r.json()["received"]["total"] == 3 and r.json()["rates"]["digitized"] else None

        await eventually(projected, timeout=30)
        before = (await metrics.get("/v1/index/766", params=params, headers=AUTH)).json()

        # only the admin: no token 401, an agency token 403 (before the body is even read)
        token = (await intake.post("/v1/admin/agency-tokens", json={"agency_code": AGENCY}, headers=AUTH)).json()
        officer = {"Authorization": f"Bearer {token['token']}"}

        async def known():
            return (await metrics.get("/v1/me", headers=officer)).status_code == 200

        await eventually(known, timeout=30)
        no_token = await metrics.put(ROUTE, json={"bcqg": 4})
        as_officer = await metrics.put(ROUTE, json={"bcqg": "bad"}, headers=officer)
        officer_list = await metrics.get("/v1/admin/sync-counts", headers=officer)

        # 422 naming the field
        bad = {
            "negative": await metrics.put(ROUTE, json={"bcqg": -1, "dvcqg": 3}, headers=AUTH),
            "string": await metrics.put(ROUTE, json={"bcqg": 4, "dvcqg": "3"}, headers=AUTH),
            "neither": await metrics.put(ROUTE, json={"note": "x"}, headers=AUTH),
            "extra": await metrics.put(ROUTE, json={"bcqg": 4, "total": 3}, headers=AUTH),
            "agency": await metrics.put(f"/v1/admin/sync-counts/999.99.99.H99/{MONTH}", json={"bcqg": 4}, headers=AUTH),
            "month": await metrics.put(f"/v1/admin/sync-counts/{AGENCY}/2026-13", json={"bcqg": 4}, headers=AUTH),
            "future": await metrics.put(f"/v1/admin/sync-counts/{AGENCY}/2099-01", json={"bcqg": 4}, headers=AUTH),
            "note": await metrics.put(
                ROUTE, content=b'{"bcqg": 4, "note": "\\ud800"}', headers=AUTH | {"Content-Type": "application/json"}
            ),
        }

        put = await metrics.put(ROUTE, json={"bcqg": 4, "dvcqg": 3, "note": "BCQG 12/2026"}, headers=AUTH)
        listed = (await metrics.get("/v1/admin/sync-counts", params={"year": 2026}, headers=AUTH)).json()
        after = (await metrics.get("/v1/index/766", params=params, headers=AUTH)).json()
        whole = (await metrics.get("/v1/index/766", params={"period": MONTH}, headers=AUTH)).json()
        deleted = await metrics.delete(ROUTE, headers=AUTH)
        again = await metrics.delete(ROUTE, headers=AUTH)
        gone = (await metrics.get("/v1/index/766", params=params, headers=AUTH)).json()

    # no count: 1.4 and 3.3 null, with the reason (not a silent 0)
    assert before["rules_version"] == "766-2026.2"
    assert items(before)["1.4"]["rate"] is None and items(before)["1.4"]["points"] == 0.0
    assert f"{AGENCY} {MONTH}" in items(before)["1.4"]["note"]
    assert items(before)["3.3"]["rate"] is None and "1.4" in items(before)["3.3"]["note"]
    # 4.2: one of the three received cases has digitized components AND an electronic result
    assert items(before)["4.2"]["rate"] == pytest.approx(1 / 3) and items(before)["4.2"]["points"] == 1.67

    assert no_token.status_code == 401 and no_token.json()["error"]["code"] == "unauthorized"
    assert as_officer.status_code == 403 and officer_list.status_code == 403
    for name, response in bad.items():
        assert response.status_code == 422, (name, response.text)
        assert set(response.json()["error"]) == {"code", "message", "details"}, name
    loc = {name: [d["loc"] for d in r.json()["error"]["details"]] for name, r in bad.items()}
    assert loc["negative"] == [["body", "bcqg"]]
    assert loc["string"] == [["body", "dvcqg"]]
    assert loc["neither"] == [["body", "bcqg"], ["body", "dvcqg"]]
    assert loc["extra"] == [["body", "total"]]
    assert loc["agency"] == [["path", "agency_code"]]
    assert loc["month"] == [["path", "month"]] and loc["future"] == [["path", "month"]]
    assert loc["note"] == [["body", "note"]]

    assert put.status_code == 200
    assert put.json() | {"updated_at": None} == {
        "agency_code": AGENCY,
        "month": MONTH,
        "bcqg": 4,
        "dvcqg": 3,
        "expected": 4,
        "note": "BCQG 12/2026",
        "updated_at": None,
    }
    assert [(c["agency_code"], c["month"], c["expected"]) for c in listed["sync_counts"]] == [(AGENCY, MONTH, 4)]
    # 1.4 = 3 cases held ÷ max(4, 3) = 0.75 → 0.75 × 6 = 4.5 (S-766DOC 1.4); 3.3 = 2/3 online × 0.75
    assert items(after)["1.4"]["rate"] == 0.75 and items(after)["1.4"]["points"] == 4.5
    assert items(after)["3.3"]["rate"] == pytest.approx(0.5)
    # the whole province is scored against the top agency's counts, which nobody entered
    assert items(whole)["1.4"]["rate"] is None and TOP in items(whole)["1.4"]["note"]
    assert deleted.status_code == 204 and again.status_code == 404
    assert items(gone)["1.4"]["rate"] is None

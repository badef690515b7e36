"""Hồ sơ cần xin lỗi (issue #19) against the real broker and store: GET /v1/cases/apology-due (json,
csv, both read paths), the deadline.apology_due_soon timer (once) and its webhook, the gauge, and the
officer's landing page after an agency login.

Contract v1.1: "`GET /v1/cases/apology-due`: open cases with no apology whose `apology_deadline_at`
lies within `TTHC_APOLOGY_DUE_WORKING_HOURS` (default 8) after `as_of`, or has passed while `due_at`
has not; the same filters, sort, cursor and formats as the other lists."

The cases are placed around an `as_of` a little after now (so the in-memory index, loaded at start,
may answer it too): each is received 10 working days (the land procedure) before the due instant
it should have.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from fastapi import FastAPI, Request, Response

from services.deadline.app import create_app as deadline_app
from services.deadline.gauges import APOLOGY_DUE_SOON
from services.intake.app import create_app as intake_app
from services.web.app import COOKIE
from services.web.app import create_app as web_app
from shared.config import load_registry
from shared.domain.apology_due import apology_due
from shared.domain.calendar import VN_TZ
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.integration.test_pull_mode import running
from tests.support.events import AGENCY, COMMUNE, case_code, event, received
from tests.support.kafka_tools import eventually, read_topic

pytestmark = pytest.mark.integration

HOUR = 3600
TEN_DAYS = 80 * HOUR  # the land procedure (1.012790), in working hours
CALENDAR = load_registry("config").calendar_for(AGENCY)
HOOKED = "000.00.05.H99"  # Sở Tư pháp, given a webhook below


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def due_in(as_of: datetime, working_hours: float) -> datetime:
    return CALENDAR.add_working_time(as_of, round(working_hours * HOUR))


def received_for(code: str, due: datetime, **data) -> dict:
    """A case.received whose statutory due instant is `due` (10 working days after receipt)."""
    return received(code, at=CALENDAR.subtract_working_time(due, TEN_DAYS).isoformat(), **data)


async def case_of(client, code: str, predicate=lambda d: True) -> dict:
    async def check():
        r = await client.get(f"/v1/cases/{quote(code, safe='')}", headers=AUTH)
        return r.json() if r.status_code == 200 and predicate(r.json()) else None

    return await eventually(check, timeout=30)


async def test_apology_due_list_timer_webhook_gauge_and_landing_page(settings: Settings, kafka) -> None:
    settings = settings.model_copy(update={"timer_interval_s": 0.3, "webhook_secret": "s3cret"})
    as_of = (datetime.now(VN_TZ) + timedelta(minutes=30)).replace(second=0, microsecond=0)
    window_end = due_in(as_of, 8)
    soon, late, commune = case_code(), case_code(), case_code(COMMUNE)
    overdue, far, apologised, finished, waiting = (case_code() for _ in range(5))
    hooked = case_code(HOOKED)
    events = [
        received_for(soon, due_in(as_of, 12)),  # apology deadline 4 working hours ahead: in the window
        received_for(late, due_in(as_of, 4)),  # apology deadline passed, due not: still possible
        received_for(commune, due_in(as_of, 10), level="commune"),
        received_for(hooked, due_in(as_of, 14)),
        received_for(overdue, due_in(as_of, -4)),  # the overdue list's
        received_for(far, due_in(as_of, 24)),  # apology deadline 16 working hours ahead
        received_for(apologised, due_in(as_of, 12)),
        received_for(finished, due_in(as_of, 12)),
        received_for(waiting, due_in(as_of, 12)),
    ]
    issued_at = (datetime.now(VN_TZ) - timedelta(hours=1)).isoformat()
    events += [
        event(
            "apology.issued",
            apologised,
            issued_at,
            issuer_agency=AGENCY,
            reason="Chờ xác minh",
            new_due_at=due_in(as_of, 40).isoformat(),
            issued_at=issued_at,
        ),
        event("case.processed", finished, issued_at, outcome="approved"),
        event("case.supplement_requested", waiting, issued_at),
    ]
    listed = {soon, late, commune, hooked}
    seen: list[tuple[bytes, dict]] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> Response:
        seen.append((await request.body(), dict(request.headers)))
        return Response(status_code=200)

    app = deadline_app(settings)
    index = app.state.context.open_cases
    async with running(receiver) as hook_url, serve(intake_app(settings)) as intake:
        agency = {"name": "Sở Tư pháp", "level": "province", "parent_code": "000.00.00.H99"}
        response = await intake.put(
            f"/v1/admin/agencies/{HOOKED}", json={**agency, "webhook_url": f"{hook_url}/hook"}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        async with serve(app) as deadline:
            response = await intake.post("/v1/events", json={"events": events}, headers=AUTH)
            assert response.status_code == 202, response.text
            await case_of(deadline, apologised, lambda d: d["apology"] is not None)
            await case_of(deadline, finished, lambda d: d["status"] == "processed")
            await case_of(deadline, waiting, lambda d: d["status"] == "waiting_citizen")
            documents = {code: await case_of(deadline, code) for code in (soon, late, commune, hooked, overdue, far)}

            async def loaded():
                return index.usable or None

            await eventually(loaded)

            # -- the list, as the rule says, from the store and from memory alike
            expected = {
                code
                for code, d in documents.items()
                if apology_due(
                    as_of,
                    window_end,
                    datetime.fromisoformat(d["apology_deadline_at"]),
                    datetime.fromisoformat(d["due_at"]),
                    d["apology"] is not None,
                )
            }
            assert expected == listed

            async def walk(**params) -> list[dict]:
                items, cursor = [], None
                while True:
                    query = {"as_of": as_of.isoformat(), "limit": 2, **params, **({"cursor": cursor} if cursor else {})}
                    r = await deadline.get("/v1/cases/apology-due", params=query, headers=AUTH)
                    assert r.status_code == 200, r.text
                    items += r.json()["items"]
                    if not (cursor := r.json()["next_cursor"]):
                        return items

            for params in (
                {},
                {"sort": "-due_at"},
                {"sort": "received_at", "agency": AGENCY},
                {"level": "commune"},
                {"apology": "issued"},
            ):
                index.usable = True
                from_memory = await walk(**params)
                index.usable = False
                from_store = await walk(**params)
                assert from_memory == from_store, params
            index.usable = True
            everything = await walk()
            assert [i["case_code"] for i in everything] == sorted(listed, key=lambda c: (documents[c]["due_at"], c))
            rows = {i["case_code"]: i for i in everything}
            assert rows[late]["apology_late"] is True and rows[late]["apology_remaining_text"].startswith("quá ")
            assert rows[soon]["apology_late"] is False and rows[soon]["apology_remaining_text"] == "còn 4 giờ làm việc"
            assert rows[soon]["apology_deadline_at"] == documents[soon]["apology_deadline_at"]
            assert [i["case_code"] for i in await walk(agency=AGENCY)] == [
                c for c in rows if c.startswith(AGENCY)
            ]  # the subtree of the department only
            assert await walk(apology="issued") == []
            first = await deadline.get("/v1/cases/apology-due", params={"as_of": as_of.isoformat()}, headers=AUTH)
            assert first.json()["counts"] == {"total": 4, "apology_late": 1, "apology_due_soon": 3}

            # -- exports: Vietnamese headers, every listed case, the same from either path
            exports = []
            for usable in (True, False):
                index.usable = usable
                r = await deadline.get(
                    "/v1/cases/apology-due", params={"as_of": as_of.isoformat(), "format": "csv"}, headers=AUTH
                )
                assert r.status_code == 200 and "ho-so-can-xin-loi.csv" in r.headers["content-disposition"]
                exports.append(r.content)
            index.usable = True
            assert exports[0] == exports[1]
            table = list(csv.reader(io.StringIO(exports[0].decode("utf-8-sig"))))
            assert table[0][:1] == ["Mã hồ sơ"] and "Hạn xin lỗi" in table[0]
            assert "Thời gian còn lại đến hạn xin lỗi" in table[0]
            assert sorted(r[0] for r in table[1:]) == sorted(listed)
            xlsx = await deadline.get(
                "/v1/cases/apology-due", params={"as_of": as_of.isoformat(), "format": "xlsx"}, headers=AUTH
            )
            assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"

            # -- who may read it: an agency token its subtree, a source-system key nobody
            token = (await intake.post("/v1/admin/agency-tokens", json={"agency_code": AGENCY}, headers=AUTH)).json()
            key = (
                await intake.post(
                    "/v1/admin/source-systems", json={"name": "mc", "agency_codes": [AGENCY]}, headers=AUTH
                )
            ).json()["key"]

            async def known(credential: str):
                r = await deadline.get(
                    "/v1/cases/apology-due", params={"as_of": as_of.isoformat()}, headers=bearer(credential)
                )
                return r if r.status_code != 401 else None

            officer = await eventually(lambda: known(token["token"]))
            assert {i["case_code"] for i in officer.json()["items"]} == {soon, late}
            assert (await eventually(lambda: known(key))).status_code == 403

            # -- the timer: deadline.apology_due_soon once for each case that entered the window
            async def announced():
                records = await read_topic(kafka.bootstrap, settings.deadline_events_topic)
                kinds: dict[str, list[str]] = {}
                for r in records:
                    kinds.setdefault(r["key"], []).append(r["value"]["type"])
                return kinds if all("deadline.apology_due_soon" in kinds.get(c, []) for c in listed) else None

            await eventually(announced, timeout=40)
            await asyncio.sleep(1.5)  # a few more sweeps: nothing again
            kinds = await announced()
            for code in listed:
                assert kinds[code].count("deadline.apology_due_soon") == 1, (code, kinds[code])
            for code in (far, apologised, finished, waiting):
                assert "deadline.apology_due_soon" not in kinds.get(code, []), code
            timer = await case_of(deadline, soon)
            assert any(":deadline.apology_due_soon:" in mark for mark in timer["emitted"])
            assert datetime.fromisoformat(timer["next_check_at"]) > datetime.now(VN_TZ)  # what comes next

            # -- the webhook: the agency hears of it, signed, like the other timer events
            async def hooked_delivery():
                r = await deadline.get("/v1/webhooks/deliveries", params={"case_code": hooked}, headers=AUTH)
                rows = [d for d in r.json() if d["type"] == "deadline.apology_due_soon"]
                return rows if rows and rows[0]["status"] == "delivered" else None

            [delivery] = await eventually(hooked_delivery, timeout=30)
            assert delivery["target"] == f"agency:{HOOKED}"
            signed = [h for _, h in seen if h.get("x-tthc-event") == "deadline.apology_due_soon"]
            assert signed and signed[0]["x-tthc-signature"].startswith("sha256=") and "x-tthc-timestamp" in signed[0]

            # -- the gauge: the same counts from memory as from the store
            counted = []
            for usable in (True, False):
                index.usable = usable
                await app.state.context.gauges.refresh(as_of)
                counted.append(
                    {tuple(s.labels.values()): s.value for m in APOLOGY_DUE_SOON.collect() for s in m.samples}
                )
            index.usable = True
            assert counted[0] == counted[1]
            assert counted[0][(AGENCY, "province")] == 2 and counted[0][(COMMUNE, "commune")] == 1

            # -- the officer logs in and lands on "Hồ sơ cần xin lỗi", with the department's cases
            async with running(app) as deadline_url:
                web = web_app(settings.model_copy(update={"deadline_url": deadline_url, "metrics_url": deadline_url}))
                async with serve(web) as pages:
                    login = await pages.post("/login", data={"token": token["token"], "next": "/"})
                    assert login.status_code == 303 and login.headers["location"] == "/apology-due"
                    pages.cookies.set(COOKIE, token["token"])
                    page = await pages.get("/apology-due")
                    assert page.status_code == 200, page.text
                    html = page.text
                    assert "<h1>Hồ sơ cần xin lỗi</h1>" in html
                    assert soon in html and late in html and commune not in html and far not in html
                    assert f'href="/cases/{quote(soon, safe="")}#apology"' in html and "Lập phiếu xin lỗi" in html
                    assert 'id="count-total">2<' in html and 'id="count-late">1<' in html
                    assert "đã qua hạn xin lỗi" in html
                    home = await pages.get("/")
                    assert home.headers["location"] == "/apology-due"
                    download = await pages.get("/export/apology-due.csv")
                    assert download.status_code == 200
                    table = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
                    assert sorted(r[0] for r in table[1:]) == sorted([soon, late])
                    pages.cookies.set(COOKIE, settings.admin_token)
                    assert (await pages.get("/")).headers["location"] == "/indicators"  # admin: by agency (#20)

"""The metrics service through the real pipeline, and every service's /metrics under promtool."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from services.deadline.app import create_app as deadline_app
from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.events import AGENCY, COMMUNE, LAND_PROCEDURE, case_code, event, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.integration


async def test_indicators_766_and_par_from_posted_events(settings: Settings) -> None:
    early, late, pending, commune = case_code(), case_code(), case_code(), case_code(COMMUNE)
    events = [
        received(early, at="2026-03-02T09:00:00+07:00", channel="online", online_mode="partial"),
        event("case.processed", early, "2026-03-05T09:00:00+07:00", outcome="approved"),
        event(
            "case.digitized",
            early,
            "2026-03-02T09:10:00+07:00",
            components_digitized=True,
            result_digitized=False,
            reused=True,
        ),
        received(late, at="2026-03-03T09:00:00+07:00", channel="direct"),
        event("case.processed", late, "2026-03-20T09:00:00+07:00", outcome="approved"),
        received(pending, at="2026-03-04T09:00:00+07:00", channel="postal"),
        received(commune, at="2026-03-05T09:00:00+07:00", level="commune"),
    ]
    async with serve(intake_app(settings)) as intake, serve(metrics_app(settings)) as metrics:
        response = await intake.post("/v1/events", json={"events": events}, headers=AUTH)
        assert response.status_code == 202

        async def ready():
            answer = (await metrics.get("/v1/indicators", params={"period": "2026-03"}, headers=AUTH)).json()
            return answer if answer["finished"]["total"] == 2 and answer["received"]["total"] == 4 else None

        everything = await eventually(ready, timeout=30)
        mine = (
            await metrics.get("/v1/indicators", params={"period": "2026-03", "agency": AGENCY}, headers=AUTH)
        ).json()
        q1 = (
            await metrics.get("/v1/indicators", params={"period": "2026-Q1", "level": "commune"}, headers=AUTH)
        ).json()
        index = (await metrics.get("/v1/index/766", params={"period": "2026-03"}, headers=AUTH)).json()
        par = (await metrics.get("/v1/index/par", params={"year": 2026}, headers=AUTH)).json()
        bad = await metrics.get("/v1/indicators", params={"period": "2026-13"}, headers=AUTH)
        monthly = (await metrics.get("/v1/indicators/monthly", params={"year": 2026}, headers=AUTH)).json()
        me = (await metrics.get("/v1/me", headers=AUTH)).json()
        token = (await intake.post("/v1/admin/agency-tokens", json={"agency_code": AGENCY}, headers=AUTH)).json()
        officer = {"Authorization": f"Bearer {token['token']}"}

        async def known():
            r = await metrics.get("/v1/me", headers=officer)
            return r.json() if r.status_code == 200 else None

        officer_me = await eventually(known, timeout=30)
        officer_monthly = (await metrics.get("/v1/indicators/monthly", params={"year": 2026}, headers=officer)).json()
        outside = await metrics.get("/v1/indicators/monthly", params={"year": 2026, "agency": COMMUNE}, headers=officer)
    # monthly series: one per agency below the top, its subtree rolled up; the top itself has no cases
    series = {s["agency_code"]: s for s in monthly["series"]}
    assert monthly["agency"] == "000.00.00.H99" and "000.00.00.H99" not in series
    assert monthly["months"][:3] == ["2026-01", "2026-02", "2026-03"]
    march = series[AGENCY]["points"][2]
    assert march == {"month": "2026-03", "on_time": pytest.approx(1 / 3), "counted": 3}
    assert series[AGENCY]["points"][0] == {"month": "2026-01", "on_time": None, "counted": 0}
    assert series[COMMUNE]["points"][2]["counted"] == 1
    below = "000.01.02.H99"  # the department's one sub-unit
    assert [(s["agency_code"], s["own_cases_only"]) for s in officer_monthly["series"]] == [
        (AGENCY, True),
        (below, False),
    ]
    assert outside.status_code == 403
    # who am I: the admin sees every agency, top first; the officer only its own subtree
    assert me["kind"] == "admin" and me["agencies"][0] == {
        "agency_code": "000.00.00.H99",
        "name": "UBND tỉnh Mẫu",
        "level": "province",
        "parent_code": None,
        "depth": 0,
    }
    assert len(me["agencies"]) == 31  # the sample province, its dissolved district included
    assert officer_me["kind"] == "agency" and [a["agency_code"] for a in officer_me["agencies"]] == [AGENCY, below]
    assert everything["pending"] == {"total": 2, "within_due": 0, "overdue": 2}
    assert mine["received"] == {"total": 3, "carried_over": 0, "online": 1, "direct": 1, "postal": 1}
    assert mine["finished"] == {"total": 2, "early": 1, "on_time": 0, "late": 1}
    assert mine["rates"]["on_time"] == pytest.approx(1 / 3)
    assert mine["rates"]["online"] == pytest.approx(1 / 3)
    assert mine["rates"]["digitized"] == pytest.approx(1 / 3)
    assert mine["rates"]["apology_coverage"] == 0.0
    assert q1["received"]["total"] == 1
    items = {i["item"]: i for g in index["groups"] for i in g["items"]}
    assert items["2.1"]["rate"] == pytest.approx(1 / 4) and items["2.1"]["points"] == 5.0
    assert items["1.4"]["rate"] is None and items["1.4"]["points"] == 0.0
    assert index["total"] == round(sum(g["points"] for g in index["groups"]), 2)
    assert index["rules_version"] == "766-2026.2"
    criteria = {c["criterion"]: c for c in par["criteria"]}
    assert criteria["on_time_commune"]["rate"] == 0.0 and criteria["apology"]["points"] == 0.0
    targets = {t["target"]: t for t in par["plan_targets"]}
    assert targets["on_time:G09-DD"]["goal"] == 0.98 and targets["on_time:G09-DD"]["met"] is False
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"] == ["query", "period"]


async def test_indicators_from_memory_equal_indicators_from_the_store(settings: Settings) -> None:
    """The bucket copy in memory answers every route exactly as the stored buckets do, also after a
    restart (it is reloaded when the consumer gets every partition)."""
    codes = [case_code(COMMUNE if i % 4 == 0 else AGENCY) for i in range(24)]
    events = []
    for i, code in enumerate(codes):
        at = f"2026-0{2 + i % 3}-{3 + i:02d}T09:00:00+07:00"
        level = "commune" if code.startswith(COMMUNE) else "province"
        events.append(received(code, at=at, level=level, channel=["online", "direct", "postal"][i % 3]))
        if i % 2:
            events.append(event("case.processed", code, f"2026-05-{1 + i:02d}T10:00:00+07:00", outcome="approved"))
    queries = [
        ("/v1/indicators", {"period": "2026-03"}),
        ("/v1/indicators", {"period": "2026-Q1", "agency": AGENCY}),
        ("/v1/indicators", {"period": "2026-02-10..2026-04-17"}),
        ("/v1/indicators", {"period": "2026-H1", "field": "G09-DD", "channel": "online"}),
        ("/v1/indicators", {"period": "2026-H1", "field": "G09-DD"}),
        ("/v1/indicators", {"period": "2026-Q1", "channel": "postal", "agency": AGENCY}),
        ("/v1/index/766", {"period": "2026-04"}),
        ("/v1/index/par", {"year": 2026}),
        ("/v1/indicators/monthly", {"year": 2026}),
    ]
    answers = []
    for attempt in range(2):
        app = metrics_app(settings)
        mirror = app.state.context.mirror
        async with serve(intake_app(settings)) as intake, serve(app) as metrics:
            if attempt == 0:
                assert (await intake.post("/v1/events", json={"events": events}, headers=AUTH)).status_code == 202

            async def projected(mirror=mirror, metrics=metrics):
                r = await metrics.get("/v1/indicators", params={"period": "2026"}, headers=AUTH)
                done = mirror.usable and r.json()["received"]["total"] == len(codes)
                return done and r.json()["finished"]["total"] == len(codes) // 2

            await eventually(projected, timeout=30)
            round_answers = []
            for path, params in queries:
                both = []
                for usable in (True, False):
                    mirror.usable = usable
                    r = await metrics.get(path, params=params, headers=AUTH)
                    assert r.status_code == 200, r.text
                    both.append(r.json())
                mirror.usable = True
                assert both[0] == both[1], (path, params)
                round_answers.append(both[0])
            answers.append(round_answers)
            assert mirror.loads == 1 and mirror.size() > 0
    assert answers[0] == answers[1]


async def test_every_service_exposition_passes_promtool(settings: Settings) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian package prometheus; .ci/run installs it)"
    for factory in (intake_app, deadline_app, metrics_app):
        async with serve(factory(settings)) as client:
            text = (await client.get("/metrics")).text
        result = await asyncio.to_thread(
            subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "tthc_" in text


async def test_figures_stay_with_the_holder_and_include_predecessors_adds_them(settings: Settings) -> None:
    """Contract v1.1, agencies change: figures stay with the agency that held the case at the time;
    `include_predecessors=true` adds the predecessors' cases to an agency's figures."""
    district = "000.30.09.H99"  # dissolved into COMMUNE on 2025-07-01
    spec = {
        "name": "UBND huyện Cũ",
        "level": "district",
        "parent_code": "000.00.00.H99",
        "valid_to": "2025-07-01",
        "successor_code": COMMUNE,
    }
    before, after, across = case_code(district), case_code(COMMUNE), case_code(district)
    events = [  # the district's case finished (late) before the dissolution, the commune's own case
        received(before, at="2025-06-02T09:00:00+07:00", level="district", channel="direct"),
        event("case.processed", before, "2025-06-20T09:00:00+07:00", outcome="approved"),
        received(after, at="2025-08-04T09:00:00+07:00", level="commune", channel="online"),
        event("case.processed", after, "2025-08-06T09:00:00+07:00", outcome="approved"),
    ]
    # received by the district in June, open on 2025-07-01 (handed over), finished by the commune
    handed = [
        received(across, at="2025-06-23T09:00:00+07:00", level="district", channel="direct"),
        event("case.processed", across, "2025-08-05T09:00:00+07:00", outcome="approved") | {"agency_code": COMMUNE},
    ]

    async def get(metrics, path: str, **params) -> dict:
        r = await metrics.get(path, params=params, headers=AUTH)
        assert r.status_code == 200, r.text
        return r.json()

    async with serve(intake_app(settings)) as intake, serve(metrics_app(settings)) as metrics:
        put = await intake.put(f"/v1/admin/agencies/{district}", json=spec, headers=AUTH)
        assert put.status_code == 200, put.text
        assert (await intake.post("/v1/events", json={"events": events}, headers=AUTH)).status_code == 202

        async def known():  # the metrics registry knows the succession and both cases are projected
            answer = await get(metrics, "/v1/indicators", period="2025", agency=COMMUNE, include_predecessors="true")
            return answer["finished"]["total"] == 2

        await eventually(known, timeout=30)
        assert (await intake.post("/v1/events", json={"events": handed}, headers=AUTH)).status_code == 202

        async def projected():
            return (await get(metrics, "/v1/indicators", period="2025-08", agency=COMMUNE))["finished"]["total"] == 2

        await eventually(projected, timeout=30)
        june = await get(metrics, "/v1/indicators", period="2025-06", agency=district)
        july = {a: await get(metrics, "/v1/indicators", period="2025-07", agency=a) for a in (district, COMMUNE)}
        july_by_facts = await get(metrics, "/v1/indicators", period="2025-07", agency=COMMUNE, procedure=LAND_PROCEDURE)
        august = await get(metrics, "/v1/indicators", period="2025-08", agency=COMMUNE)
        year = await get(metrics, "/v1/indicators", period="2025", agency=COMMUNE)
        widened = await get(metrics, "/v1/indicators", period="2025", agency=COMMUNE, include_predecessors="true")
        widened_by_facts = await get(
            metrics,
            "/v1/indicators",
            period="2025",
            agency=COMMUNE,
            include_predecessors="true",
            procedure=LAND_PROCEDURE,
        )
        index = {
            flag: await get(metrics, "/v1/index/766", period="2025", agency=COMMUNE, include_predecessors=flag)
            for flag in ("false", "true")
        }
        par = await get(metrics, "/v1/index/par", year=2025, agency=COMMUNE, include_predecessors="true")
    # received (June) and pending at the end of June: the district's
    assert june["received"]["total"] == 2 and june["pending"]["total"] == 1
    # carried over into July and pending at its end: the commune's, not the district's
    assert (july[COMMUNE]["received"]["carried_over"], july[COMMUNE]["pending"]["total"]) == (1, 1)
    assert (july[district]["received"]["carried_over"], july[district]["pending"]["total"]) == (0, 0)
    assert july_by_facts == july[COMMUNE]
    # finished in August: the commune's
    assert august["finished"]["total"] == 2 and august["received"]["carried_over"] == 1
    # the whole year: the commune received one case and finished two; with its predecessor, all three
    assert (year["received"]["total"], year["finished"]["total"]) == (1, 2)
    assert (widened["received"]["total"], widened["finished"]["total"]) == (3, 3)
    assert widened_by_facts == widened
    rates = {flag: {i["item"]: i["rate"] for g in a["groups"] for i in g["items"]} for flag, a in index.items()}
    assert rates["true"]["2.1"] < rates["false"]["2.1"]  # the district's late case counts with it
    assert par["criteria"]


async def test_a_dissolution_put_after_the_last_event_moves_the_figures(settings: Settings) -> None:
    """Contract v1.1, agencies change; ADR 0014: the admin route takes no future valid_to, so a
    dissolution is put after the cases it hands over. The metrics fold those cases' facts again (no
    new event needed): the figures follow the holder at the time."""
    district = "000.30.08.H99"
    spec = {"name": "UBND huyện Lặng", "level": "district", "parent_code": "000.00.00.H99"}
    quiet = case_code(district)  # received in June 2025, no event since

    async def get(metrics, **params) -> dict:
        r = await metrics.get("/v1/indicators", params=params, headers=AUTH)
        assert r.status_code == 200, r.text
        return r.json()

    async with serve(intake_app(settings)) as intake, serve(metrics_app(settings)) as metrics:
        assert (await intake.put(f"/v1/admin/agencies/{district}", json=spec, headers=AUTH)).status_code == 200
        posted = await intake.post(
            "/v1/events",
            json={"events": [received(quiet, at="2025-06-10T09:00:00+07:00", level="district", channel="direct")]},
            headers=AUTH,
        )
        assert posted.status_code == 202

        async def projected():
            return (await get(metrics, period="2025-07", agency=district))["received"]["carried_over"] == 1

        await eventually(projected, timeout=30)
        dissolved = spec | {"valid_to": "2025-07-01", "successor_code": COMMUNE}
        assert (await intake.put(f"/v1/admin/agencies/{district}", json=dissolved, headers=AUTH)).status_code == 200

        async def handed_over():
            return (await get(metrics, period="2025-07", agency=COMMUNE))["received"]["carried_over"] == 1

        await eventually(handed_over, timeout=30)
        july_district = await get(metrics, period="2025-07", agency=district)
        june_district = await get(metrics, period="2025-06", agency=district)
        july_by_facts = await get(metrics, period="2025-07", agency=COMMUNE, procedure=LAND_PROCEDURE)
        july = await get(metrics, period="2025-07", agency=COMMUNE)
    assert july_district["received"]["carried_over"] == 0 and july_district["pending"]["total"] == 0
    assert june_district["received"]["total"] == 1 and june_district["pending"]["total"] == 1
    assert july_by_facts == july and july["pending"]["total"] == 1

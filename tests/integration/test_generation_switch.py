"""A projection rebuilt into its next generation and switched to while the service runs (ADR 0020):
the service answers from the new collections, continues where the rebuild stopped, derives each
event once, and a restart reads the pointer."""

from __future__ import annotations

from collections import Counter

import pytest

from services.deadline.app import create_app as deadline_app
from services.deadline.rebuild import rebuild_and_switch as rebuild_deadline
from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from services.metrics.rebuild import rebuild_and_switch as rebuild_metrics
from shared.generations import Progress, switch_to
from shared.settings import Settings
from shared.store import mongo_client
from tests.conftest import AUTH, serve
from tests.support.events import case_code, event, received
from tests.support.kafka_tools import eventually, read_topic

pytestmark = pytest.mark.integration


async def post(intake, *events) -> None:
    response = await intake.post("/v1/events", json={"events": list(events)}, headers=AUTH)
    assert response.status_code == 202, response.text


async def test_both_services_switch_to_the_rebuilt_generation_and_go_on(settings: Settings, kafka) -> None:
    settings = settings.model_copy(update={"generation_poll_s": 0.3, "timer_interval_s": 0.3})
    codes = [case_code() for _ in range(5)]
    deadline, metrics = deadline_app(settings), metrics_app(settings)
    lines: list[str] = []
    async with serve(intake_app(settings)) as intake, serve(deadline) as cases, serve(metrics) as indicators:
        await post(intake, *[received(code) for code in codes])
        await post(intake, event("case.processed", codes[0], "2026-03-18T09:00:00+07:00", outcome="approved"))

        async def stored() -> bool:
            answers = [(await cases.get(f"/v1/cases/{code}", headers=AUTH)) for code in codes]
            stats = (await indicators.get("/v1/stats", headers=AUTH)).json()
            return all(a.status_code == 200 for a in answers) and stats["cases"] == len(codes)

        await eventually(stored, timeout=30)
        built = await rebuild_deadline(settings, progress=Progress(report=lines.append, every_s=0.0))
        assert built["generation"] == 2 and built["cases"] == len(codes) and built["events_applied"] == len(codes) + 1
        assert (await rebuild_metrics(settings, progress=Progress(report=lines.append)))["generation"] == 2
        assert any("events/s" in line for line in lines)

        await eventually(lambda: _at(deadline, 2), timeout=30)
        await eventually(lambda: _at(metrics, 2), timeout=30)
        assert deadline.state.context.cases.name == "cases_g2"
        assert metrics.state.context.collection.name == "facts_g2"
        assert (await cases.get("/readyz")).status_code == 200
        assert (await indicators.get("/readyz")).status_code == 200

        # an event after the switch: the new generation applies it and derives from it, once
        await post(intake, event("case.processed", codes[1], "2026-03-19T09:00:00+07:00", outcome="approved"))

        async def processed() -> bool:
            answer = (await cases.get(f"/v1/cases/{codes[1]}", headers=AUTH)).json()
            stats = (await indicators.get("/v1/stats", headers=AUTH)).json()
            return answer["status"] == "processed" and stats["cases"] == len(codes)

        await eventually(processed, timeout=30)
        derived = [r["value"] for r in await read_topic(kafka.bootstrap, settings.deadline_events_topic)]
        closed = Counter(e["case_code"] for e in derived if e["type"] == "case.closed")
        assert closed == {codes[0]: 1, codes[1]: 1}

        async def swept() -> bool:  # the new generation's sweeper ran over the inherited marks
            return deadline.state.context.sweeper.last_sweep_seconds > 0

        await eventually(swept, timeout=10)
    derived = [r["value"] for r in await read_topic(kafka.bootstrap, settings.deadline_events_topic)]
    assert [i for i, n in Counter(e["event_id"] for e in derived).items() if n > 1] == []

    client = mongo_client(settings.mongo_uri)
    db = client[f"{settings.mongo_db}_deadline"]
    assert await db.cases_g2.count_documents({}) == len(codes)
    assert (await db.projections.find_one({"_id": "deadline"}))["group_id"] == "tthc-deadline-g2"
    await client.close()

    # a restart reads the pointer: generation 2 from the start
    restarted = deadline_app(settings)
    async with serve(restarted) as again:
        assert restarted.state.context.generation == 2
        assert (await again.get(f"/v1/cases/{codes[1]}", headers=AUTH)).json()["status"] == "processed"


async def _at(app, generation: int) -> bool:
    return bool(app.state.context.generation == generation)


async def test_events_the_old_generation_applied_after_the_rebuild_are_not_derived_again(
    settings: Settings, kafka
) -> None:
    """The rebuild stops; the live generation goes on applying (and deriving from) more events; then
    the pointer moves: the new generation applies those events quietly and derives nothing twice."""
    settings = settings.model_copy(update={"generation_poll_s": 0.3})
    codes = [case_code() for _ in range(3)]
    deadline = deadline_app(settings)
    async with serve(intake_app(settings)) as intake, serve(deadline) as cases:
        await post(intake, *[received(code) for code in codes])
        await eventually(lambda: _known(cases, codes), timeout=30)
        built = await rebuild_deadline(settings, switch=False, progress=Progress(report=lambda _: None))
        assert built["generation"] == 2 and deadline.state.context.generation == 1

        await post(
            intake, *[event("case.processed", c, "2026-03-18T09:00:00+07:00", outcome="approved") for c in codes]
        )
        await eventually(lambda: _known(cases, codes, "processed"), timeout=30)
        await eventually(lambda: _closed(kafka, settings, len(codes)), timeout=30)

        client = mongo_client(settings.mongo_uri)
        await switch_to(client[f"{settings.mongo_db}_deadline"], "deadline", 2, "tthc-deadline-g2", "tthc-deadline")
        await client.close()
        await eventually(lambda: _at(deadline, 2), timeout=30)
        await eventually(lambda: _known(cases, codes, "processed"), timeout=30)  # from cases_g2 now
    derived = [r["value"] for r in await read_topic(kafka.bootstrap, settings.deadline_events_topic)]
    assert Counter(e["case_code"] for e in derived if e["type"] == "case.closed") == {c: 1 for c in codes}
    assert [i for i, n in Counter(e["event_id"] for e in derived).items() if n > 1] == []


async def _known(client, codes: list[str], status: str | None = None) -> bool:
    for code in codes:
        answer = await client.get(f"/v1/cases/{code}", headers=AUTH)
        if answer.status_code != 200 or (status and answer.json()["status"] != status):
            return False
    return True


async def _closed(kafka, settings: Settings, count: int) -> bool:
    derived = [r["value"] for r in await read_topic(kafka.bootstrap, settings.deadline_events_topic)]
    return sum(e["type"] == "case.closed" for e in derived) == count

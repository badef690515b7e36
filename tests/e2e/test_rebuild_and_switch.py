"""A rule changes; both projections are rebuilt from the log and the running services switch to them.

A small simulated province goes through the real services (processes) under the sample rules; then
one procedure's statutory duration is lengthened in the services' config folder, the deadline and
metrics projections are rebuilt into their next generation and switched to, and every figure of the
metrics service and every case's due instant of the deadline service must equal the simulator's
oracle under the new rule. Meanwhile the services kept answering, and no derived event (deadline.*,
apology, closing) went out twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local import infra
from services.deadline.rebuild import rebuild_and_switch as rebuild_deadline
from services.metrics.rebuild import rebuild_and_switch as rebuild_metrics
from shared.generations import Progress, live_generation_of
from shared.settings import Settings
from simulator import wire
from simulator.__main__ import expectations, settle
from simulator.province import Case, Province
from simulator.workdays import CLOSE, VN, at
from tests.conftest import ADMIN_TOKEN, AUTH, settings_env
from tests.support.kafka_tools import read_topic

pytestmark = pytest.mark.e2e

FIRST, LAST, SEED, PER_DAY = date(2026, 8, 3), date(2026, 8, 30), 5, 8.0
LONGER = 3  # working days added to the changed procedure's durations


def rejudged(case: Case, province: Province) -> Case:
    """The case under `province`'s rules: the same events, its due instant computed again (as the
    simulator plans it: from receipt, moved by each answered supplement round and counted pause)."""
    procedure = next(p for p in province.procedures if p.code == case.procedure.code)
    spec = procedure.duration(case.channel)
    due = province.due(procedure, case.channel, case.received_at)
    raw_day = case.received_at.date() + timedelta(days=int(spec["value"]))
    for ask, back in case.supplements:
        if procedure.supplement_mode == "restart":
            due = province.due(procedure, case.channel, back)
        elif spec["unit"] == "calendar_days":
            raw_day += back.date() - ask.date()
            due = at(province.days.next_working(raw_day), CLOSE)
        else:
            due = province._shift(due, province.days.between(ask.date(), back.date()))  # noqa: SLF001
    for start, end in case.pauses:
        if "verification" in procedure.non_counting_reasons:
            due = province._shift(due, province.days.between(start.date(), end.date()))  # noqa: SLF001
    return dataclasses.replace(case, procedure=procedure, due_at=due)


def changed_procedure(cases: list[Case]) -> str:
    """The busiest procedure whose durations count working days and whose cases hold no apology
    (an apology planned against the old due instant would say nothing of the new one)."""
    with_apology = {c.procedure.code for c in cases if c.apology_at is not None}
    counts = Counter(
        c.procedure.code
        for c in cases
        if c.procedure.code not in with_apology
        and all(d["unit"] == "working_days" for d in c.procedure.durations.values())
    )
    return counts.most_common(1)[0][0]


def lengthen(config_dir: Path, code: str) -> None:
    path = config_dir / "registry" / "procedures.json"
    specs = json.loads(path.read_text(encoding="utf-8"))
    for spec in specs:
        if spec["procedure_code"] == code:
            for duration in spec["durations"].values():
                duration["value"] += LONGER
    path.write_text(json.dumps(specs, ensure_ascii=False, indent=1), encoding="utf-8")


@pytest.fixture
def rules(settings: Settings, run_dir: Path) -> Settings:
    """The services' own copy of config/, to change a rule in."""
    folder = run_dir / f"rules-{settings.topic_prefix}"
    shutil.copytree(infra.REPO / "config", folder)
    return settings.model_copy(update={"config_dir": str(folder), "generation_poll_s": 1.0, "timer_interval_s": 1.0})


@pytest.fixture
async def pipeline(rules: Settings, run_dir: Path) -> AsyncIterator[dict[str, str]]:
    folder = run_dir / f"rebuild-{rules.topic_prefix}"
    async with infra.running_services(folder, settings_env(rules), ready_timeout=60) as services:
        yield services.urls


async def due_dates_differ(deadline_url: str, cases: list[Case], timeout: float) -> list[str]:
    """The cases whose due instant in the deadline service is not the oracle's, once settled."""
    wrong: list[str] = []
    stop = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=30) as client:
        pending = {case.code: case.due_at for case in cases}
        while pending and time.monotonic() < stop:
            wrong = []
            for code, due in list(pending.items()):
                answer = (await client.get(f"{deadline_url}/v1/cases/{code}", headers=AUTH)).json()
                if answer.get("due_at") and datetime.fromisoformat(answer["due_at"]) == due:
                    del pending[code]
                else:
                    wrong.append(f"{code}: oracle {due.isoformat()}, deadline {answer.get('due_at')}")
            if wrong:
                await asyncio.sleep(1)
    return wrong


async def keep_asking(urls: dict[str, str], code: str, answers: list[tuple[str, int, float]]) -> None:
    """A case page and the indicators, asked again and again: (service, status, seconds) each."""
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            for name, url in (
                ("deadline", f"{urls['deadline']}/v1/cases/{code}"),
                ("metrics", f"{urls['metrics']}/v1/indicators?period=2026-08"),
            ):
                started = time.monotonic()
                try:
                    status = (await client.get(url, headers=AUTH)).status_code
                except httpx.HTTPError:
                    status = 0
                answers.append((name, status, time.monotonic() - started))
            await asyncio.sleep(0.1)


async def generations(settings: Settings) -> dict[str, int]:
    return {service: await live_generation_of(settings, service) for service in ("deadline", "metrics")}


async def test_a_rule_changes_both_projections_are_rebuilt_and_switched(
    rules: Settings, pipeline: dict[str, str], kafka: infra.KafkaBroker
) -> None:
    horizon = datetime.combine(LAST + timedelta(days=1), clock_time(0), VN)
    cases = Province(Path(rules.config_dir), SEED).cases(FIRST, LAST, PER_DAY, horizon)
    sent = await wire.post(wire.stream(cases, SEED), pipeline["intake"], ADMIN_TOKEN)
    assert sent["events"] > 0
    _, diffs = await settle(pipeline["metrics"], ADMIN_TOKEN, expectations(cases, FIRST, LAST), timeout=120)
    assert diffs == [], "\n".join(diffs[:30])  # the old rule's figures, before anything changes
    assert await due_dates_differ(pipeline["deadline"], cases, 60) == []

    code = changed_procedure(cases)
    lengthen(Path(rules.config_dir), code)
    now_in_force = Province(Path(rules.config_dir), SEED)
    judged = [rejudged(c, now_in_force) for c in cases]
    moved = [c for c, j in zip(cases, judged, strict=True) if c.due_at != j.due_at]
    assert len(moved) >= 5 and all(c.procedure.code == code for c in moved)
    wanted = expectations(judged, FIRST, LAST)
    assert wanted != expectations(cases, FIRST, LAST)  # the rule changes figures the services must follow

    answers: list[tuple[str, int, float]] = []
    asking = asyncio.create_task(keep_asking(pipeline, moved[0].code, answers))
    lines: list[str] = []
    try:
        deadline_built = await rebuild_deadline(rules, progress=Progress(report=lines.append, every_s=0.0))
        metrics_built = await rebuild_metrics(rules, progress=Progress(report=lines.append, every_s=0.0))
        assert await generations(rules) == {"deadline": 2, "metrics": 2}
        _, diffs = await settle(pipeline["metrics"], ADMIN_TOKEN, wanted, timeout=60)
        wrong = await due_dates_differ(pipeline["deadline"], judged, 60)
    finally:
        asking.cancel()
    assert diffs == [], "\n".join(diffs[:30])
    assert wrong == [], "\n".join(wrong[:20])
    assert deadline_built["events_applied"] > 0 and deadline_built["cases"] == len(cases)
    assert metrics_built["events_applied"] > 0 and metrics_built["cases"] == len(cases)
    assert any("events/s" in line and "left" in line for line in lines)

    # the services answered all along, from the old generation and then from the new one
    assert {name for name, _, _ in answers} == {"deadline", "metrics"} and len(answers) >= 20
    assert [a for a in answers if a[1] != 200] == []

    # every derived event once: those of the old generation are not published again; the moved
    # cases' transitions at their new due instants once
    derived: list[dict[str, Any]] = [r["value"] for r in await read_topic(kafka.bootstrap, rules.deadline_events_topic)]
    ids = Counter(e["event_id"] for e in derived)
    assert [i for i, n in ids.items() if n > 1] == []
    new_due = {j.code: j.due_at for j in judged if j.code in {c.code for c in moved}}
    assert any(
        e["type"] == "deadline.overdue"
        and e["case_code"] in new_due
        and _instant(e["data"]["due_at"]) == new_due[e["case_code"]]
        for e in derived
    )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)

"""A simulated province through the whole pipeline, checked figure by figure against its own oracle.

The simulator (simulator/) plans ~500 cases over eight weeks with supplements (some twice), pauses,
transfers, apologies on time, late and missing, payments and digitization; sends half as our events
and half as DVCQG snapshots, with late, out-of-order and duplicated items; and computes the expected
indicators from its own case list with its own working-day arithmetic. The metrics service must give
the same number for every figure of every month, of the whole span and of the busiest agencies; the
deadline service the same statutory due instant for every case.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest

from deploy.local import infra
from shared.settings import Settings
from simulator import wire
from simulator.__main__ import expectations, plan, settle
from simulator.workdays import VN
from tests.conftest import ADMIN_TOKEN, AUTH, settings_env

pytestmark = pytest.mark.e2e

FIRST, LAST, SEED, PER_DAY = date(2026, 8, 3), date(2026, 9, 27), 3, 12.0


@pytest.fixture
async def pipeline(settings: Settings, run_dir: Path) -> AsyncIterator[dict[str, str]]:
    folder = run_dir / f"sim-{settings.topic_prefix}"
    async with infra.running_services(folder, settings_env(settings), ready_timeout=60) as services:
        yield services.urls


async def test_metrics_equal_the_simulators_oracle(pipeline: dict[str, str]) -> None:
    horizon = datetime.combine(LAST + timedelta(days=1), time(0), VN)
    cases = plan(SEED, FIRST, LAST, PER_DAY, horizon)
    items = wire.stream(cases, SEED)
    assert len(items) > len({id(i.body) for i in items})  # some items really are sent twice
    assert {c.wire for c in cases} == {"ours", "dvcqg"}
    assert any(len(c.supplements) == 2 for c in cases) and any(c.apology_on_time is False for c in cases)
    wanted = expectations(cases, FIRST, LAST)

    sent = await wire.post(items, pipeline["intake"], ADMIN_TOKEN)
    assert sent["events"] + sent["snapshots"] == len(items)

    figures, diffs = await settle(pipeline["metrics"], ADMIN_TOKEN, wanted, timeout=120)
    assert diffs == [], "\n".join(diffs[:30])
    assert figures >= 19 * (len(wanted["province"]) + len(wanted["by_agency"]))
    span = wanted["province"][f"{FIRST.isoformat()}..{LAST.isoformat()}"]
    assert span["received"]["total"] == len(cases)  # every case counted once, duplicates or not

    # the deadline service is its own consumer group: it may still be folding the last events
    async with httpx.AsyncClient(timeout=30) as client:
        pending = {case.code: case.due_at for case in cases}
        wrong: list[str] = []
        for _ in range(60):
            wrong = []
            for code, due in list(pending.items()):
                answer = (await client.get(f"{pipeline['deadline']}/v1/cases/{code}", headers=AUTH)).json()
                if answer.get("due_at") and datetime.fromisoformat(answer["due_at"]) == due:
                    del pending[code]
                else:
                    wrong.append(f"{code}: simulator {due.isoformat()}, deadline {answer.get('due_at')}")
            if not wrong:
                break
            await asyncio.sleep(1)
        assert wrong == [], "\n".join(wrong[:20])

"""Two deadline and two metrics processes in one consumer group each; one of each killed mid-stream.

The simulator's province goes through the intake into a case-events topic of six partitions, read
by two deadline and two metrics replicas (docs/replicas.md). Halfway, with the pipeline caught up,
both replicas of each service answer the same case pages, lists and indicators. Then, in the
middle of the rest of the stream, one deadline and one metrics process are killed with SIGKILL,
by their own pid: whatever they had applied and not committed is applied again by the survivor.
Once the survivors caught up (every partition committed to its end), each figure is compared with
the simulator's oracle: every case page, the overdue, due-soon and apology-due lists with their
totals, every indicator, and the counts (nothing lost, nothing counted twice). Then, the survivors
holding every partition, their in-memory copies load again and answer: the lists as of now from the
open-case index, the indicators from the bucket copy, exact again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from deploy.local import infra
from services.deadline.context import DeadlineContext
from services.metrics.context import MetricsContext
from shared.domain.apology_due import apology_due
from shared.generations import committed_offsets
from shared.kafka import topic_partitions
from shared.settings import Settings
from simulator import wire
from simulator.__main__ import REPO, expectations, plan, settle
from simulator.province import Case
from simulator.workdays import CLOSE, VN, Workdays, at
from tests.conftest import ADMIN_TOKEN, AUTH, settings_env
from tests.support.intake import post_until_acknowledged
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.e2e

FIRST, LAST, SEED, PER_DAY, BATCH = date(2026, 9, 7), date(2026, 10, 2), 13, 12.0, 20
PARTITIONS = 6
REPLICAS = ("deadline", "deadline-2", "metrics", "metrics-2")
LISTS = ("overdue", "due-soon", "apology-due")


@dataclasses.dataclass
class Stack:
    settings: Settings
    processes: dict[str, infra.ManagedProcess]
    urls: dict[str, str]


@pytest.fixture
async def stack(settings: Settings, run_dir: Path) -> AsyncIterator[Stack]:
    """The intake and two replicas of deadline and of metrics, on a topic of six partitions."""
    mine = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}six-"})
    await infra.create_topics(mine.kafka_bootstrap, prefix=mine.topic_prefix, partitions=PARTITIONS)
    folder = run_dir / f"replicas-{mine.topic_prefix}"
    env = settings_env(mine)
    async with infra.running_services(folder, env, ("intake", *REPLICAS)) as services:
        yield Stack(mine, services.processes, services.urls)


def province() -> tuple[list[Case], list[tuple[str, Any]], dict[str, Any]]:
    horizon = datetime.combine(LAST + timedelta(days=1), time(0), VN)
    cases = plan(SEED, FIRST, LAST, PER_DAY, horizon)
    return cases, wire.batches(wire.stream(cases, SEED), BATCH), expectations(cases, FIRST, LAST)


async def lag(settings: Settings, group: str) -> int:
    """Records of the case-events topic the group has not committed yet."""
    topic = settings.case_events_topic
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await topic_partitions(consumer, topic))
    finally:
        await consumer.stop()
    committed = await committed_offsets(settings.kafka_bootstrap, group, topic)
    assert len(ends) == PARTITIONS
    return sum(end - committed.get(tp.partition, 0) for tp, end in ends.items())


async def caught_up(settings: Settings, timeout: float = 120) -> None:
    for group in (DeadlineContext.group_id, MetricsContext.group_id):

        async def none_left(group: str = group) -> bool:
            return await lag(settings, group) == 0

        await eventually(none_left, timeout=timeout, interval=1)


async def gauge(client: httpx.AsyncClient, url: str, series: str) -> float:
    """A series' value on a process's /metrics (0 when absent)."""
    lines = (await client.get(f"{url}/metrics")).text.splitlines()
    return next((float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(series + " ")), 0.0)


async def applied(client: httpx.AsyncClient, url: str) -> float:
    """The events this process applied to its projection (its own counter)."""
    lines = (await client.get(f"{url}/metrics")).text.splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("tthc_projection_events_applied_total{")
    )


async def walk(client: httpx.AsyncClient, url: str, kind: str, as_of: datetime) -> tuple[list[str], int]:
    """Every case code of a list, page after page, and the total its first page announced."""
    codes: list[str] = []
    cursor, total = None, -1
    while True:
        params: dict[str, str | int] = {"as_of": as_of.isoformat(), "limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(f"{url}/v1/cases/{kind}", params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        total = body["total"] if total < 0 else total
        codes += [item["case_code"] for item in body["items"]]
        if not (cursor := body["next_cursor"]):
            return codes, total


def list_instant(days: Workdays) -> tuple[datetime, datetime]:
    """The lists' `as_of`: the close of the last working day of the span, after every planned item
    (they stop at 17:00 at the latest); and the end of the due-soon and apology-due windows, eight
    working hours later: the next working day's close (office hours are eight hours a day)."""
    last = LAST
    while not days.is_working(last):
        last -= timedelta(days=1)
    return at(last, CLOSE), at(days.after(last, 1), CLOSE)


def running(cases: list[Case], as_of: datetime) -> list[Case]:
    """The simulator's cases open at `as_of` with the clock running: every planned pause is over,
    and a request still waiting for the citizen stops it only if made before due."""
    return [
        c
        for c in cases
        if c.received_at <= as_of
        and (c.end_at is None or c.end_at > as_of)
        and (c.waiting_since is None or c.waiting_since >= c.due_at)
    ]


def expected_lists(
    cases: list[Case], pages: dict[str, dict[str, Any]], as_of: datetime, window_end: datetime
) -> dict[str, set[str]]:
    """The three lists by the simulator's cases running at `as_of`, by their oracle due instant.
    Apology due: the domain rule on the apology deadline each case page shows (its due instant
    checked against the oracle before)."""
    open_cases = running(cases, as_of)
    overdue = {c.code for c in open_cases if c.due_at < as_of}
    due_soon = {c.code for c in open_cases if as_of <= c.due_at <= window_end}
    owed = {
        c.code
        for c in open_cases
        if apology_due(
            as_of, window_end, _instant(pages[c.code].get("apology_deadline_at")), c.due_at, bool(c.apology_at)
        )
    }
    return {"overdue": overdue, "due-soon": due_soon, "apology-due": owed}


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


# computed at each answer's instant, or moved by the timer sweep (which every replica runs, as time
# passes, on the shared timers): not what a replica answers from its partitions
NOW_DEPENDENT = {"remaining_working_hours", "remaining_text", "overdue", "next_check_at", "emitted"}


async def pages_of(client: httpx.AsyncClient, url: str, codes: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for code in codes:
        response = await client.get(f"{url}/v1/cases/{code}", headers=AUTH)
        page = response.json() if response.status_code == 200 else {"status_code": response.status_code}
        out[code] = {key: value for key, value in page.items() if key not in NOW_DEPENDENT}
    return out


async def both_replicas_agree(client: httpx.AsyncClient, stack: Stack, codes: list[str], as_of: datetime) -> None:
    """With the pipeline caught up, either replica gives the same answer."""
    urls = stack.urls
    one, two = [await pages_of(client, urls[name], codes) for name in ("deadline", "deadline-2")]
    differ = {
        code: {k for k in one[code].keys() | two[code].keys() if one[code].get(k) != two[code].get(k)} for code in codes
    }
    shown = [(code, {k: (one[code].get(k), two[code].get(k)) for k in keys}) for code, keys in differ.items() if keys]
    assert shown == [], shown[:3]
    for kind in LISTS:
        first = await walk(client, urls["deadline"], kind, as_of)
        assert first == await walk(client, urls["deadline-2"], kind, as_of), kind
    overdue = (await walk(client, urls["deadline"], "overdue", as_of))[0]
    assert overdue, "the lists compared are not empty"
    for params in ({"period": "2026-09"}, {"period": f"{FIRST.isoformat()}..{LAST.isoformat()}"}):
        answers = [
            (await client.get(f"{urls[name]}/v1/indicators", params=params, headers=AUTH)).json()
            for name in ("metrics", "metrics-2")
        ]
        assert answers[0] == answers[1] and answers[0]["received"]["total"] > 0
    for name in REPLICAS:  # each replica really holds partitions: it applied events itself
        assert await applied(client, urls[name]) > 0, name


async def test_two_replicas_one_killed_mid_stream_lose_nothing_and_count_nothing_twice(stack: Stack) -> None:
    urls, processes = stack.urls, stack.processes
    cases, requests, wanted = province()
    assert 25 < len(requests) and sum(map(wire.size_of, (body for _, body in requests))) < 4000
    as_of, window_end = list_instant(Workdays(REPO / "config"))
    half, kill_at = len(requests) // 2, len(requests) * 3 // 4
    async with httpx.AsyncClient(timeout=30) as client:
        for path, body in requests[:half]:
            await post_until_acknowledged(client, f"{urls['intake']}{path}", body)
        await caught_up(stack.settings)
        await both_replicas_agree(client, stack, [c.code for c in cases[:: max(1, len(cases) // 40)]], as_of)

        for index, (path, body) in enumerate(requests[half:], start=half):
            if index == kill_at:  # while both consume the stream: SIGKILL, by pid
                for name in ("deadline-2", "metrics-2"):
                    pid = processes[name].started_pid
                    processes[name].kill()
                    assert not infra.pid_alive(pid)
            await post_until_acknowledged(client, f"{urls['intake']}{path}", body)
        await caught_up(stack.settings)

        # indicators: every figure of every month, of the span, of the busiest agencies
        figures, diffs = await settle(urls["metrics"], ADMIN_TOKEN, wanted, timeout=60)
        assert diffs == [], "\n".join(diffs[:30])
        assert figures > 100
        span = wanted["province"][f"{FIRST.isoformat()}..{LAST.isoformat()}"]
        assert span["received"]["total"] == len(cases)

        # case pages: every case, its statutory due instant and whether it is still open
        pages = await pages_of(client, urls["deadline"], [c.code for c in cases])
        wrong = [
            f"{c.code}: oracle {c.due_at.isoformat()} open={c.end_at is None}, deadline {pages[c.code]}"
            for c in cases
            if _instant(pages[c.code].get("due_at")) != c.due_at
            or (pages[c.code].get("end_at") is None) != (c.end_at is None)
        ]
        assert wrong == [], "\n".join(wrong[:20])
        stats = (await client.get(f"{urls['deadline']}/v1/stats", headers=AUTH)).json()
        assert stats["cases"] == stats["cases_received"] == len(cases)
        assert stats["cases_open"] == sum(1 for c in cases if c.end_at is None)

        # the lists and their totals, from the survivor (from the store or, once it reloaded its
        # index as the group's only member, from memory: either must be exact)
        expected = expected_lists(cases, pages, as_of, window_end)
        assert all(expected.values())
        for kind in LISTS:
            codes, total = await walk(client, urls["deadline"], kind, as_of)
            assert len(codes) == len(set(codes)) == total, kind
            assert set(codes) == expected[kind], (kind, set(codes) ^ expected[kind])

        # the survivors hold every partition: their in-memory copies load again and answer, exact
        async def copies_loaded() -> bool:
            index = await gauge(client, urls["deadline"], "tthc_deadline_open_cases_index_usable")
            buckets = await gauge(client, urls["metrics"], "tthc_metrics_buckets_mirror_usable")
            return index == buckets == 1

        await eventually(copies_loaded, timeout=60, interval=1)
        memory = 'tthc_deadline_list_reads_total{source="memory"}'
        before = await gauge(client, urls["deadline"], memory)
        now = datetime.now(VN)  # after the index's load: the lists as of now come from memory
        codes, total = await walk(client, urls["deadline"], "overdue", now)
        assert await gauge(client, urls["deadline"], memory) > before
        assert all(c.due_at < now for c in cases)  # as of now every running open case is overdue
        running = {
            c.code for c in cases if c.end_at is None and (c.waiting_since is None or c.waiting_since >= c.due_at)
        }
        assert len(codes) == total and set(codes) == running
        figures, diffs = await settle(urls["metrics"], ADMIN_TOKEN, wanted, timeout=30)
        assert diffs == [], "\n".join(diffs[:30])

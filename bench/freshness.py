"""Freshness under a steady stream: from the intake's 202 to the case in the deadline service and to
the count in the metrics service, at increasing rates of single POSTs.

One broker, one store and the three services as real processes, as in bench/e2e.py. SINGLE_CLIENTS
client tasks post the simulator's events (the province's mix, late, out of order and duplicated
items included; its year is 2025) one per request (or BENCH_FRESHNESS_BATCH a request), at a fixed
total rate, for a step of BENCH_FRESHNESS_STEP_S seconds (default 20; the issue's step is 600).
Among them, a probe every PROBE_EVERY_S: a `case.received` of its own case, on a day of 2026 and at
a leaf agency that no other event of the run names, so that it alone makes that day's
`received.total` for that agency 1.
From a probe's 202, a watcher asks every POLL_S for GET /v1/cases/{code} on the deadline service
(200: the case is there) and GET /v1/indicators?period=<day>&agency=<agency> on the metrics service
(`received.total` 1): the time each took, to ±POLL_S (after the first second, to ±10 %: a late
probe polls less often, so that the polls of many late probes do not load the services and the
store they measure).

BENCH_FRESHNESS_BATCH events a request (default 1: single POSTs, the way most one-stop systems push;
more shows the pipeline's freshness beyond the intake's single-request rate on this machine).

The steps (BENCH_FRESHNESS_RATES, events/s, default 50,100,200,300,400) go up until one's p99 is over
1 s on either side, or its achieved rate falls short of 95 % of the asked one; the highest step that
passed is the figure. Raw limits of the same run: the idempotent producer and bulk upserts of the
same events. Bounded: each step's events are counted before it starts, a probe is given up after
PROBE_TIMEOUT_S, and the run stops after its last step.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from bench.e2e import _raw_limits, province
from bench.harness import dumps, percentile
from deploy.local import infra
from deploy.local.throwaway import ADMIN_TOKEN, env_of, infrastructure
from shared.config import load_registry
from simulator.workdays import VN

SINGLE_CLIENTS = 32
PROBE_EVERY_S = 0.5
POLL_S = 0.1
PROBE_TIMEOUT_S = 30.0
TARGET_P99_S = 1.0
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
PROBE_PROCEDURE = ("1.012790", "G09-DD")  # a procedure of the catalogue, any level
CLOSED_UNDER = (httpx.ReadError, httpx.RemoteProtocolError)  # a kept-alive connection closed as a request left
_probe_serial = itertools.count()


def probe_slots() -> Iterator[tuple[date, str, str]]:
    """(day, agency, level) pairs no other event of the run names: days of 2026, leaf agencies."""
    registry = load_registry(infra.REPO / "config")
    parents = {a.parent_code for a in registry.agencies.values()}
    leaves = [
        (a.code, a.level.value)
        for a in registry.agencies.values()
        if a.valid_to is None and a.code not in parents and a.level.value != "district"
    ]
    for offset in range(334):  # up to 2026-11-30: the door refuses events more than a day ahead
        day = date(2026, 1, 1) + timedelta(days=offset)
        for code, level in leaves:
            yield day, code, level


def probe_event(n: int, day: date, agency: str, level: str) -> dict[str, Any]:
    at = datetime(day.year, day.month, day.day, 9, 30, tzinfo=VN)
    procedure, field_code = PROBE_PROCEDURE
    return {
        "event_id": f"probe-{n}",
        "type": "case.received",
        "case_code": f"{agency}-probe-{n:07d}",
        "occurred_at": at.isoformat(),
        "agency_code": agency,
        "data": {"procedure_code": procedure, "field_code": field_code, "level": level, "channel": "direct"},
    }


@dataclass
class Step:
    """One step's figures: what was posted, and each probe's two delays."""

    rate: float
    posted: int = 0
    failed: int = 0
    started: float = 0.0
    ended: float = 0.0
    to_case: list[float] = field(default_factory=list)
    to_count: list[float] = field(default_factory=list)
    lost: int = 0  # probes not visible within PROBE_TIMEOUT_S
    resent: int = 0  # requests sent again after their connection closed (_post)

    def summary(self) -> dict[str, Any]:
        achieved = self.posted / (self.ended - self.started) if self.ended > self.started else 0.0
        out: dict[str, Any] = {"asked_events_per_s": self.rate, "achieved_events_per_s": round(achieved, 1)}
        out["posted"], out["refused"], out["resent"], out["probes"], out["probes_not_visible"] = (
            self.posted,
            self.failed,
            self.resent,
            len(self.to_case),
            self.lost,
        )
        for name, values in (("case", self.to_case), ("count", self.to_count)):
            out[f"to_{name}_p50_s"] = round(percentile(values, 50), 3) if values else None
            out[f"to_{name}_p99_s"] = round(percentile(values, 99), 3) if values else None
        out["passed"] = bool(
            self.to_case
            and not self.lost
            and not self.failed
            and achieved >= 0.95 * self.rate
            and max(out["to_case_p99_s"], out["to_count_p99_s"]) <= TARGET_P99_S
        )
        return out


async def _watch(
    client: httpx.AsyncClient, urls: dict[str, str], probe: dict[str, Any], acked: float, step: Step
) -> None:
    """Poll both services until the probe shows in each; record the delays from its 202."""
    code, day = probe["case_code"], probe["occurred_at"][:10]
    case_url = f"{urls['deadline']}/v1/cases/{code}"
    count_url = f"{urls['metrics']}/v1/indicators"
    params = {"period": f"{day}..{day}", "agency": probe["agency_code"]}
    seen: dict[str, float] = {}
    while len(seen) < 2:
        with contextlib.suppress(*CLOSED_UNDER):  # polled again
            if "case" not in seen and (await client.get(case_url, headers=HEADERS)).status_code == 200:
                seen["case"] = time.perf_counter() - acked
            if "count" not in seen:
                answer = await client.get(count_url, params=params, headers=HEADERS)
                if answer.status_code == 200 and answer.json()["received"]["total"] >= 1:
                    seen["count"] = time.perf_counter() - acked
        if time.perf_counter() - acked > PROBE_TIMEOUT_S:
            step.lost += 1
            return
        if len(seen) < 2:  # every POLL_S, later every tenth of the time waited: a late probe's
            # polls do not grow into a load of their own on the services and the store
            await asyncio.sleep(max(POLL_S, (time.perf_counter() - acked) / 10))
    step.to_case.append(seen["case"])
    step.to_count.append(seen["count"])


async def _post(client: httpx.AsyncClient, url: str, body: bytes, events: int, step: Step) -> bool:
    """One request; sent again once if its connection closed under it (a kept-alive connection the
    server closed as the request left: the events carry their ids, a second delivery is a duplicate)."""
    for attempt in range(2):
        try:
            response = await client.post(url, content=body, headers=HEADERS)
            break
        except CLOSED_UNDER:
            if attempt:
                step.failed += events
                return False
            step.resent += 1
    if response.status_code != 202:
        step.failed += events
        return False
    step.posted += events
    return True


def _body(events: list[dict[str, Any]]) -> bytes:
    """One event as its own request, or several in one batch request."""
    return dumps(events[0]) if len(events) == 1 else dumps({"events": events})


async def run_step(
    urls: dict[str, str],
    events: list[dict[str, Any]],
    rate: float,
    seconds: float,
    slots: Iterator[Any],
    batch: int = 1,
) -> Step:
    """`rate` events/s for `seconds`, from SINGLE_CLIENTS clients, `batch` events a request, probes
    among them (a probe is the last event of its request)."""
    step = Step(rate)
    requests = int(rate * seconds / batch)
    per_s = rate / batch
    every = max(1, round(per_s * PROBE_EVERY_S))  # the n-th request of the step holds a probe when n % every == 0
    probes = {n: probe_event(next(_probe_serial), *next(slots)) for n in range(0, requests, every)}
    watchers: list[asyncio.Task[None]] = []
    url = f"{urls['intake']}/v1/events"
    limits = httpx.Limits(max_connections=SINGLE_CLIENTS * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client, httpx.AsyncClient(timeout=30) as watcher:
        step.started = time.perf_counter()

        async def one_client(index: int) -> None:
            for n in range(index, requests, SINGLE_CLIENTS):
                delay = step.started + n / per_s - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                probe = probes.get(n)
                carried = events[n * batch : (n + 1) * batch - (probe is not None)] + ([probe] if probe else [])
                if await _post(client, url, _body(carried), len(carried), step) and probe is not None:
                    watchers.append(asyncio.create_task(_watch(watcher, urls, probe, time.perf_counter(), step)))

        await asyncio.gather(*(one_client(i) for i in range(SINGLE_CLIENTS)))
        step.ended = time.perf_counter()
        await asyncio.gather(*watchers)
    return step


def _stream(items_needed: int, seed: int) -> list[dict[str, Any]]:
    """The simulator's events (its snapshots left out: they go to another route), at least this many."""
    items = province(int(items_needed * 2.2) + 100, seed)
    events = [i.body for i in items if i.kind == "event"]
    if len(events) < items_needed:
        raise RuntimeError(f"the simulator gave {len(events)} events, {items_needed} needed")
    return events


async def run_async(rates: list[float], seconds: float, batch: int = 1) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": "freshness",
        "what": (
            f"{'single POSTs' if batch == 1 else f'POSTs of {batch} events'} of the simulator's events from "
            f"{SINGLE_CLIENTS} clients at a fixed rate, {seconds:g} s "
            "a step: p50/p99 from the intake's 202 to the case in the deadline service and to the count in "
            "the metrics service (probes every 0.5 s, polled every 0.1 s, a late one at a tenth of its wait)"
        ),
    }
    async with infrastructure() as env:
        settings = env.settings("bf-")
        await infra.create_topics(env.kafka.bootstrap, prefix="bf-")
        raw = await _raw_limits(env, settings)
        result["raw_produce_msgs_per_s"] = round(raw["produce"])
        result["raw_store_bulk_upsert_docs_per_s"] = round(raw["upsert"])
        slots = probe_slots()
        steps: list[dict[str, Any]] = []
        async with infra.running_services(env.run_dir, env_of(settings)) as services:
            for index, rate in enumerate(rates):
                events = _stream(int(rate * seconds), 200 + index)
                step = (await run_step(services.urls, events, rate, seconds, slots, batch)).summary()
                steps.append(step)
                print(json.dumps(step), flush=True)
                if not step["passed"]:
                    break
        passed = [s["asked_events_per_s"] for s in steps if s["passed"]]
        result["steps"] = steps
        result["highest_passing_events_per_s"] = max(passed) if passed else None
        result["targets"] = {"highest_passing_events_per_s": ">= 300", "p99_s": f"<= {TARGET_P99_S:g}"}
        result["events_per_request"] = batch
        result["met"] = bool(passed) and max(passed) >= 300
    return result


def run() -> dict[str, Any]:
    rates = [float(r) for r in os.environ.get("BENCH_FRESHNESS_RATES", "50,100,200,300,400").split(",")]
    seconds = float(os.environ.get("BENCH_FRESHNESS_STEP_S", "20"))
    batch = int(os.environ.get("BENCH_FRESHNESS_BATCH", "1"))
    return asyncio.run(run_async(rates, seconds, batch))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

"""Intake throughput and latency, as ratios of the raw idempotent producer measured in the same run.

- batch ingest: events/s through POST /v1/events in batches of 1000 from 4 clients at once, vs the
  raw rate (which has every message in flight); also from one client, each batch after the last;
- p99 latency of a 100-event batch with 8 concurrent clients;
- single-event requests/s (8 concurrent clients);
- single-event requests/s from 32 clients, and in the same run the rate of a bare route of the same
  process with the same authentication that does nothing else (bench/intake_app.py): their ratio.
The intake runs as its own uvicorn process against a broker and store started for the benchmark.
BENCH_INTAKE_SINGLE_S: seconds of each single-event measurement (default 10).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.harness import dumps, percentile, raw_produce_rate
from bench.intake_app import BARE_PATH, FACTORY
from deploy.local import infra
from deploy.local.throwaway import ADMIN_TOKEN, env_of, infrastructure

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Bodies are encoded before the clock starts, as the raw producer's values are: the client's JSON
# encoding is the one-stop system's cost, not the intake's (and would take CPU from it on 2 cores).
POST_HEADERS = {**AUTH, "Content-Type": "application/json"}
_serial = itertools.count()
BATCH_CLIENTS = 4
SINGLE_CLIENTS = 32
SINGLE_SECONDS = float(os.environ.get("BENCH_INTAKE_SINGLE_S", "10"))


def make_events(n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        i = next(_serial)
        agency = "000.00.02.H99"
        out.append(
            {
                "event_id": f"bench-{i}",
                "type": "case.received",
                "case_code": f"{agency}-261123-{i:07d}",
                "occurred_at": "2026-11-23T09:15:00+07:00",
                "agency_code": agency,
                "data": {
                    "procedure_code": "1.012790",
                    "field_code": "G09-DD",
                    "level": "province",
                    "channel": "online",
                    "online_mode": "partial",
                    "due_at_reported": "2026-12-08T09:15:00+07:00",
                },
            }
        )
    return out


@dataclass
class _Intake:
    """Posts prepared bodies to a running intake's POST /v1/events."""

    client: httpx.AsyncClient
    url: str

    async def post_all(self, bodies: list[bytes], latencies: list[float] | None = None) -> None:
        for body in bodies:
            t0 = time.perf_counter()
            response = await self.client.post(self.url, content=body, headers=POST_HEADERS)
            if latencies is not None:
                latencies.append(time.perf_counter() - t0)
            assert response.status_code == 202, response.text[:300]


async def _batch_rates(intake: _Intake, total: int) -> tuple[float, float]:
    """Events/s in batches of 1000: from one client, then from BATCH_CLIENTS at once."""
    # one client: each batch waits for the previous one's acks (nothing overlaps)
    batches = [dumps({"events": make_events(1000)}) for _ in range(total // 1000)]
    started = time.perf_counter()
    await intake.post_all(batches)
    one_client_rate = total / (time.perf_counter() - started)
    # BATCH_CLIENTS one-stop systems at once, as a province has: one batch is validated
    # while another waits for its acks, as the raw producer keeps every message in flight
    per_client = [
        [dumps({"events": make_events(1000)}) for _ in range(total // 1000 // BATCH_CLIENTS)]
        for _ in range(BATCH_CLIENTS)
    ]
    started = time.perf_counter()
    await asyncio.gather(*(intake.post_all(bodies) for bodies in per_client))
    batch_rate = sum(map(len, per_client)) * 1000 / (time.perf_counter() - started)
    return one_client_rate, batch_rate


async def _small_batches(intake: _Intake) -> tuple[list[float], float]:
    """Each 100-event batch's latency with 8 clients at once, and the events/s they reach."""
    latencies: list[float] = []
    per_client = [[dumps({"events": make_events(100)}) for _ in range(25)] for _ in range(8)]
    started = time.perf_counter()
    await asyncio.gather(*(intake.post_all(bodies, latencies) for bodies in per_client))
    return latencies, 8 * 25 * 100 / (time.perf_counter() - started)


async def _single_rate(
    client: httpx.AsyncClient, url: str, clients: int = 8, seconds: float = 10, pool_size: int = 20_000
) -> float:
    """Single-event requests/s from `clients` clients at once over `seconds`, each event new."""
    singles = 0
    pool = iter([dumps(e) for e in make_events(pool_size)])

    async def single_client(deadline: float) -> None:
        nonlocal singles
        while time.perf_counter() < deadline:
            response = await client.post(url, content=next(pool), headers=POST_HEADERS)
            assert response.status_code == 202, response.text[:300]
            singles += 1

    started = time.perf_counter()
    await asyncio.gather(*(single_client(started + seconds) for _ in range(clients)))
    return singles / (time.perf_counter() - started)


async def _single_vs_bare(url: str, bare_url: str) -> dict[str, Any]:
    """Single events from SINGLE_CLIENTS clients, and the bare route's rate before and after them
    (their mean is the yardstick: the machine is shared, so the two bracket the real route)."""
    pool = int(SINGLE_SECONDS * 3000)
    limits = httpx.Limits(max_connections=SINGLE_CLIENTS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await _single_rate(client, bare_url, SINGLE_CLIENTS, 1, pool)  # warm-up: the connections
        bare_before = await _single_rate(client, bare_url, SINGLE_CLIENTS, SINGLE_SECONDS / 2, pool)
        single = await _single_rate(client, url, SINGLE_CLIENTS, SINGLE_SECONDS, pool)
        bare_after = await _single_rate(client, bare_url, SINGLE_CLIENTS, SINGLE_SECONDS / 2, pool)
    bare = (bare_before + bare_after) / 2
    return {
        f"single_event_requests_per_s_{SINGLE_CLIENTS}_clients": round(single),
        f"bare_route_requests_per_s_{SINGLE_CLIENTS}_clients": round(bare),
        "bare_route_before_after": [round(bare_before), round(bare_after)],
        "single_event_ratio_of_bare_route": round(single / bare, 2),
    }


async def _measure(url: str, bare_url: str, total: int, raw_rate: float) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=16)) as client:
        await client.post(url, json={"events": make_events(200)}, headers=AUTH)  # warm-up
        intake = _Intake(client, url)
        one_client_rate, batch_rate = await _batch_rates(intake, total)
        latencies, concurrent_rate = await _small_batches(intake)
        single_rate = await _single_rate(client, url)
    singles = await _single_vs_bare(url, bare_url)
    single_ratio = singles["single_event_ratio_of_bare_route"]
    return {
        "raw_idempotent_producer_msgs_per_s": round(raw_rate),
        "batch_ingest_clients": BATCH_CLIENTS,
        "batch_ingest_events_per_s": round(batch_rate),
        "batch_ingest_ratio_of_raw": round(batch_rate / raw_rate, 2),
        "batch_ingest_one_client_events_per_s": round(one_client_rate),
        "batch_ingest_one_client_ratio_of_raw": round(one_client_rate / raw_rate, 2),
        "p50_ms_100_event_batch_8_clients": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms_100_event_batch_8_clients": round(percentile(latencies, 99) * 1000, 1),
        "events_per_s_100_event_batches_8_clients": round(concurrent_rate),
        "single_event_requests_per_s_8_clients": round(single_rate),
        **singles,
        "targets": {"batch_ingest_ratio_of_raw": ">= 0.6", "single_event_ratio_of_bare_route": ">= 0.5"},
        "met": batch_rate / raw_rate >= 0.6 and single_ratio >= 0.5,
    }


async def run_async(total: int = 20_000) -> dict[str, Any]:
    async with infrastructure() as env:
        settings = env.settings("bi-")
        await infra.create_topics(env.kafka.bootstrap, prefix="bi-")
        await infra.create_topics(env.kafka.bootstrap, prefix="raw-")
        raw_events = make_events(total)
        raw_rate = await raw_produce_rate(
            env.kafka.bootstrap,
            "raw-tthc.case-events",
            [dumps(e) for e in raw_events],
            [e["case_code"].encode() for e in raw_events],
        )
        port = infra.free_port()
        process = _bench_intake(port, env.run_dir, env_of(settings))
        process.start()
        try:
            await infra.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60, process=process)
            base = f"http://127.0.0.1:{port}"
            measured = await _measure(f"{base}/v1/events", base + BARE_PATH, total, raw_rate)
        finally:
            process.stop()
    return {
        "name": "intake",
        "what": "POST /v1/events through a real intake process, broker acks awaited (acks=all, idempotent)",
        **measured,
    }


def _bench_intake(port: int, run_dir: Path, env: dict[str, str]) -> infra.ManagedProcess:
    """The intake process as `infra.service_process` starts it, from the app with the bare route."""
    argv = [sys.executable, "-m", "uvicorn", FACTORY, "--factory", "--host", "127.0.0.1", "--port", str(port)]
    return infra.ManagedProcess("intake", argv, run_dir, env, marker=FACTORY)


def run() -> dict[str, Any]:
    return asyncio.run(run_async())


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))

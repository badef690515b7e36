"""`make simulate`: a synthetic province through the whole pipeline, checked against its own oracle.

    python -m simulator [--cases-per-day 40] [--weeks 6] [--seed 7] [--end 2026-11-20] [--out FILE]
    python -m simulator --stack      # post into the stack `make up` runs (no check: it holds other data)
    python -m simulator --demo       # `make up`'s demo data: the last four weeks, up to now

By default it starts its own broker, store and the three services on free loopback ports, posts the
province (half our events, half DVCQG snapshots, some late, out of order or twice), waits for the
metrics service and compares every figure of every month, of the whole span and of the three
busiest agencies with its own oracle, then stops what it started. Deterministic for a seed and an end day.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time as clock
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx

from deploy.local import infra
from deploy.local.throwaway import ADMIN_TOKEN, env_of, infrastructure
from simulator import oracle, wire
from simulator.province import Case, Province
from simulator.succession import district_items
from simulator.workdays import VN

REPO = Path(__file__).resolve().parent.parent


def plan(seed: int, first: date, last: date, per_day: float, horizon: datetime) -> list[Case]:
    return Province(REPO / "config", seed).cases(first, last, per_day, horizon)


def expectations(cases: list[Case], first: date, last: date, agencies: int = 3) -> dict[str, Any]:
    """What the metrics service must answer: per period for the whole province, per agency for the span."""
    ours = {name: oracle.expected(cases, a, b) for name, a, b in oracle.periods(first, last)}
    busiest = [code for code, _ in Counter(c.agency for c in cases).most_common(agencies)]
    span = f"{first.isoformat()}..{last.isoformat()}"
    parents = {
        a["agency_code"]: a["parent_code"] for a in json.loads((REPO / "config/registry/agencies.json").read_text())
    }

    def under(agency: str, top: str) -> bool:  # the contract: an agency filter includes the agencies below it
        while agency:
            if agency == top:
                return True
            agency = parents.get(agency) or ""
        return False

    by_agency = {code: oracle.expected([c for c in cases if under(c.agency, code)], first, last) for code in busiest}
    return {"province": ours, "by_agency": {code: {span: answer} for code, answer in by_agency.items()}}


def differences(expected: dict[str, Any], actual: dict[str, Any], where: str) -> list[str]:
    out = []
    for group in ("received", "finished", "pending"):
        for key, value in expected[group].items():
            if actual[group].get(key) != value:
                out.append(f"{where} {group}.{key}: expected {value}, got {actual[group].get(key)}")
    for key, value in expected["rates"].items():
        got = actual["rates"].get(key)
        if (value is None) != (got is None) or (value is not None and abs(value - got) > 1e-9):
            out.append(f"{where} rates.{key}: expected {value}, got {got}")
    return out


async def compare(metrics_url: str, token: str, wanted: dict[str, Any]) -> tuple[int, list[str]]:
    """(figures compared, differences) between the oracle and GET /v1/indicators."""
    headers = {"Authorization": f"Bearer {token}"}
    figures, diffs = 0, []
    async with httpx.AsyncClient(timeout=60) as client:
        queries = [(period, None, answer) for period, answer in wanted["province"].items()]
        queries += [
            (period, agency, answer)
            for agency, spans in wanted["by_agency"].items()
            for period, answer in spans.items()
        ]
        for period, agency, answer in queries:
            params = {"period": period} | ({"agency": agency} if agency else {})
            response = await client.get(f"{metrics_url}/v1/indicators", params=params, headers=headers)
            response.raise_for_status()
            figures += sum(len(answer[g]) for g in ("received", "finished", "pending", "rates"))
            diffs += differences(answer, response.json(), f"[{period}{' ' + agency if agency else ''}]")
    return figures, diffs


async def settle(metrics_url: str, token: str, wanted: dict[str, Any], timeout: float) -> tuple[int, list[str]]:
    """Compare until equal or until the answer stops changing for a while (the pipeline is done)."""
    deadline = clock.monotonic() + timeout
    figures, diffs = await compare(metrics_url, token, wanted)
    while diffs and clock.monotonic() < deadline:
        await asyncio.sleep(1.0)
        figures, diffs = await compare(metrics_url, token, wanted)
    return figures, diffs


def stack_env() -> dict[str, str]:
    path = REPO / ".stack" / "stack.env"
    if not path.exists():
        return {}
    return dict(line.strip().split("=", 1) for line in path.read_text().splitlines() if "=" in line)


async def fresh_pipeline(cases: list[Case], items: list[wire.Item], wanted: dict[str, Any], timeout: float) -> int:
    """Own broker, store and services; post; compare; stop everything started here."""
    async with infrastructure() as env:
        settings = env.settings("sim-")
        await infra.create_topics(settings.kafka_bootstrap, prefix=settings.topic_prefix)
        async with infra.running_services(env.run_dir, env_of(settings)) as services:
            started = clock.monotonic()
            sent = await wire.post(items, services.urls["intake"], ADMIN_TOKEN)
            print(f"posted {sent} in {clock.monotonic() - started:.1f}s", flush=True)
            figures, diffs = await settle(services.urls["metrics"], ADMIN_TOKEN, wanted, timeout)
            print(f"metrics caught up {clock.monotonic() - started:.1f}s after the first post", flush=True)
    for line in diffs[:40]:
        print("DIFF", line)
    print(f"{figures} figures compared with the metrics service: {len(diffs)} differ", flush=True)
    return 1 if diffs else 0


async def seed_stack(intake_url: str, token: str, weeks: int = 4, per_day: float = 20.0, seed: int = 1) -> int:
    """`make up`'s demo data: the last few weeks of the province, up to now (some cases still open)."""
    now = datetime.now(VN)
    last = now.date() - timedelta(days=1)
    cases = plan(seed, last - timedelta(days=7 * weeks - 1), last, per_day, now)
    items = wire.stream(cases, seed)
    await wire.post(items, intake_url, token)
    district = district_items()  # a district dissolved on 2025-07-01: its cases under the successor
    await wire.post(district, intake_url, token)
    return len(items) + len(district)


def arguments(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--weeks", type=int, default=6)
    parser.add_argument("--cases-per-day", type=float, default=40.0)
    parser.add_argument("--end", type=date.fromisoformat, default=None, help="last day (default: yesterday)")
    parser.add_argument("--stack", action="store_true", help="post into the running `make up` stack instead")
    parser.add_argument(
        "--demo", action="store_true", help="post `make up`'s demo data (the last four weeks) into the running stack"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the oracle's expectations here (JSON)")
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for the metrics to agree")
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parser, args = arguments(argv)
    env = stack_env() if args.stack or args.demo else {}
    if (args.stack or args.demo) and not env:
        parser.error("no .stack/stack.env: run `make up` first")
    if args.demo:
        count = asyncio.run(seed_stack(env["INTAKE_URL"], env["TTHC_ADMIN_TOKEN"]))
        print(f"demo data: the simulated province's last 4 weeks, {count} events and snapshots posted", flush=True)
        return 0
    today = datetime.now(VN).date()
    last = args.end or today - timedelta(days=1)
    first = last - timedelta(days=7 * args.weeks - 1)
    horizon = min(datetime.combine(last + timedelta(days=1), time(0), VN), datetime.now(VN))
    cases = plan(args.seed, first, last, args.cases_per_day, horizon)
    items = wire.stream(cases, args.seed)
    wanted = expectations(cases, first, last)
    if args.out:
        args.out.write_text(json.dumps(wanted, ensure_ascii=False, indent=1))
    print(f"{len(cases)} cases from {first} to {last}: {len(items)} items (events and snapshots)", flush=True)
    if not args.stack:
        return asyncio.run(fresh_pipeline(cases, items, wanted, args.timeout))
    sent = asyncio.run(wire.post(items, env["INTAKE_URL"], env["TTHC_ADMIN_TOKEN"]))
    print(f"posted {sent} to {env['INTAKE_URL']} (not compared: the stack holds other data too)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

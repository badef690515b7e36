"""`make bench`: runs the benchmarks and writes bench/results/<date>.md and .json.

Each benchmark is a module with `run() -> dict`. Benchmarks that need the broker and store start
their own on free loopback ports (deploy/local/infra.py) and measure the raw limits in the same run,
so that results are ratios, not absolute numbers from a noisy shared machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = [
    "bench.deadline_core",
    "bench.intake",
    "bench.deadline",
    "bench.metrics",
    "bench.freshness",
    "bench.e2e",
    "bench.failover",
    "bench.driver",
]


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Benchmarks, {meta['date']}", "", f"Machine: {meta['machine']}", ""]
    for result in results:
        lines += [f"## {result['name']}", "", result.get("what", ""), "", "| measure | value |", "|---|---|"]
        for key, value in result.items():
            if key not in ("name", "what"):
                lines.append(f"| {key} | {json.dumps(value, ensure_ascii=False)} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help="benchmark modules (default: all)")
    args = parser.parse_args()
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    results: list[dict[str, Any]] = []
    failed = False
    for name in args.names or BENCHMARKS:
        started = time.perf_counter()
        try:
            result = importlib.import_module(name).run()
        except Exception as exc:  # the others still run; the failure is in the results, and the exit code
            result = {"name": name.removeprefix("bench."), "error": repr(exc)}
            failed = True
        result["seconds"] = round(time.perf_counter() - started, 1)
        result["ran_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        results.append(result)
        print(json.dumps(result, ensure_ascii=False), flush=True)
        write(meta, results, merge=bool(args.names))  # after each: a long run stopped midway keeps what it measured
    print(f"wrote {(RESULTS / meta['date']).with_suffix('.md')}")
    return 1 if failed else 0


def write(meta: dict[str, Any], results: list[dict[str, Any]], merge: bool) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / meta["date"]
    if merge and stem.with_suffix(".json").exists():
        # a re-run of some benchmarks: keep today's others, replace these (each entry says when it ran)
        earlier = json.loads(stem.with_suffix(".json").read_text())["results"]
        fresh = {r["name"]: r for r in results}
        results = [fresh.pop(r["name"], r) for r in earlier] + list(fresh.values())
    document = {"meta": meta, "results": results}
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    stem.with_suffix(".md").write_text(markdown(results, meta))


if __name__ == "__main__":
    sys.exit(main())

"""The stand-in's cost of a write command, as a stream of small batches pays it (not in `make bench`:
a probe of SecantusDB, not of the product).

A fresh SecantusDB process, then, for each way of writing in turn, BENCH_STANDIN_WRITES `$inc`
upserts over 3,000 documents (all but the first 3,000 over existing ones), sent as bulk writes of
1, 10 and 100 documents:
- with the driver's retryable writes, as pymongo sends them by default (and the `mongodb` store
  profile keeps);
- without them, as the `standin` profile writes (shared/store.py).

Reported: documents/s in each successive slice of 2,000 documents, so that a rate which falls as the
store's own records grow shows as a falling row. Each way of
writing gets its own fresh database on the same store; the record of retryable writes is the store
process's, so the ways without it run first. About 4.5 minutes at the default size.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient, UpdateOne

from deploy.local import infra

SLICE = 2000
KEYS = 3000
BATCHES = (1, 10, 100)


def _rates(client: MongoClient[dict[str, Any]], database: str, writes: int, batch: int) -> list[int]:
    collection = client[database]["t"]
    rates: list[int] = []
    started, done = time.perf_counter(), 0
    while done < writes:
        size = min(batch, writes - done)
        ops = [UpdateOne({"_id": (done + i) % KEYS}, {"$inc": {"n": 1}}, upsert=True) for i in range(size)]
        collection.bulk_write(ops, ordered=False)
        done += size
        if done % SLICE == 0:
            now = time.perf_counter()
            rates.append(round(SLICE / (now - started)))
            started = now
    return rates


def run() -> dict[str, Any]:
    writes = int(os.environ.get("BENCH_STANDIN_WRITES", "12000"))
    result: dict[str, Any] = {
        "name": "standin_writes",
        "what": (
            f"SecantusDB alone: {writes} $inc upserts over {KEYS} documents in bulk writes of "
            f"{', '.join(map(str, BATCHES))}, with and without retryable writes; documents/s per {SLICE}"
        ),
    }
    with tempfile.TemporaryDirectory(prefix="tthc-standin-") as folder:
        store = infra.MongoServer(Path(folder), infra.free_port())
        store.start()
        try:
            asyncio.run(store.wait_ready())
            for retry in (False, True):
                client: MongoClient[dict[str, Any]] = MongoClient(store.uri, retryWrites=retry)
                try:
                    for batch in BATCHES:
                        rates = _rates(client, f"w_{int(retry)}_{batch}", writes, batch)
                        key = f"{'retryable' if retry else 'plain'}_batch_{batch}"
                        result[f"{key}_docs_per_s_by_slice"] = rates
                finally:
                    client.close()
        finally:
            store.stop()
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

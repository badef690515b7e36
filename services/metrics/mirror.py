"""The aggregate buckets in memory, for indicator queries (ADR 0008).

The buckets are small and far fewer than the cases, and every indicator answer
is a sum over a few hundred of them; reading them from the store costs far more than the sums. So
the metrics service keeps a copy: loaded from the store, then moved by the same deltas the
projection writes, after each transaction commits.

Exact only while this process is the only writer of the buckets, i.e. while its consumer holds
every partition of tthc.case-events. It is loaded when the consumer is assigned every partition,
and the projection waits for that load before it applies the assignment's first batch (so no
delta falls between the load and the copy); it is unusable from the moment partitions are revoked.
Meanwhile the store answers. (The load is not awaited inside the rebalance callback itself:
aiokafka sends no heartbeats until that callback returns.)
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Gauge
from pymongo.asynchronous.collection import AsyncCollection

from services.metrics.aggregates import COARSE, FINE, apply_change, fine_keys, fine_view, split_fine
from shared.sole_writer import SoleWriterCopy
from shared.store import Document

log = logging.getLogger(__name__)
MIRRORED = Gauge("tthc_metrics_buckets_mirrored", "Aggregate buckets held in memory for indicator queries")
MIRROR_USABLE = Gauge("tthc_metrics_buckets_mirror_usable", "1 when indicators are answered from memory, else 0")

Bucket = dict[str, Any]  # a bucket: its keys (agency, level[, field, channel]), g, p, c[, d]
Group = tuple[str | None, str | None]  # (field, channel) of a fine bucket; (None, None) for a coarse one
ROLLUPS_KEPT = 4096


def _group(keys: Mapping[str, Any]) -> Group:
    return keys.get("field"), keys.get("channel")


class BucketMirror(SoleWriterCopy):
    name = "bucket-mirror"

    def __init__(self, collections: Mapping[str, AsyncCollection[Document]]) -> None:
        super().__init__(MIRROR_USABLE)
        self.collections = collections
        # COARSE or FINE → period key p → (field, channel) → bucket id → bucket (a coarse bucket has
        # neither: one group); a field or channel filter reads only its groups. The stored buckets'
        # `f` counters are held apart, as the fine buckets they are views of (aggregates.fine_view).
        self.buckets: dict[str, dict[str, dict[Group, dict[str, Bucket]]]] = {COARSE: {}, FINE: {}}
        # (collection, p, filter) → the sum of the matching buckets of that month; dropped when a
        # bucket of that month changes. A month long past is summed once, not at every query.
        self._rollups: OrderedDict[tuple[Any, ...], Bucket] = OrderedDict()
        self._rollups_of: dict[tuple[str, str], set[tuple[Any, ...]]] = {}

    def applied(self, changes: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        """After the transaction that wrote these bucket changes committed (aggregates.changes)."""
        for (collection, bucket_id), change in changes.items():
            keys = change["keys"]
            coarse, fine = split_fine(change["inc"])
            if coarse:
                apply_change(self._bucket(collection, bucket_id, keys), coarse)
            for group, inc in fine.items():
                apply_change(self._bucket(FINE, f"{bucket_id}|{group}", keys | fine_keys(group)), inc)
        MIRRORED.set(self.size())

    def _bucket(self, collection: str, bucket_id: str, keys: Mapping[str, Any]) -> Bucket:
        """The bucket held, created empty if new; the kept sums of its month dropped."""
        by_id = self.buckets[collection].setdefault(keys["p"], {}).setdefault(_group(keys), {})
        bucket = by_id.get(bucket_id)
        if bucket is None:
            bucket = by_id[bucket_id] = {**keys, "c": {}}
        for key in self._rollups_of.pop((collection, keys["p"]), ()):
            self._rollups.pop(key, None)
        return bucket

    async def load(self) -> None:
        fresh: dict[str, dict[str, dict[Group, dict[str, Bucket]]]] = {COARSE: {}, FINE: {}}
        for collection in self.collections.values():
            async for bucket in collection.find({}, batch_size=5000):
                bucket_id = bucket.pop("_id")
                for group, fine in fine_view(bucket).items():
                    fresh[FINE].setdefault(fine["p"], {}).setdefault(_group(fine), {})[f"{bucket_id}|{group}"] = fine
                bucket.pop("f", None)
                fresh[COARSE].setdefault(bucket["p"], {}).setdefault(_group(bucket), {})[bucket_id] = bucket
        self.buckets = fresh
        self._rollups.clear()
        self._rollups_of.clear()
        log.info("bucket copy: province-wide month sums kept", extra={"months": self.warm()})
        MIRRORED.set(self.size())

    def warm(self) -> int:
        """Sum every month of the province-wide selection (no filter) now, not at the first query
        after a restart: the overview everyone opens first then reads only kept sums. Returns how
        many months it summed."""
        return len(self.find(COARSE, {"p": {"$gte": ""}}, rollup_days=set()))

    def size(self) -> int:
        return sum(len(ids) for by_p in self.buckets.values() for groups in by_p.values() for ids in groups.values())

    def find(self, collection: str, query: Mapping[str, Any], rollup_days: set[str] | None = None) -> list[Bucket]:
        """The buckets a `buckets_queries` query selects: equality on keys, `$in` on agency, and
        `$lt` / `$gte` + `$lte` on p. The buckets are shared: callers read, never change them.

        With `rollup_days` (for an answer over the whole selection, not grouped by a key): one
        bucket per month, the sum of the selected ones, with its days summed for the months named
        (those where the period starts or ends mid-month); the sums are kept until a bucket of
        their month changes."""
        p_range = query.get("p", {})
        low, high, below = p_range.get("$gte"), p_range.get("$lte"), p_range.get("$lt")
        agencies = query.get("agency", {}).get("$in") if isinstance(query.get("agency"), dict) else None
        agency_set = frozenset(agencies) if agencies is not None else None
        equal = tuple(
            sorted((k, v) for k, v in query.items() if k != "p" and not (k == "agency" and agencies is not None))
        )
        field, channel = query.get("field"), query.get("channel")
        out: list[Bucket] = []
        for p, groups in self.buckets[collection].items():
            if (
                (below is not None and not p < below)
                or (low is not None and p < low)
                or (high is not None and p > high)
            ):
                continue
            selected = (
                bucket
                for (f, c), by_id in groups.items()
                if (field is None or f == field) and (channel is None or c == channel)
                for bucket in by_id.values()
                if (agency_set is None or bucket.get("agency") in agency_set)
                and not (equal and any(bucket.get(k) != v for k, v in equal))
            )
            if rollup_days is None:
                out.extend(selected)
                continue
            days = p in rollup_days
            key = (collection, p, agency_set, equal, days)
            total = self._rollups.get(key)
            if total is None:
                total = _sum(p, selected, days)
                self._rollups[key] = total
                self._rollups_of.setdefault((collection, p), set()).add(key)
                if len(self._rollups) > ROLLUPS_KEPT:
                    self._rollups.popitem(last=False)
            else:
                self._rollups.move_to_end(key)
            if total["c"]:
                out.append(total)
        return out


def _sum(p: str, buckets: Iterable[Bucket], days: bool) -> Bucket:
    counters: dict[str, int] = {}
    by_day: dict[str, dict[str, int]] = {}
    for bucket in buckets:
        for name, value in bucket["c"].items():
            counters[name] = counters.get(name, 0) + value
        if days:
            for day, values in bucket.get("d", {}).items():
                into = by_day.setdefault(day, {})
                for name, value in values.items():
                    into[name] = into.get(name, 0) + value
    total: Bucket = {"g": "m", "p": p, "c": counters}
    if days:
        total["d"] = by_day
    return total

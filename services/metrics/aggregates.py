"""Incremental aggregates for GET /v1/indicators: counters per agency × level (× field × channel)
× month and × day, kept in step with the facts in the same transaction.

Which counters a case adds to, on which day and for which agency, and how the answer is computed
from their prefix sums, is the domain's (`shared.domain.counters`); this module keeps them in
buckets. A case change moves its counters: the projection subtracts the old fact's contributions
and adds the new one's, in one transaction with the fact, so a redelivered batch finds nothing left
to add.

Coarse buckets (agency × level × month) hold the month's counters in `c` and each day's in `d.DD`,
so one document answers both whole-month boundaries and the days of a partial month, and a batch
touches one coarse document per agency, level and month (not one per day). Fine buckets (× field ×
channel × month, month counters only) serve a field or channel filter over whole months. A
procedure filter, or a field or channel filter over partial months, is answered from the facts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from pymongo import UpdateOne

from shared.domain.counters import day_points, indicators_from_prefix_sums
from shared.domain.indicators import Period

COARSE_KIND = "c"  # buckets by agency × level, with each day of the month
FINE_KIND = "f"  # buckets by agency × level × field × channel, whole months only
COARSE, FINE = f"{COARSE_KIND}_m", f"{FINE_KIND}_m"  # their collections: one bucket per month
COLLECTIONS = (COARSE, FINE)


def kind_for(field: str | None, channel: str | None) -> str:
    """The buckets that answer a selection: a field or channel filter needs the fine ones."""
    return FINE_KIND if field or channel else COARSE_KIND


def bucket_ids(fact: Mapping[str, Any], agency: str, day: date) -> list[tuple[str, str, dict[str, Any], str | None]]:
    """(collection, bucket id, the bucket's fields, the day key or None) of the buckets a day point
    of this case counts in, for the agency holding it then."""
    level = fact.get("level") or ""
    field, channel = fact.get("field_code") or "", fact.get("channel") or ""
    month = day.strftime("%Y-%m")
    coarse = {"agency": agency, "level": level}
    fine = coarse | {"field": field, "channel": channel}
    return [
        (COARSE, f"{agency}|{level}|{month}", coarse | {"g": "m", "p": month}, f"{day.day:02d}"),
        (FINE, f"{agency}|{level}|{field}|{channel}|{month}", fine | {"g": "m", "p": month}, None),
    ]


def apply_change(bucket: dict[str, Any], inc: Mapping[str, int]) -> None:
    """Apply `$inc` paths ("c.r", "d.05.r") to a bucket held in memory, as the store applies them."""
    for path, delta in inc.items():
        node = bucket
        *parents, name = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[name] = node.get(name, 0) + delta


def changes(
    pairs: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any]]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """(collection, bucket id) → {"keys": the bucket's fields, "inc": {counter path: delta}}."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for before, after in pairs:
        for sign, fact in ((-1, before), (1, after)):
            if not fact:
                continue
            for (agency, day, name), n in day_points(fact).items():
                for collection, bucket, keys, day_key in bucket_ids(fact, agency, day):
                    entry = out.setdefault((collection, bucket), {"keys": keys, "inc": defaultdict(int)})
                    entry["inc"][f"c.{name}"] += sign * n
                    if day_key is not None:
                        entry["inc"][f"d.{day_key}.{name}"] += sign * n
    for entry in out.values():
        entry["inc"] = {k: v for k, v in entry["inc"].items() if v}
    return {key: entry for key, entry in out.items() if entry["inc"]}


def bucket_writes(pairs: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any]]]) -> dict[str, list[UpdateOne]]:
    """collection → its $inc upserts for these (before, after) facts."""
    return writes_of(changes(pairs))


def writes_of(changed: Mapping[tuple[str, str], Mapping[str, Any]]) -> dict[str, list[UpdateOne]]:
    """collection → the $inc upserts of these bucket changes."""
    out: dict[str, list[UpdateOne]] = defaultdict(list)
    for (collection, bucket), change in changed.items():
        out[collection].append(
            UpdateOne({"_id": bucket}, {"$inc": change["inc"], "$setOnInsert": change["keys"]}, upsert=True)
        )
    return out


# ---- reading --------------------------------------------------------------------------------


def answerable(period: Period, kind: str) -> bool:
    """Fine buckets exist by month only: a field or channel filter on partial months needs the facts."""
    return kind == COARSE_KIND or (period.first.day == 1 and date.fromordinal(period.last.toordinal() + 1).day == 1)


def buckets_queries(
    period: Period, kind: str, agencies: set[str] | None, filters: Mapping[str, str | None]
) -> list[tuple[str, dict[str, Any]]]:
    """(collection, query) for the buckets the answer needs: the months before E's month, and E's
    month too when E is not its first day (its days before E count; S's month is never after E's)."""
    end = date.fromordinal(period.last.toordinal() + 1)
    common: dict[str, Any] = {}
    if agencies is not None:
        common["agency"] = {"$in": sorted(agencies)}
    for key, value in filters.items():
        if value:
            common[key] = value
    bound = "$lt" if end.day == 1 else "$lte"
    return [(f"{kind}_m", common | {"p": {bound: end.strftime("%Y-%m")}})]


def prefix(buckets: Iterable[Mapping[str, Any]], x: date) -> Counter[str]:
    """P(x): every counter summed over the days before x: whole months before x's month, then the
    days of x's month before x (a fine bucket has no days: it answers whole months only)."""
    month = x.strftime("%Y-%m")
    day = f"{x.day:02d}"
    total: Counter[str] = Counter()
    for bucket in buckets:
        p = bucket["p"]
        if p < month:
            total.update(bucket["c"])
        elif p == month and day != "01":
            for key, counters in bucket.get("d", {}).items():
                if key < day:
                    total.update(counters)
    return total


def group_buckets(buckets: Iterable[Mapping[str, Any]], groups: Mapping[str, set[str]]) -> dict[str, list[Any]]:
    """group → the buckets of its agencies (the groups are disjoint)."""
    group_of = {code: group for group, members in groups.items() for code in members}
    out: dict[str, list[Any]] = defaultdict(list)
    for bucket in buckets:
        group = group_of.get(bucket.get("agency", ""))
        if group is not None:
            out[group].append(bucket)
    return out


def answer(buckets: Sequence[Mapping[str, Any]], period: Period) -> dict[str, Any]:
    """The contract's /v1/indicators answer (with `extra`, as shared.domain.indicators gives it)."""
    at_start = prefix(buckets, period.first)
    at_end = prefix(buckets, date.fromordinal(period.last.toordinal() + 1))
    return indicators_from_prefix_sums(at_start, at_end, period)

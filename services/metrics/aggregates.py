"""Incremental aggregates for GET /v1/indicators: counters per agency × level (× field × channel)
× month and × day, kept in step with the facts in the same transaction.

Which counters a case adds to, on which day and for which agency, and how the answer is computed
from their prefix sums, is the domain's (`shared.domain.counters`); this module keeps them in
buckets. A case change moves its counters: the projection subtracts the old fact's contributions
and adds the new one's, in one transaction with the fact, so a redelivered batch finds nothing left
to add.

A bucket (agency × level × month) holds the month's counters in `c`, each day's in `d.DD`, and
each field and channel's month counters in `f.<field|channel>`, so one document answers whole-month
boundaries, the days of a partial month and a field or channel filter over whole months, and a
batch touches one document per agency, level and month (not one per day, field or channel: the
store's cost is its operations). The fine buckets (× field × channel, month counters only) that a
field or channel filter reads are views of the `f` counters (`fine_view`). A procedure filter, or
a field or channel filter over partial months, is answered from the facts.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, NamedTuple
from urllib.parse import unquote

from pymongo import UpdateOne

from shared.domain.counters import day_points, indicators_from_prefix_sums
from shared.domain.indicators import Period

COARSE_KIND = "c"  # buckets by agency × level, with each day of the month
FINE_KIND = "f"  # buckets by agency × level × field × channel, whole months only
COARSE, FINE = f"{COARSE_KIND}_m", f"{FINE_KIND}_m"  # their names: one bucket per month
COLLECTIONS = (COARSE,)  # the stored ones: a fine bucket is a view of a coarse one's `f` counters
FINE_KEYS = ("field", "channel")
_ESCAPES = str.maketrans({"%": "%25", ".": "%2E", "$": "%24", "|": "%7C", "\x00": "%00"})


def kind_for(field: str | None, channel: str | None) -> str:
    """The buckets that answer a selection: a field or channel filter needs the fine ones."""
    return FINE_KIND if field or channel else COARSE_KIND


def fine_group(field: str, channel: str) -> str:
    """The key of a field and channel's counters in a bucket's `f` (no dot, dollar, bar or NUL inside)."""
    return f"{field.translate(_ESCAPES)}|{channel.translate(_ESCAPES)}"


def fine_keys(group: str) -> dict[str, str]:
    field, channel = group.split("|")
    return {"field": unquote(field), "channel": unquote(channel)}


def fine_view(bucket: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The fine buckets a stored bucket holds, by their `f` key: its keys, g, p, and one field and
    channel's counters as `c`."""
    keys = {k: v for k, v in bucket.items() if k not in ("_id", "c", "d", "f")}
    return {group: keys | fine_keys(group) | {"c": counters} for group, counters in bucket.get("f", {}).items()}


def split_fine(inc: Mapping[str, int]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """A bucket change's `$inc` paths as (its own: `c.*`, `d.DD.*`; each `f` group's, as that fine
    bucket's `c.*`)."""
    own: dict[str, int] = {}
    fine: dict[str, dict[str, int]] = {}
    for path, delta in inc.items():
        if path.startswith("f."):
            group, name = path[2:].rsplit(".", 1)
            fine.setdefault(group, {})[f"c.{name}"] = delta
        else:
            own[path] = delta
    return own, fine


def fine_query(query: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fine `buckets_queries` query as (the stored buckets' query, the field and channel wanted)."""
    stored = {k: v for k, v in query.items() if k not in FINE_KEYS}
    return stored, {k: query[k] for k in FINE_KEYS if k in query}


def fine_selected(buckets: Iterable[Mapping[str, Any]], wanted: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fine buckets of these stored ones with the field and channel wanted."""
    views = (fine for bucket in buckets for fine in fine_view(bucket).values())
    return [fine for fine in views if all(fine[k] == v for k, v in wanted.items())]


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
    deltas = BucketDeltas()
    deltas.add(pairs)
    return deltas.changes()


class _Placed(NamedTuple):
    """Where a fact counts (its level, its field and channel group) and its day points."""

    level: str
    group: str
    points: Counter[tuple[str, date, str]]


def _placed(fact: Mapping[str, Any] | None) -> _Placed | None:
    """None for no fact."""
    if not fact:
        return None
    group = fine_group(fact.get("field_code") or "", fact.get("channel") or "")
    return _Placed(fact.get("level") or "", group, day_points(fact))


@functools.lru_cache(maxsize=4096)
def _day_keys(day: date) -> tuple[str, str]:
    """A day's bucket (its month, "YYYY-MM") and its key among the bucket's days ("DD")."""
    return day.strftime("%Y-%m"), f"{day.day:02d}"


class BucketDeltas:
    """The bucket changes of (before, after) facts, added as they come (a batch's chunks, each
    while the one before is written)."""

    def __init__(self) -> None:
        self._out: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, pairs: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any]]]) -> None:
        for before, after in pairs:
            old, new = _placed(before), _placed(after)
            if old is not None and new is not None and (old.level, old.group) == (new.level, new.group):
                # the same level, field and channel: only the points that moved (a known case's
                # change keeps most of them)
                new.points.subtract(old.points)
                self._put(new.level, new.group, new.points)
                continue
            for placed, sign in ((old, -1), (new, 1)):
                if placed is not None:
                    self._put(placed.level, placed.group, placed.points, sign)

    def _put(self, level: str, group: str, points: Mapping[tuple[str, date, str], int], sign: int = 1) -> None:
        out = self._out
        for (agency, day, name), n in points.items():
            if not n:
                continue
            month, day_key = _day_keys(day)
            bucket = (COARSE, f"{agency}|{level}|{month}")
            entry = out.get(bucket)
            if entry is None:
                keys = {"agency": agency, "level": level, "g": "m", "p": month}
                entry = out[bucket] = {"keys": keys, "inc": defaultdict(int)}
            inc = entry["inc"]
            inc[f"c.{name}"] += sign * n
            inc[f"d.{day_key}.{name}"] += sign * n
            inc[f"f.{group}.{name}"] += sign * n

    def changes(self) -> dict[tuple[str, str], dict[str, Any]]:
        """What the pairs added so far change (counters that moved and came back are left out)."""
        out = {}
        for key, entry in self._out.items():
            inc = {path: delta for path, delta in entry["inc"].items() if delta}
            if inc:
                out[key] = {"keys": entry["keys"], "inc": inc}
        return out


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

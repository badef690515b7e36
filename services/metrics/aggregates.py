"""Incremental aggregates for GET /v1/indicators: counters per agency × level (× field × channel)
× month and × day, kept in step with the facts in the same transaction.

Every figure of the contract's answer for a period [S, E) (whole days, Vietnam time) is a sum or a
difference of prefix sums P(x) = Σ counters of the days before x, over four day points of a case:
received day r, end day e, the day o the case counts overdue from (`overdue_from`: its due day,
unless it waits for the citizen or its clock is stopped — S-766DOC 2.1, contract v1.1), and
m = max(o, e):

    received in the period  = P_E(r) − P_S(r)          carried over = P_S(r) − P_S(f) + P_S(Tcr)
    finished in the period  = P_E(f) − P_S(f)          pending at E = P_E(r) − P_E(f) + P_E(Tr)
    pending and overdue     = P_E(D) − P_E(M) + P_E(TD)  (overdue before E, not finished before E)

and the 766, apology and complaint figures likewise over flagged subsets (see `answer`). Every day
point counts for the agency holding the case at its instant (`agency_history`, contract v1.1:
agencies change); the T… transfer counters move a lasting state (pending, overdue, …) from one
holder to the next on the handover's day, so each agency's prefix sums stay exact (see `points`;
over every agency the transfers sum to zero). A case
change moves its counters: the projection subtracts the old fact's contributions and adds the new
one's, in one transaction with the fact, so a redelivered batch finds nothing left to add.

Coarse buckets (agency × level × month) hold the month's counters in `c` and each day's in `d.DD`,
so one document answers both whole-month boundaries and the days of a partial month, and a batch
touches one coarse document per agency, level and month (not one per day). Fine buckets (× field ×
channel × month, month counters only) serve a field or channel filter over whole months. A
procedure filter, or a field or channel filter over partial months, is answered from the facts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from pymongo import UpdateOne

from shared.domain.calendar import VN_TZ
from shared.domain.indicators import Period, Tallies, assemble, digitized_with_e_result, holder_at, overdue_from

CHANNELS = ("online", "direct", "postal")
DATED = ("early", "on_time", "late")


def _day(moment: datetime | None) -> date | None:
    return moment.astimezone(VN_TZ).date() if moment is not None else None


def _local_day(moment: datetime) -> date:
    return moment.astimezone(VN_TZ).date()


Point = tuple[str, date, str]  # (agency holding the case then, day, counter)


def points(fact: Mapping[str, Any]) -> Counter[Point]:
    """(agency, day, counter) → +n for one case's facts; empty before the case is received.

    Each day point counts for the agency holding the case at its instant (`holder_at`: received for
    the holder at receipt, finished for the holder at the end, …). A state that lasts between two
    points (pending r…f, overdue D…M and their flagged subsets) moves with the case at a handover:
    a transfer counter T<name> takes 1 from the agency before and gives it to the agency after, on
    the handover's day, so that P_E(in) − P_E(out) + P_E(T) is the state at E of each agency's
    cases held just before E. `Tcr` moves the pending cases on the day before a handover at
    midnight (the day of the instant just before it), so that P_S(Tcr) counts the handovers up to S
    itself: carried over into a period counts for the agency holding the case at its start."""
    out: Counter[Point] = Counter()
    received = fact.get("received_at")
    r = _day(received)
    if r is None:
        return out
    due, end = fact.get("due_at"), fact.get("end_at")
    d, e = _day(due), _day(end)
    multi = (fact.get("supplement_requests") or 0) > 1
    complaint = bool(fact.get("complaint")) or fact.get("satisfied") is False
    apology = bool(fact.get("apology_on_time"))
    channel = fact.get("channel") if fact.get("channel") in CHANNELS else "direct"

    names = ["r", f"r_{channel}"]
    if fact.get("full_online_eligible"):
        names.append("elig")
        if fact.get("online_mode") == "full":
            names.append("full")
    if fact.get("fee_bearing"):
        names.append("fee")
        if fact.get("paid_online"):
            names.append("paid")
    if fact.get("components_digitized"):
        names.append("dig")
    if digitized_with_e_result(fact):
        names.append("digE")  # 766 item 4.2
    if fact.get("reused"):
        names.append("reu")
    pending = ["r"]  # the states between receipt and end, moved at a handover
    if d is not None:
        pending.append("rD")
        if multi:
            pending.append("rDM")
        if complaint:
            pending.append("rDC")
    holder = holder_at(fact, received)
    for name in names + pending[1:]:
        out[(holder, r, name)] += 1

    if e is not None:
        names = ["f"]
        if fact.get("result_dated") in DATED:
            names.append(f"f_{fact['result_dated']}")
        if fact.get("result_channel"):
            names.append("ret")
            if fact["result_channel"] == "postal":
                names.append("retP")
        if d is not None:
            names.append("fD")
            if fact.get("on_time"):
                names.append("fOT")
            if end > due:
                names.append("fL")
                if apology:
                    names.append("fLA")
            if multi:
                names.append("fDM")
            if complaint:
                names.append("fDC")
        holder = holder_at(fact, end)
        for name in names:
            out[(holder, e, name)] += 1
    handovers = _handovers(fact)
    for at, before, after in _within(handovers, received, end):
        for name in pending:
            out[(before, _local_day(at), f"T{name}")] -= 1
            out[(after, _local_day(at), f"T{name}")] += 1
        day_before = _local_day(at - INSTANT)
        out[(before, day_before, "Tcr")] -= 1
        out[(after, day_before, "Tcr")] += 1
    late_from = overdue_from(fact)  # D counts from the day the case counts overdue, not from due
    if late_from is not None:
        overdue = ["D"] + (["DM"] if multi else []) + (["DA"] if apology else [])
        for name in overdue:
            out[(holder_at(fact, late_from), _local_day(late_from), name)] += 1
        if end is not None:
            last = max(late_from, end)  # its day is m = max(o, e)
            for name in overdue:
                out[(holder_at(fact, last), _local_day(last), name.replace("D", "M"))] += 1
        for at, before, after in _within(handovers, late_from, end):
            for name in overdue:
                out[(before, _local_day(at), f"T{name}")] -= 1
                out[(after, _local_day(at), f"T{name}")] += 1
    return out


INSTANT = timedelta(microseconds=1)


def _handovers(fact: Mapping[str, Any]) -> list[tuple[datetime, str, str]]:
    """(instant, agency before, agency after) of each change of holder in `agency_history`."""
    history = fact.get("agency_history") or ()
    out = []
    for entry in history[1:]:
        at = entry["from"]
        before, after = holder_at(fact, at, just_before=True), holder_at(fact, at)
        if before != after:
            out.append((at, before, after))
    return out


def _within(
    handovers: list[tuple[datetime, str, str]], since: datetime, until: datetime | None
) -> list[tuple[datetime, str, str]]:
    """The handovers a state from `since` to `until` (None: still on) goes through: after `since`
    (its first point counts for the holder then) up to `until` itself (its last point counts for
    the holder from then)."""
    return [h for h in handovers if since < h[0] and (until is None or h[0] <= until)]


COLLECTIONS = ("c_m", "f_m")  # coarse by month (with its days), fine by month


def bucket_ids(fact: Mapping[str, Any], agency: str, day: date) -> list[tuple[str, str, dict[str, Any], str | None]]:
    """(collection, bucket id, the bucket's fields, the day key or None) of the buckets a day point
    of this case counts in, for the agency holding it then."""
    level = fact.get("level") or ""
    field, channel = fact.get("field_code") or "", fact.get("channel") or ""
    month = day.strftime("%Y-%m")
    coarse = {"agency": agency, "level": level}
    fine = coarse | {"field": field, "channel": channel}
    return [
        ("c_m", f"{agency}|{level}|{month}", coarse | {"g": "m", "p": month}, f"{day.day:02d}"),
        ("f_m", f"{agency}|{level}|{field}|{channel}|{month}", fine | {"g": "m", "p": month}, None),
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
            for (agency, day, name), n in points(fact).items():
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
    return kind == "c" or (period.first.day == 1 and date.fromordinal(period.last.toordinal() + 1).day == 1)


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


def answer(buckets: list[Mapping[str, Any]], period: Period) -> dict[str, Any]:
    """The contract's /v1/indicators answer (with `extra`, as shared.domain.indicators gives it)."""
    s = prefix(buckets, period.first)
    e = prefix(buckets, date.fromordinal(period.last.toordinal() + 1))

    def rng(name: str) -> int:
        return e[name] - s[name]

    def held(start: str, stop: str) -> int:
        """A state's cases at E, for the agencies holding them just before E (handovers: T…)."""
        return e[start] - e[stop] + e[f"T{start}"]

    carried_over = s["r"] - s["f"] + s["Tcr"]  # for the agencies holding them at S
    received = {"total": rng("r"), "carried_over": carried_over} | {c: rng(f"r_{c}") for c in CHANNELS}
    finished = {"total": rng("f")} | {k: rng(f"f_{k}") for k in DATED}
    overdue = held("D", "M")
    pending_total = held("r", "f")
    pending = {"total": pending_total, "within_due": pending_total - overdue, "overdue": overdue}
    pending_with_due = held("rD", "fD")
    multi_pending = held("rDM", "fDM")
    multi_overdue = held("DM", "MM")
    counted = rng("fD") + pending_with_due
    on_time = rng("fOT") + (pending_with_due - overdue) - (multi_pending - multi_overdue)
    late = rng("fL") + overdue
    late_with_apology = rng("fLA") + held("DA", "MA")
    complaints = rng("fDC") + held("rDC", "fDC")
    tallies = Tallies(
        on_time=on_time,
        counted=counted,
        eligible=rng("elig"),
        full=rng("full"),
        fee=rng("fee"),
        paid=rng("paid"),
        digitized=rng("dig"),
        reused=rng("reu"),
        late=late,
        late_with_apology=late_with_apology,
        complaints=complaints,
        returned=rng("ret"),
        returned_postal=rng("retP"),
        digitized_e_result=rng("digE"),
    )
    return assemble(period, received, finished, pending, tallies)

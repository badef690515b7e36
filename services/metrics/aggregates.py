"""Incremental aggregates for GET /v1/indicators: counters per agency × level (× field × channel)
× month and × day, kept in step with the facts in the same transaction.

Every figure of the contract's answer for a period [S, E) (whole days, Vietnam time) is a sum or a
difference of prefix sums P(x) = Σ counters of the days before x, over four day points of a case:
received day r, end day e, due day d, and m = max(d, e):

    received in the period  = P_E(r) − P_S(r)          carried over = P_S(r) − P_S(f)
    finished in the period  = P_E(f) − P_S(f)          pending at E = P_E(r) − P_E(f)
    pending and overdue     = P_E(D) − P_E(M)          (due before E, not finished before E)

and the 766, apology and complaint figures likewise over flagged subsets (see `answer`). A case
change moves its counters: the projection subtracts the old fact's contributions and adds the new
one's, in one transaction with the fact, so a redelivered batch finds nothing left to add.

Month buckets answer whole-month boundaries; day buckets add the partial month of an explicit range.
Coarse buckets (agency × level) serve queries without a field or channel filter; fine buckets
(× field × channel) serve those with one. A procedure filter is answered from the facts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from pymongo import UpdateOne

from shared.domain.calendar import VN_TZ
from shared.domain.indicators import Period

CHANNELS = ("online", "direct", "postal")
DATED = ("early", "on_time", "late")


def _day(moment: datetime | None) -> date | None:
    return moment.astimezone(VN_TZ).date() if moment is not None else None


def points(fact: Mapping[str, Any]) -> Counter[tuple[date, str]]:
    """(day, counter) → +n for one case's facts; empty before the case is received."""
    out: Counter[tuple[date, str]] = Counter()
    r = _day(fact.get("received_at"))
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
    if fact.get("reused"):
        names.append("reu")
    if d is not None:
        names.append("rD")
        if multi:
            names.append("rDM")
        if complaint:
            names.append("rDC")
    for name in names:
        out[(r, name)] += 1

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
        for name in names:
            out[(e, name)] += 1
    if d is not None:
        for name in ["D"] + (["DM"] if multi else []) + (["DA"] if apology else []):
            out[(d, name)] += 1
        if e is not None:
            m = max(d, e)
            for name in ["M"] + (["MM"] if multi else []) + (["MA"] if apology else []):
                out[(m, name)] += 1
    return out


def bucket_ids(fact: Mapping[str, Any], day: date) -> list[tuple[str, dict[str, Any]]]:
    """The four buckets a day point of this case counts in: coarse and fine, month and day."""
    agency, level = fact.get("agency_code") or "", fact.get("level") or ""
    field, channel = fact.get("field_code") or "", fact.get("channel") or ""
    month, iso = day.strftime("%Y-%m"), day.isoformat()
    coarse = {"agency": agency, "level": level}
    fine = coarse | {"field": field, "channel": channel}
    return [
        (f"c|{agency}|{level}|m|{month}", coarse | {"kind": "c", "g": "m", "p": month}),
        (f"c|{agency}|{level}|d|{iso}", coarse | {"kind": "c", "g": "d", "p": iso}),
        (f"f|{agency}|{level}|{field}|{channel}|m|{month}", fine | {"kind": "f", "g": "m", "p": month}),
        (f"f|{agency}|{level}|{field}|{channel}|d|{iso}", fine | {"kind": "f", "g": "d", "p": iso}),
    ]


def changes(pairs: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """bucket id → {"keys": the bucket's fields, "inc": {counter: delta}} for (before, after) facts."""
    out: dict[str, dict[str, Any]] = {}
    for before, after in pairs:
        for sign, fact in ((-1, before), (1, after)):
            if not fact:
                continue
            for (day, name), n in points(fact).items():
                for bucket, keys in bucket_ids(fact, day):
                    entry = out.setdefault(bucket, {"keys": keys, "inc": defaultdict(int)})
                    entry["inc"][name] += sign * n
    for entry in out.values():
        entry["inc"] = {k: v for k, v in entry["inc"].items() if v}
    return {bucket: entry for bucket, entry in out.items() if entry["inc"]}


def bucket_writes(pairs: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any]]]) -> list[UpdateOne]:
    return [
        UpdateOne(
            {"_id": bucket},
            {"$inc": {f"c.{name}": delta for name, delta in change["inc"].items()}, "$setOnInsert": change["keys"]},
            upsert=True,
        )
        for bucket, change in changes(pairs).items()
    ]


# ---- reading --------------------------------------------------------------------------------


def buckets_query(period: Period, kind: str, agencies: set[str] | None, filters: Mapping[str, str | None]) -> dict:
    """The buckets the answer needs: months before E's month, days of S's and E's months."""
    first, end_day = period.first, period.last.toordinal() + 1
    end = date.fromordinal(end_day)
    partial = [day.strftime("%Y-%m") for day in (first, end) if day.day != 1]
    ranges: list[dict[str, Any]] = [{"g": "m", "p": {"$lt": end.strftime("%Y-%m")}}]
    for month in sorted(set(partial)):
        ranges.append({"g": "d", "p": {"$gte": f"{month}-01", "$lte": f"{month}-31"}})
    query: dict[str, Any] = {"kind": kind, "$or": ranges}
    if agencies is not None:
        query["agency"] = {"$in": sorted(agencies)}
    for key, value in filters.items():
        if value:
            query[key] = value
    return query


def prefix(buckets: Iterable[Mapping[str, Any]], x: date) -> Counter[str]:
    """P(x): every counter summed over the days before x, from month buckets and day buckets."""
    month = x.strftime("%Y-%m")
    iso = x.isoformat()
    total: Counter[str] = Counter()
    for bucket in buckets:
        p = bucket["p"]
        if bucket["g"] == "m":
            if p < month:
                total.update(bucket["c"])
        elif p[:7] == month and p < iso:
            total.update(bucket["c"])
    return total


def answer(buckets: list[Mapping[str, Any]], period: Period) -> dict[str, Any]:
    """The contract's /v1/indicators answer (with `extra`, as shared.domain.indicators gives it)."""
    s = prefix(buckets, period.first)
    e = prefix(buckets, date.fromordinal(period.last.toordinal() + 1))

    def rng(name: str) -> int:
        return e[name] - s[name]

    received = {"total": rng("r"), "carried_over": s["r"] - s["f"]} | {c: rng(f"r_{c}") for c in CHANNELS}
    finished = {"total": rng("f")} | {k: rng(f"f_{k}") for k in DATED}
    overdue = e["D"] - e["M"]
    pending_total = e["r"] - e["f"]
    pending = {"total": pending_total, "within_due": pending_total - overdue, "overdue": overdue}
    pending_with_due = e["rD"] - e["fD"]
    multi_pending = e["rDM"] - e["fDM"]
    multi_overdue = e["DM"] - e["MM"]
    counted = rng("fD") + pending_with_due
    on_time = rng("fOT") + (pending_with_due - overdue) - (multi_pending - multi_overdue)
    late = rng("fL") + overdue
    late_with_apology = rng("fLA") + (e["DA"] - e["MA"])
    complaints = rng("fDC") + (e["rDC"] - e["fDC"])
    total = received["total"]
    rates = {
        "on_time": _rate(on_time, counted),
        "on_time_dated": _rate(finished["early"] + finished["on_time"], finished["total"]),
        "online": _rate(received["online"], total),
        "full_online": _rate(rng("full"), rng("elig")),
        "online_payment": _rate(rng("paid"), rng("fee")),
        "digitized": _rate(rng("dig"), total),
        "apology_coverage": _rate(late_with_apology, late),
    }
    extra = {
        "reused": _rate(rng("reu"), total),
        "satisfaction": None if counted == 0 else max(0.0, 1 - ((counted - on_time) / counted + complaints / counted)),
        "sync": None,
        "late": late,
        "counted": counted,
        "returned": rng("ret"),
        "returned_postal": rng("retP"),
    }
    return {
        "period": period.as_dict(),
        "received": received,
        "finished": finished,
        "pending": pending,
        "rates": rates,
        "extra": extra,
    }


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None

"""Indicators of case handling (Biểu 06, the 766 index, the PAR Index) from per-case facts.

Pure functions over plain dicts (the metrics projection's facts): no I/O. A fact carries the
fields the fold derives: received_at, due_at, end_at, on_time (766, exact instants, at most one
supplement request), result_dated (Biểu 06, by date), channel, online_mode, full_online_eligible,
fee_bearing, paid_online, components_digitized, result_digitized, e_result, reused, apology_on_time,
satisfied, complaint, supplement_requests, level, field_code, result_channel, overdue_from (from when
an open case counts overdue, S-766DOC 2.1; a fact stored before it existed lacks the key and is
judged by due_at), agency_code and agency_history (who held the case when, contract v1.1).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from shared.domain.calendar import VN_TZ


class PeriodError(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    """Whole days in Vietnam local time, both ends included."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), VN_TZ)

    @property
    def end(self) -> datetime:
        """The instant the period ends: midnight after its last day."""
        return datetime.combine(self.last + timedelta(days=1), time(0), VN_TZ)

    def as_dict(self) -> dict[str, str]:
        return {"start": self.first.isoformat(), "end": self.last.isoformat()}


def _month_end(year: int, month: int) -> date:
    return (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)


PERIOD_FORMS = (
    "tháng: 11/2026 hoặc 2026-11; quý: Q1/2026, quý 1/2026 hoặc 2026-Q1; "
    "6 tháng: 6 tháng đầu năm 2026 (6 tháng cuối năm 2026) hoặc 2026-H1; "
    "9 tháng: 9 tháng 2026 hoặc 2026-9M; năm: năm 2026 hoặc 2026; "
    "khoảng ngày: 01/03/2026-31/03/2026 hoặc 2026-03-01..2026-03-31"
)
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4}


def _canonical(text: str) -> str:
    """The contract form (2026-03, 2026-Q1, 2026-H1, 2026-9M, 2026, DATE..DATE) of a period as
    officers write it (11/2026, Q1/2026, quý 1/2026, 6 tháng đầu năm 2026, 9 tháng 2026, năm 2026);
    the text unchanged when it is neither."""
    words = " ".join(unicodedata.normalize("NFC", text).lower().split())
    words = re.sub(r"\s*([/\-.])\s*", r"\1", words)  # "11 / 2026" → "11/2026"
    words = re.sub(r"^(kỳ|kì|báo cáo)\s+", "", words)
    if m := re.fullmatch(r"(?:tháng\s*)?(\d{1,2})[/-](\d{4})", words):
        return f"{m[2]}-{int(m[1]):02d}"
    if m := re.fullmatch(
        r"(?:q|quý\s*)(\d|i{1,3}|iv)[/-](\d{4})|(?:q|quý\s*)(\d|i{1,3}|iv)\s+(?:năm\s+)?(\d{4})", words
    ):
        quarter, year = (m[1], m[2]) if m[1] else (m[3], m[4])
        return f"{year}-Q{_ROMAN.get(quarter, quarter)}"
    if m := re.fullmatch(r"(\d{4})-q(\d)", words):
        return f"{m[1]}-Q{m[2]}"
    if m := re.fullmatch(r"6\s*tháng\s+(đầu|cuối)\s+(?:năm\s*)?(\d{4})", words):
        return f"{m[2]}-H{1 if m[1] == 'đầu' else 2}"
    if m := re.fullmatch(r"(\d{4})-h([12])", words):
        return f"{m[1]}-H{m[2]}"
    if m := re.fullmatch(r"9\s*tháng\s+(?:đầu\s+)?(?:năm\s*)?(\d{4})|(\d{4})-9m", words):
        return f"{m[1] or m[2]}-9M"
    if m := re.fullmatch(r"(?:năm\s*)?(\d{4})", words):
        return m[1]
    day = r"(\d{1,2})/(\d{1,2})/(\d{4})"
    if m := re.fullmatch(rf"(?:từ\s+)?{day}(?:-|\.\.|\s+đến\s+){day}", words):
        return f"{m[3]}-{int(m[2]):02d}-{int(m[1]):02d}..{m[6]}-{int(m[5]):02d}-{int(m[4]):02d}"
    return text.strip()


def parse_period(text: str) -> Period:
    """2026-03 | 2026-Q1 | 2026-H1 | 2026-9M | 2026 | 2026-03-01..2026-03-31 (the contract's forms),
    and as officers write them: 11/2026, tháng 11/2026, Q1/2026, quý 1/2026, quý I/2026,
    6 tháng đầu năm 2026, 6 tháng cuối năm 2026, 9 tháng 2026, năm 2026, 01/03/2026-31/03/2026.
    Case and spaces do not matter. A PeriodError names the forms, in Vietnamese (the pages show it)."""
    canonical = _canonical(text)
    try:
        if ".." in canonical:
            a, b = canonical.split("..", 1)
            first, last = date.fromisoformat(a), date.fromisoformat(b)
            if last < first:
                raise PeriodError(f"Kỳ báo cáo '{text}' kết thúc trước khi bắt đầu.")
            return Period(first, last)
        if m := re.fullmatch(r"(\d{4})", canonical):
            year = int(m[1])
            return Period(date(year, 1, 1), date(year, 12, 31))
        if m := re.fullmatch(r"(\d{4})-(\d{2})", canonical):
            year, month = int(m[1]), int(m[2])
            return Period(date(year, month, 1), _month_end(year, month))
        if m := re.fullmatch(r"(\d{4})-Q([1-4])", canonical):
            year, quarter = int(m[1]), int(m[2])
            return Period(date(year, 3 * quarter - 2, 1), _month_end(year, 3 * quarter))
        if m := re.fullmatch(r"(\d{4})-H([12])", canonical):
            year, half = int(m[1]), int(m[2])
            return Period(date(year, 6 * half - 5, 1), _month_end(year, 6 * half))
        if m := re.fullmatch(r"(\d{4})-9M", canonical):
            year = int(m[1])
            return Period(date(year, 1, 1), date(year, 9, 30))
    except ValueError as exc:
        if isinstance(exc, PeriodError):
            raise
        raise PeriodError(
            f"Kỳ báo cáo '{text}' có ngày, tháng không tồn tại. Cách ghi được chấp nhận: {PERIOD_FORMS}."
        ) from None
    raise PeriodError(f"Không hiểu kỳ báo cáo '{text}'. Cách ghi được chấp nhận: {PERIOD_FORMS}.")


def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _before(moment: datetime | None, limit: datetime) -> bool:
    return moment is not None and moment < limit


def overdue_from(fact: Mapping[str, Any]) -> datetime | None:
    """The instant from which the case, while open, counts overdue (pending.overdue, late in 766 item
    2.1 and in apology coverage): the fold's `overdue_from` (S-766DOC 2.1, contract v1.1: waiting for
    the citizen after one request at or before due → never while it waits; the clock stopped by a
    pause the law does not count → never while it lasts). A stored fact without the key is judged by
    `due_at`. None without a due date (not counted)."""
    due: datetime | None = fact.get("due_at")
    if due is None:
        return None
    if "overdue_from" in fact:
        overdue: datetime | None = fact["overdue_from"]
        return overdue
    return due


def holder_at(fact: Mapping[str, Any], instant: datetime, *, just_before: bool = False) -> str:
    """The agency holding the case at `instant` (or just before it, for the state at a period's end):
    from `agency_history` (contract v1.1: a dissolved agency's open cases go to its successor),
    else the case's `agency_code`. A holder holds from its `from` on; before the first `from`, the
    first holder."""
    history = fact.get("agency_history") or ()
    if not history:
        return str(fact.get("agency_code") or "")
    holder = str(history[0]["agency_code"])
    for entry in history:
        start = entry["from"]
        if start < instant or (start == instant and not just_before):
            holder = str(entry["agency_code"])
    return holder


def indicators(
    facts: Iterable[Mapping[str, Any]], period: Period, agencies: Collection[str] | None = None
) -> dict[str, Any]:
    """The contract's /v1/indicators answer for the facts already filtered by level, field, …

    `agencies` (None: every one): each figure counts a case for the agency that held it at the
    time (contract v1.1, agencies change): received for the holder at receipt, carried over for
    the holder at the period start, finished for the holder at the end of processing, pending (and
    the pending part of the rates) for the holder just before the period end."""
    count = _Count()
    start, end = period.start, period.end
    for fact in facts:
        _count_case(count, fact, start, end, agencies)
    return assemble(period, count.received, count.finished, count.pending, count.tallies())


@dataclass
class _Count:
    """The figures of `indicators`, counted case by case."""

    received: dict[str, int] = field(
        default_factory=lambda: {"total": 0, "carried_over": 0, "online": 0, "direct": 0, "postal": 0}
    )
    finished: dict[str, int] = field(default_factory=lambda: {"total": 0, "early": 0, "on_time": 0, "late": 0})
    pending: dict[str, int] = field(default_factory=lambda: {"total": 0, "within_due": 0, "overdue": 0})
    on_time_766: int = 0
    counted_766: int = 0
    eligible: int = 0
    full: int = 0
    fee: int = 0
    paid: int = 0
    digitized: int = 0
    digitized_e_result: int = 0  # 766 item 4.2: digitized components and an electronic result
    reused: int = 0
    late: int = 0
    late_with_apology: int = 0
    complaints: int = 0
    returned: int = 0
    returned_postal: int = 0

    def tallies(self) -> Tallies:
        return Tallies(
            on_time=self.on_time_766,
            counted=self.counted_766,
            eligible=self.eligible,
            full=self.full,
            fee=self.fee,
            paid=self.paid,
            digitized=self.digitized,
            reused=self.reused,
            late=self.late,
            late_with_apology=self.late_with_apology,
            complaints=self.complaints,
            returned=self.returned,
            returned_postal=self.returned_postal,
            digitized_e_result=self.digitized_e_result,
        )


def _count_case(
    count: _Count, f: Mapping[str, Any], start: datetime, end: datetime, agencies: Collection[str] | None
) -> None:
    """Adds one case to the figures of the period [start, end), for the agencies holding it at each instant."""
    received_at = f.get("received_at")
    if received_at is None or received_at >= end:
        return

    def held(instant: datetime, just_before: bool = False) -> bool:
        return agencies is None or holder_at(f, instant, just_before=just_before) in agencies

    end_at = f.get("end_at")
    if received_at >= start:
        if held(received_at):
            _count_received(count, f)
    elif not _before(end_at, start) and held(start):
        count.received["carried_over"] += 1
    finished_in_period = end_at is not None and start <= end_at < end and held(end_at)
    pending_at_end = not _before(end_at, end) and held(end, just_before=True)
    if finished_in_period:
        _count_finished(count, f)
    overdue_at_end = False
    if pending_at_end:
        count.pending["total"] += 1
        overdue_at_end = _before(overdue_from(f), end)
        count.pending["overdue" if overdue_at_end else "within_due"] += 1
    if (finished_in_period or pending_at_end) and f.get("due_at") is not None:
        _count_766(count, f, finished_in_period, overdue_at_end)


def _count_received(count: _Count, f: Mapping[str, Any]) -> None:
    count.received["total"] += 1
    channel = f.get("channel") or "direct"
    count.received[channel if channel in ("online", "direct", "postal") else "direct"] += 1
    if f.get("full_online_eligible"):
        count.eligible += 1
        count.full += f.get("online_mode") == "full"
    if f.get("fee_bearing"):
        count.fee += 1
        count.paid += bool(f.get("paid_online"))
    count.digitized += bool(f.get("components_digitized"))
    count.digitized_e_result += digitized_with_e_result(f)
    count.reused += bool(f.get("reused"))


def _count_finished(count: _Count, f: Mapping[str, Any]) -> None:
    count.finished["total"] += 1
    if f.get("result_channel"):
        count.returned += 1
        count.returned_postal += f["result_channel"] == "postal"
    dated = f.get("result_dated")
    if dated in ("early", "on_time", "late"):
        count.finished[dated] += 1


def _count_766(count: _Count, f: Mapping[str, Any], finished_in_period: bool, overdue_at_end: bool) -> None:
    """A case finished in the period or pending at its end, with a due date: the 766 on-time rate,
    apology coverage and complaints count it."""
    count.counted_766 += 1
    if finished_in_period:
        good = bool(f.get("on_time"))
    else:  # more than one supplement request: late whatever the instants (S-766DOC 2.1)
        good = not overdue_at_end and (f.get("supplement_requests") or 0) <= 1
    count.on_time_766 += good
    is_late = f["end_at"] > f["due_at"] if finished_in_period else overdue_at_end
    if is_late:
        count.late += 1
        count.late_with_apology += bool(f.get("apology_on_time"))
    count.complaints += bool(f.get("complaint")) or f.get("satisfied") is False


def digitized_with_e_result(fact: Mapping[str, Any]) -> bool:
    """S-766DOC 4.2: files attached to the components (số hóa thành phần hồ sơ) and an electronic
    result (result_digitized: a result file; e_result: returned electronically)."""
    return bool(fact.get("components_digitized")) and bool(fact.get("result_digitized") or fact.get("e_result"))


@dataclass(frozen=True)
class Tallies:
    """The counts behind the rates, however they were counted (case by case, or from aggregates)."""

    on_time: int  # 766 item 2.1: finished on time + pending within due, ≤ 1 supplement request
    counted: int  # finished in the period + pending at its end, with a due date
    eligible: int
    full: int
    fee: int
    paid: int
    digitized: int
    reused: int
    late: int  # on exact instants: finished after due, or pending and overdue (overdue_from) at the period end
    late_with_apology: int
    complaints: int
    returned: int  # finished in the period with a result channel (PAR plan: postal returns)
    returned_postal: int
    digitized_e_result: int = 0  # received in the period, components digitized and an e-result (766 4.2)


def assemble(
    period: Period, received: dict[str, int], finished: dict[str, int], pending: dict[str, int], t: Tallies
) -> dict[str, Any]:
    """The contract's answer (plus `extra` for the index scoring) from the counts."""
    rates = {
        "on_time": _rate(t.on_time, t.counted),
        "on_time_dated": _rate(finished["early"] + finished["on_time"], finished["total"]),
        "online": _rate(received["online"], received["total"]),
        "full_online": _rate(t.full, t.eligible),
        "online_payment": _rate(t.paid, t.fee),
        "digitized": _rate(t.digitized, received["total"]),
        "apology_coverage": _rate(t.late_with_apology, t.late),
    }
    extra = {
        "reused": _rate(t.reused, received["total"]),
        "digitized_e_result": _rate(t.digitized_e_result, received["total"]),
        "satisfaction": None
        if t.counted == 0
        else max(0.0, 1 - ((t.counted - t.on_time) / t.counted + t.complaints / t.counted)),
        "sync": None,  # 766 item 1.4 needs the national counts (BCQG / DVCQG), not case data
        "late": t.late,
        "counted": t.counted,
        "returned": t.returned,
        "returned_postal": t.returned_postal,
    }
    return {
        "period": period.as_dict(),
        "received": received,
        "finished": finished,
        "pending": pending,
        "rates": rates,
        "extra": extra,
    }


def rate_of(answer: Mapping[str, Any], name: str) -> float | None:
    """A contract rate, else one of the answer's `extra` rates (sync, online_synced, …)."""
    rates: Mapping[str, float | None] = answer["rates"]
    if name in rates:
        return rates[name]
    extra: Mapping[str, Any] = answer["extra"]
    rate: float | None = extra.get(name)
    return rate


def points(rate: float | None, maximum: float, threshold: float) -> float:
    """766 conversion: full points from the threshold, else proportional; 2 decimals."""
    if rate is None or maximum == 0:
        return 0.0
    if rate >= threshold:
        return round(float(maximum), 2)
    return round(rate * maximum / threshold, 2)


def choose_version(versions: list[Mapping[str, Any]], day: date, wanted: str | None = None) -> Mapping[str, Any]:
    """The named version, else the latest in force on `day` (rules are versioned by date). A version
    marked `superseded_by` (a misreading corrected, not a change of the rules) is only ever chosen by
    name."""
    if wanted:
        for version in versions:
            if version["version"] == wanted:
                return version
        raise PeriodError(f"unknown rules_version {wanted!r}")
    in_force = [v for v in versions if date.fromisoformat(v["effective_from"]) <= day and not v.get("superseded_by")]
    if not in_force:
        raise PeriodError(f"no scoring rules in force on {day}")
    return max(in_force, key=lambda v: v["effective_from"])


def score_766(answer: Mapping[str, Any], rules: Mapping[str, Any]) -> dict[str, Any]:
    """Every item of the rules with its rate, threshold, maximum and points; group subtotals; total.

    An item whose `rate` is null in the rules is not computed from case data: rate null, 0 points,
    `scored` false. `note` says why a rate is null (from the answer's `extra.reasons`, else the
    item's deviation); `deviation` is the rules' own note on where the item departs from S-766DOC.
    """
    reasons: Mapping[str, str] = answer.get("extra", {}).get("reasons", {})
    groups, total, scored_max = [], 0.0, 0.0
    for group in rules["groups"]:
        items = [_score_item(answer, item, reasons) for item in group["items"]]
        subtotal = sum((item["points"] for item in items), 0.0)
        total += subtotal
        scored_max += sum((item["max_points"] for item in items if item["scored"]), 0.0)
        groups.append(
            {
                "group": group["group"],
                "name": group["name"],
                "max_points": sum((item["max_points"] for item in items), 0.0),
                "points": round(subtotal, 2),
                "items": items,
            }
        )
    return {
        "period": answer["period"],
        "rules_version": rules["version"],
        "groups": groups,
        "total": round(total, 2),
        "max_total": round(sum(g["max_points"] for g in groups), 2),
        "scored_max_total": round(scored_max, 2),
    }


def _score_item(answer: Mapping[str, Any], item: Mapping[str, Any], reasons: Mapping[str, str]) -> dict[str, Any]:
    """One item of the 766 rules: its rate from the answer (none when the rules name none), points."""
    name = item.get("rate")
    rate = rate_of(answer, name) if name else None
    note = None
    if rate is None:
        note = reasons.get(name, "no case in the denominator") if name else item.get("deviation")
    return {
        "item": item["item"],
        "name": item["name"],
        "rate": rate,
        "threshold": item["threshold"],
        "max_points": item["max"],
        "points": points(rate, item["max"], item["threshold"]),
        "scored": bool(name),
        "note": note,
        "deviation": item.get("deviation"),
    }


def band_points(rate: float | None, bands: list[Mapping[str, Any]]) -> float:
    if rate is None:
        return 0.0
    for band in sorted(bands, key=lambda b: -b["min"]):
        if rate >= band["min"] - 1e-12:
            return float(band["points"])
    return 0.0

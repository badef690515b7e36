"""The indicator counters: which counters a case adds to, on which day and for which agency, and the
contract's /v1/indicators answer from their prefix sums.

Every figure of the answer for a period [S, E) (whole days, Vietnam time) is a sum or a difference
of prefix sums P(x) = Σ counters of the days before x, over four day points of a case: received day
r, end day e, the day o the case counts overdue from (`overdue_from`: its due day, unless it waits
for the citizen or its clock is stopped — S-766DOC 2.1, contract v1.1), and m = max(o, e):

    received in the period  = P_E(r) − P_S(r)          carried over = P_S(r) − P_S(f) + P_S(Tcr)
    finished in the period  = P_E(f) − P_S(f)          pending at E = P_E(r) − P_E(f) + P_E(Tr)
    pending and overdue     = P_E(D) − P_E(M) + P_E(TD)  (overdue before E, not finished before E)

and the 766, apology and complaint figures likewise over flagged subsets (`indicators_from_prefix_sums`).
Every day point counts for the agency holding the case at its instant (`agency_history`, contract
v1.1: agencies change); the handover counters move a lasting state (pending, overdue, …) from one
holder to the next on the handover's day, so each agency's prefix sums stay exact; over every agency
they sum to zero.

The counters are stored under short keys (`CaseCounter`'s constants) in every bucket document; the
names say what each one counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final

from shared.domain.calendar import VN_TZ
from shared.domain.indicators import Period, Tallies, assemble, digitized_with_e_result, holder_at, overdue_from

CHANNELS = ("online", "direct", "postal")
RESULT_DATES = ("early", "on_time", "late")  # Biểu 06: the result's day against the due day


class CaseCounter:
    """The counters the cases of a bucket add to on a day: each name is the key stored in the buckets.

    Plain string constants, not an Enum: they are read for every day point of every case change."""

    RECEIVED: Final = "r"
    """Received (tiếp nhận): counts from the receipt day until the end day (FINISHED)."""
    RECEIVED_ONLINE: Final = "r_online"
    """Received through the online channel (trực tuyến)."""
    RECEIVED_DIRECT: Final = "r_direct"
    """Received at the one-stop desk (trực tiếp), and every channel not reported."""
    RECEIVED_POSTAL: Final = "r_postal"
    """Received by post (bưu chính công ích)."""
    FULL_ONLINE_ELIGIBLE: Final = "elig"
    """Received for a procedure that can be done fully online (đủ điều kiện trực tuyến toàn trình)."""
    RECEIVED_FULL_ONLINE: Final = "full"
    """Received fully online (trực tuyến toàn trình), among the eligible."""
    FEE_BEARING: Final = "fee"
    """Received for a procedure with a fee or charge."""
    PAID_ONLINE: Final = "paid"
    """A fee-bearing case paid online (thanh toán trực tuyến)."""
    COMPONENTS_DIGITIZED: Final = "dig"
    """Received with its components digitized (số hóa thành phần hồ sơ)."""
    DIGITIZED_WITH_E_RESULT: Final = "digE"
    """Components digitized and an electronic result (766 item 4.2)."""
    REUSED: Final = "reu"
    """Received reusing digitized data (tái sử dụng)."""
    RECEIVED_WITH_DUE: Final = "rD"
    """Received with a statutory due date: the cases the 766 on-time rate counts."""
    RECEIVED_WITH_DUE_MANY_SUPPLEMENTS: Final = "rDM"
    """Received with a due date, more than one supplement request (late whatever the instants)."""
    RECEIVED_WITH_DUE_COMPLAINT: Final = "rDC"
    """Received with a due date, with a complaint or an unsatisfied rating (766 item 5.4)."""
    FINISHED: Final = "f"
    """Finished (end of processing: processed, returned, withdrawn or stopped)."""
    FINISHED_EARLY_BY_DATE: Final = "f_early"
    """Finished on a day before the due day (Biểu 06 trước hạn)."""
    FINISHED_ON_TIME_BY_DATE: Final = "f_on_time"
    """Finished on the due day (Biểu 06 đúng hạn)."""
    FINISHED_LATE_BY_DATE: Final = "f_late"
    """Finished on a day after the due day (Biểu 06 quá hạn)."""
    RETURNED: Final = "ret"
    """Finished with a result channel reported (trả kết quả)."""
    RETURNED_POSTAL: Final = "retP"
    """Finished with the result returned by post."""
    FINISHED_WITH_DUE: Final = "fD"
    """Finished, with a due date: leaves RECEIVED_WITH_DUE."""
    FINISHED_ON_TIME: Final = "fOT"
    """Finished on time on exact instants, at most one supplement request (766 item 2.1)."""
    FINISHED_LATE: Final = "fL"
    """Finished after its due instant."""
    FINISHED_LATE_WITH_APOLOGY: Final = "fLA"
    """Finished late, with an apology issued on time (apology coverage)."""
    FINISHED_WITH_DUE_MANY_SUPPLEMENTS: Final = "fDM"
    """Finished, with a due date and more than one supplement request: leaves RECEIVED_WITH_DUE_MANY_SUPPLEMENTS."""
    FINISHED_WITH_DUE_COMPLAINT: Final = "fDC"
    """Finished, with a due date and a complaint: leaves RECEIVED_WITH_DUE_COMPLAINT."""
    OVERDUE: Final = "D"
    """Counts overdue (quá hạn) from the day of `overdue_from` until OVERDUE_ENDED."""
    OVERDUE_MANY_SUPPLEMENTS: Final = "DM"
    """Overdue, with more than one supplement request."""
    OVERDUE_WITH_APOLOGY: Final = "DA"
    """Overdue, with an apology issued on time."""
    OVERDUE_ENDED: Final = "M"
    """Overdue no more: on the day of max(overdue_from, end)."""
    OVERDUE_MANY_SUPPLEMENTS_ENDED: Final = "MM"
    """Leaves OVERDUE_MANY_SUPPLEMENTS."""
    OVERDUE_WITH_APOLOGY_ENDED: Final = "MA"
    """Leaves OVERDUE_WITH_APOLOGY."""
    HANDED_OVER_RECEIVED: Final = "Tr"
    """A pending case moved to the successor agency on the handover's day (−1 before, +1 after)."""
    HANDED_OVER_RECEIVED_WITH_DUE: Final = "TrD"
    """RECEIVED_WITH_DUE moved at a handover."""
    HANDED_OVER_RECEIVED_WITH_DUE_MANY_SUPPLEMENTS: Final = "TrDM"
    """RECEIVED_WITH_DUE_MANY_SUPPLEMENTS moved at a handover."""
    HANDED_OVER_RECEIVED_WITH_DUE_COMPLAINT: Final = "TrDC"
    """RECEIVED_WITH_DUE_COMPLAINT moved at a handover."""
    HANDED_OVER_OVERDUE: Final = "TD"
    """OVERDUE moved at a handover."""
    HANDED_OVER_OVERDUE_MANY_SUPPLEMENTS: Final = "TDM"
    """OVERDUE_MANY_SUPPLEMENTS moved at a handover."""
    HANDED_OVER_OVERDUE_WITH_APOLOGY: Final = "TDA"
    """OVERDUE_WITH_APOLOGY moved at a handover."""
    HANDED_OVER_CARRIED_OVER: Final = "Tcr"
    """A pending case moved on the day before a handover (the day of the instant just before it),
    so that P_S counts the handovers up to S itself: carried over into a period counts for the
    agency holding the case at its start."""


C = CaseCounter  # short in the tables and sums below

HANDED_OVER = {
    C.RECEIVED: C.HANDED_OVER_RECEIVED,
    C.RECEIVED_WITH_DUE: C.HANDED_OVER_RECEIVED_WITH_DUE,
    C.RECEIVED_WITH_DUE_MANY_SUPPLEMENTS: C.HANDED_OVER_RECEIVED_WITH_DUE_MANY_SUPPLEMENTS,
    C.RECEIVED_WITH_DUE_COMPLAINT: C.HANDED_OVER_RECEIVED_WITH_DUE_COMPLAINT,
    C.OVERDUE: C.HANDED_OVER_OVERDUE,
    C.OVERDUE_MANY_SUPPLEMENTS: C.HANDED_OVER_OVERDUE_MANY_SUPPLEMENTS,
    C.OVERDUE_WITH_APOLOGY: C.HANDED_OVER_OVERDUE_WITH_APOLOGY,
}
"""The counter that moves each lasting state from one holder to the next at a handover."""

OVERDUE_ENDED = {
    C.OVERDUE: C.OVERDUE_ENDED,
    C.OVERDUE_MANY_SUPPLEMENTS: C.OVERDUE_MANY_SUPPLEMENTS_ENDED,
    C.OVERDUE_WITH_APOLOGY: C.OVERDUE_WITH_APOLOGY_ENDED,
}
"""The counter that closes each overdue state on the day it ends."""

RECEIVED_BY_CHANNEL = {
    "online": C.RECEIVED_ONLINE,
    "direct": C.RECEIVED_DIRECT,
    "postal": C.RECEIVED_POSTAL,
}
FINISHED_BY_RESULT_DATE = {
    "early": C.FINISHED_EARLY_BY_DATE,
    "on_time": C.FINISHED_ON_TIME_BY_DATE,
    "late": C.FINISHED_LATE_BY_DATE,
}

Point = tuple[str, date, str]  # (agency holding the case then, day, counter)
Handover = tuple[datetime, str, str]  # (instant, agency before, agency after)
INSTANT = timedelta(microseconds=1)


def _local_day(moment: datetime) -> date:
    return moment.astimezone(VN_TZ).date()


def day_points(fact: Mapping[str, Any]) -> Counter[Point]:
    """(agency, day, counter) → +n for one case's facts; empty before the case is received.

    Each day point counts for the agency holding the case at its instant (`holder_at`: received for
    the holder at receipt, finished for the holder at the end, …). A state that lasts between two
    points (pending r…f, overdue D…M and their flagged subsets) moves with the case at a handover:
    its HANDED_OVER counter takes 1 from the agency before and gives it to the agency after, on the
    handover's day, so that P_E(in) − P_E(out) + P_E(T) is the state at E of each agency's cases
    held just before E."""
    out: Counter[Point] = Counter()
    received: datetime | None = fact.get("received_at")
    if received is None:
        return out
    end: datetime | None = fact.get("end_at")
    pending = _pending_states(fact)
    holder = holder_at(fact, received)
    for counter in _received_counters(fact) + pending[1:]:
        out[(holder, _local_day(received), counter)] += 1
    if end is not None:
        holder = holder_at(fact, end)
        for counter in _finished_counters(fact):
            out[(holder, _local_day(end), counter)] += 1
    handovers = _handovers(fact)
    for at, before, after in _within(handovers, received, end):
        _move(out, at, before, after, pending)
        day_before = _local_day(at - INSTANT)
        out[(before, day_before, C.HANDED_OVER_CARRIED_OVER)] -= 1
        out[(after, day_before, C.HANDED_OVER_CARRIED_OVER)] += 1
    _add_overdue(out, fact, end, handovers)
    return out


def _many_supplements(fact: Mapping[str, Any]) -> bool:
    return (fact.get("supplement_requests") or 0) > 1


def _complaint(fact: Mapping[str, Any]) -> bool:
    return bool(fact.get("complaint")) or fact.get("satisfied") is False


def _received_counters(fact: Mapping[str, Any]) -> list[str]:
    """The counters a case adds to on its receipt day, besides its lasting states."""
    counters = [C.RECEIVED, RECEIVED_BY_CHANNEL.get(fact.get("channel") or "", C.RECEIVED_DIRECT)]
    if fact.get("full_online_eligible"):
        counters.append(C.FULL_ONLINE_ELIGIBLE)
        if fact.get("online_mode") == "full":
            counters.append(C.RECEIVED_FULL_ONLINE)
    if fact.get("fee_bearing"):
        counters.append(C.FEE_BEARING)
        if fact.get("paid_online"):
            counters.append(C.PAID_ONLINE)
    if fact.get("components_digitized"):
        counters.append(C.COMPONENTS_DIGITIZED)
    if digitized_with_e_result(fact):
        counters.append(C.DIGITIZED_WITH_E_RESULT)
    if fact.get("reused"):
        counters.append(C.REUSED)
    return counters


def _pending_states(fact: Mapping[str, Any]) -> list[str]:
    """The states between receipt and end, moved at a handover (RECEIVED first)."""
    states = [C.RECEIVED]
    if fact.get("due_at") is not None:
        states.append(C.RECEIVED_WITH_DUE)
        if _many_supplements(fact):
            states.append(C.RECEIVED_WITH_DUE_MANY_SUPPLEMENTS)
        if _complaint(fact):
            states.append(C.RECEIVED_WITH_DUE_COMPLAINT)
    return states


def _finished_counters(fact: Mapping[str, Any]) -> list[str]:
    """The counters a finished case adds to on its end day."""
    counters = [C.FINISHED]
    dated = FINISHED_BY_RESULT_DATE.get(fact.get("result_dated") or "")
    if dated is not None:
        counters.append(dated)
    if fact.get("result_channel"):
        counters.append(C.RETURNED)
        if fact["result_channel"] == "postal":
            counters.append(C.RETURNED_POSTAL)
    due = fact.get("due_at")
    if due is None:
        return counters
    counters.append(C.FINISHED_WITH_DUE)
    if fact.get("on_time"):
        counters.append(C.FINISHED_ON_TIME)
    if fact["end_at"] > due:
        counters.append(C.FINISHED_LATE)
        if fact.get("apology_on_time"):
            counters.append(C.FINISHED_LATE_WITH_APOLOGY)
    if _many_supplements(fact):
        counters.append(C.FINISHED_WITH_DUE_MANY_SUPPLEMENTS)
    if _complaint(fact):
        counters.append(C.FINISHED_WITH_DUE_COMPLAINT)
    return counters


def _add_overdue(out: Counter[Point], fact: Mapping[str, Any], end: datetime | None, handovers: list[Handover]) -> None:
    """OVERDUE and its subsets count from the day the case counts overdue (not from due) until the
    day of max(overdue_from, end)."""
    late_from = overdue_from(fact)
    if late_from is None:
        return
    overdue = [C.OVERDUE]
    if _many_supplements(fact):
        overdue.append(C.OVERDUE_MANY_SUPPLEMENTS)
    if fact.get("apology_on_time"):
        overdue.append(C.OVERDUE_WITH_APOLOGY)
    for counter in overdue:
        out[(holder_at(fact, late_from), _local_day(late_from), counter)] += 1
    if end is not None:
        last = max(late_from, end)
        for counter in overdue:
            out[(holder_at(fact, last), _local_day(last), OVERDUE_ENDED[counter])] += 1
    for at, before, after in _within(handovers, late_from, end):
        _move(out, at, before, after, overdue)


def _move(out: Counter[Point], at: datetime, before: str, after: str, states: Iterable[str]) -> None:
    day = _local_day(at)
    for state in states:
        out[(before, day, HANDED_OVER[state])] -= 1
        out[(after, day, HANDED_OVER[state])] += 1


def _handovers(fact: Mapping[str, Any]) -> list[Handover]:
    """(instant, agency before, agency after) of each change of holder in `agency_history`."""
    history = fact.get("agency_history") or ()
    out = []
    for entry in history[1:]:
        at = entry["from"]
        before, after = holder_at(fact, at, just_before=True), holder_at(fact, at)
        if before != after:
            out.append((at, before, after))
    return out


def _within(handovers: list[Handover], since: datetime, until: datetime | None) -> list[Handover]:
    """The handovers a state from `since` to `until` (None: still on) goes through: after `since`
    (its first point counts for the holder then) up to `until` itself (its last point counts for
    the holder from then)."""
    return [h for h in handovers if since < h[0] and (until is None or h[0] <= until)]


def indicators_from_prefix_sums(
    at_start: Mapping[str, int], at_end: Mapping[str, int], period: Period
) -> dict[str, Any]:
    """The contract's /v1/indicators answer (with `extra`, as `shared.domain.indicators` gives it)
    from the counters summed over the days before the period (P_S) and before its end (P_E)."""
    s, e = at_start, at_end

    def in_period(counter: str) -> int:
        return e.get(counter, 0) - s.get(counter, 0)

    def held_at_end(state: str, ended: str) -> int:
        """A state's cases at E, for the agencies holding them just before E."""
        return e.get(state, 0) - e.get(ended, 0) + e.get(HANDED_OVER[state], 0)

    carried_over = s.get(C.RECEIVED, 0) - s.get(C.FINISHED, 0) + s.get(C.HANDED_OVER_CARRIED_OVER, 0)
    received = {"total": in_period(C.RECEIVED), "carried_over": carried_over} | {
        channel: in_period(counter) for channel, counter in RECEIVED_BY_CHANNEL.items()
    }
    finished = {"total": in_period(C.FINISHED)} | {
        dated: in_period(counter) for dated, counter in FINISHED_BY_RESULT_DATE.items()
    }
    overdue = held_at_end(C.OVERDUE, C.OVERDUE_ENDED)
    pending_total = held_at_end(C.RECEIVED, C.FINISHED)
    pending = {"total": pending_total, "within_due": pending_total - overdue, "overdue": overdue}
    with_due = held_at_end(C.RECEIVED_WITH_DUE, C.FINISHED_WITH_DUE)
    many_supplements = held_at_end(C.RECEIVED_WITH_DUE_MANY_SUPPLEMENTS, C.FINISHED_WITH_DUE_MANY_SUPPLEMENTS)
    many_supplements_overdue = held_at_end(C.OVERDUE_MANY_SUPPLEMENTS, C.OVERDUE_MANY_SUPPLEMENTS_ENDED)
    tallies = Tallies(
        # pending within due counts on time unless it had more than one supplement request
        on_time=in_period(C.FINISHED_ON_TIME) + (with_due - overdue) - (many_supplements - many_supplements_overdue),
        counted=in_period(C.FINISHED_WITH_DUE) + with_due,
        eligible=in_period(C.FULL_ONLINE_ELIGIBLE),
        full=in_period(C.RECEIVED_FULL_ONLINE),
        fee=in_period(C.FEE_BEARING),
        paid=in_period(C.PAID_ONLINE),
        digitized=in_period(C.COMPONENTS_DIGITIZED),
        reused=in_period(C.REUSED),
        late=in_period(C.FINISHED_LATE) + overdue,
        late_with_apology=in_period(C.FINISHED_LATE_WITH_APOLOGY)
        + held_at_end(C.OVERDUE_WITH_APOLOGY, C.OVERDUE_WITH_APOLOGY_ENDED),
        complaints=in_period(C.FINISHED_WITH_DUE_COMPLAINT)
        + held_at_end(C.RECEIVED_WITH_DUE_COMPLAINT, C.FINISHED_WITH_DUE_COMPLAINT),
        returned=in_period(C.RETURNED),
        returned_postal=in_period(C.RETURNED_POSTAL),
        digitized_e_result=in_period(C.DIGITIZED_WITH_E_RESULT),
    )
    return assemble(period, received, finished, pending, tallies)

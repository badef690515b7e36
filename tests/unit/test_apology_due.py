"""The apology-due window (issue #19): which open cases an officer must apologise for now.

Source, contract v1.1: "`GET /v1/cases/apology-due`: open cases with no apology whose
`apology_deadline_at` lies within `TTHC_APOLOGY_DUE_WORKING_HOURS` (default 8) after `as_of`, or
has passed while `due_at` has not".
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.deadline.timers import fired, next_check_at, transition_instants
from shared.config import load_registry
from shared.domain.apology_due import DUE_AFTER_APOLOGY_AT_MOST, apology_due, apology_late
from shared.domain.calendar import VN_TZ
from shared.domain.deadlines import WORKING_DAY_SECONDS
from shared.domain.fold import fold_case
from tests.support.folds import CASE, RECEIVED, REGISTRY, ev

CALENDAR = load_registry("config").calendar_for(None)
WINDOW_SECONDS = 8 * 3600  # the default TTHC_APOLOGY_DUE_WORKING_HOURS


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN_TZ)


# as_of (Mon 2026-03-23 10:00 unless said), apology deadline, due, apology present, expected
CASES = [
    # in the window: the apology deadline within 8 working hours after as_of
    ("2026-03-23T10:00", "2026-03-23T10:00", "2026-03-24T10:00", False, True),  # at as_of itself
    ("2026-03-23T10:00", "2026-03-23T16:00", "2026-03-24T16:00", False, True),
    ("2026-03-23T10:00", "2026-03-24T10:00", "2026-03-25T10:00", False, True),  # exactly 8 working hours on
    ("2026-03-23T10:00", "2026-03-24T10:01", "2026-03-25T10:01", False, False),  # one minute beyond
    ("2026-03-20T16:00", "2026-03-23T15:00", "2026-03-24T15:00", False, True),  # over the weekend
    # passed, and the case is not overdue: late, but an apology is still possible
    ("2026-03-23T10:00", "2026-03-23T09:59", "2026-03-24T09:59", False, True),
    ("2026-03-23T10:00", "2026-03-20T10:00", "2026-03-23T10:00", False, True),  # due at as_of: not overdue yet
    ("2026-03-23T10:00", "2026-03-20T10:00", "2026-03-23T09:59", False, False),  # overdue: the overdue list
    # an apology issued: never listed
    ("2026-03-23T10:00", "2026-03-23T16:00", "2026-03-24T16:00", True, False),
    ("2026-03-23T10:00", "2026-03-23T09:00", "2026-03-24T09:00", True, False),
    # far from it
    ("2026-03-23T10:00", "2026-03-30T10:00", "2026-03-31T10:00", False, False),
    # at_due procedures (NĐ 297 group) and sub-day procedures: the apology deadline is due itself
    ("2026-03-23T10:00", "2026-03-23T15:00", "2026-03-23T15:00", False, True),
    ("2026-03-23T10:00", "2026-03-23T09:00", "2026-03-23T09:00", False, False),
]


@pytest.mark.parametrize(("as_of", "apology_at", "due_at", "apology", "expected"), CASES)
def test_the_apology_due_window(as_of: str, apology_at: str, due_at: str, apology: bool, expected: bool) -> None:
    start = at(as_of)
    window_end = CALENDAR.add_working_time(start, WINDOW_SECONDS)
    assert apology_due(start, window_end, at(apology_at), at(due_at), apology) is expected


def test_a_case_with_no_apology_deadline_is_never_listed() -> None:
    start = at("2026-03-23T10:00")
    end = CALENDAR.add_working_time(start, WINDOW_SECONDS)
    assert not apology_due(start, end, None, at("2026-03-24T10:00"), False)
    assert not apology_late(start, None)


def test_late_means_the_apology_deadline_has_passed() -> None:
    assert apology_late(at("2026-03-23T10:00"), at("2026-03-23T09:59"))
    assert not apology_late(at("2026-03-23T10:00"), at("2026-03-23T10:00"))


@pytest.mark.parametrize("due_at", ["2026-02-23T08:00", "2026-09-03T07:30", "2026-05-04T13:30", "2026-03-24T10:00"])
def test_a_listed_case_is_due_within_the_walk_bound_also_across_holidays(due_at: str) -> None:
    """The lists walk the cases by due instant up to DUE_AFTER_APOLOGY_AT_MOST after the window's
    end: one working day before due puts the apology deadline in the window (at its end, the latest)
    and due inside the bound, over Tết 2026 (16–20/02), Quốc khánh (31/08–02/09) and 30/4–1/5 too."""
    due = at(due_at)
    deadline = CALENDAR.subtract_working_time(due, WORKING_DAY_SECONDS)  # one working day before due
    window_start = CALENDAR.subtract_working_time(deadline, WINDOW_SECONDS)
    window_end = CALENDAR.add_working_time(window_start, WINDOW_SECONDS)
    assert apology_due(window_start, window_end, deadline, due, False)
    assert due <= CALENDAR.add_working_time(window_end, DUE_AFTER_APOLOGY_AT_MOST)


# --- the timer transition: deadline.apology_due_soon when a case enters the window -----------------


def test_the_timer_fires_when_the_case_enters_the_window_once_and_not_after_an_apology() -> None:
    state = fold_case([RECEIVED], REGISTRY)
    document = {**state.as_dict(), "_id": CASE, "open": True}
    calendar = REGISTRY.calendar_for(document["agency_code"])
    instants = transition_instants(document, calendar, WINDOW_SECONDS, WINDOW_SECONDS)
    entering = instants["deadline.apology_due_soon"]
    assert entering == calendar.subtract_working_time(document["apology_deadline_at"], WINDOW_SECONDS)
    assert next_check_at(document, calendar, WINDOW_SECONDS, WINDOW_SECONDS) == entering  # the first transition
    assert fired(document, calendar, WINDOW_SECONDS, entering - timedelta(minutes=1), WINDOW_SECONDS) == []
    [event] = fired(document, calendar, WINDOW_SECONDS, entering, WINDOW_SECONDS)
    assert event["type"] == "deadline.apology_due_soon" and event["occurred_at"] == entering.isoformat()
    assert event["data"]["apology_deadline_at"] == document["apology_deadline_at"].isoformat()
    marked = {**document, "emitted": [event["event_id"]]}
    assert fired(marked, calendar, WINDOW_SECONDS, entering, WINDOW_SECONDS) == []  # once
    assert next_check_at(marked, calendar, WINDOW_SECONDS, WINDOW_SECONDS) > entering

    apology = ev(
        2,
        "apology.issued",
        "2026-03-20T10:00:00",
        issuer_agency="000.00.02.H99",
        reason="r",
        new_due_at="2026-04-10T17:00:00+07:00",
        issued_at="2026-03-20T10:00:00+07:00",
    )
    apologised = {**fold_case([RECEIVED, apology], REGISTRY).as_dict(), "_id": CASE, "open": True}
    assert "deadline.apology_due_soon" not in transition_instants(apologised, calendar, WINDOW_SECONDS)
    finished = fold_case([RECEIVED, ev(2, "case.processed", "2026-03-20T10:00:00", outcome="approved")], REGISTRY)
    closed = {**finished.as_dict(), "_id": CASE, "open": False}
    assert fired(closed, calendar, WINDOW_SECONDS, entering, WINDOW_SECONDS) == []

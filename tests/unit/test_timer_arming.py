"""Arming a case's timer from the projection: only when its timing changed, never later than due."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo import InsertOne, UpdateOne

from services.deadline.timers import next_check_at, timer_inputs, timer_writes
from shared.domain.calendar import VN_TZ
from shared.domain.fold import CaseEvent, fold_case
from tests.support.folds import CASE, RECEIVED, REGISTRY, ev

DAY = 8 * 3600  # the default due-soon threshold: one working day


def document(*events: CaseEvent) -> dict:
    state = fold_case(list(events), REGISTRY)
    return {**state.as_dict(), "open": state.received and not state.finished}


def as_stored(document: dict) -> dict:
    """As the store hands it back: milliseconds, in its own zone."""

    def back(value):
        if isinstance(value, datetime):
            return value.replace(microsecond=value.microsecond // 1000 * 1000).astimezone(VN_TZ)
        if isinstance(value, dict):
            return {k: back(v) for k, v in value.items()}
        return value

    return {k: back(v) for k, v in document.items()}


def arm(before: dict | None, after: dict) -> list:
    return timer_writes([(CASE, before, after)], REGISTRY.calendar_for, DAY, datetime.now(UTC))


def test_a_new_case_is_armed_at_its_first_transition() -> None:
    new = document(RECEIVED)
    [write] = arm(None, new)
    assert isinstance(write, InsertOne) and write._doc["_id"] == CASE  # a leftover is upserted then
    at = write._doc["next_check_at"]
    assert at == next_check_at({**new, "_id": CASE}, REGISTRY.calendar_for(new["agency_code"]), DAY)
    assert at < new["due_at"]  # due soon comes first
    assert write._doc["inputs"] == timer_inputs(new)
    assert "emitted" not in write._doc  # the sweeper's marks are never written here


def test_a_known_case_whose_timing_changed_is_re_armed_by_a_set_that_leaves_the_marks() -> None:
    before = document(RECEIVED)
    apologised = document(
        RECEIVED,
        ev(
            2,
            "apology.issued",
            "2026-03-26T10:00:00",
            issuer_agency="000.00.02.H99",
            reason="r",
            new_due_at="2026-04-10T17:00:00+07:00",
            issued_at="2026-03-26T10:00:00+07:00",
        ),
    )
    [write] = arm(as_stored(before), apologised)
    assert isinstance(write, UpdateOne) and write._filter == {"_id": CASE} and write._upsert
    assert set(write._doc) == {"$set"} and set(write._doc["$set"]) == {"next_check_at", "inputs", "armed_at"}
    assert write._doc["$set"]["inputs"] != timer_inputs(before)


def test_an_event_that_does_not_change_the_timing_writes_no_timer() -> None:
    before = document(RECEIVED)
    after = document(RECEIVED, ev(2, "case.digitized", "2026-03-16T10:00:00"))
    assert arm(as_stored(before), after) == []
    as_utc = {k: v.astimezone(UTC) if isinstance(v, datetime) else v for k, v in after.items()}
    assert timer_inputs(as_utc) == timer_inputs(as_stored(before))


def test_a_pause_disarms_and_the_end_closes_the_timer_only_where_a_check_is_still_set() -> None:
    before = document(RECEIVED)
    paused = document(RECEIVED, ev(2, "case.supplement_requested", "2026-03-17T09:00:00"))
    [write] = arm(as_stored(before), paused)
    # a timer whose transitions all fired has no check: nothing to write for it
    assert isinstance(write, UpdateOne) and write._filter == {"_id": CASE, "next_check_at": {"$ne": None}}
    assert not write._upsert and write._doc["$set"]["next_check_at"] is None
    assert write._doc["$set"]["inputs"] == timer_inputs(paused)
    done = document(RECEIVED, ev(2, "case.processed", "2026-03-18T09:00:00", outcome="approved"))
    [write] = arm(as_stored(before), done)
    assert write._doc["$set"]["next_check_at"] is None and not done["open"]
    assert write._filter == {"_id": CASE, "next_check_at": {"$ne": None}}


def test_a_case_ended_while_paused_is_disarmed_the_same_way_whatever_its_timer_holds() -> None:
    """Its timer may still be armed (an attempt that armed it failed, and came again paused): the
    write does not trust the case read before it."""
    paused = document(RECEIVED, ev(2, "case.supplement_requested", "2026-03-17T09:00:00"))
    ended = document(
        RECEIVED,
        ev(2, "case.supplement_requested", "2026-03-17T09:00:00"),
        ev(3, "case.processed", "2026-03-18T09:00:00", outcome="approved"),
    )
    assert timer_inputs(ended) != timer_inputs(as_stored(paused)) and not ended["open"]
    [write] = arm(as_stored(paused), ended)
    assert write._filter == {"_id": CASE, "next_check_at": {"$ne": None}} and not write._upsert
    assert write._doc["$set"]["next_check_at"] is None and write._doc["$set"]["inputs"] == timer_inputs(ended)


def test_a_case_not_yet_received_gets_no_timer_until_it_is() -> None:
    early = document(ev(2, "case.digitized", "2026-03-16T10:00:00"))
    assert arm(None, early) == []
    assert len(arm(as_stored(early), document(ev(2, "case.digitized", "2026-03-16T10:00:00"), RECEIVED))) == 1

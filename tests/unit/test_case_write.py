"""The projection's write of one case: inserted when new, replaced at the revision read when known."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import InsertOne, ReplaceOne

from shared.domain.calendar import VN_TZ
from shared.projection import case_write

RECEIVED = datetime(2026, 3, 16, 8, 0, tzinfo=VN_TZ)


def document(**changes):
    base = {
        "case_code": "H99-1",
        "status": "received",
        "open": True,
        "received_at": RECEIVED,
        "due_at": RECEIVED + timedelta(days=14),
        "apology": None,
        "supplement_requests": 0,
        "timeline": [{"type": "case.received", "at": RECEIVED}],
        "events": [{"event_id": "e1", "type": "case.received"}],
    }
    return {**base, **changes}


def test_a_case_the_batch_found_absent_is_inserted_whole_at_revision_1() -> None:
    new = document()
    write = case_write("H99-1", new, None)
    assert isinstance(write, InsertOne)
    assert write._doc == {"_id": "H99-1", **new, "rev": 1}
    assert "_id" not in new and "rev" not in new  # the folded document (the batch's result) is left as it was


def test_a_known_case_is_replaced_at_the_revision_read_keeping_what_other_writers_put_on_it() -> None:
    marks = ["H99-1:deadline.due_soon:x"]
    stored = {"_id": "H99-1", **document(), "emitted": marks, "next_check_at": RECEIVED, "rev": 4}
    events = [*stored["events"], {"event_id": "e2", "type": "case.supplement_requested"}]
    new = document(status="supplement_requested", supplement_requests=1, events=events)
    write = case_write("H99-1", new, stored)
    assert isinstance(write, ReplaceOne) and not write._upsert  # never recreates a fragment
    assert write._filter == {"_id": "H99-1", "rev": 4}  # not if the sweeper marked it since the read
    assert write._doc == {**new, "_id": "H99-1", "emitted": marks, "next_check_at": RECEIVED, "rev": 5}


def test_a_field_the_fold_sets_wins_over_the_stored_one() -> None:
    stored = {"_id": "H99-1", **document(), "next_check_at": RECEIVED, "rev": 1}
    later = RECEIVED + timedelta(days=3)
    assert case_write("H99-1", document(next_check_at=later), stored)._doc["next_check_at"] == later


def test_a_case_written_before_revisions_is_replaced_if_still_without_one() -> None:
    stored = {"_id": "H99-1", **document()}
    write = case_write("H99-1", document(status="processed"), stored)
    assert write._filter == {"_id": "H99-1", "rev": None}  # the store's null also matches a missing field
    assert write._doc["rev"] == 1 and write._doc["status"] == "processed"

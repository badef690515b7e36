"""The projection's write of one case: inserted when new, only what changed when known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo import InsertOne, UpdateOne

from shared.domain.calendar import VN_TZ
from shared.projection import case_write, same

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


def test_a_case_the_batch_found_absent_is_inserted_whole() -> None:
    new = document()
    write = case_write("H99-1", new, None)
    assert isinstance(write, InsertOne)
    assert write._doc == {"_id": "H99-1", **new}
    assert "_id" not in new  # the folded document (the batch's result) is left as it was


def test_a_known_case_gets_a_set_of_only_the_fields_that_changed() -> None:
    stored = {"_id": "H99-1", **document(), "emitted": ["H99-1:deadline.due_soon:x"], "next_check_at": RECEIVED}
    events = [*stored["events"], {"event_id": "e2", "type": "case.supplement_requested"}]
    timeline = [*stored["timeline"], {"type": "case.supplement_requested", "at": RECEIVED}]
    new = document(status="supplement_requested", supplement_requests=1, events=events, timeline=timeline)
    write = case_write("H99-1", new, stored)
    assert isinstance(write, UpdateOne)
    assert write._filter == {"_id": "H99-1"} and not write._upsert  # never recreates a fragment
    assert set(write._doc["$set"]) == {"status", "supplement_requests", "events", "timeline"}
    # the fields other writers keep (the sweeper's marks) are not touched
    assert "emitted" not in write._doc["$set"] and "next_check_at" not in write._doc["$set"]


def test_a_field_the_stored_case_lacks_is_set_even_when_none() -> None:
    stored = {"_id": "H99-1", **document()}
    del stored["apology"]
    assert set(case_write("H99-1", document(), stored)._doc["$set"]) == {"apology"}


def test_the_same_instant_in_another_zone_is_no_change_but_another_type_is() -> None:
    stored = {"_id": "H99-1", **document()}
    in_utc = document(received_at=RECEIVED.astimezone(UTC))
    assert case_write("H99-1", in_utc, stored)._doc["$set"] == {}
    for value in (True, 0.0, "0", None):  # 0 == False == 0.0: equal in Python, not in the store
        assert case_write("H99-1", document(supplement_requests=value), stored)._doc["$set"] == {
            "supplement_requests": value
        }


def test_same_compares_nested_containers_by_type_and_value() -> None:
    assert same({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not same({"a": [1, {"b": None}]}, {"a": [1, {"b": 0}]})
    assert not same({"a": [1]}, {"a": [1, 2]})
    assert not same({"a": 1}, {"a": 1, "b": 1})
    assert not same([1], (1,))
    assert not same(1, True) and not same(1, 1.0) and same(2.5, 2.5)

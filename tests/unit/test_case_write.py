"""The projection's write of one case: inserted when new, replaced whole (on its `_id`) when known."""

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


def test_a_case_the_batch_found_absent_is_inserted_whole() -> None:
    new = document()
    write = case_write({"_id": "H99-1", **new}, None)
    assert isinstance(write, InsertOne)
    assert write._doc == {"_id": "H99-1", **new}


def test_a_known_case_is_replaced_whole_on_its_id_alone_and_never_recreated() -> None:
    stored = {"_id": "H99-1", **document(), "left_by_an_earlier_version": 1}
    events = [*stored["events"], {"event_id": "e2", "type": "case.supplement_requested"}]
    new = document(status="supplement_requested", supplement_requests=1, events=events)
    write = case_write({"_id": "H99-1", **new}, stored)
    assert isinstance(write, ReplaceOne)
    assert write._filter == {"_id": "H99-1"}  # one field: the store's fast path
    assert not write._upsert  # a case gone since the read does not come back
    assert write._doc == {"_id": "H99-1", **new}  # what the fold made, nothing kept from the read

"""Whatever schema-valid events a case receives, the fold answers a state or a FoldError, nothing
else (contract v1.1: no single record may stop a projection; the projection quarantines the case
on a FoldError). The events come as a projection reads them: validated by the event schema, then
dumped to their stored form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.domain.codes import EventType
from shared.domain.fold import CaseEvent, CaseState, FoldError, fold_case
from shared.events import EVENT_ADAPTER
from tests.support.folds import REGISTRY

CASE = "000.00.02.H99-260316-0001"
AGENCIES = ["000.00.02.H99", "001.30.00.H99", "000.00.00.H99", "UNKNOWN.1"]
PROCEDURES = ["1.012790", "2.000580", "9.999999"]

offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# the whole range a schema-valid timestamp can take, from year 1 to 9999, with any offset
instants = st.builds(
    lambda moment, tz: moment.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offsets,
) | st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
text = st.text(max_size=20)
values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | text
    | instants.map(lambda d: d.isoformat())
)

DATA = {
    EventType.SUBMITTED: {
        "procedure_code": st.sampled_from(PROCEDURES),
        "channel": st.sampled_from(["direct", "online", "postal"]),
    },
    EventType.RECEIVED: {
        "procedure_code": st.sampled_from(PROCEDURES),
        "field_code": st.sampled_from(["G09-DD", "X"]),
        "level": st.sampled_from(["province", "commune", "district"]),
        "channel": st.sampled_from(["direct", "online", "postal"]),
        "online_mode": st.sampled_from([None, "full", "partial"]),
        "submitted_at": st.none() | instants,
        "due_at_reported": st.none() | instants,
        "fee_bearing": st.none() | st.booleans(),
    },
    EventType.SUPPLEMENT_REQUESTED: {"reason": st.none() | text},
    EventType.SUPPLEMENT_RECEIVED: {},
    EventType.PAUSED: {"reason_code": st.sampled_from(["verification", "financial_obligation", "other"])},
    EventType.RESUMED: {"reason_code": st.sampled_from(["verification", "financial_obligation", "other"])},
    EventType.TRANSFERRED: {
        "from_agency": st.sampled_from(AGENCIES),
        "to_agency": st.sampled_from(AGENCIES),
        "leg_due_at_reported": st.none() | instants,
    },
    EventType.PROCESSED: {"outcome": st.sampled_from(["approved", "denied"])},
    EventType.RETURNED: {"e_result": st.booleans(), "result_channel": st.sampled_from(["direct", "online"])},
    EventType.WITHDRAWN: {"reason": st.none() | text},
    EventType.STOPPED: {"reason": st.none() | text},
    EventType.PAID_ONLINE: {
        "amount": st.floats(min_value=0, max_value=1e300),
        "gateway": st.sampled_from(["dvcqg", "local"]),
    },
    EventType.DIGITIZED: {
        "components_digitized": st.booleans(),
        "result_digitized": st.booleans(),
        "reused": st.booleans(),
    },
    EventType.RATED: {"satisfied": st.booleans(), "complaint": st.booleans()},
    EventType.APOLOGY_ISSUED: {
        "issuer_agency": st.sampled_from(AGENCIES),
        "reason": text,
        "new_due_at": instants,
        "issued_at": instants,
    },
}


@st.composite
def stored_events(draw: st.DrawFn) -> list[dict]:
    events = []
    for n in range(draw(st.integers(min_value=1, max_value=6))):
        kind = draw(st.sampled_from(list(DATA)))
        data = {name: draw(strategy) for name, strategy in DATA[kind].items()}
        data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}
        # vendors' extra fields are kept in `data` (extra="allow"): anything JSON can hold
        data.update(draw(st.dictionaries(st.sampled_from(["x", "note", "level2"]), values, max_size=2)))
        raw = {
            "event_id": draw(st.sampled_from(["a", "b", f"e{n}"])),
            "type": kind.value,
            "case_code": CASE,
            "occurred_at": draw(instants).isoformat(),
            "agency_code": draw(st.sampled_from(AGENCIES)),
            "data": data,
        }
        try:
            event = EVENT_ADAPTER.validate_python(raw)
        except ValidationError:
            continue  # not schema-valid: the projection dead-letters it before any fold
        stored = event.model_dump(mode="json")
        stored["seq"] = n
        stored["source"] = draw(st.sampled_from(["", "admin", "key-1"]))
        events.append(stored)
    return events


@settings(max_examples=300, deadline=None)
@given(stored_events())
def test_the_fold_answers_a_state_or_a_fold_error_for_any_schema_valid_events(events: list[dict]) -> None:
    try:
        state = fold_case([CaseEvent.from_dict(e) for e in events], REGISTRY)
    except FoldError as exc:
        assert exc.case_code in (CASE, "")
        return
    assert isinstance(state, CaseState) and state.case_code == CASE
    state.as_dict()  # what the projections store


def test_an_instant_beyond_any_offset_arithmetic_is_a_fold_error_naming_the_case() -> None:
    """The record a tester sent through the intake before it had bounds (issue #18)."""
    raw = {
        "event_id": "x",
        "type": "case.received",
        "case_code": CASE,
        "occurred_at": "9999-12-31T23:59:59-12:00",
        "agency_code": "000.00.02.H99",
        "data": {"procedure_code": "1.012790", "field_code": "G09-DD", "level": "province", "channel": "direct"},
    }
    stored = EVENT_ADAPTER.validate_python(raw).model_dump(mode="json")
    try:
        fold_case([CaseEvent.from_dict(stored)], REGISTRY)
    except FoldError as exc:
        assert exc.case_code == CASE and isinstance(exc.cause, OverflowError | ValueError)
    else:
        raise AssertionError("a receipt at the end of year 9999 west of UTC cannot be folded")


def test_the_same_event_id_from_two_sources_is_two_events_and_from_one_source_one() -> None:
    """Contract v1.1: event ids are unique per source."""
    base = {
        "type": "case.supplement_requested",
        "case_code": CASE,
        "agency_code": "000.00.02.H99",
        "data": {},
    }
    received = {
        "event_id": "r",
        "type": "case.received",
        "case_code": CASE,
        "occurred_at": "2026-03-16T09:15:00+07:00",
        "agency_code": "000.00.02.H99",
        "data": {"procedure_code": "1.012790", "field_code": "G09-DD", "level": "province", "channel": "direct"},
        "source": "a",
    }
    first = {**base, "event_id": "s", "occurred_at": "2026-03-17T09:00:00+07:00", "source": "a"}
    resumed = {**base, "type": "case.supplement_received", "event_id": "u", "occurred_at": "2026-03-18T09:00:00+07:00"}
    again = {**base, "event_id": "s", "occurred_at": "2026-03-19T09:00:00+07:00", "source": "b"}
    same_source = {**again, "source": "a"}
    two = fold_case([CaseEvent.from_dict(e) for e in (received, first, resumed, again)], REGISTRY)
    one = fold_case([CaseEvent.from_dict(e) for e in (received, first, resumed, same_source)], REGISTRY)
    assert (two.supplement_requests, one.supplement_requests) == (2, 1)

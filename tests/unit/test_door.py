"""Bounds at the door (contract v1.1): timestamps, case codes, data size, nesting, district level."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from annotated_types import MaxLen
from pydantic import ValidationError

from services.intake.door import MAX_DATA_BYTES, DoorBounds, event_problems, named_type_errors
from shared.domain.calendar import VN_TZ
from shared.domain.codes import EventType
from shared.events import DATA_MODELS, EVENT_ADAPTER, example_event
from shared.settings import Settings
from shared.web import ApiError, json_depth, parse_json, pydantic_details

NOW = datetime(2026, 12, 2, 18, 0, tzinfo=VN_TZ)
BOUNDS = DoorBounds(datetime(2015, 1, 1, tzinfo=VN_TZ))


def problems_of(event: dict, nesting: int = 0) -> list[dict]:
    return event_problems(EVENT_ADAPTER.validate_python(event), BOUNDS, NOW, nesting)


def locs(event: dict) -> list[list]:
    """What the door names: the model's errors (as the intake reports them), else the bounds'."""
    try:
        return [p["loc"] for p in problems_of(event)]
    except ValidationError as exc:
        return [d["loc"] for d in pydantic_details(named_type_errors(exc.errors()))]


def received(**changes) -> dict:
    event = example_event(EventType.RECEIVED)
    data = {**event["data"], **changes.pop("data", {})}
    return {**event, **changes, "data": data}


def test_every_example_event_passes_the_door() -> None:
    for event_type in EventType:
        assert problems_of(example_event(event_type)) == [], event_type


@pytest.mark.parametrize(
    "occurred_at",
    [
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00+14:00",
        "2014-12-31T23:59:59+07:00",
        "2026-12-04T18:00:01+07:00",
    ],
)
def test_occurred_at_out_of_bounds_is_named(occurred_at: str) -> None:
    assert locs(received(occurred_at=occurred_at)) == [["occurred_at"]]


def test_bounds_are_inclusive_and_configurable() -> None:
    assert locs(received(occurred_at="2015-01-01T00:00:00+07:00")) == []
    assert locs(received(occurred_at="2026-12-03T18:00:00+07:00")) == []  # now + 1 day
    later = DoorBounds(datetime(2026, 1, 1, tzinfo=VN_TZ))
    event = EVENT_ADAPTER.validate_python(received(occurred_at="2025-06-01T09:00:00+07:00"))
    assert [p["loc"] for p in event_problems(event, later, NOW)] == [["occurred_at"]]


@pytest.mark.parametrize(
    "event_type, field",
    [
        (EventType.RECEIVED, "submitted_at"),
        (EventType.RECEIVED, "due_at_reported"),
        (EventType.TRANSFERRED, "leg_due_at_reported"),
        (EventType.APOLOGY_ISSUED, "new_due_at"),
        (EventType.APOLOGY_ISSUED, "issued_at"),
    ],
)
@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+00:00"])
def test_every_timestamp_in_data_is_bounded(event_type: EventType, field: str, value: str) -> None:
    event = example_event(event_type)
    event["data"] = {**event["data"], field: value}
    assert locs(event) == [["data", field]]


def test_reported_due_dates_may_lie_ahead_but_facts_may_not() -> None:
    in_three_weeks = (NOW + timedelta(days=21)).isoformat()
    assert locs(received(data={"due_at_reported": in_three_weeks})) == []
    assert locs(received(data={"submitted_at": in_three_weeks})) == [["data", "submitted_at"]]
    apology = example_event(EventType.APOLOGY_ISSUED)
    apology["data"] = {**apology["data"], "new_due_at": in_three_weeks, "issued_at": in_three_weeks}
    assert locs(apology) == [["data", "issued_at"]]
    in_five_years = (NOW + timedelta(days=5 * 365)).isoformat()
    assert locs(received(data={"due_at_reported": in_five_years})) == [["data", "due_at_reported"]]


@pytest.mark.parametrize("code", ["H99/2026/0001", "000 01", "hồ-sơ-1", "-0001", ".x", "A" * 65, "Ｈ99"])
def test_case_code_outside_the_pattern_is_named(code: str) -> None:
    assert locs(received(case_code=code)) == [["case_code"]]


@pytest.mark.parametrize("code", ["000.00.02.H99-260316-0001", "A", "a_b.c-9", "A" * 64])
def test_case_codes_in_the_pattern_pass(code: str) -> None:
    assert locs(received(case_code=code)) == []


def test_data_over_16_kib_is_named() -> None:
    assert locs(received(data={"note": "x" * (16 * 1024)})) == [["data"]]
    assert locs(received(data={"note": "x" * (15 * 1024)})) == []
    # measured as JSON bytes: 6000 Vietnamese letters of 2 bytes each is 12 KB, 9000 is 18 KB
    assert locs(received(data={"note": "ư" * 6000})) == []
    assert locs(received(data={"note": "ư" * 9000})) == [["data"]]


def test_data_nested_too_deep_is_named_counting_the_levels_above() -> None:
    def nested(depth: int) -> object:
        value: object = 1
        for _ in range(depth):
            value = [value]
        return value

    # the event is level 1 and data level 2: extras may nest 30 more levels in a lone event
    assert locs(received(data={"x": nested(30)})) == []
    assert locs(received(data={"x": nested(31)})) == [["data"]]
    # inside {"events": [...]} two levels are already used
    assert [p["loc"] for p in problems_of(received(data={"x": nested(29)}), nesting=2)] == [["data"]]


def test_district_level_only_for_cases_received_before_july_2025() -> None:
    before = received(occurred_at="2025-06-30T23:59:59+07:00", data={"level": "district"})
    on = received(occurred_at="2025-07-01T00:00:00+07:00", data={"level": "district"})
    utc_before_but_local_on = received(occurred_at="2025-06-30T17:00:00+00:00", data={"level": "district"})
    assert locs(before) == []
    assert locs(on) == [["data", "level"]]
    assert locs(utc_before_but_local_on) == [["data", "level"]]
    assert locs(received(occurred_at="2025-07-01T00:00:00+07:00", data={"level": "commune"})) == []


@pytest.mark.parametrize("event", [{"case_code": "X"}, {"type": "case.unknown"}, {"type": None}, {"type": 5}])
def test_missing_or_unknown_type_is_named_type(event: dict) -> None:
    with pytest.raises(ValidationError) as info:
        EVENT_ADAPTER.validate_python(event)
    assert [d["loc"] for d in pydantic_details(named_type_errors(info.value.errors()), (3,))] == [[3, "type"]]


def test_deep_body_is_400_fast_and_32_levels_parse() -> None:
    started = time.monotonic()
    with pytest.raises(ApiError) as info:
        parse_json(b"[" * 100_000)
    assert info.value.status == 400 and time.monotonic() - started < 1
    with pytest.raises(ApiError) as info:
        parse_json(b"[" * 33 + b"]" * 33)
    assert info.value.status == 400 and "32" in info.value.message
    assert json_depth(parse_json(b"[" * 32 + b"]" * 32)) == 32
    assert json_depth(parse_json(b'{"a": [{"b": 1}], "c": {}}')) == 3


@pytest.mark.parametrize("body", [b'{"a": NaN}', b"[Infinity]", b"-Infinity", b"\xff", b"{"])
def test_non_json_bodies_are_400(body: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_json(body)
    assert info.value.status == 400


def test_earliest_event_setting_reads_vietnam_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().earliest_event == datetime(2015, 1, 1, tzinfo=VN_TZ)
    monkeypatch.setenv("TTHC_EARLIEST_EVENT", "2018-01-01")
    assert Settings().earliest_event == datetime(2018, 1, 1, tzinfo=VN_TZ)
    monkeypatch.setenv("TTHC_EARLIEST_EVENT", "2018-01-01T00:00:00Z")
    assert Settings().earliest_event.utcoffset() == timedelta(0)


def test_declared_data_fields_alone_stay_under_the_data_limit() -> None:
    """door.event_problems measures `data` only when it has extras: this is why that is enough."""
    filled = 0
    for event_type, model in DATA_MODELS.items():
        event = example_event(event_type)
        for name, info in model.model_fields.items():
            limits = [m.max_length for m in info.metadata if isinstance(m, MaxLen)]
            args = getattr(info.annotation, "__args__", ())
            inner = [m for a in args for m in getattr(a, "__metadata__", ())]  # Optional[Annotated[str, …]]
            inner += [m for f in inner if hasattr(f, "metadata") for m in f.metadata]
            limits += [m.max_length for m in inner if isinstance(m, MaxLen)]
            if limits:
                event["data"][name] = "\x00" * max(limits)  # the longest JSON escape of every character
        data = EVENT_ADAPTER.validate_python(event).data
        filled += sum(isinstance(v, str) and v.startswith("\x00") for v in vars(data).values())
        assert not data.__pydantic_extra__
        assert len(data.__pydantic_serializer__.to_json(data)) < MAX_DATA_BYTES, event_type
    assert filled >= 10  # every reason, note and code was filled

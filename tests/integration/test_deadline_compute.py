"""POST /v1/deadlines/compute and GET /v1/calendar/{year}, exactly as contract.md says."""

from __future__ import annotations

import pytest

from services.deadline.app import create_app
from shared.settings import Settings
from tests.conftest import serve

pytestmark = pytest.mark.integration


async def compute(settings: Settings, body: dict) -> tuple[int, dict]:
    async with serve(create_app(settings)) as client:
        response = await client.post("/v1/deadlines/compute", json=body)
    return response.status_code, response.json()


async def test_compute_with_a_duration(settings: Settings) -> None:
    status, body = await compute(
        settings,
        {"received_at": "2026-02-13T16:00:00+07:00", "duration": {"value": 1, "unit": "working_days"}},
    )
    assert status == 200
    assert body["due_at"] == "2026-02-23T16:00:00+07:00"
    assert body["apology_deadline_at"] == "2026-02-13T16:00:00+07:00"
    assert body["calendar_version"].startswith("VN/H99:")


async def test_compute_end_of_day_and_calendar_days(settings: Settings) -> None:
    _, eod = await compute(
        settings,
        {
            "received_at": "2026-03-16T09:15:00+07:00",
            "duration": {"value": 3, "unit": "working_days"},
            "convention": "end_of_day",
        },
    )
    assert eod["due_at"] == "2026-03-19T17:00:00+07:00"
    _, days = await compute(
        settings, {"received_at": "2026-08-26T10:00:00+07:00", "duration": {"value": 5, "unit": "calendar_days"}}
    )
    assert days["due_at"] == "2026-09-03T17:00:00+07:00"  # 31/08 falls in the Quốc khánh break


async def test_compute_from_the_catalogue_with_channel_and_cutoff(settings: Settings) -> None:
    # 1.001193 Đăng ký khai sinh: same day, end_of_day, cut-off 15:00
    _, before = await compute(
        settings, {"received_at": "2026-03-16T14:00:00+07:00", "procedure_code": "1.001193", "channel": "direct"}
    )
    _, after = await compute(
        settings, {"received_at": "2026-03-16T15:30:00+07:00", "procedure_code": "1.001193", "channel": "direct"}
    )
    assert before["due_at"] == "2026-03-16T17:00:00+07:00"
    assert after["due_at"] == "2026-03-17T17:00:00+07:00"
    # 1.012792: direct 3 days, online 2 days
    _, online = await compute(
        settings, {"received_at": "2026-03-16T09:00:00+07:00", "procedure_code": "1.012792", "channel": "online"}
    )
    assert online["due_at"] == "2026-03-18T17:00:00+07:00"


async def test_compute_names_the_rule_set_and_the_apology_timing(settings: Settings) -> None:
    # 2.000580, the NĐ 297/2025 group: apology at expiry (Điều 6 k5); received under NĐ 118
    _, nd297 = await compute(
        settings, {"received_at": "2026-03-16T09:00:00+07:00", "procedure_code": "2.000580", "channel": "direct"}
    )
    assert (nd297["rule_set"], nd297["apology_timing"]) == ("nd118-2025", "at_due")
    assert nd297["apology_deadline_at"] == nd297["due_at"]
    # 4 working hours received at 14:00: one working day before due would precede the receipt (v1.1)
    _, short = await compute(
        settings,
        {"received_at": "2025-06-16T14:00:00+07:00", "duration": {"value": 4, "unit": "working_hours"}},
    )
    assert short["rule_set"] == "nd61-2018"
    assert short["apology_deadline_at"] == short["due_at"] == "2025-06-17T08:00:00+07:00"


async def test_agency_office_hours_apply(settings: Settings) -> None:
    # 015.30.00.H99 opens at 07:30
    body = {"received_at": "2026-03-16T06:00:00+07:00", "duration": {"value": 1, "unit": "working_hours"}}
    _, province = await compute(settings, body)
    _, commune = await compute(settings, {**body, "agency_code": "015.30.00.H99"})
    assert province["due_at"] == "2026-03-16T08:00:00+07:00"
    assert commune["due_at"] == "2026-03-16T08:30:00+07:00"
    assert province["calendar_version"] != commune["calendar_version"]


@pytest.mark.parametrize(
    "body, loc, fragment",
    [
        (
            {"received_at": "2026-03-16T09:00:00", "duration": {"value": 1, "unit": "working_days"}},
            ["body", "received_at"],
            "timezone",
        ),
        (
            {"received_at": "2026-03-16T09:00:00+07:00", "duration": {"value": 1, "unit": "weeks"}},
            ["body", "duration.unit"],
            "weeks",
        ),
        (
            {"received_at": "2026-03-16T09:00:00+07:00", "duration": {"value": -2, "unit": "working_days"}},
            ["body", "duration.value"],
            "negative",
        ),
        (
            {"received_at": "2026-03-16T09:00:00+07:00", "duration": {"value": 99999, "unit": "working_days"}},
            ["body", "duration.value"],
            "limit",
        ),
        (
            {"received_at": "2026-03-16T09:00:00+07:00", "procedure_code": "0.000000"},
            ["body", "procedure_code"],
            "0.000000",
        ),
        (
            {
                "received_at": "2026-03-16T09:00:00+07:00",
                "agency_code": "NOPE",
                "duration": {"value": 1, "unit": "working_days"},
            },
            ["body", "agency_code"],
            "NOPE",
        ),
        (
            {"received_at": "2035-03-16T09:00:00+07:00", "duration": {"value": 1, "unit": "working_days"}},
            ["body", "received_at"],
            "2035",
        ),
        ({"received_at": "2026-03-16T09:00:00+07:00"}, ["body", "duration"], "procedure_code"),
    ],
)
async def test_bad_input_names_what_is_wrong(settings: Settings, body, loc, fragment) -> None:
    status, answer = await compute(settings, body)
    assert status == 422
    details = answer["error"]["details"]
    assert details[0]["loc"] == loc
    assert fragment in details[0]["msg"] or fragment in answer["error"]["message"]


async def test_calendar_year(settings: Settings) -> None:
    async with serve(create_app(settings)) as client:
        response = await client.get("/v1/calendar/2026")
        missing = await client.get("/v1/calendar/2031")
    body = response.json()
    assert body["year"] == 2026
    days = {d["date"]: d["name"] for d in body["days_off"]}
    assert {"2026-02-16", "2026-02-20", "2026-04-27", "2026-08-31", "2026-09-01", "2026-09-02"} <= set(days)
    assert body["working_weekend_days"] == ["2026-08-22"]
    assert body["office_hours"] == [["07:00", "11:30"], ["13:30", "17:00"]]
    assert missing.status_code == 404 and "2031" in missing.json()["error"]["message"]

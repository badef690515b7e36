"""The law in force at receipt through the running pipeline (issue #19, contract v1.1): intake →
the real broker → the deadline projection → the real store → GET /v1/cases/{code} and the gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.deadline.app import create_app as deadline_app
from services.deadline.gauges import OVERDUE, CaseGauges
from services.intake.app import create_app as intake_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.integration.test_deadline_service import case_of, post
from tests.support.events import COMMUNE, case_code, event, received

pytestmark = pytest.mark.integration


async def test_cases_carry_the_rule_set_calendar_and_apology_timing_of_their_receipt(settings: Settings) -> None:
    old, new, nd297 = case_code(COMMUNE), case_code(COMMUNE), case_code(COMMUNE)
    async with serve(intake_app(settings)) as intake, serve(deadline_app(settings)) as deadline:
        await post(
            intake,
            # a district-level case received under NĐ 61 (three levels then)
            received(old, "2025-06-20T09:00:00+07:00", level="district", channel="direct", online_mode=None),
            received(new, "2026-03-16T09:00:00+07:00", level="commune"),
            received(
                nd297,
                "2026-03-16T16:30:00+07:00",  # within the hour before closing: counted from the next day
                procedure_code="2.000580",
                field_code="G09-KD",
                level="commune",
                channel="direct",
                online_mode=None,
            ),
        )
        refused = await intake.post(
            "/v1/events",
            json=received(case_code(COMMUNE), "2026-03-16T09:00:00+07:00", level="district"),
            headers=AUTH,
        )
        old_case = await case_of(deadline, old)
        new_case = await case_of(deadline, new)
        nd297_case = await case_of(deadline, nd297)
        calendar = (await deadline.get("/v1/calendar/2026", headers=AUTH)).json()
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["loc"][-1] == "level"
    assert (old_case["rule_set"], new_case["rule_set"]) == ("nd61-2018", "nd118-2025")
    assert old_case["level"] == "district" and old_case["problems"] == []
    assert new_case["calendar_version"] == calendar["calendar_version"]
    assert [c["name"] for c in calendar["national_changes"]] == ["Ngày Văn hóa Việt Nam"]
    assert "2026-11-24" in {d["date"] for d in calendar["days_off"]}
    # NĐ 297/2025 Điều 6 k3 and k5: from Tue 07:00, 16 working days; the apology at expiry
    assert nd297_case["due_at"] == "2026-04-07T17:00:00+07:00"
    assert nd297_case["apology_deadline_at"] == nd297_case["due_at"]


async def test_a_case_waiting_after_one_request_by_due_is_not_counted_overdue(settings: Settings) -> None:
    waiting, twice, running = case_code(COMMUNE), case_code(COMMUNE), case_code(COMMUNE)
    commune = {"level": "commune"}
    app = deadline_app(settings)
    context = app.state.context
    async with serve(intake_app(settings)) as intake, serve(app) as deadline:
        await post(
            intake,
            received(waiting, **commune),
            event("case.supplement_requested", waiting, "2026-03-17T09:00:00+07:00"),
            received(twice, **commune),
            event("case.supplement_requested", twice, "2026-03-17T09:00:00+07:00"),
            event("case.supplement_received", twice, "2026-03-18T09:00:00+07:00"),
            event("case.supplement_requested", twice, "2026-03-19T09:00:00+07:00"),
            received(running, **commune),
        )
        one = await case_of(deadline, waiting, lambda d: d["status"] == "waiting_citizen")
        two = await case_of(deadline, twice, lambda d: d["supplement_requests"] == 2)
        plain = await case_of(deadline, running)
        now = datetime.now(UTC)
        await context.gauges.refresh(now)  # from the in-memory open cases
        from_memory = OVERDUE.labels(COMMUNE, "commune")._value.get()  # noqa: SLF001

        async def from_store() -> int:  # the store's aggregation, which answers when the index cannot
            tomorrow = now + timedelta(days=1)
            rows = await context.cases.aggregate(CaseGauges.pipeline(now, tomorrow, tomorrow))
            return sum([r["overdue"] async for r in rows if r["_id"] == {"agency": COMMUNE, "level": "commune"}])

        counted = [from_memory, await from_store()]
        # documents written before cases carried overdue_from: from due unless the clock stopped,
        # on the store's path as in the index (a missing field is neither null nor a date there)
        past = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
        old = {"open": True, "agency_code": COMMUNE, "level": "commune", "received_at": past, "due_at": past}
        await context.cases.insert_many(
            [
                {"_id": "OLD-RUNNING", **old, "clock_stopped_since": None},
                {"_id": "OLD-STOPPED", **old, "clock_stopped_since": past},
            ]
        )
        counted.append(await from_store())
    assert one["overdue_from"] is None  # S-766DOC 2.1: judged at the request, made before due
    assert two["overdue_from"] == "2026-03-19T09:00:00+07:00"  # two requests: late from the second
    assert plain["overdue_from"] == plain["due_at"]
    # the gauge counts what the figures count: the running case and the twice-asked one, not the other
    assert counted == [2, 2, 3]

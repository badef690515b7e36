"""The chart series of the metrics service (issue #20): /v1/indicators/by-month and /by-agency answer
exactly what /v1/indicators answers month by month and agency by agency, with the real pipeline."""

from __future__ import annotations

import pytest

from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.events import AGENCY, COMMUNE, case_code, event, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.integration

DISSOLVED = "000.30.02.H99"  # UBND huyện Mẫu Sơn, valid_to 2025-07-01 (config/registry/agencies.json)


async def test_series_equal_the_indicators_of_each_month_and_each_agency(settings: Settings) -> None:
    events = []
    for i in range(18):
        code = case_code(COMMUNE if i % 3 == 0 else AGENCY)
        month = 9 + i % 3
        at = f"2026-{month:02d}-{2 + i:02d}T09:00:00+07:00"
        level = "commune" if code.startswith(COMMUNE) else "province"
        events.append(received(code, at=at, level=level, channel="online" if i % 2 else "direct"))
        if i % 4:
            events.append(
                event("case.processed", code, f"2026-{month:02d}-{3 + i:02d}T15:00:00+07:00", outcome="approved")
            )
    async with serve(intake_app(settings)) as intake, serve(metrics_app(settings)) as metrics:
        assert (await intake.post("/v1/events", json={"events": events}, headers=AUTH)).status_code == 202

        async def ready() -> bool:
            r = await metrics.get("/v1/indicators", params={"period": "2026"}, headers=AUTH)
            return bool(r.json()["finished"]["total"] == sum(1 for e in events if e["type"] == "case.processed"))

        await eventually(ready, timeout=30)

        async def get(path: str, **params: str) -> dict:
            response = await metrics.get(path, params=params, headers=AUTH)
            assert response.status_code == 200, response.text
            return dict(response.json())

        by_month = await get("/v1/indicators/by-month", period="2026-10")
        mine = await get("/v1/indicators/by-month", period="2026-Q4", agency=AGENCY)
        by_agency = await get("/v1/indicators/by-agency", period="2026-10")
        before = await get("/v1/indicators/by-agency", period="2025-06")
        # the November page ends with November, the October page with October, whatever today is
        assert [m["month"] for m in by_month["months"]] == [f"2026-{m:02d}" for m in range(1, 11)]
        for month in by_month["months"]:
            answer = await get("/v1/indicators", period=month["month"])
            assert {k: month[k] for k in answer} == answer
        for month in mine["months"][-3:]:
            answer = await get("/v1/indicators", period=month["month"], agency=AGENCY)
            assert {k: month[k] for k in answer} == answer
        # the province's departments and communes, each as /v1/indicators answers for it
        assert by_agency["agency"] == "000.00.00.H99"
        rows = {row["agency_code"]: row for row in by_agency["agencies"]}
        assert AGENCY in rows and COMMUNE in rows and len(rows) == 28  # 13 departments + 15 communes
        for code in (AGENCY, COMMUNE):
            answer = await get("/v1/indicators", period="2026-10", agency=code)
            assert {k: rows[code][k] for k in answer} == answer
        # the district dissolved on 01/07/2025 is not listed for later periods, and is before
        assert DISSOLVED not in rows and [o["agency_code"] for o in by_agency["omitted"]] == [DISSOLVED]
        assert DISSOLVED in {row["agency_code"] for row in before["agencies"]} and before["omitted"] == []
        outside = await metrics.get("/v1/indicators/by-month", params={"period": "2026-13"}, headers=AUTH)
        assert outside.status_code == 422

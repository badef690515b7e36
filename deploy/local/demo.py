"""Demo data for `make up`: a few weeks of cases of the sample province, posted to the intake.

Deterministic for a seed. Cases arrive on working days in office hours, take a share of their
statutory time (some run late, some wait for a supplement, some are still open), and the events
go through the public API in batches like any one-stop system's.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import httpx

from deploy.local.infra import REPO
from shared.config import load_registry
from shared.domain.calendar import VN_TZ
from shared.domain.deadlines import compute_due


def generate(now: datetime, weeks: int = 3, per_day: int = 12, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    registry = load_registry(REPO / "config")
    calendar = registry.calendar_for(None)
    agencies = [a for a in registry.agencies.values() if a.parent_code]
    procedures = list(registry.catalogue.procedures.values())
    events: list[dict[str, Any]] = []
    day = (now - timedelta(weeks=weeks)).date()
    serial = 0
    while day < now.date():
        if calendar.is_working_day(day):
            for _ in range(per_day):
                serial += 1
                agency = rng.choice(agencies)
                procedure = rng.choice(procedures)
                version = procedure.current
                channel = rng.choices(["direct", "online", "postal"], [0.55, 0.4, 0.05])[0]
                online_mode = (
                    ("full" if version.full_online_eligible and rng.random() < 0.6 else "partial")
                    if channel == "online"
                    else None
                )
                received = datetime(day.year, day.month, day.day, 7, 30, tzinfo=VN_TZ) + timedelta(
                    minutes=rng.randrange(0, 8 * 60)
                )
                if received > now:
                    continue
                case_code = f"{agency.code}-{day:%y%m%d}-{serial:04d}"
                due = compute_due(calendar, received, version.duration_for(channel), version.convention).due_at

                def event(
                    kind: str,
                    at: datetime,
                    data: dict[str, Any] | None = None,
                    case_code: str = case_code,
                    agency_code: str = agency.code,
                ) -> None:
                    if at <= now:
                        events.append(
                            {
                                "event_id": f"demo-{case_code}-{kind}",
                                "type": kind,
                                "case_code": case_code,
                                "occurred_at": at.isoformat(),
                                "agency_code": agency_code,
                                "data": data or {},
                            }
                        )

                event(
                    "case.received",
                    received,
                    {
                        "procedure_code": procedure.code,
                        "field_code": procedure.field_code,
                        "level": agency.level.value,
                        "channel": channel,
                        "online_mode": online_mode,
                        "due_at_reported": due.isoformat(),
                        "applicant_type": rng.choice(["citizen", "business"]),
                    },
                )
                span = max((due - received).total_seconds(), 3600)
                finish = received + timedelta(seconds=span * rng.uniform(0.2, 1.25))
                if rng.random() < 0.15:
                    asked = received + timedelta(seconds=span * 0.2)
                    event("case.supplement_requested", asked, {"reason": "Thiếu bản sao giấy tờ"})
                    event("case.supplement_received", asked + timedelta(days=rng.randint(1, 4)))
                if channel == "online" and rng.random() < 0.5:
                    event("case.paid_online", received + timedelta(minutes=30), {"amount": 50000, "gateway": "dvcqg"})
                event(
                    "case.digitized",
                    received + timedelta(minutes=10),
                    {
                        "components_digitized": rng.random() < 0.85,
                        "result_digitized": False,
                        "reused": rng.random() < 0.3,
                    },
                )
                event("case.processed", finish, {"outcome": "approved" if rng.random() < 0.95 else "denied"})
                returned = {"e_result": channel == "online", "result_channel": channel}
                event("case.returned", finish + timedelta(hours=2), returned)
        day += timedelta(days=1)
    return events


async def load(intake_url: str, token: str, now: datetime | None = None) -> int:
    events = generate(now or datetime.now(VN_TZ))
    async with httpx.AsyncClient(base_url=intake_url, timeout=60) as client:
        for start in range(0, len(events), 500):
            response = await client.post(
                "/v1/events",
                json={"events": events[start : start + 500]},
                headers={"Authorization": f"Bearer {token}"},
            )
            response.raise_for_status()
    return len(events)

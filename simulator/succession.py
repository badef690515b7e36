"""`make up`'s demo of an agency change (contract v1.1, "Agencies change"): cases of the sample
province's district, UBND huyện Mẫu Sơn (config/registry/agencies.json), dissolved on 2025-07-01
into Phường Bắc Sơn.

Received by the district in the second half of June 2025 (level `district`, before the two-level
government), they are open across 2025-07-01 00:00: the deadline service shows them under the
successor, with the district in their `agency_history`. Some were finished in July by the
successor (its events name the successor: events naming the district from that day are refused),
the others are still open (overdue in the successor's list). One was finished before the date
and stays the district's. No case is received by the district on or after 2025-07-01: the
contract refuses a district-level receipt from that day.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from simulator.wire import Item
from simulator.workdays import VN

DISTRICT = "000.30.02.H99"  # UBND huyện Mẫu Sơn, valid_to 2025-07-01
SUCCESSOR = "001.30.00.H99"  # UBND Phường Bắc Sơn
PROCEDURES = [("1.012790", "G09-DD"), ("1.012794", "G09-DD"), ("2.001417", "G09-LLTP")]
# (received day, finished day or None): June 2025 working days
PLAN: list[tuple[date, date | None]] = [
    (date(2025, 6, 16), date(2025, 6, 27)),  # finished before the date: stays with the district
    (date(2025, 6, 17), date(2025, 7, 2)),
    (date(2025, 6, 18), date(2025, 7, 8)),
    (date(2025, 6, 19), date(2025, 7, 15)),
    (date(2025, 6, 20), None),
    (date(2025, 6, 23), date(2025, 7, 4)),
    (date(2025, 6, 24), None),
    (date(2025, 6, 25), None),
    (date(2025, 6, 26), date(2025, 7, 10)),
    (date(2025, 6, 27), None),
    (date(2025, 6, 30), None),
    (date(2025, 6, 30), None),
]


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), VN)


def _event(event_id: str, kind: str, case_code: str, moment: datetime, agency: str, **data: Any) -> Item:
    body = {
        "event_id": event_id,
        "type": kind,
        "case_code": case_code,
        "occurred_at": moment.isoformat(),
        "agency_code": agency,
        "data": data,
    }
    return Item(moment, "event", body)


def district_items() -> list[Item]:
    """The district's demo cases as events (idempotent: fixed event ids)."""
    items = []
    for n, (received, finished) in enumerate(PLAN, start=1):
        code = f"{DISTRICT}-{received:%y%m%d}-MS{n:04d}"
        procedure, field = PROCEDURES[n % len(PROCEDURES)]
        items.append(
            _event(
                f"demo-succession:{code}:received",
                "case.received",
                code,
                _at(received, 8, 30 + n),
                DISTRICT,
                procedure_code=procedure,
                field_code=field,
                level="district",
                channel="direct",
                online_mode=None,
            )
        )
        if finished is not None:
            # from 2025-07-01 the successor reports the case: an event naming the district is refused
            holder = DISTRICT if finished < date(2025, 7, 1) else SUCCESSOR
            items.append(
                _event(
                    f"demo-succession:{code}:processed",
                    "case.processed",
                    code,
                    _at(finished, 14),
                    holder,
                    outcome="approved",
                )
            )
    return items

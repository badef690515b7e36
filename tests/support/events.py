"""Event builders for tests, over the sample province in config/."""

from __future__ import annotations

import itertools
import json
from typing import Any

from aiokafka.structs import ConsumerRecord

AGENCY = "000.00.02.H99"  # Sở Nông nghiệp và Môi trường
COMMUNE = "001.30.00.H99"
LAND_PROCEDURE = "1.012790"  # 10 working days
_serial = itertools.count(1)


def case_code(agency: str = AGENCY) -> str:
    return f"{agency}-261116-{next(_serial):05d}"


def received(code: str, at: str = "2026-03-16T09:15:00+07:00", **data: Any) -> dict[str, Any]:
    body = {
        "procedure_code": LAND_PROCEDURE,
        "field_code": "G09-DD",
        "level": "province",
        "channel": "online",
        "online_mode": "partial",
    }
    body.update(data)
    return {
        "type": "case.received",
        "case_code": code,
        "occurred_at": at,
        "agency_code": code.split("-")[0],
        "data": body,
    }


def event(kind: str, code: str, at: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, "case_code": code, "occurred_at": at, "agency_code": code.split("-")[0], "data": data}


def wire(body: dict[str, Any], event_id: str) -> tuple[bytes, bytes]:
    """An event as intake publishes it: (key, value)."""
    value = {**body, "event_id": event_id, "schema_version": 1}
    return body["case_code"].encode(), json.dumps(value).encode()


def record(offset: int, body: dict[str, Any], event_id: str) -> ConsumerRecord:
    """An event as the consumer hands it to a projection."""
    key, value = wire(body, event_id)
    return ConsumerRecord("t", 0, offset, 0, 0, key, value, None, len(key), len(value), [])

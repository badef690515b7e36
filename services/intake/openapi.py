"""The intake's OpenAPI document: the routes that read their body themselves (to answer 400/413/422
in the contract's shape) get their request schema and an example of every event type here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.intake.dvcqg_snapshot import HoSoDongBoDVC
from shared.domain.codes import EventType
from shared.events import EVENT_ADAPTER, example_event

REF = "#/components/schemas/{model}"


def events_request_body() -> dict[str, Any]:
    examples = {t.value: {"summary": t.value, "value": example_event(t)} for t in EventType}
    examples["batch"] = {
        "summary": "a batch (all or nothing, at most 1000)",
        "value": {"events": [example_event(EventType.RECEIVED), example_event(EventType.PROCESSED)]},
    }
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [{"$ref": REF.format(model="CaseEvent")}, {"$ref": REF.format(model="EventBatch")}]
                },
                "examples": examples,
            }
        },
    }


def snapshots_request_body() -> dict[str, Any]:
    snapshot = {
        "MaHoSo": "000.00.02.H99-260316-0001",
        "MaTTHC": "1.012790",
        "MaLinhVuc": "G09-DD",
        "KenhThucHien": 2,
        "TrangThaiHoSo": 4,
        "NgayNopHoSo": "20260315201000",
        "NgayTiepNhan": "20260316091500",
        "NgayHenTra": "20260330091500",
        "DuocThanhToanTrucTuyen": 1,
        "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí", "Gia": 50000}],
    }
    ref = {"$ref": REF.format(model="HoSoDongBoDVC")}
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [ref, {"type": "array", "items": ref, "minItems": 1, "maxItems": 1000}]},
                "examples": {"one": {"value": snapshot}, "list": {"value": [snapshot]}},
            }
        },
    }


def install(app: FastAPI) -> None:
    """Adds the event union, the batch and the DVCQG snapshot to the document's components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        union = EVENT_ADAPTER.json_schema(ref_template=REF)
        schemas.update(union.pop("$defs", {}))
        schemas["CaseEvent"] = union
        schemas["EventBatch"] = {
            "type": "object",
            "required": ["events"],
            "properties": {
                "events": {
                    "type": "array",
                    "items": {"$ref": REF.format(model="CaseEvent")},
                    "minItems": 1,
                    "maxItems": 1000,
                }
            },
        }
        snapshot = HoSoDongBoDVC.model_json_schema(ref_template=REF)
        schemas.update(snapshot.pop("$defs", {}))
        schemas["HoSoDongBoDVC"] = snapshot
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend its schema

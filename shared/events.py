"""Event contract v1 (contract.md "Events"): the envelope, every event type with its data.

The same envelope travels on the HTTP intake and on the topics. Validation is strict about what a
downstream fold relies on (types, codes, timestamps with an offset) and lenient about vendors'
extra fields inside `data`, which are kept.

`python -m shared.events` prints the JSON Schema committed at docs/schema/events.schema.json.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, create_model

from shared.domain.codes import Channel, DerivedEventType, EventType, Level, OnlineMode, PauseReason

SCHEMA_VERSION: Final = 1
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s]+$")]
Text = Annotated[str, Field(max_length=2000)]


class EventData(BaseModel):
    model_config = ConfigDict(extra="allow")


class SubmittedData(EventData):
    procedure_code: Code
    channel: Channel


class ReceivedData(EventData):
    procedure_code: Code = Field(description="MaTTHC")
    field_code: Code = Field(description="MaLinhVuc")
    level: Level
    channel: Channel
    online_mode: OnlineMode | None = None
    submitted_at: AwareDatetime | None = None
    due_at_reported: AwareDatetime | None = Field(None, description="NgayHenTra as the one-stop system computed it")
    applicant_type: Annotated[str, Field(max_length=32)] | None = None
    fee_bearing: bool | None = None
    # Unbounded here (older records may carry them as extras); the intake door bounds them.
    applicant_name: str | None = Field(None, description="ChuHoSo: the applicant (người nộp), for the letters")
    applicant_id: str | None = Field(
        None, description="SoGiayToChuHoSo: số định danh cá nhân / mã số của tổ chức, for the letters"
    )


class ReasonRequired(EventData):
    reason: Text


class SupplementRequestedData(EventData):
    reason: Text | None = None
    requested_by_agency: Code | None = None


class PauseData(EventData):
    reason_code: PauseReason
    note: Text | None = None


class TransferredData(EventData):
    from_agency: Code
    to_agency: Code
    leg_due_at_reported: AwareDatetime | None = None


class ProcessedData(EventData):
    outcome: Literal["approved", "denied"]


class ReturnedData(EventData):
    e_result: bool
    result_channel: Channel


class ReasonOptional(EventData):
    reason: Text | None = None


class PaidOnlineData(EventData):
    amount: Annotated[float, Field(ge=0)]
    gateway: Literal["dvcqg", "local"]


class DigitizedData(EventData):
    components_digitized: bool
    result_digitized: bool
    reused: bool


class RatedData(EventData):
    satisfied: bool
    complaint: bool


class ApologyIssuedData(EventData):
    issuer_agency: Code
    reason: Text
    new_due_at: AwareDatetime
    issued_at: AwareDatetime


DATA_MODELS: dict[EventType, type[EventData]] = {
    EventType.SUBMITTED: SubmittedData,
    EventType.RECEIVED: ReceivedData,
    EventType.RECEIPT_REFUSED: ReasonRequired,
    EventType.SUPPLEMENT_REQUESTED: SupplementRequestedData,
    EventType.SUPPLEMENT_RECEIVED: EventData,
    EventType.PAUSED: PauseData,
    EventType.RESUMED: PauseData,
    EventType.TRANSFERRED: TransferredData,
    EventType.PROCESSED: ProcessedData,
    EventType.RETURNED: ReturnedData,
    EventType.WITHDRAWN: ReasonOptional,
    EventType.STOPPED: ReasonOptional,
    EventType.PAID_ONLINE: PaidOnlineData,
    EventType.DIGITIZED: DigitizedData,
    EventType.RATED: RatedData,
    EventType.APOLOGY_ISSUED: ApologyIssuedData,
}


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        None, description="client-unique; derived deterministically when absent"
    )
    schema_version: Literal[1] = SCHEMA_VERSION
    case_code: Code = Field(description="MaHoSo")
    occurred_at: AwareDatetime
    agency_code: Code


def _event_model(event_type: EventType, data_model: type[EventData]) -> type[Envelope]:
    name = "".join(part.title() for part in event_type.value.replace(".", "_").split("_")) + "Event"
    optional = not data_model.model_fields or all(not f.is_required() for f in data_model.model_fields.values())
    data_field = (data_model, Field(default_factory=data_model)) if optional else (data_model, ...)
    type_field: Any = Literal[event_type.value]  # a literal made at run time, one per event type
    return create_model(name, __base__=Envelope, type=(type_field, ...), data=data_field)


EVENT_MODELS = {t: _event_model(t, m) for t, m in DATA_MODELS.items()}
if TYPE_CHECKING:
    CaseEventIn = Envelope  # a union built at run time: to a type checker every event is an envelope
else:
    # One model per type, told apart by `type` (a discriminated union: precise errors, a clean schema).
    CaseEventIn = Annotated[Union[tuple(EVENT_MODELS.values())], Field(discriminator="type")]  # noqa: UP007
EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(CaseEventIn)


class DerivedEvent(BaseModel):
    """An event of tthc.deadline-events (deadline.computed, due_soon, …, case.closed)."""

    event_id: str
    type: DerivedEventType
    schema_version: Literal[1] = SCHEMA_VERSION
    case_code: Code
    occurred_at: AwareDatetime
    agency_code: Code
    data: dict[str, Any] = Field(default_factory=dict)


def derive_event_id(source: str, event: dict[str, Any]) -> str:
    """A deterministic id from source system + case_code + type + occurred_at + data.

    The same fact sent twice by the same system gets the same id, so downstream counts it once.
    """
    occurred = event["occurred_at"]
    if isinstance(occurred, datetime):
        occurred = occurred.astimezone(UTC).isoformat()
    canonical = json.dumps(
        [source, event["case_code"], event["type"], occurred, event.get("data") or {}],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return "d-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "TTHC case events, contract v1",
        "description": "Topic tthc.case-events (key = case_code) and POST /v1/events.",
        "oneOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in EVENT_MODELS.values()],
        "$defs": {
            **TypeAdapter(CaseEventIn).json_schema(ref_template="#/$defs/{model}")["$defs"],
            "DerivedEvent": DerivedEvent.model_json_schema(ref_template="#/$defs/{model}"),
        },
    }


def main() -> None:
    json.dump(json_schema(), sys.stdout, indent=2, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()


# An example of every event type, for the OpenAPI document and the tests (each must validate).
EXAMPLE_DATA: dict[EventType, dict[str, Any]] = {
    EventType.SUBMITTED: {"procedure_code": "1.012790", "channel": "online"},
    EventType.RECEIVED: {
        "procedure_code": "1.012790",
        "field_code": "G09-DD",
        "level": "province",
        "channel": "online",
        "online_mode": "partial",
        "submitted_at": "2026-03-15T20:10:00+07:00",
        "due_at_reported": "2026-03-30T09:15:00+07:00",
        "applicant_type": "citizen",
        "fee_bearing": True,
        "applicant_name": "Nguyễn Văn An",
        "applicant_id": "001086012345",
    },
    EventType.RECEIPT_REFUSED: {"reason": "Hồ sơ không thuộc thẩm quyền giải quyết"},
    EventType.SUPPLEMENT_REQUESTED: {"reason": "Thiếu bản sao giấy chứng nhận", "requested_by_agency": "000.00.02.H99"},
    EventType.SUPPLEMENT_RECEIVED: {},
    EventType.PAUSED: {"reason_code": "verification", "note": "Chờ xác minh nguồn gốc đất"},
    EventType.RESUMED: {"reason_code": "verification"},
    EventType.TRANSFERRED: {
        "from_agency": "000.00.02.H99",
        "to_agency": "000.00.03.H99",
        "leg_due_at_reported": "2026-03-20T17:00:00+07:00",
    },
    EventType.PROCESSED: {"outcome": "approved"},
    EventType.RETURNED: {"e_result": True, "result_channel": "online"},
    EventType.WITHDRAWN: {"reason": "Công dân rút hồ sơ"},
    EventType.STOPPED: {"reason": "Dừng xử lý theo đề nghị"},
    EventType.PAID_ONLINE: {"amount": 50000, "gateway": "dvcqg"},
    EventType.DIGITIZED: {"components_digitized": True, "result_digitized": True, "reused": False},
    EventType.RATED: {"satisfied": True, "complaint": False},
    EventType.APOLOGY_ISSUED: {
        "issuer_agency": "000.00.02.H99",
        "reason": "Chờ kết quả xác minh của cơ quan liên quan",
        "new_due_at": "2026-04-03T17:00:00+07:00",
        "issued_at": "2026-03-26T10:00:00+07:00",
    },
}


def example_event(event_type: EventType) -> dict[str, Any]:
    return {
        "event_id": f"example-{event_type.value}",
        "type": event_type.value,
        "schema_version": SCHEMA_VERSION,
        "case_code": "000.00.02.H99-260316-0001",
        "occurred_at": "2026-03-16T09:15:00+07:00",
        "agency_code": "000.00.02.H99",
        "data": EXAMPLE_DATA[event_type],
    }

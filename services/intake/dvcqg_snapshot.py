"""The national portal's HoSoDongBoDVC snapshot, read with its own field names and encodings
(tthc-rules §3.3): dates `yyyyMMddHHmmss` in Vietnam local time, KenhThucHien 1/2/3, TrangThaiHoSo
1–10 (DvcqgStatus), codes as numbers or digits, "" for absent. dvcqg.py turns it into events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from services.intake.door import CASE_CODE_PATTERN, DoorBounds
from shared.domain.calendar import VN_TZ
from shared.web import pydantic_details

# KenhThucHien: 1 trực tiếp (also when absent), 2 trực tuyến, 3 bưu chính.
CHANNELS = {1: "direct", 2: "online", 3: "postal"}
# LoaiDoiTuong: 1 công dân, 2 doanh nghiệp, 3 cơ quan nhà nước, 4 tổ chức.
APPLICANT_TYPES = {1: "citizen", 2: "business", 3: "agency", 4: "organisation"}
# DuocThanhToanTrucTuyen: 1 paid on DVCQG, 2 paid through the ministry's or province's gateway,
# 3 not paid online (the national list); 0 is also read as "not paid online" (some senders, the
# simulator among them, send it).
PAID_ON_DVCQG, PAID_ON_LOCAL_GATEWAY = 1, 2
PAYMENT_CODES = (0, PAID_ON_DVCQG, PAID_ON_LOCAL_GATEWAY, 3)


class SnapshotInvalid(ValueError):
    """A snapshot the intake cannot accept; `details` name national fields, relative to the snapshot."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{d['loc']}: {d['msg']}" for d in details))
        self.details = details


def _national_time(value: Any, info: ValidationInfo, deadline: bool = False) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("a date is a yyyyMMddHHmmss string")
    text = str(value)
    try:
        if len(text) != 14 or not text.isdigit():
            raise ValueError
        moment = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=VN_TZ)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not yyyyMMddHHmmss") from None
    context = info.context or {}
    bounds: DoorBounds | None = context.get("bounds")
    if bounds is not None:
        problem = bounds.time_problem(moment, context["now"], deadline)
        if problem:
            raise ValueError(problem)
    return moment


def _blank_is_none(value: Any) -> Any:
    """One-stop systems serialise an absent value as "" (or whitespace)."""
    return None if isinstance(value, str) and not value.strip() else value


def _code_text(value: Any) -> Any:
    """A code sent as a number ("ints and codes" senders) is read as its digits; "" is absent."""
    value = _blank_is_none(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else value


def _list_or_empty(value: Any) -> Any:
    return [] if value is None or value == "" else value


def _flag(value: Any) -> bool:
    return isinstance(value, str | int) and str(value).strip().lower() in ("1", "true")


NationalTime = Annotated[
    datetime | None,
    BeforeValidator(_national_time),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": "^([0-9]{14})?$"}, {"type": "integer"}, {"type": "null"}]}),
]
# NgayHenTra and the supplement rounds' due dates lie ahead by nature (door.DEADLINE_HORIZON).
NationalDeadline = Annotated[
    datetime | None,
    BeforeValidator(lambda value, info: _national_time(value, info, deadline=True)),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": "^([0-9]{14})?$"}, {"type": "integer"}, {"type": "null"}]}),
]
Flag = Annotated[
    bool,
    BeforeValidator(_flag),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "integer"}, {"type": "string"}, {"type": "null"}]}),
]
# One-stop systems send these codes as numbers or as strings of digits ("2"); "" is absent.
_NUMBER_OR_DIGITS = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^ *[0-9]* *$"}, {"type": "null"}]}
OptionalInt = Annotated[int | None, BeforeValidator(_blank_is_none), WithJsonSchema(_NUMBER_OR_DIGITS)]
CodeText = Annotated[str, BeforeValidator(_code_text)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_none)]
Text2000 = Annotated[Annotated[str, Field(max_length=2000)] | None, BeforeValidator(_blank_is_none)]
NationalCode = Annotated[Annotated[str, Field(max_length=64, pattern=r"^[^\s]+$")] | None, BeforeValidator(_code_text)]
EmptyIsNoItems = BeforeValidator(_list_or_empty)


class _National(BaseModel):
    model_config = ConfigDict(extra="allow")


class SubmittedDocument(_National):
    DuocSoHoa: Flag = False
    DuocTaiSuDung: Flag = False
    DuocLayTuKhoDMQG: Flag = False


class Fee(_National):
    Gia: Annotated[Annotated[float, Field(ge=0, allow_inf_nan=False)] | None, BeforeValidator(_blank_is_none)] = None


class SupplementRound(_National):
    HoSoBoSungId: Annotated[Annotated[str, Field(max_length=36)] | None, BeforeValidator(_code_text)] = None
    NgayBoSung: NationalTime = None
    NgayTiepNhanBoSung: NationalTime = None
    NgayHenTraTruoc: NationalDeadline = None
    NgayHenTraMoi: NationalDeadline = None
    NoiDungBoSung: Text2000 = None


class ResultDocument(_National):
    DuongDanTepTinKetQua: OptionalText = None


class HoSoDongBoDVC(_National):
    MaHoSo: Annotated[str, BeforeValidator(_code_text)] = Field(pattern=CASE_CODE_PATTERN)
    MaTTHC: CodeText = Field(min_length=1, max_length=64, pattern=r"^[^\s]+$")
    MaLinhVuc: NationalCode = None
    KenhThucHien: Annotated[
        Annotated[int, Field(ge=1, le=3)] | None, BeforeValidator(_blank_is_none), WithJsonSchema(_NUMBER_OR_DIGITS)
    ] = Field(None, description="1 trực tiếp (also when absent), 2 trực tuyến, 3 bưu chính")
    TrangThaiHoSo: Annotated[int, WithJsonSchema({"anyOf": _NUMBER_OR_DIGITS["anyOf"][:2]})] = Field(
        ge=1, le=10, description="1–10 (tthc-rules §3.3)"
    )
    DonViXuLy: Annotated[Annotated[str, Field(max_length=300)] | None, BeforeValidator(_code_text)] = Field(
        None,
        description="the handling agency's code or registered name; default: MaHoSo's prefix",
    )
    NgayNopHoSo: NationalTime = None
    NgayTiepNhan: NationalTime = None
    NgayHenTra: NationalDeadline = None
    NgayKetThucXuLy: NationalTime = None
    NgayTra: NationalTime = None
    NgayTuChoi: NationalTime = None
    GhiChu: Text2000 = None
    LoaiDoiTuong: OptionalInt = None
    ChuHoSo: OptionalText = None
    SoGiayToChuHoSo: Annotated[str | None, BeforeValidator(_code_text)] = Field(
        None, description="số định danh cá nhân / mã số of the organisation (digits sent as a number are read as text)"
    )
    DuocThanhToanTrucTuyen: OptionalInt = Field(
        None, description="1 DVCQG, 2 the ministry's or province's gateway, 3 (or 0) not paid online"
    )
    HoSoCoThanhPhanSoHoa: Flag = False
    LaToanTrinh: Flag | None = Field(None, description="extension: toàn trình (else partial for online)")
    TaiLieuNop: Annotated[list[SubmittedDocument], EmptyIsNoItems] = []
    DanhSachLePhi: Annotated[list[Fee], EmptyIsNoItems] = []
    DanhSachHoSoBoSung: Annotated[list[SupplementRound], EmptyIsNoItems] = []
    DanhSachGiayToKetQua: Annotated[list[ResultDocument], EmptyIsNoItems] = []

    @field_validator("DuocThanhToanTrucTuyen")
    @classmethod
    def _payment_code(cls, value: int | None) -> int | None:
        if value is not None and value not in PAYMENT_CODES:
            raise ValueError(f"{value} is not a DuocThanhToanTrucTuyen code (1, 2, 3; 0 read as 3)")
        return value

    @property
    def agency_code(self) -> str:
        """DonViXuLy when given, else MaHoSo's prefix (resolve_agency also reads names)."""
        return self.DonViXuLy or self.MaHoSo.split("-")[0]

    @property
    def channel(self) -> str:
        return CHANNELS[self.KenhThucHien or 1]


def read_snapshot(raw: Any, bounds: DoorBounds, now: datetime) -> HoSoDongBoDVC:
    """One snapshot, validated with the door's bounds on every date; SnapshotInvalid naming the field."""
    try:
        return HoSoDongBoDVC.model_validate(raw, context={"bounds": bounds, "now": now})
    except ValidationError as exc:
        raise SnapshotInvalid(pydantic_details(map(dict, exc.errors()))) from None

"""POST /v1/dvcqg/hoso: the national portal's HoSoDongBoDVC snapshots, accepted unchanged.

A one-stop system that already syncs to DVCQG can send us the same payloads. Each snapshot is
turned into the contract events it implies; an event already emitted for an earlier snapshot of
the case is not emitted again (its id is deterministic: `dvcqg:<MaHoSo>:<what>`), so a repeated
snapshot yields nothing. Field names and encodings are the national ones (tthc-rules §3.3):
dates `yyyyMMddHHmmss` in Vietnam local time, KenhThucHien 1/2/3, TrangThaiHoSo 1–10.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from services.intake.context import IntakeContext
from services.intake.events import authorized_submission, check_registry, check_scope, publish_events
from services.intake.openapi import snapshots_request_body
from shared.domain.calendar import VN_TZ
from shared.domain.registry import Registry
from shared.events import EVENT_ADAPTER, Envelope
from shared.store import find_by_ids
from shared.web import ApiError, Principal, error_responses, parse_json, pydantic_details

router = APIRouter(tags=["dvcqg"])

CHANNELS = {1: "direct", 2: "online", 3: "postal"}


def _national_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    text = str(value)
    try:
        if len(text) != 14 or not text.isdigit():
            raise ValueError
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=VN_TZ)
    except ValueError:
        raise ValueError(f"{text!r} is not yyyyMMddHHmmss") from None


NationalTime = Annotated[datetime | None, BeforeValidator(_national_time)]
Flag = Annotated[bool, BeforeValidator(lambda v: str(v) in ("1", "True", "true"))]


class _National(BaseModel):
    model_config = ConfigDict(extra="allow")


class SubmittedDocument(_National):
    DuocSoHoa: Flag = False
    DuocTaiSuDung: Flag = False
    DuocLayTuKhoDMQG: Flag = False


class Fee(_National):
    Gia: float | None = None


class SupplementRound(_National):
    HoSoBoSungId: str | int | None = None
    NgayBoSung: NationalTime = None
    NgayTiepNhanBoSung: NationalTime = None
    NgayHenTraTruoc: NationalTime = None
    NgayHenTraMoi: NationalTime = None
    NoiDungBoSung: str | None = None


class ResultDocument(_National):
    DuongDanTepTinKetQua: str | None = None


class HoSoDongBoDVC(_National):
    MaHoSo: str = Field(min_length=1, max_length=64)
    MaTTHC: str = Field(min_length=1, max_length=64)
    MaLinhVuc: str | None = None
    KenhThucHien: int = Field(ge=1, le=3)
    TrangThaiHoSo: int = Field(ge=1, le=10)
    DonViXuLy: str | None = Field(None, description="the handling agency's code; default: MaHoSo's prefix")
    NgayNopHoSo: NationalTime = None
    NgayTiepNhan: NationalTime = None
    NgayHenTra: NationalTime = None
    NgayKetThucXuLy: NationalTime = None
    NgayTra: NationalTime = None
    NgayTuChoi: NationalTime = None
    GhiChu: str | None = None
    LoaiDoiTuong: int | None = None
    DuocThanhToanTrucTuyen: int | None = Field(None, ge=0, le=2)
    HoSoCoThanhPhanSoHoa: Flag = False
    LaToanTrinh: Flag | None = Field(None, description="extension: toàn trình (else partial for online)")
    TaiLieuNop: list[SubmittedDocument] = []
    DanhSachLePhi: list[Fee] = []
    DanhSachHoSoBoSung: list[SupplementRound] = []
    DanhSachGiayToKetQua: list[ResultDocument] = []

    @property
    def agency_code(self) -> str:
        return self.DonViXuLy or self.MaHoSo.split("-")[0]


@dataclass
class Memory:
    """What the intake keeps per case between snapshots."""

    emitted: set[str] = field(default_factory=set)
    status: int | None = None
    financial_pauses: int = 0

    def as_document(self, case_code: str) -> dict[str, Any]:
        return {
            "_id": case_code,
            "emitted": sorted(self.emitted),
            "status": self.status,
            "financial_pauses": self.financial_pauses,
        }


# Where each event field came from, so a registry error names the national field.
FIELD_OF = {"agency_code": "DonViXuLy", "procedure_code": "MaTTHC"}


def snapshot_events(snapshot: HoSoDongBoDVC, memory: Memory, registry: Registry, now: datetime) -> list[dict[str, Any]]:
    """The contract events this snapshot implies that were not emitted before (memory is updated)."""
    code, agency = snapshot.MaHoSo, snapshot.agency_code
    channel = CHANNELS[snapshot.KenhThucHien]
    status = snapshot.TrangThaiHoSo
    implied: list[tuple[str, str, datetime, dict[str, Any]]] = []

    def add(tag: str, kind: str, at: datetime | None, data: dict[str, Any] | None = None) -> None:
        implied.append((tag, kind, at or now, data or {}))

    if snapshot.NgayNopHoSo and channel == "online":
        add(
            "submitted", "case.submitted", snapshot.NgayNopHoSo, {"procedure_code": snapshot.MaTTHC, "channel": channel}
        )
    if status == 3:
        add(
            "refused",
            "case.receipt_refused",
            snapshot.NgayTuChoi,
            {"reason": snapshot.GhiChu or "Không được tiếp nhận"},
        )
    elif status >= 2 and snapshot.NgayTiepNhan:
        rounds = snapshot.DanhSachHoSoBoSung
        original_due = (rounds[0].NgayHenTraTruoc if rounds else None) or snapshot.NgayHenTra
        level = registry.agencies[agency].level.value if agency in registry.agencies else "province"
        online_mode = None
        if channel == "online":
            online_mode = "full" if snapshot.LaToanTrinh else "partial"
        add(
            "received",
            "case.received",
            snapshot.NgayTiepNhan,
            {
                "procedure_code": snapshot.MaTTHC,
                "field_code": snapshot.MaLinhVuc or "",
                "level": level,
                "channel": channel,
                "online_mode": online_mode,
                "submitted_at": snapshot.NgayNopHoSo.isoformat() if snapshot.NgayNopHoSo else None,
                "due_at_reported": original_due.isoformat() if original_due else None,
                "applicant_type": {1: "citizen", 2: "business", 3: "agency", 4: "organisation"}.get(
                    snapshot.LoaiDoiTuong or 0
                ),
            },
        )
        for index, round_ in enumerate(snapshot.DanhSachHoSoBoSung):
            ident = round_.HoSoBoSungId if round_.HoSoBoSungId is not None else index
            if round_.NgayBoSung:
                add(
                    f"supplement-requested:{ident}",
                    "case.supplement_requested",
                    round_.NgayBoSung,
                    {"reason": round_.NoiDungBoSung},
                )
            if round_.NgayTiepNhanBoSung:
                add(f"supplement-received:{ident}", "case.supplement_received", round_.NgayTiepNhanBoSung)
        if status == 5 and not any(r.NgayBoSung and not r.NgayTiepNhanBoSung for r in snapshot.DanhSachHoSoBoSung):
            add(f"supplement-requested:status5:{len(snapshot.DanhSachHoSoBoSung)}", "case.supplement_requested", now)
        # Status 6 (nghĩa vụ tài chính) carries no time of its own: the change is seen at `now`.
        if status == 6 and memory.status != 6:
            memory.financial_pauses += 1
            add(
                f"paused:financial:{memory.financial_pauses}",
                "case.paused",
                now,
                {"reason_code": "financial_obligation"},
            )
        if memory.status == 6 and status != 6:
            add(
                f"resumed:financial:{memory.financial_pauses}",
                "case.resumed",
                now,
                {"reason_code": "financial_obligation"},
            )
        if status in (9, 10) and snapshot.NgayKetThucXuLy:
            add("processed", "case.processed", snapshot.NgayKetThucXuLy, {"outcome": "approved"})
        if status == 10:
            e_result = any(r.DuongDanTepTinKetQua for r in snapshot.DanhSachGiayToKetQua)
            add("returned", "case.returned", snapshot.NgayTra, {"e_result": e_result, "result_channel": channel})
        if status == 7:
            add("withdrawn", "case.withdrawn", snapshot.NgayKetThucXuLy, {"reason": snapshot.GhiChu})
        if status == 8:
            add("stopped", "case.stopped", snapshot.NgayKetThucXuLy, {"reason": snapshot.GhiChu})
        if snapshot.DuocThanhToanTrucTuyen in (1, 2):
            amount = sum(fee.Gia or 0 for fee in snapshot.DanhSachLePhi)
            gateway = "dvcqg" if snapshot.DuocThanhToanTrucTuyen == 1 else "local"
            add("paid", "case.paid_online", snapshot.NgayTiepNhan, {"amount": amount, "gateway": gateway})
        flags = {
            "components_digitized": snapshot.HoSoCoThanhPhanSoHoa or any(t.DuocSoHoa for t in snapshot.TaiLieuNop),
            "result_digitized": any(r.DuongDanTepTinKetQua for r in snapshot.DanhSachGiayToKetQua),
            "reused": any(t.DuocTaiSuDung for t in snapshot.TaiLieuNop),
        }
        if any(flags.values()):
            tag = "digitized:" + "".join("1" if v else "0" for v in flags.values())
            add(tag, "case.digitized", snapshot.NgayTiepNhan, flags)
    memory.status = status

    events = []
    for tag, kind, at, data in implied:
        event_id = f"dvcqg:{code}:{tag}"
        if event_id in memory.emitted:
            continue
        memory.emitted.add(event_id)
        events.append(
            {
                "event_id": event_id,
                "type": kind,
                "case_code": code,
                "occurred_at": at.isoformat(),
                "agency_code": agency,
                "data": {k: v for k, v in data.items() if v is not None or k == "online_mode"},
            }
        )
    return events


class SnapshotsAccepted(BaseModel):
    accepted: list[dict[str, Any]]
    snapshots: int


@router.post(
    "/v1/dvcqg/hoso",
    status_code=202,
    response_model=SnapshotsAccepted,
    responses=error_responses(400, 401, 403, 409, 413, 422, 429, 503),
    openapi_extra={"requestBody": snapshots_request_body()},
    summary="Submit HoSoDongBoDVC snapshots with the national field names",
)
async def post_snapshots(request: Request) -> JSONResponse:
    context, principal, raw = await authorized_submission(request)
    body = parse_json(raw)
    accepted = await ingest_snapshots(
        context, principal, body if isinstance(body, list) else [body], batch=isinstance(body, list)
    )
    return JSONResponse(
        {"accepted": accepted, "snapshots": len(body) if isinstance(body, list) else 1}, status_code=202
    )


async def ingest_snapshots(
    context: IntakeContext, principal: Principal, items: list[Any], batch: bool = True
) -> list[dict[str, Any]]:
    """Validate every snapshot (all or nothing), publish the new events, remember what was sent."""
    if not items or len(items) > context.settings.max_batch:
        raise ApiError(422, f"send 1 to {context.settings.max_batch} snapshots", details=[{"loc": [], "msg": "size"}])
    snapshots, details = [], []
    for index, raw in enumerate(items):
        prefix = (index,) if batch else ()
        try:
            snapshots.append(HoSoDongBoDVC.model_validate(raw))
        except ValidationError as exc:
            details.extend(pydantic_details(exc.errors(), prefix))
    if details:
        raise ApiError(422, "the snapshots are invalid; nothing was published", details=details)

    memories = await load_memories(context, [s.MaHoSo for s in snapshots])
    now = datetime.now(VN_TZ)
    events: list[Envelope] = []
    for index, snapshot in enumerate(snapshots):
        prefix = [index] if batch else []
        if snapshot.MaTTHC not in context.registry.catalogue:
            details.append({"loc": [*prefix, "MaTTHC"], "msg": f"unknown procedure_code {snapshot.MaTTHC!r}"})
        if snapshot.agency_code not in context.registry.agencies:
            details.append({"loc": [*prefix, "DonViXuLy"], "msg": f"unknown agency_code {snapshot.agency_code!r}"})
        memory = memories.setdefault(snapshot.MaHoSo, Memory())
        for item in snapshot_events(snapshot, memory, context.registry, now):
            event = EVENT_ADAPTER.validate_python(item)
            for problem in check_registry(context, event):
                national = FIELD_OF.get(problem["loc"][-1], problem["loc"][-1])
                details.append({"loc": [*prefix, national], "msg": problem["msg"]})
            events.append(event)
    if details:
        unique: dict[tuple[Any, ...], dict[str, Any]] = {}
        for detail in details:
            unique.setdefault((tuple(detail["loc"]), detail["msg"]), detail)
        raise ApiError(422, "the snapshots name unknown codes; nothing was published", details=list(unique.values()))
    check_scope(context, principal, events)
    # Ownership (403/409) names a snapshot's MaHoSo; a snapshot implying no new event is checked too.
    where: dict[str, list[Any]] = {}
    for index, snapshot in enumerate(snapshots):
        where.setdefault(snapshot.MaHoSo, [index, "MaHoSo"] if batch else ["MaHoSo"])
    accepted = await publish_events(
        context, principal, events, locs=[where[e.case_code] for e in events], touches=list(where.items())
    )
    await save_memories(context, memories)
    return accepted


async def load_memories(context: IntakeContext, codes: list[str]) -> dict[str, Memory]:
    try:
        found = await find_by_ids(context.db.dvcqg_snapshots, codes)
        return {
            code: Memory(set(doc.get("emitted", [])), doc.get("status"), doc.get("financial_pauses", 0))
            for code, doc in found.items()
        }
    except PyMongoError as exc:
        raise ApiError(503, "the store is unavailable", headers={"Retry-After": "5"}) from exc


async def save_memories(context: IntakeContext, memories: dict[str, Memory]) -> None:
    writes = [
        UpdateOne({"_id": code}, {"$set": memory.as_document(code)}, upsert=True) for code, memory in memories.items()
    ]
    if writes:
        try:
            await context.db.dvcqg_snapshots.bulk_write(writes, ordered=False)
        except PyMongoError as exc:
            # The events are published (with deterministic ids, so a resend is counted once).
            raise ApiError(503, "the store is unavailable", headers={"Retry-After": "5"}) from exc

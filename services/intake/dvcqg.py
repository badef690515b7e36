"""DVCQG snapshots → contract events (POST /v1/dvcqg/hoso, pull mode).

A one-stop system that already syncs to DVCQG can send us the same payloads (dvcqg_snapshot.py
reads them). Each snapshot is turned into the contract events it implies; an event already emitted
for an earlier snapshot of the case is not emitted again (its id is deterministic:
`dvcqg:<MaHoSo>:<what>`), so a repeated snapshot yields nothing.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import ValidationError

from services.intake.case_event import CaseEvent
from services.intake.door import DoorBounds, dissolved_agency_problem, event_problems
from services.intake.dvcqg_snapshot import (
    APPLICANT_TYPES,
    PAID_ON_DVCQG,
    PAID_ON_LOCAL_GATEWAY,
    HoSoDongBoDVC,
    SnapshotInvalid,
)
from services.intake.dvcqg_status import DvcqgStatus
from shared.domain.codes import EventType
from shared.domain.registry import Registry
from shared.events import EVENT_ADAPTER
from shared.web import pydantic_details


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


Loc = tuple[str | int, ...]
# Where each field of an event built from a snapshot came from, so an error names the national field.
DATA_ORIGIN: dict[str, Loc] = {
    "procedure_code": ("MaTTHC",),
    "field_code": ("MaLinhVuc",),
    "level": ("DonViXuLy",),  # the handling agency's level
    "channel": ("KenhThucHien",),
    "online_mode": ("KenhThucHien",),
    "submitted_at": ("NgayNopHoSo",),
    "due_at_reported": ("NgayHenTra",),
    "applicant_type": ("LoaiDoiTuong",),
    "applicant_name": ("ChuHoSo",),
    "applicant_id": ("SoGiayToChuHoSo",),
    "reason": ("GhiChu",),
    "amount": ("DanhSachLePhi",),
    "gateway": ("DuocThanhToanTrucTuyen",),
    "e_result": ("DanhSachGiayToKetQua",),
    "result_channel": ("KenhThucHien",),
    "components_digitized": ("HoSoCoThanhPhanSoHoa",),
    "result_digitized": ("DanhSachGiayToKetQua",),
    "reused": ("TaiLieuNop",),
}
ENVELOPE_ORIGIN: dict[str, Loc] = {"case_code": ("MaHoSo",), "agency_code": ("DonViXuLy",), "event_id": ("MaHoSo",)}


def normalised_name(name: str) -> str:
    """Unicode NFC, case-folded, whitespace collapsed: how a DonViXuLy name is matched."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def agency_names(registry: Registry) -> dict[str, str]:
    """Registered agency names (normalised) → agency code; a name two agencies share is left out."""
    names: dict[str, str | None] = {}
    for agency in registry.agencies.values():
        key = normalised_name(agency.name)
        names[key] = agency.code if key not in names else None
    return {name: code for name, code in names.items() if code}


def resolve_agency(snapshot: HoSoDongBoDVC, registry: Registry, names: dict[str, str]) -> str | None:
    """The handling agency: DonViXuLy as a code, else as a registered name, else MaHoSo's prefix."""
    unit = snapshot.DonViXuLy
    if unit:
        if unit in registry.agencies:
            return unit
        code = names.get(normalised_name(unit))
        if code:
            return code
    prefix = snapshot.MaHoSo.split("-")[0]
    return prefix if prefix in registry.agencies else None


def snapshot_events(
    snapshot: HoSoDongBoDVC, memory: Memory, registry: Registry, now: datetime, agency: str | None = None
) -> list[dict[str, Any]]:
    """The contract events this snapshot implies that were not emitted before (memory is updated)."""
    return [event for event, _ in _implied_events(snapshot, memory, registry, now, agency or snapshot.agency_code)]


class _ImpliedEvent(NamedTuple):
    tag: str  # what the event is within its case: the last part of its id `dvcqg:<MaHoSo>:<tag>`
    kind: str
    at: datetime
    data: dict[str, Any]
    origin: dict[str, Loc]


@dataclass
class _Implied:
    """The events one snapshot implies, in order, each with the national fields it came from."""

    snapshot: HoSoDongBoDVC
    now: datetime
    events: list[_ImpliedEvent] = field(default_factory=list)

    def add(
        self,
        tag: str,
        kind: EventType,
        at: datetime | None,
        at_field: Loc,
        data: dict[str, Any] | None = None,
        origin: dict[str, Loc] | None = None,
    ) -> None:
        """An event at `at` (national field `at_field`), or at `now` when the snapshot gives no time."""
        where = {"occurred_at": at_field if at else ("TrangThaiHoSo",), **(origin or {})}
        self.events.append(_ImpliedEvent(tag, kind.value, at or self.now, data or {}, where))


def _implied_events(
    snapshot: HoSoDongBoDVC, memory: Memory, registry: Registry, now: datetime, agency: str
) -> list[tuple[dict[str, Any], dict[str, Loc]]]:
    """Each new event with its origin: event field (`occurred_at`, `data.reason`, …) → national loc."""
    implied = _Implied(snapshot, now)
    status = DvcqgStatus(snapshot.TrangThaiHoSo)
    if snapshot.NgayNopHoSo and snapshot.channel == "online":
        implied.add(
            "submitted",
            EventType.SUBMITTED,
            snapshot.NgayNopHoSo,
            ("NgayNopHoSo",),
            {"procedure_code": snapshot.MaTTHC, "channel": snapshot.channel},
        )
    if status == DvcqgStatus.REFUSED:
        implied.add(
            "refused",
            EventType.RECEIPT_REFUSED,
            snapshot.NgayTuChoi,
            ("NgayTuChoi",),
            {"reason": snapshot.GhiChu or "Không được tiếp nhận"},
        )
    elif status >= DvcqgStatus.RECEIVED and snapshot.NgayTiepNhan:
        _receipt(implied, registry, agency)
        _supplement_rounds(implied, status)
        _financial_obligation(implied, memory, status)
        _endings(implied, status)
        _payment(implied)
        _digitization(implied)
    memory.status = int(status)
    return _new_events(implied.events, memory, snapshot.MaHoSo, agency)


def _receipt(implied: _Implied, registry: Registry, agency: str) -> None:
    snapshot = implied.snapshot
    rounds = snapshot.DanhSachHoSoBoSung
    original_due = snapshot.NgayHenTra
    due_origin: Loc = ("NgayHenTra",)
    if rounds and rounds[0].NgayHenTraTruoc:  # NgayHenTra moves with each round; the first keeps the original
        original_due, due_origin = rounds[0].NgayHenTraTruoc, ("DanhSachHoSoBoSung", 0, "NgayHenTraTruoc")
    level = registry.agencies[agency].level.value if agency in registry.agencies else "province"
    online_mode = None
    if snapshot.channel == "online":
        online_mode = "full" if snapshot.LaToanTrinh else "partial"
    field_code = snapshot.MaLinhVuc
    if not field_code and snapshot.MaTTHC in registry.catalogue:
        field_code = registry.catalogue.get(snapshot.MaTTHC).field_code  # the catalogue's field
    implied.add(
        "received",
        EventType.RECEIVED,
        snapshot.NgayTiepNhan,
        ("NgayTiepNhan",),
        {
            "procedure_code": snapshot.MaTTHC,
            "field_code": field_code or "",
            "level": level,
            "channel": snapshot.channel,
            "online_mode": online_mode,
            "submitted_at": snapshot.NgayNopHoSo.isoformat() if snapshot.NgayNopHoSo else None,
            "due_at_reported": original_due.isoformat() if original_due else None,
            "applicant_type": APPLICANT_TYPES.get(snapshot.LoaiDoiTuong or 0),
            "applicant_name": snapshot.ChuHoSo.strip() if snapshot.ChuHoSo else None,
            "applicant_id": snapshot.SoGiayToChuHoSo,
        },
        {"data.due_at_reported": due_origin, "data.level": ("DonViXuLy",)},
    )


def _supplement_rounds(implied: _Implied, status: DvcqgStatus) -> None:
    rounds = implied.snapshot.DanhSachHoSoBoSung
    for index, round_ in enumerate(rounds):
        ident = round_.HoSoBoSungId if round_.HoSoBoSungId is not None else index
        where: Loc = ("DanhSachHoSoBoSung", index)
        if round_.NgayBoSung:
            implied.add(
                f"supplement-requested:{ident}",
                EventType.SUPPLEMENT_REQUESTED,
                round_.NgayBoSung,
                (*where, "NgayBoSung"),
                {"reason": round_.NoiDungBoSung},
                {"data.reason": (*where, "NoiDungBoSung"), "event_id": (*where, "HoSoBoSungId")},
            )
        if round_.NgayTiepNhanBoSung:
            implied.add(
                f"supplement-received:{ident}",
                EventType.SUPPLEMENT_RECEIVED,
                round_.NgayTiepNhanBoSung,
                (*where, "NgayTiepNhanBoSung"),
                origin={"event_id": (*where, "HoSoBoSungId")},
            )
    open_round = any(r.NgayBoSung and not r.NgayTiepNhanBoSung for r in rounds)
    if status == DvcqgStatus.AWAITING_SUPPLEMENT and not open_round:  # the status without its round
        implied.add(
            f"supplement-requested:status5:{len(rounds)}",
            EventType.SUPPLEMENT_REQUESTED,
            implied.now,
            ("TrangThaiHoSo",),
        )


def _financial_obligation(implied: _Implied, memory: Memory, status: DvcqgStatus) -> None:
    """Status 6 (nghĩa vụ tài chính) carries no time of its own: entering and leaving it are seen at `now`."""
    waiting = DvcqgStatus.AWAITING_FINANCIAL_OBLIGATION
    reason = {"reason_code": "financial_obligation"}
    if status == waiting and memory.status != waiting:
        memory.financial_pauses += 1
        implied.add(
            f"paused:financial:{memory.financial_pauses}", EventType.PAUSED, implied.now, ("TrangThaiHoSo",), reason
        )
    if memory.status == waiting and status != waiting:
        implied.add(
            f"resumed:financial:{memory.financial_pauses}", EventType.RESUMED, implied.now, ("TrangThaiHoSo",), reason
        )


def _endings(implied: _Implied, status: DvcqgStatus) -> None:
    snapshot = implied.snapshot
    ended_at, ended_field = snapshot.NgayKetThucXuLy, ("NgayKetThucXuLy",)
    if status in (DvcqgStatus.PROCESSED, DvcqgStatus.RETURNED) and ended_at:
        implied.add("processed", EventType.PROCESSED, ended_at, ended_field, {"outcome": "approved"})
    if status == DvcqgStatus.RETURNED:
        e_result = any(r.DuongDanTepTinKetQua for r in snapshot.DanhSachGiayToKetQua)
        implied.add(
            "returned",
            EventType.RETURNED,
            snapshot.NgayTra,
            ("NgayTra",),
            {"e_result": e_result, "result_channel": snapshot.channel},
        )
    if status == DvcqgStatus.WITHDRAWN:
        implied.add("withdrawn", EventType.WITHDRAWN, ended_at, ended_field, {"reason": snapshot.GhiChu})
    if status == DvcqgStatus.STOPPED:
        implied.add("stopped", EventType.STOPPED, ended_at, ended_field, {"reason": snapshot.GhiChu})


def _payment(implied: _Implied) -> None:
    snapshot = implied.snapshot
    if snapshot.DuocThanhToanTrucTuyen in (PAID_ON_DVCQG, PAID_ON_LOCAL_GATEWAY):
        amount = sum(fee.Gia or 0 for fee in snapshot.DanhSachLePhi)
        gateway = "dvcqg" if snapshot.DuocThanhToanTrucTuyen == PAID_ON_DVCQG else "local"
        implied.add(
            "paid",
            EventType.PAID_ONLINE,
            snapshot.NgayTiepNhan,
            ("NgayTiepNhan",),
            {"amount": amount, "gateway": gateway},
        )


def _digitization(implied: _Implied) -> None:
    snapshot = implied.snapshot
    flags = {
        "components_digitized": snapshot.HoSoCoThanhPhanSoHoa or any(t.DuocSoHoa for t in snapshot.TaiLieuNop),
        "result_digitized": any(r.DuongDanTepTinKetQua for r in snapshot.DanhSachGiayToKetQua),
        "reused": any(t.DuocTaiSuDung for t in snapshot.TaiLieuNop),
    }
    if any(flags.values()):
        tag = "digitized:" + "".join("1" if v else "0" for v in flags.values())
        implied.add(tag, EventType.DIGITIZED, snapshot.NgayTiepNhan, ("NgayTiepNhan",), flags)


def _new_events(
    implied: list[_ImpliedEvent], memory: Memory, case_code: str, agency: str
) -> list[tuple[dict[str, Any], dict[str, Loc]]]:
    """The implied events not emitted for an earlier snapshot (remembered as emitted now)."""
    events = []
    for tag, kind, at, data, origin in implied:
        event_id = f"dvcqg:{case_code}:{tag}"
        if event_id in memory.emitted:
            continue
        memory.emitted.add(event_id)
        event = {
            "event_id": event_id,
            "type": kind,
            "case_code": case_code,
            "occurred_at": at.isoformat(),
            "agency_code": agency,
            "data": {k: v for k, v in data.items() if v is not None or k == "online_mode"},
        }
        events.append((event, origin))
    return events


def _national_loc(loc: list[Any], origin: dict[str, Loc]) -> list[str | int]:
    """The national field an event field came from (`data.reason` → GhiChu, …)."""
    head = loc[0] if loc else None
    if head == "data" and len(loc) > 1:
        found = origin.get(f"data.{loc[1]}") or DATA_ORIGIN.get(str(loc[1]))
    else:
        found = origin.get(str(head)) or ENVELOPE_ORIGIN.get(str(head))
    return list(found or origin["occurred_at"])


def snapshot_to_events(
    snapshot: HoSoDongBoDVC,
    memory: Memory,
    registry: Registry,
    now: datetime,
    bounds: DoorBounds,
    names: dict[str, str] | None = None,
) -> list[CaseEvent]:
    """The new events of a snapshot, each validated like any other event at the door.

    SnapshotInvalid (naming national fields) for an unknown agency or procedure, or for an event
    the door refuses; nothing else escapes.
    """
    details: list[dict[str, Any]] = []
    if snapshot.MaTTHC not in registry.catalogue:
        details.append({"loc": ["MaTTHC"], "msg": f"unknown procedure_code {snapshot.MaTTHC!r}"})
    agency = resolve_agency(snapshot, registry, agency_names(registry) if names is None else names)
    if agency is None:
        unit = snapshot.DonViXuLy or snapshot.MaHoSo.split("-")[0]
        details.append(
            {"loc": ["DonViXuLy"], "msg": f"no registered agency has the code or name {unit!r} (nor MaHoSo's prefix)"}
        )
    if details or agency is None:
        raise SnapshotInvalid(details)
    events: list[CaseEvent] = []
    for item, origin in _implied_events(snapshot, memory, registry, now, agency):
        try:
            event = EVENT_ADAPTER.validate_python(item)
        except ValidationError as exc:
            problems = pydantic_details(map(dict, exc.errors()))
        else:
            problems = event_problems(event, bounds, now)
            dissolved = dissolved_agency_problem(registry, event.agency_code, event.occurred_at)
            if dissolved:
                problems.append({"loc": ["agency_code"], "msg": dissolved})
            events.append(event)
        for problem in problems:
            details.append({"loc": _national_loc(problem["loc"], origin), "msg": problem["msg"]})
    if details:
        unique: dict[tuple[Any, ...], dict[str, Any]] = {}
        for detail in details:
            unique.setdefault((tuple(detail["loc"]), detail["msg"]), detail)
        raise SnapshotInvalid(list(unique.values()))
    return events

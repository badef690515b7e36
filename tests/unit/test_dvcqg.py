"""HoSoDongBoDVC snapshots → contract events, and only the new ones."""

from datetime import datetime

import pytest
from pydantic import ValidationError

from services.intake.dvcqg import HoSoDongBoDVC, Memory, snapshot_events
from shared.config import load_registry
from shared.domain.calendar import VN_TZ
from shared.events import EVENT_ADAPTER

REGISTRY = load_registry("config")
NOW = datetime(2026, 3, 20, 10, 0, tzinfo=VN_TZ)

BASE = {
    "MaHoSo": "000.00.02.H99-260316-0001",
    "MaTTHC": "1.012790",
    "MaLinhVuc": "G09-DD",
    "KenhThucHien": 2,
    "TrangThaiHoSo": 2,
    "NgayNopHoSo": "20260315201500",
    "NgayTiepNhan": "20260316091500",
    "NgayHenTra": "20260330091500",
    "LoaiDoiTuong": 1,
}


def events_of(snapshot: dict, memory: Memory | None = None) -> list[dict]:
    return snapshot_events(HoSoDongBoDVC.model_validate(snapshot), memory or Memory(), REGISTRY, NOW)


def test_received_snapshot_gives_submission_and_receipt_in_local_time() -> None:
    events = events_of(BASE)
    assert [e["type"] for e in events] == ["case.submitted", "case.received"]
    received = events[1]
    assert received["occurred_at"] == "2026-03-16T09:15:00+07:00"
    assert received["agency_code"] == "000.00.02.H99"
    assert received["data"]["channel"] == "online" and received["data"]["online_mode"] == "partial"
    assert received["data"]["due_at_reported"] == "2026-03-30T09:15:00+07:00"
    assert received["data"]["level"] == "province"
    for event in events:
        EVENT_ADAPTER.validate_python(event)  # every generated event meets the contract


def test_repeated_snapshot_yields_nothing_and_changes_yield_only_the_new_events() -> None:
    memory = Memory()
    assert len(events_of(BASE, memory)) == 2
    assert events_of(BASE, memory) == []
    later = {
        **BASE,
        "TrangThaiHoSo": 10,
        "NgayKetThucXuLy": "20260325100000",
        "NgayTra": "20260326080000",
        "DuocThanhToanTrucTuyen": 1,
        "DanhSachLePhi": [{"Gia": 30000}, {"Gia": 20000}],
        "HoSoCoThanhPhanSoHoa": 1,
        "DanhSachGiayToKetQua": [{"DuongDanTepTinKetQua": "https://example/kq.pdf"}],
        "DanhSachHoSoBoSung": [
            {
                "HoSoBoSungId": "b1",
                "NgayBoSung": "20260317090000",
                "NgayTiepNhanBoSung": "20260318090000",
                "NgayHenTraTruoc": "20260330091500",
                "NgayHenTraMoi": "20260331091500",
            }
        ],
    }
    kinds = [e["type"] for e in events_of(later, memory)]
    assert kinds == [
        "case.supplement_requested",
        "case.supplement_received",
        "case.processed",
        "case.returned",
        "case.paid_online",
        "case.digitized",
    ]
    paid = [e for e in events_of(later, Memory()) if e["type"] == "case.paid_online"][0]
    assert paid["data"] == {"amount": 50000, "gateway": "dvcqg"}
    assert events_of(later, memory) == []


def test_financial_obligation_status_pauses_and_resumes() -> None:
    memory = Memory()
    events_of(BASE, memory)
    paused = events_of({**BASE, "TrangThaiHoSo": 6}, memory)
    resumed = events_of({**BASE, "TrangThaiHoSo": 4}, memory)
    assert [e["type"] for e in paused] == ["case.paused"]
    assert paused[0]["data"]["reason_code"] == "financial_obligation"
    assert [e["type"] for e in resumed] == ["case.resumed"]


def test_refused_withdrawn_and_stopped() -> None:
    assert [e["type"] for e in events_of({**BASE, "TrangThaiHoSo": 3, "NgayTuChoi": "20260316100000"})] == [
        "case.submitted",
        "case.receipt_refused",
    ]
    assert events_of({**BASE, "TrangThaiHoSo": 7})[-1]["type"] == "case.withdrawn"
    assert events_of({**BASE, "TrangThaiHoSo": 8})[-1]["type"] == "case.stopped"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"NgayTiepNhan": "2026-03-16"}, "NgayTiepNhan"),
        ({"KenhThucHien": 4}, "KenhThucHien"),
        ({"TrangThaiHoSo": 11}, "TrangThaiHoSo"),
        ({"MaHoSo": ""}, "MaHoSo"),
    ],
)
def test_bad_snapshots_name_the_national_field(change, field) -> None:
    with pytest.raises(ValidationError) as info:
        HoSoDongBoDVC.model_validate({**BASE, **change})
    assert info.value.errors()[0]["loc"][0] == field

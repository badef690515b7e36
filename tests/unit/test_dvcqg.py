"""HoSoDongBoDVC snapshots → contract events, and only the new ones."""

import unicodedata
from datetime import datetime

import pytest
from pydantic import ValidationError

from services.intake.door import DoorBounds
from services.intake.dvcqg import Memory, snapshot_events, snapshot_to_events
from services.intake.dvcqg_snapshot import HoSoDongBoDVC, SnapshotInvalid, read_snapshot
from shared.config import load_registry
from shared.domain.calendar import VN_TZ
from shared.domain.registry import Agency
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


# ---- snapshots as one-stop systems send them, through the door -----------------------------------

BOUNDS = DoorBounds(datetime(2015, 1, 1, tzinfo=VN_TZ))
# An "all strings" DTO: every value a string, the handling unit's name, "" for absent values.
STRINGS = {
    "MaHoSo": "000.00.02.H99-260316-0002",
    "MaTTHC": "1.012790",
    "TenTTHC": "Đăng ký đất đai",
    "MaLinhVuc": "G09-DD",
    "KenhThucHien": "2",
    "TrangThaiHoSo": "4",
    "NgayNopHoSo": "20260315201500",
    "NgayTiepNhan": "20260316091500",
    "NgayHenTra": "",
    "NgayKetThucXuLy": "",
    "NgayTra": "",
    "DonViXuLy": "Sở Nông nghiệp và Môi trường",
    "DuocThanhToanTrucTuyen": "3",
    "LoaiDoiTuong": "1",
    "HoSoCoThanhPhanSoHoa": "1",
    "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí", "Gia": "50000"}],
    "DanhSachHoSoBoSung": None,
}


def mapped(raw: dict, registry=REGISTRY, now: datetime = NOW) -> list[dict]:
    snapshot = read_snapshot(raw, BOUNDS, now)
    return [e.model_dump(mode="json") for e in snapshot_to_events(snapshot, Memory(), registry, now, BOUNDS)]


def refused(raw: dict, registry=REGISTRY) -> list[list]:
    with pytest.raises(SnapshotInvalid) as info:
        mapped(raw, registry)
    return [d["loc"] for d in info.value.details]


def test_all_strings_snapshot_with_a_unit_name_and_no_return_date() -> None:
    events = mapped(STRINGS)
    assert [e["type"] for e in events] == ["case.submitted", "case.received", "case.digitized"]
    received = events[1]
    assert received["agency_code"] == "000.00.02.H99"
    assert received["data"]["channel"] == "online" and received["data"]["due_at_reported"] is None
    assert received["data"]["applicant_type"] == "citizen"


def test_ints_and_codes_snapshot_gives_the_same_receipt() -> None:
    ints = {
        **BASE,
        "MaHoSo": "000.00.02.H99-260316-0002",
        "KenhThucHien": 2,
        "TrangThaiHoSo": 4,
        "NgayTiepNhan": 20260316091500,
        "DonViXuLy": "000.00.02.H99",
        "DuocThanhToanTrucTuyen": 1,
        "DanhSachLePhi": [{"Gia": 50000}],
    }
    events = {e["type"]: e for e in mapped(ints)}
    assert events["case.received"]["occurred_at"] == mapped(STRINGS)[1]["occurred_at"]
    assert events["case.paid_online"]["data"] == {"amount": 50000.0, "gateway": "dvcqg"}


@pytest.mark.parametrize("code, paid", [("1", "dvcqg"), ("2", "local"), ("3", None), (3, None), (0, None), ("", None)])
def test_every_payment_code_of_the_national_list_is_accepted(code, paid) -> None:
    events = {e["type"]: e for e in mapped({**STRINGS, "DuocThanhToanTrucTuyen": code})}
    assert (events["case.paid_online"]["data"]["gateway"] if "case.paid_online" in events else None) == paid


@pytest.mark.parametrize("code", ["4", 9, "x", -1])
def test_payment_code_outside_the_list_is_named(code) -> None:
    assert refused({**STRINGS, "DuocThanhToanTrucTuyen": code}) == [["DuocThanhToanTrucTuyen"]]


@pytest.mark.parametrize(
    "unit",
    [
        "  sở NÔNG nghiệp   và Môi trường ",
        unicodedata.normalize("NFD", "Sở Nông nghiệp và Môi trường"),
        "000.00.02.H99",
        None,
        "",
        "Một đơn vị chưa đăng ký",  # not a code nor a name: MaHoSo's prefix
    ],
)
def test_handling_unit_is_resolved_by_code_name_or_case_code_prefix(unit) -> None:
    assert mapped({**STRINGS, "DonViXuLy": unit})[1]["agency_code"] == "000.00.02.H99"


def test_unresolvable_handling_unit_is_named() -> None:
    raw = {**STRINGS, "DonViXuLy": "Sở Không Có", "MaHoSo": "999.99.99.H99-260316-0001"}
    assert refused(raw) == [["DonViXuLy"]]


@pytest.mark.parametrize(
    "change, loc",
    [
        ({"MaHoSo": "000.00.02.H99 260316 0002"}, ["MaHoSo"]),
        ({"MaHoSo": "H99/0002"}, ["MaHoSo"]),
        ({"NgayTiepNhan": "00010101000000"}, ["NgayTiepNhan"]),
        ({"NgayNopHoSo": "99991231235959"}, ["NgayNopHoSo"]),
        ({"NgayHenTra": "99991231235959"}, ["NgayHenTra"]),
        ({"DanhSachHoSoBoSung": [{"NgayBoSung": "20140101000000"}]}, ["DanhSachHoSoBoSung", 0, "NgayBoSung"]),
        ({"KenhThucHien": "4"}, ["KenhThucHien"]),
        ({"TrangThaiHoSo": ""}, ["TrangThaiHoSo"]),
        ({"GhiChu": "x" * 2001}, ["GhiChu"]),
        ({"DanhSachLePhi": [{"Gia": "-1"}]}, ["DanhSachLePhi", 0, "Gia"]),
    ],
)
def test_snapshot_errors_name_the_national_field(change, loc) -> None:
    assert refused({**STRINGS, **change}) == [loc]


def test_a_reported_return_date_weeks_ahead_is_accepted() -> None:
    events = mapped({**STRINGS, "NgayHenTra": "20260415170000"})
    assert events[1]["data"]["due_at_reported"] == "2026-04-15T17:00:00+07:00"


def test_event_level_refusals_name_the_national_field() -> None:
    registry = load_registry("config")
    district = {"name": "UBND huyện Cũ", "level": "district", "parent_code": "000.00.00.H99"}
    registry.put_agency(Agency.from_mapping("000.30.01.H99", district))
    raw = {**STRINGS, "DonViXuLy": "UBND huyện cũ"}
    assert refused(raw, registry) == [["DonViXuLy"]]  # district level after 2025-07-01
    earlier = {**raw, "NgayNopHoSo": "20250615080000", "NgayTiepNhan": "20250616080000"}
    assert mapped(earlier, registry)[1]["data"]["level"] == "district"


def test_missing_field_code_is_taken_from_the_catalogue() -> None:
    events = mapped({**STRINGS, "MaLinhVuc": ""})
    assert events[1]["data"]["field_code"] == REGISTRY.catalogue.get("1.012790").field_code

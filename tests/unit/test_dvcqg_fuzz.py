"""Arbitrary HoSoDongBoDVC-shaped dicts through the DVCQG mapping: only SnapshotInvalid escapes."""

from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.case_event import CaseEvent
from services.intake.door import DoorBounds
from services.intake.dvcqg import Memory, snapshot_to_events
from services.intake.dvcqg_snapshot import SnapshotInvalid, read_snapshot
from shared.config import load_registry
from shared.domain.calendar import VN_TZ

REGISTRY = load_registry("config")
NOW = datetime(2026, 3, 20, 10, 0, tzinfo=VN_TZ)
BOUNDS = DoorBounds(datetime(2015, 1, 1, tzinfo=VN_TZ))

CASE_FIELDS = [
    "MaHoSo", "MaTTHC", "MaLinhVuc", "KenhThucHien", "TrangThaiHoSo", "DonViXuLy", "NgayNopHoSo",
    "NgayTiepNhan", "NgayHenTra", "NgayKetThucXuLy", "NgayTra", "NgayTuChoi", "GhiChu", "LoaiDoiTuong",
    "DuocThanhToanTrucTuyen", "HoSoCoThanhPhanSoHoa", "LaToanTrinh",
]  # fmt: skip
ROUND_FIELDS = ["HoSoBoSungId", "NgayBoSung", "NgayTiepNhanBoSung", "NgayHenTraTruoc", "NgayHenTraMoi", "NoiDungBoSung"]
LISTS = {
    "TaiLieuNop": ["DuocSoHoa", "DuocTaiSuDung", "DuocLayTuKhoDMQG"],
    "DanhSachLePhi": ["Gia", "TenPhiLePhi"],
    "DanhSachHoSoBoSung": ROUND_FIELDS,
    "DanhSachGiayToKetQua": ["DuongDanTepTinKetQua"],
}

# Values a one-stop system might plausibly send, and anything at all.
plausible = st.sampled_from(
    [
        "000.00.02.H99-260316-0001", "000.00.02.H99", "1.012790", "G09-DD", "Sở Nông nghiệp và Môi trường",
        "20260316091500", "00010101000000", "99991231235959", "20260230120000", "", " ", "0", "1", "2", "3", "4",
        "6", "9", "10", 0, 1, 2, 3, 6, 9, 10, 11, -1, 20260316091500, 10**30, 1e308, True, False, None,
    ]
)  # fmt: skip
scalar = st.one_of(
    plausible,
    st.text(max_size=80),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
)
anything = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _record(fields: list[str]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional={name: st.one_of(scalar, anything) for name in fields})


snapshots = st.fixed_dictionaries(
    {},
    optional={
        **{name: scalar for name in CASE_FIELDS},
        **{name: st.one_of(st.lists(_record(fields), max_size=3), anything) for name, fields in LISTS.items()},
        "extra": anything,
    },
)
# Mostly well-formed snapshots with one or two fields replaced, so the deeper paths run too.
BASE = {
    "MaHoSo": "000.00.02.H99-260316-0001",
    "MaTTHC": "1.012790",
    "MaLinhVuc": "G09-DD",
    "KenhThucHien": 2,
    "TrangThaiHoSo": 10,
    "NgayNopHoSo": "20260315201500",
    "NgayTiepNhan": "20260316091500",
    "NgayHenTra": "20260330091500",
    "NgayKetThucXuLy": "20260318091500",
    "NgayTra": "20260319091500",
    "DuocThanhToanTrucTuyen": 1,
    "DanhSachLePhi": [{"Gia": 50000}],
    "DanhSachHoSoBoSung": [{"HoSoBoSungId": "b1", "NgayBoSung": "20260317091500", "NoiDungBoSung": "x"}],
}
near_valid = st.builds(lambda changes: {**BASE, **changes}, snapshots)


def _map(raw: object) -> list[CaseEvent] | SnapshotInvalid:
    try:
        snapshot = read_snapshot(raw, BOUNDS, NOW)
        return snapshot_to_events(snapshot, Memory(), REGISTRY, NOW, BOUNDS)
    except SnapshotInvalid as exc:  # the only error allowed out; it names national fields
        assert exc.details and all(isinstance(d["msg"], str) for d in exc.details), exc.details
        if isinstance(raw, dict):  # a field of the snapshot is named (a non-object is refused as a whole)
            assert all(d["loc"] and isinstance(d["loc"][0], str) for d in exc.details), exc.details
        return exc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(snapshots, near_valid, anything))
def test_any_snapshot_maps_to_events_or_a_named_snapshot_error(raw: object) -> None:
    result = _map(raw)
    if isinstance(result, list):
        for event in result:  # what is accepted is inside the door's bounds and serialisable
            assert BOUNDS.time_problem(event.occurred_at, NOW) is None
            event.model_dump_json()


def test_the_well_formed_base_maps_to_events() -> None:
    result = _map(BASE)
    assert isinstance(result, list)
    assert [e.type for e in result][:2] == ["case.submitted", "case.received"]

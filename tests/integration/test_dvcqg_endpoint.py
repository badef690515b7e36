"""POST /v1/dvcqg/hoso against the real broker and store."""

from __future__ import annotations

import pytest

from services.intake.app import create_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.kafka_tools import read_topic

pytestmark = pytest.mark.integration

SNAPSHOT = {
    "MaHoSo": "000.00.02.H99-260316-0777",
    "MaTTHC": "1.012790",
    "MaLinhVuc": "G09-DD",
    "KenhThucHien": 1,
    "TrangThaiHoSo": 4,
    "NgayTiepNhan": "20260316091500",
    "NgayHenTra": "20260330091500",
}


async def test_snapshots_become_events_once(settings: Settings, kafka) -> None:
    async with serve(create_app(settings)) as client:
        first = await client.post("/v1/dvcqg/hoso", json=SNAPSHOT, headers=AUTH)
        again = await client.post("/v1/dvcqg/hoso", json=[SNAPSHOT, SNAPSHOT], headers=AUTH)
        done = {**SNAPSHOT, "TrangThaiHoSo": 9, "NgayKetThucXuLy": "20260320160000"}
        finished = await client.post("/v1/dvcqg/hoso", json=done, headers=AUTH)
    assert first.status_code == 202 and len(first.json()["accepted"]) == 1
    assert again.status_code == 202 and again.json()["accepted"] == []
    assert [a["event_id"] for a in finished.json()["accepted"]] == ["dvcqg:000.00.02.H99-260316-0777:processed"]
    records = await read_topic(kafka.bootstrap, settings.case_events_topic)
    assert sorted(r["value"]["type"] for r in records) == ["case.processed", "case.received"]


async def test_unknown_procedure_and_bad_dates_are_named_and_nothing_is_published(settings: Settings, kafka) -> None:
    async with serve(create_app(settings)) as client:
        unknown = await client.post("/v1/dvcqg/hoso", json=[SNAPSHOT, {**SNAPSHOT, "MaTTHC": "0.0"}], headers=AUTH)
        bad_date = await client.post("/v1/dvcqg/hoso", json={**SNAPSHOT, "NgayTiepNhan": "16/03/2026"}, headers=AUTH)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"] == [{"loc": [1, "MaTTHC"], "msg": "unknown procedure_code '0.0'"}]
    assert bad_date.status_code == 422
    assert bad_date.json()["error"]["details"][0]["loc"] == ["NgayTiepNhan"]
    assert await read_topic(kafka.bootstrap, settings.case_events_topic, settle=0) == []


# Two one-stop systems' sync DTOs for the same kind of case (dates in the past, within the bounds).
# "All strings": every value a string, the handling unit's name in DonViXuLy, "" for no return date.
ALL_STRINGS = {
    "MaHoSo": "000.00.02.H99-261123-0001",
    "MaTTHC": "1.012790",
    "TenTTHC": "Đăng ký biến động đất đai",
    "MaLinhVuc": "G09-DD",
    "TenLinhVuc": "Đất đai",
    "KenhThucHien": "2",
    "TrangThaiHoSo": "4",
    "NgayNopHoSo": "20261122200000",
    "NgayTiepNhan": "20261123091500",
    "NgayHenTra": "",
    "NgayKetThucXuLy": "",
    "NgayTra": "",
    "DonViXuLy": "Sở Nông nghiệp và Môi trường",
    "DuocThanhToanTrucTuyen": "3",
    "LoaiDoiTuong": "1",
    "HoSoCoThanhPhanSoHoa": "1",
    "TaiLieuNop": [{"TenTepDinhKem": "don.pdf", "DuocSoHoa": "1", "DuocTaiSuDung": "0"}],
    "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí", "Gia": "50000", "HinhThucThu": "1"}],
    "DanhSachHoSoBoSung": [],
}
# "Ints and codes": numbers as numbers, the unit's code, an int date, payment through DVCQG.
INTS_AND_CODES = {
    "MaHoSo": "000.00.02.H99-261123-0002",
    "MaTTHC": "1.012790",
    "MaLinhVuc": "G09-DD",
    "KenhThucHien": 1,
    "TrangThaiHoSo": 4,
    "NgayTiepNhan": 20261123100000,
    "NgayHenTra": "20261207100000",
    "DonViXuLy": "000.00.02.H99",
    "DuocThanhToanTrucTuyen": 1,
    "LoaiDoiTuong": 2,
    "DanhSachLePhi": [{"Gia": 50000}],
}


async def test_snapshots_of_two_one_stop_systems_are_accepted(settings: Settings, kafka) -> None:
    async with serve(create_app(settings)) as client:
        response = await client.post("/v1/dvcqg/hoso", json=[ALL_STRINGS, INTS_AND_CODES], headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.json()["snapshots"] == 2
    records = await read_topic(kafka.bootstrap, settings.case_events_topic)
    by_case: dict[str, dict[str, dict]] = {}
    for record in records:
        by_case.setdefault(record["key"], {})[record["value"]["type"]] = record["value"]
    strings = by_case["000.00.02.H99-261123-0001"]
    assert sorted(strings) == ["case.digitized", "case.received", "case.submitted"]  # 3: not paid online
    assert strings["case.received"]["agency_code"] == "000.00.02.H99"
    assert strings["case.received"]["data"]["channel"] == "online"
    assert strings["case.received"]["data"].get("due_at_reported") is None
    ints = by_case["000.00.02.H99-261123-0002"]
    assert sorted(ints) == ["case.paid_online", "case.received"]
    assert ints["case.received"]["occurred_at"] == "2026-11-23T10:00:00+07:00"
    assert ints["case.received"]["data"]["due_at_reported"] == "2026-12-07T10:00:00+07:00"
    assert ints["case.received"]["data"]["applicant_type"] == "business"


async def test_snapshot_refusals_name_the_national_field_never_a_500(settings: Settings, kafka) -> None:
    cases = [
        ([{**ALL_STRINGS, "NgayTiepNhan": "00010101000000"}], [[0, "NgayTiepNhan"]]),
        ([INTS_AND_CODES, {**ALL_STRINGS, "MaHoSo": "000.00.02.H99 261123 0001"}], [[1, "MaHoSo"]]),
        ({**ALL_STRINGS, "DuocThanhToanTrucTuyen": "4"}, [["DuocThanhToanTrucTuyen"]]),
        ({**ALL_STRINGS, "NgayHenTra": "99991231235959"}, [["NgayHenTra"]]),
        ({**ALL_STRINGS, "DonViXuLy": "Sở Không Tồn Tại", "MaHoSo": "999.99.99.H99-261123-0001"}, [["DonViXuLy"]]),
        (
            [{**ALL_STRINGS, "DanhSachHoSoBoSung": [{"NgayBoSung": "20141231000000"}]}],
            [[0, "DanhSachHoSoBoSung", 0, "NgayBoSung"]],
        ),
        ([{**ALL_STRINGS, "TrangThaiHoSo": "mười"}], [[0, "TrangThaiHoSo"]]),
        ("not a snapshot", [[]]),
    ]
    async with serve(create_app(settings)) as client:
        for body, locs in cases:
            response = await client.post("/v1/dvcqg/hoso", json=body, headers=AUTH)
            assert response.status_code == 422, (body, response.text)
            assert [d["loc"] for d in response.json()["error"]["details"]] == locs, response.text
        # an event the door refuses though the snapshot parses: a district unit after 2025-07-01
        district = {"name": "UBND huyện Cũ", "level": "district", "parent_code": "000.00.00.H99"}
        put = await client.put("/v1/admin/agencies/000.30.01.H99", json=district, headers=AUTH)
        assert put.status_code == 200, put.text
        late = await client.post("/v1/dvcqg/hoso", json=[{**ALL_STRINGS, "DonViXuLy": "UBND Huyện Cũ"}], headers=AUTH)
    assert late.status_code == 422 and [d["loc"] for d in late.json()["error"]["details"]] == [[0, "DonViXuLy"]]
    assert await read_topic(kafka.bootstrap, settings.case_events_topic, settle=0) == []

"""The applicant (chủ hồ sơ) on case.received, for the letters: name and identifier (issue #19.5).

tthc-rules §2.3: the apology (BM.04) names the applicant and their số định danh cá nhân/tổ chức;
DVCQG carries them as ChuHoSo and SoGiayToChuHoSo (§3.3).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from services.intake.door import DoorBounds, event_problems
from services.intake.dvcqg import Memory, snapshot_to_events
from services.intake.dvcqg_snapshot import SnapshotInvalid, read_snapshot
from shared.config import load_registry
from shared.domain.calendar import VN_TZ
from shared.domain.codes import EventType
from shared.domain.fold import CaseEvent, fold_case
from shared.events import EVENT_ADAPTER, example_event

REGISTRY = load_registry("config")
NOW = datetime(2026, 3, 20, 10, 0, tzinfo=VN_TZ)
BOUNDS = DoorBounds(datetime(2015, 1, 1, tzinfo=VN_TZ))
SNAPSHOT = {
    "MaHoSo": "000.00.02.H99-260316-0001",
    "MaTTHC": "1.012790",
    "MaLinhVuc": "G09-DD",
    "KenhThucHien": "2",
    "TrangThaiHoSo": "2",
    "NgayTiepNhan": "20260316091500",
    "NgayHenTra": "20260330091500",
}


def receipt(**data: object) -> dict:
    event = example_event(EventType.RECEIVED)
    return {**event, "data": {**event["data"], **data}}


def folded(event: dict):
    return fold_case([CaseEvent.from_dict(event)], REGISTRY)


def test_the_receipt_sets_the_applicant_name_and_identifier() -> None:
    state = folded(receipt(applicant_name=" Trần Thị Hồng Nhung ", applicant_id="001086012345"))
    assert (state.applicant_name, state.applicant_id) == ("Trần Thị Hồng Nhung", "001086012345")


def test_an_absent_or_blank_applicant_is_none_never_a_string() -> None:
    event = receipt()
    del event["data"]["applicant_name"], event["data"]["applicant_id"]
    assert (folded(event).applicant_name, folded(event).applicant_id) == (None, None)
    assert folded(receipt(applicant_name="  ", applicant_id=123)).applicant_name is None
    assert folded(receipt(applicant_name="  ", applicant_id=123)).applicant_id is None  # not text: ignored


def test_dvcqg_maps_chu_ho_so_and_its_identifier_read_as_text() -> None:
    snapshot = read_snapshot({**SNAPSHOT, "ChuHoSo": " Công ty TNHH Mẫu ", "SoGiayToChuHoSo": 312345678}, BOUNDS, NOW)
    events = [e.model_dump(mode="json") for e in snapshot_to_events(snapshot, Memory(), REGISTRY, NOW, BOUNDS)]
    data = next(e["data"] for e in events if e["type"] == "case.received")
    assert (data["applicant_name"], data["applicant_id"]) == ("Công ty TNHH Mẫu", "312345678")
    blank = read_snapshot({**SNAPSHOT, "ChuHoSo": "", "SoGiayToChuHoSo": ""}, BOUNDS, NOW)
    events = [e.model_dump(mode="json") for e in snapshot_to_events(blank, Memory(), REGISTRY, NOW, BOUNDS)]
    data = next(e["data"] for e in events if e["type"] == "case.received")
    assert (data["applicant_name"], data["applicant_id"]) == (None, None)


def test_the_door_bounds_the_applicant_fields() -> None:
    fine = EVENT_ADAPTER.validate_python(receipt(applicant_name="A" * 200, applicant_id="9" * 64))
    assert event_problems(fine, BOUNDS, NOW) == []
    long = EVENT_ADAPTER.validate_python(receipt(applicant_name="A" * 201, applicant_id="9" * 65))
    assert [p["loc"] for p in event_problems(long, BOUNDS, NOW)] == [
        ["data", "applicant_name"],
        ["data", "applicant_id"],
    ]


def test_a_snapshot_over_the_bounds_is_refused_naming_the_national_fields() -> None:
    snapshot = read_snapshot({**SNAPSHOT, "ChuHoSo": "A" * 300, "SoGiayToChuHoSo": "9" * 70}, BOUNDS, NOW)
    with pytest.raises(SnapshotInvalid) as info:
        snapshot_to_events(snapshot, Memory(), REGISTRY, NOW, BOUNDS)
    assert [d["loc"] for d in info.value.details] == [["ChuHoSo"], ["SoGiayToChuHoSo"]]

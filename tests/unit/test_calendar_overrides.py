"""Agency calendar overrides: refused (naming the field) when the calendar cannot use them, and
dropped with a log line, never kept to fail later, when they arrive from the seed or the topic."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from shared.config import load_registry
from shared.domain.calendar import VN_TZ
from shared.domain.registry import Agency, RegistryError
from shared.registry_sync import RegistryState
from shared.settings import Settings

PARENT = "000.00.00.H99"
RECEIVED = datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ)

UNUSABLE = [
    ({"office_hours": [["13:00", "11:00"]]}, "calendar.office_hours"),
    ({"office_hours": [["07:00", "11:30"], ["11:00", "17:00"]]}, "calendar.office_hours"),
    ({"office_hours": [["13:30", "17:00"], ["07:00", "11:30"]]}, "calendar.office_hours"),
    ({"office_hours": []}, "calendar.office_hours"),
    ({"office_hours": [["07:00"]]}, "calendar.office_hours"),
    ({"office_hours": "07:00-17:00"}, "calendar.office_hours"),
    ({"office_hours": [["25:00", "26:00"]]}, "calendar.office_hours"),
    ({"office_hours": [[7, 17]]}, "calendar.office_hours"),
    ({"days_off": ["2026-02-30"]}, "calendar.days_off.0"),
    ({"days_off": ["2026-05-04", {"name": "no date"}]}, "calendar.days_off.1"),
    ({"working_days": "2026-05-09"}, "calendar.working_days"),
    ({"first_year": 1, "last_year": 99999}, "calendar.first_year"),
    ({"first_year": "2020"}, "calendar.first_year"),
    ({"first_year": 2027, "last_year": 2020}, "calendar.last_year"),
    ({"first_year": 2000, "last_year": 2100}, "calendar.last_year"),
    ({"days_off": ["2026-05-04"], "working_days": ["2026-05-04"]}, "calendar"),
]


def agency(calendar: object, code: str = "999.00.01.H99") -> Agency:
    return Agency.from_mapping(code, {"name": "Thử", "level": "commune", "parent_code": PARENT, "calendar": calendar})


@pytest.mark.parametrize("override, field", UNUSABLE)
def test_unusable_override_is_refused_naming_the_field(override: dict, field: str) -> None:
    registry = load_registry("config")
    with pytest.raises(RegistryError) as info:
        registry.check_calendar(agency(override))
    assert info.value.field == field


def test_usable_override_is_accepted_and_used() -> None:
    registry = load_registry("config")
    override = {"office_hours": [["07:30", "11:30"], ["13:00", "17:00"]], "days_off": ["2026-03-17"]}
    registry.check_calendar(agency(override))
    registry.put_agency(agency(override))
    calendar = registry.calendar_for("999.00.01.H99")
    assert calendar.office_hours.as_strings() == [["07:30", "11:30"], ["13:00", "17:00"]]
    assert not calendar.is_working_day(datetime(2026, 3, 17).date())


def test_override_of_an_existing_agency_is_checked_against_its_descendants() -> None:
    registry = load_registry("config")
    registry.put_agency(agency(None, "999.00.01.H99"))
    child = Agency.from_mapping(
        "999.00.02.H99",
        {
            "name": "Con",
            "level": "commune",
            "parent_code": "999.00.01.H99",
            "calendar": {"working_days": ["2026-05-09"]},
        },
    )
    registry.put_agency(child)
    with pytest.raises(RegistryError):  # 2026-05-09 would be both a day off and a working day below
        registry.check_calendar(agency({"days_off": ["2026-05-09"]}))


@pytest.mark.parametrize("override, field", UNUSABLE)
def test_registry_topic_record_with_unusable_override_keeps_the_agency_without_it(
    override: dict, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = RegistryState.seeded(Settings(config_dir="config"))
    with caplog.at_level(logging.WARNING):
        state.apply(
            "agency:999.00.01.H99", {"name": "Thử", "level": "commune", "parent_code": PARENT, "calendar": override}
        )
    placed = state.registry.agencies["999.00.01.H99"]
    assert placed.calendar is None
    assert "unusable calendar override dropped" in caplog.text
    calendar = state.registry.calendar_for("999.00.01.H99")  # never raises for the agency's cases
    assert calendar.add_working_time(RECEIVED, 8 * 3600) > RECEIVED


def test_seed_file_with_unusable_override_loads_without_it(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree("config", config)
    agencies_file = config / "registry" / "agencies.json"
    agencies = json.loads(agencies_file.read_text(encoding="utf-8"))
    agencies.append(
        {
            "agency_code": "999.00.01.H99",
            "name": "Thử",
            "level": "commune",
            "parent_code": PARENT,
            "calendar": {"office_hours": [["17:00", "07:00"]], "first_year": 1},
        }
    )
    agencies_file.write_text(json.dumps(agencies, ensure_ascii=False), encoding="utf-8")
    registry = load_registry(config)
    assert registry.agencies["999.00.01.H99"].calendar is None
    assert registry.calendar_for("999.00.01.H99").is_working_time(RECEIVED)
    # the usable override of the seed is kept
    assert registry.calendar_for("015.30.00.H99").office_hours.as_strings()[0] == ["07:30", "11:30"]


def test_calendar_for_never_raises_for_a_stored_override_that_breaks_in_combination() -> None:
    registry = load_registry("config")
    registry.put_agency(agency({"working_days": ["2026-05-09"]}))
    # bypass put_agency's check, as a parent changed after the child was placed would
    registry.agencies[PARENT] = Agency.from_mapping(
        PARENT, {"name": "Tỉnh", "level": "province", "calendar": {"days_off": ["2026-05-09"]}}
    )
    calendar = registry.calendar_for("999.00.01.H99")
    assert calendar.add_working_time(RECEIVED, 3600) > RECEIVED

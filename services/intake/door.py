"""Bounds at the door (contract v1.1): what the intake refuses before an event reaches the topic.

Every path in (POST /v1/events fast and slow, DVCQG snapshots, pull mode) calls `event_problems`
on each validated event, next to the registry check. The checks live here, not in the shared event
models, because the projections decode the topic with those models: a stricter door must not
quarantine records that an older door let in.

- `occurred_at` and every timestamp of `data` lie in [TTHC_EARLIEST_EVENT, now + 1 day], except the
  due dates a one-stop system reports (`due_at_reported`, `leg_due_at_reported`, `new_due_at`;
  DVCQG NgayHenTra…), which lie in the future by nature: those may reach now + DEADLINE_HORIZON;
- `case_code` matches CASE_CODE_PATTERN;
- `data` is at most 16 KiB as JSON and the event nests at most 32 levels;
- `level: district` only for cases received before 2025-07-01 (Vietnam local);
- no agency named by an event dated on or after its valid_to (dissolved; the message names the
  successor).
- the applicant's name and identifier (`applicant_name`, `applicant_id`) within TEXT_BOUNDS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import ErrorDetails

from services.intake.case_event import CaseEvent
from shared.domain.codes import EventType
from shared.domain.fold import dissolution_instant
from shared.domain.registry import Registry
from shared.domain.rulesets import load_rule_sets
from shared.web import MAX_JSON_DEPTH, json_depth

CASE_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CASE_CODE = re.compile(CASE_CODE_PATTERN)
MAX_DATA_BYTES = 16 * 1024
# pydantic's errors for a missing or unknown discriminator (`type`), which carry an empty loc
_TAG_ERRORS = frozenset({"union_tag_not_found", "union_tag_invalid"})
# Due dates: a case received today is due weeks later, an apology moves it later still.
DEADLINE_FIELDS = frozenset({"due_at_reported", "leg_due_at_reported", "new_due_at"})
DEADLINE_HORIZON = timedelta(days=2 * 366)
# Free text of case.received the shared model leaves unbounded (older records carry it as extras).
TEXT_BOUNDS = {"applicant_name": 200, "applicant_id": 64}


@dataclass(frozen=True)
class DoorBounds:
    earliest: datetime
    future: timedelta = timedelta(days=1)
    deadline_future: timedelta = DEADLINE_HORIZON

    def time_problem(self, value: datetime, now: datetime, deadline: bool = False) -> str | None:
        """Why an instant is refused, or None. Comparing aware datetimes never overflows.

        `deadline`: a due date (may lie up to `deadline_future` ahead instead of `future`).
        """
        if value < self.earliest:
            return f"{value.isoformat()} is before {self.earliest.isoformat()} (TTHC_EARLIEST_EVENT)"
        ahead = self.deadline_future if deadline else self.future
        if value > now + ahead:
            return f"{value.isoformat()} is more than {ahead.days} day(s) after now"
        return None


def case_code_problem(code: str) -> str | None:
    if CASE_CODE.match(code):
        return None
    return f"{code!r} does not match {CASE_CODE_PATTERN} (ASCII letters, digits, '.', '_', '-'; at most 64)"


def event_problems(event: CaseEvent, bounds: DoorBounds, now: datetime, nesting: int = 0) -> list[dict[str, Any]]:
    """The bounds this event breaks, as contract details ({"loc", "msg"}), or [].

    `nesting`: the levels above the event in its body (2 inside {"events": [...]}).
    """
    problems: list[dict[str, Any]] = []
    code_problem = case_code_problem(event.case_code)
    if code_problem:
        problems.append({"loc": ["case_code"], "msg": code_problem})
    time_problem = bounds.time_problem(event.occurred_at, now)
    if time_problem:
        problems.append({"loc": ["occurred_at"], "msg": time_problem})
    data = event.data
    values = vars(data)  # the declared fields; extras are raw JSON values, never datetimes
    for name, value in values.items():
        if isinstance(value, datetime):
            time_problem = bounds.time_problem(value, now, deadline=name in DEADLINE_FIELDS)
            if time_problem:
                problems.append({"loc": ["data", name], "msg": time_problem})
    for name, limit in TEXT_BOUNDS.items():
        text = values.get(name)
        if isinstance(text, str) and len(text) > limit:
            problems.append({"loc": ["data", name], "msg": f"{len(text)} characters, at most {limit}"})
    extra = data.__pydantic_extra__
    if extra:
        # the envelope, then `data` (which the list of its extra values stands for), then the values
        depth = nesting + 1 + json_depth(list(extra.values()))
        if depth > MAX_JSON_DEPTH:
            problems.append({"loc": ["data"], "msg": f"nested deeper than {MAX_JSON_DEPTH} levels"})
            return problems  # not serialised: that is what the depth bound protects
        # Only extras can make `data` large: the declared fields total at most 2264 characters of
        # text (≤ 14 KB as JSON, escapes included) plus short codes, so the fast path skips this.
        size = len(data.__pydantic_serializer__.to_json(data))
        if size > MAX_DATA_BYTES:
            problems.append({"loc": ["data"], "msg": f"{size} bytes as JSON, at most {MAX_DATA_BYTES}"})
    if event.type == EventType.RECEIVED.value:
        level_problem = level_not_in_force(values.get("level"), event.occurred_at)
        if level_problem:
            problems.append({"loc": ["data", "level"], "msg": level_problem})
    return problems


def level_not_in_force(level: object, received_at: datetime) -> str | None:
    """A level the rule set in force at receipt does not have (district from 2025-07-01)."""
    rule_set = load_rule_sets().at(received_at)
    if level is None or rule_set.allows_level(str(level)):
        return None
    levels = ", ".join(rule_set.levels)
    return (
        f"level {str(level)!r} is not a level of {rule_set.name} ({rule_set.code}, in force from "
        f"{rule_set.in_force_from:%d/%m/%Y}): {levels}"
    )


def dissolved_agency_problem(registry: Registry, code: str, occurred_at: datetime) -> str | None:
    """Why an event dated `occurred_at` may not name agency `code`: it was dissolved before then
    (valid_to 00:00 local, contract v1.1). Events dated before it (late reports) are accepted."""
    agency = registry.agencies.get(code)
    if agency is None or agency.valid_to is None or occurred_at < dissolution_instant(agency.valid_to):
        return None
    successor = f"its successor {agency.successor_code!r}" if agency.successor_code else "no successor"
    return (
        f"agency_code {code!r} no longer exists from {agency.valid_to.isoformat()} (valid_to); "
        f"events from that day name {successor}"
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def named_type_errors(errors: Iterable[ErrorDetails]) -> list[dict[str, Any]]:
    """pydantic's errors, with a missing or unknown `type` named at loc ["type"] (not an empty loc)."""
    named = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error.get("type") in _TAG_ERRORS:
            loc = (*loc, "type")
        named.append({**error, "loc": loc})
    return named

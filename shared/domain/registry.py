"""Agencies (cơ quan, đơn vị) with their hierarchy and level, the catalogue, and per-agency calendars.

Pure data: the services fill it from the `config/` seed and from the compacted registry topic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date

from shared.domain.calendar import CalendarError, CalendarRules, OfficeHours, WorkingCalendar
from shared.domain.catalogue import Catalogue
from shared.domain.codes import Level
from shared.domain.rulesets import RuleSets, load_rule_sets

log = logging.getLogger(__name__)

# The years an agency's calendar override may cover (its first_year/last_year).
OVERRIDE_YEARS = range(2000, 2101)
OVERRIDE_MAX_SPAN = 50
# What a malformed override can raise on its way through CalendarRules and WorkingCalendar.
_OVERRIDE_ERRORS = (CalendarError, ValueError, TypeError, KeyError, AttributeError, OverflowError)


class UnknownAgency(LookupError):
    def __init__(self, code: str) -> None:
        super().__init__(f"unknown agency_code {code!r}")
        self.code = code


class RegistryError(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    level: Level
    parent_code: str | None = None
    calendar: Mapping[str, object] | None = None  # overrides on the parent's calendar
    webhook_url: str | None = None
    place_name: str | None = None  # địa danh of its documents ("Hà Nội, ngày …"); else its parent's
    valid_to: date | None = None  # the first local day it no longer exists (contract v1.1)
    successor_code: str | None = None  # who holds its open cases from valid_to

    @classmethod
    def from_mapping(cls, code: str, spec: Mapping[str, object]) -> Agency:
        try:
            level = Level(str(spec.get("level")))
        except ValueError:
            raise RegistryError(f"level {spec.get('level')!r} is not province, district or commune", "level") from None
        parent = spec.get("parent_code")
        if parent == code:
            raise RegistryError("an agency cannot be its own parent", "parent_code")
        calendar = spec.get("calendar")
        valid_to = spec.get("valid_to")
        try:
            valid_to_day = date.fromisoformat(str(valid_to)) if valid_to else None
        except ValueError:
            raise RegistryError(f"valid_to {valid_to!r} is not a YYYY-MM-DD date", "valid_to") from None
        successor = spec.get("successor_code")
        if successor == code:
            raise RegistryError("an agency cannot be its own successor", "successor_code")
        if successor and not valid_to_day:
            raise RegistryError("successor_code needs valid_to (the day the successor takes over)", "valid_to")
        return cls(
            code=code,
            name=str(spec.get("name") or code),
            level=level,
            parent_code=str(parent) if parent else None,
            calendar=calendar if isinstance(calendar, Mapping) else None,
            webhook_url=str(spec["webhook_url"]) if spec.get("webhook_url") else None,
            place_name=str(spec["place_name"]) if spec.get("place_name") else None,
            valid_to=valid_to_day,
            successor_code=str(successor) if successor else None,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "agency_code": self.code,
            "name": self.name,
            "level": self.level.value,
            "parent_code": self.parent_code,
            "calendar": dict(self.calendar) if self.calendar else None,
            "webhook_url": self.webhook_url,
            "place_name": self.place_name,
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "successor_code": self.successor_code,
        }


@dataclass
class Registry:
    calendar_rules: CalendarRules = field(default_factory=CalendarRules)
    agencies: dict[str, Agency] = field(default_factory=dict)
    catalogue: Catalogue = field(default_factory=Catalogue)
    rule_sets: RuleSets = field(default_factory=load_rule_sets)
    _calendars: dict[str, WorkingCalendar] = field(default_factory=dict, repr=False)
    _subtrees: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _dissolved: tuple[Agency, ...] | None = field(default=None, repr=False)

    def put_agency(self, agency: Agency) -> None:
        """Adds or replaces an agency. A calendar override the calendar cannot use is dropped (and
        logged), never kept to fail later: this is how the seed and the registry topic load."""
        if agency.parent_code and agency.parent_code not in self.agencies:
            raise RegistryError(f"unknown parent_code {agency.parent_code!r}", "parent_code")
        ancestor = agency.parent_code
        while ancestor:
            if ancestor == agency.code:
                raise RegistryError("parent_code would make a cycle", "parent_code")
            ancestor = self.agencies[ancestor].parent_code
        if agency.calendar:
            try:
                self.check_calendar(agency)
            except RegistryError as exc:
                log.warning(
                    "unusable calendar override dropped",
                    extra={"agency": agency.code, "field": exc.field, "error": str(exc)},
                )
                agency = replace(agency, calendar=None)
        self.agencies[agency.code] = agency
        self._subtrees.clear()
        self._dissolved = None

    def check_calendar(self, agency: Agency) -> None:
        """RegistryError (naming the field, e.g. `calendar.office_hours`) unless the calendar can use
        the agency's override, on top of its ancestors' rules, for it and the agencies below it."""
        override = agency.calendar
        if not override:
            return
        check_override_shape(override)
        parent_rules = self.calendar_rules_for(agency.parent_code) if agency.parent_code else self.calendar_rules
        try:
            rules = CalendarRules.from_mapping({"name": parent_rules.name, **override}, base=parent_rules)
            self._calendar_of(rules)
            below = self.subtree(agency.code) - {agency.code} if agency.code in self.agencies else frozenset()
            for code in sorted(below):  # an existing agency's override changes its descendants' calendars
                chain = self.ancestors(code)
                child_rules = rules
                for child in chain[[a.code for a in chain].index(agency.code) + 1 :]:
                    if child.calendar:
                        child_rules = CalendarRules.from_mapping(
                            {"name": child_rules.name, **child.calendar}, base=child_rules
                        )
                self._calendar_of(child_rules)
        except _OVERRIDE_ERRORS as exc:
            raise RegistryError(f"the calendar cannot use this override: {exc}", "calendar") from None

    def agency(self, code: str) -> Agency:
        try:
            return self.agencies[code]
        except KeyError:
            raise UnknownAgency(code) from None

    def subtree(self, code: str) -> frozenset[str]:
        """The agency and every agency below it."""
        if code not in self._subtrees:
            self.agency(code)
            children: dict[str, list[str]] = {}
            for agency in self.agencies.values():
                if agency.parent_code:
                    children.setdefault(agency.parent_code, []).append(agency.code)
            found, stack = set(), [code]
            while stack:
                current = stack.pop()
                found.add(current)
                stack.extend(children.get(current, ()))
            self._subtrees[code] = frozenset(found)
        return self._subtrees[code]

    def ancestors(self, code: str) -> list[Agency]:
        """From the root down to the agency itself."""
        chain = []
        current: str | None = code
        while current:
            agency = self.agency(current)
            chain.append(agency)
            current = agency.parent_code
        return chain[::-1]

    def place_name(self, code: str | None) -> str | None:
        """Địa danh for an agency's documents: its own, else the nearest ancestor's."""
        if not code or code not in self.agencies:
            return None
        for agency in reversed(self.ancestors(code)):
            if agency.place_name:
                return agency.place_name
        return None

    def check_succession(self, agency: Agency) -> None:
        """RegistryError naming the field unless `agency`'s dissolution fits the registry (contract
        v1.1): a known successor, not itself dissolved on or before that day, no cycle, and no
        predecessor dissolved into it on or after that day."""
        if agency.successor_code and agency.valid_to:
            successor = self.agencies.get(agency.successor_code)
            if successor is None:
                raise RegistryError(f"unknown successor_code {agency.successor_code!r}", "successor_code")
            if successor.valid_to is not None and successor.valid_to <= agency.valid_to:
                raise RegistryError(
                    f"successor {successor.code} is itself dissolved on {successor.valid_to.isoformat()}, "
                    f"not after {agency.valid_to.isoformat()}",
                    "successor_code",
                )
            seen = {agency.code}
            current: Agency | None = successor
            while current is not None and current.successor_code:
                if current.successor_code in seen or current.successor_code == agency.code:
                    raise RegistryError("successor_code would make a cycle", "successor_code")
                seen.add(current.code)
                current = self.agencies.get(current.successor_code)
        if agency.valid_to:
            for predecessor in self.agencies.values():
                if (
                    predecessor.successor_code == agency.code
                    and predecessor.valid_to is not None
                    and predecessor.valid_to >= agency.valid_to
                ):
                    raise RegistryError(
                        f"{predecessor.code} is dissolved into it on {predecessor.valid_to.isoformat()}: "
                        f"valid_to must be after that",
                        "valid_to",
                    )

    def with_predecessors(self, codes: set[str]) -> set[str]:
        """`codes` plus every agency dissolved into one of them (directly or through another) and the
        agencies below those, which ended with it (a district's offices): what a successor took over
        (contract v1.1). An agency that outlives its parent is re-parented in the registry first."""
        if self._dissolved is None:
            self._dissolved = tuple(a for a in self.agencies.values() if a.successor_code)
        if not self._dissolved:
            return codes
        found = set(codes)
        added = True
        while added:
            added = False
            for agency in self._dissolved:
                if agency.successor_code in found and agency.code not in found:
                    found |= self.subtree(agency.code)
                    added = True
        return found

    def calendar_rules_for(self, agency_code: str | None) -> CalendarRules:
        rules = self.calendar_rules
        if agency_code and agency_code in self.agencies:
            for agency in self.ancestors(agency_code):
                if agency.calendar:
                    try:
                        rules = CalendarRules.from_mapping({"name": rules.name, **agency.calendar}, base=rules)
                    except _OVERRIDE_ERRORS as exc:  # put_agency drops these; never fail a case for one
                        log.warning("calendar override skipped", extra={"agency": agency.code, "error": str(exc)})
        return rules

    def calendar_for(self, agency_code: str | None = None) -> WorkingCalendar:
        """The working calendar of an agency: the province's rules with its own overrides."""
        rules = self.calendar_rules_for(agency_code)
        try:
            return self._calendar_of(rules)
        except _OVERRIDE_ERRORS as exc:
            log.warning(
                "agency calendar unusable; the province's is used", extra={"agency": agency_code, "error": str(exc)}
            )
            return self._calendar_of(self.calendar_rules)

    def _calendar_of(self, rules: CalendarRules) -> WorkingCalendar:
        calendar = self._calendars.get(rules.version)
        if calendar is None:
            calendar = self._calendars[rules.version] = WorkingCalendar(rules)
        return calendar


def _field(name: str, message: str) -> RegistryError:
    return RegistryError(message, f"calendar.{name}")


def check_override_shape(override: Mapping[str, object]) -> None:
    """The keys the calendar reads, each of the type and in the range it needs (RegistryError naming it)."""
    office = override.get("office_hours")
    if office is not None:
        if not isinstance(office, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair) for pair in office
        ):
            raise _field("office_hours", 'office_hours must be a list of ["HH:MM", "HH:MM"] intervals')
        try:
            OfficeHours.parse(office)
        except CalendarError as exc:
            raise _field("office_hours", str(exc)) from None
    for key in ("days_off", "working_days"):
        days = override.get(key)
        if days is None:
            continue
        if not isinstance(days, list):
            raise _field(key, f"{key} must be a list of dates or {{date, name}} objects")
        for index, item in enumerate(days):
            day = item.get("date") if isinstance(item, dict) else item
            name = item.get("name", "") if isinstance(item, dict) else ""
            if not isinstance(day, str) or not isinstance(name, str | None):
                raise _field(f"{key}.{index}", f'{key}[{index}] must be "YYYY-MM-DD" or {{"date", "name"}}')
            try:
                date.fromisoformat(day)
            except ValueError:
                raise _field(f"{key}.{index}", f"{day!r} is not a YYYY-MM-DD date") from None
    years = {}
    for key in ("first_year", "last_year"):
        year = override.get(key)
        if year is None:
            continue
        if not isinstance(year, int) or isinstance(year, bool) or year not in OVERRIDE_YEARS:
            raise _field(key, f"{key} must be a year from {OVERRIDE_YEARS.start} to {OVERRIDE_YEARS.stop - 1}")
        years[key] = year
    if len(years) == 2 and not 0 <= years["last_year"] - years["first_year"] < OVERRIDE_MAX_SPAN:
        raise _field("last_year", f"last_year must be from first_year to {OVERRIDE_MAX_SPAN - 1} years after it")
    for key in ("name", "revision"):
        if key in override and not isinstance(override[key], str | int):
            raise _field(key, f"{key} must be a string")

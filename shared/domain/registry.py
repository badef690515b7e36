"""Agencies (cơ quan, đơn vị) with their hierarchy and level, the catalogue, and per-agency calendars.

Pure data: the services fill it from the `config/` seed and from the compacted registry topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.domain.calendar import CalendarRules, WorkingCalendar
from shared.domain.catalogue import Catalogue
from shared.domain.codes import Level


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
        return cls(
            code=code,
            name=str(spec.get("name") or code),
            level=level,
            parent_code=str(parent) if parent else None,
            calendar=calendar if isinstance(calendar, Mapping) else None,
            webhook_url=str(spec["webhook_url"]) if spec.get("webhook_url") else None,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "agency_code": self.code,
            "name": self.name,
            "level": self.level.value,
            "parent_code": self.parent_code,
            "calendar": dict(self.calendar) if self.calendar else None,
            "webhook_url": self.webhook_url,
        }


@dataclass
class Registry:
    calendar_rules: CalendarRules = field(default_factory=CalendarRules)
    agencies: dict[str, Agency] = field(default_factory=dict)
    catalogue: Catalogue = field(default_factory=Catalogue)
    _calendars: dict[str, WorkingCalendar] = field(default_factory=dict, repr=False)
    _subtrees: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    def put_agency(self, agency: Agency) -> None:
        if agency.parent_code and agency.parent_code not in self.agencies:
            raise RegistryError(f"unknown parent_code {agency.parent_code!r}", "parent_code")
        ancestor = agency.parent_code
        while ancestor:
            if ancestor == agency.code:
                raise RegistryError("parent_code would make a cycle", "parent_code")
            ancestor = self.agencies[ancestor].parent_code
        self.agencies[agency.code] = agency
        self._subtrees.clear()

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

    def calendar_rules_for(self, agency_code: str | None) -> CalendarRules:
        rules = self.calendar_rules
        if agency_code and agency_code in self.agencies:
            for agency in self.ancestors(agency_code):
                if agency.calendar:
                    rules = CalendarRules.from_mapping({"name": rules.name, **agency.calendar}, base=rules)
        return rules

    def calendar_for(self, agency_code: str | None = None) -> WorkingCalendar:
        """The working calendar of an agency: the province's rules with its own overrides."""
        rules = self.calendar_rules_for(agency_code)
        calendar = self._calendars.get(rules.version)
        if calendar is None:
            calendar = self._calendars[rules.version] = WorkingCalendar(rules)
        return calendar

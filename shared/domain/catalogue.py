"""The procedure catalogue (danh mục TTHC): durations, conventions and rules, versioned by date.

A case keeps the version in force at its receipt (tthc-rules §0.1): publishing a new duration
never moves the deadline of a case already received.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from shared.domain.calendar import VN_TZ
from shared.domain.codes import ApologyTiming, Channel, Convention, Cutoff, PauseReason, SupplementMode
from shared.domain.deadlines import DeadlineError, Duration

# Time not counted towards the deadline exists only where a specialised law says so (hộ tịch and
# lý lịch tư pháp verification, for instance): a procedure opts in by listing its reasons
# (tthc-rules §1.2 and §8). By default every pause counts.
DEFAULT_NON_COUNTING: frozenset[PauseReason] = frozenset()
ALWAYS = date(2000, 1, 1)


class UnknownProcedure(LookupError):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"unknown procedure_code {code!r}{detail}")
        self.code = code


@dataclass(frozen=True)
class LegRule:
    """A liên thông leg: the agency that handles it and its own duration."""

    agency_code: str
    duration: Duration


@dataclass(frozen=True)
class ProcedureVersion:
    effective_from: date
    durations: Mapping[Channel, Duration]
    convention: Convention = Convention.WORKING_HOURS
    supplement_mode: SupplementMode = SupplementMode.PAUSE
    cutoff: Cutoff | None = None
    non_counting_reasons: frozenset[PauseReason] = DEFAULT_NON_COUNTING
    legs: tuple[LegRule, ...] = ()
    full_online_eligible: bool = False
    fee_bearing: bool = False
    apology_timing: ApologyTiming = ApologyTiming.ONE_WORKING_DAY_BEFORE_DUE

    def duration_for(self, channel: Channel | str | None) -> Duration:
        """online/postal default to direct when the procedure does not set them."""
        if channel is not None and channel in self.durations:
            return self.durations[Channel(channel)]
        return self.durations[Channel.DIRECT]

    def leg_duration(self, agency_code: str, position: int) -> Duration | None:
        for leg in self.legs:
            if leg.agency_code == agency_code:
                return leg.duration
        return self.legs[position].duration if position < len(self.legs) else None


@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    field_code: str
    versions: tuple[ProcedureVersion, ...]  # sorted by effective_from

    def version_at(self, moment: datetime) -> ProcedureVersion:
        day = moment.astimezone(VN_TZ).date()
        chosen = None
        for version in self.versions:
            if version.effective_from <= day:
                chosen = version
        if chosen is None:
            raise UnknownProcedure(self.code, f": no version in force on {day}")
        return chosen

    @property
    def current(self) -> ProcedureVersion:
        return self.versions[-1]

    @classmethod
    def from_mapping(cls, code: str, spec: Mapping[str, object]) -> Procedure:
        return cls(
            code=code,
            name=str(spec.get("name", code)),
            field_code=str(spec.get("field_code", "")),
            versions=(parse_version(spec),),
        )

    def with_version(self, name: str, field_code: str, version: ProcedureVersion) -> Procedure:
        """A registry update: the version for its effective date replaces any of the same date."""
        kept = [v for v in self.versions if v.effective_from != version.effective_from]
        versions = tuple(sorted([*kept, version], key=lambda v: v.effective_from))
        return replace(self, name=name, field_code=field_code, versions=versions)


def parse_version(spec: Mapping[str, Any]) -> ProcedureVersion:
    """A procedure version from the registry's JSON shape (contract: PUT /v1/admin/procedures)."""
    raw_durations = spec.get("durations")
    if not isinstance(raw_durations, Mapping) or "direct" not in raw_durations:
        raise DeadlineError("durations must give at least 'direct'", "durations")
    durations: dict[Channel, Duration] = {}
    for channel, value in raw_durations.items():
        try:
            durations[Channel(channel)] = Duration.of(value)
        except ValueError as exc:
            raise DeadlineError(f"durations.{channel}: {exc}", f"durations.{channel}") from exc
    reasons = spec.get("non_counting_reasons")
    legs = spec.get("legs") or []
    effective = spec.get("effective_from")
    try:
        return ProcedureVersion(
            effective_from=date.fromisoformat(str(effective)) if effective else ALWAYS,
            durations=durations,
            convention=Convention(spec.get("convention") or Convention.WORKING_HOURS),
            supplement_mode=SupplementMode(spec.get("supplement_mode") or SupplementMode.PAUSE),
            cutoff=Cutoff(spec["cutoff"]) if spec.get("cutoff") else None,
            non_counting_reasons=(
                frozenset(PauseReason(r) for r in reasons) if reasons is not None else DEFAULT_NON_COUNTING
            ),
            legs=tuple(LegRule(str(leg["agency_code"]), Duration.of(leg["duration"])) for leg in legs),
            full_online_eligible=bool(spec.get("full_online_eligible", False)),
            fee_bearing=bool(spec.get("fee_bearing", False)),
            apology_timing=ApologyTiming(spec.get("apology_timing") or ApologyTiming.ONE_WORKING_DAY_BEFORE_DUE),
        )
    except ValueError as exc:
        raise DeadlineError(str(exc)) from exc


@dataclass
class Catalogue:
    procedures: dict[str, Procedure] = field(default_factory=dict)

    def get(self, code: str) -> Procedure:
        try:
            return self.procedures[code]
        except KeyError:
            raise UnknownProcedure(code) from None

    def __contains__(self, code: object) -> bool:
        return code in self.procedures

    def version_at(self, code: str, moment: datetime) -> ProcedureVersion:
        return self.get(code).version_at(moment)

    def put(self, code: str, spec: Mapping[str, object]) -> Procedure:
        version = parse_version(spec)
        name, field_code = str(spec.get("name", code)), str(spec.get("field_code", ""))
        existing = self.procedures.get(code)
        if existing is None:
            procedure = Procedure(code, name, field_code, (version,))
        else:
            procedure = existing.with_version(name, field_code, version)
        self.procedures[code] = procedure
        return procedure

    @classmethod
    def from_specs(cls, specs: Iterable[tuple[str, Mapping[str, object]]]) -> Catalogue:
        catalogue = cls()
        for code, spec in specs:
            catalogue.put(code, spec)
        return catalogue

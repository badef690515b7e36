"""Rule sets (bộ quy định): the law a case is judged by, chosen by the day it was received.

A case received before 2025-07-01 (Vietnam local) is judged by NĐ 61/2018/NĐ-CP as amended by
NĐ 107/2021/NĐ-CP, with the forms of TT 01/2018/TT-VPCP and three levels of government; from that
day by NĐ 118/2025/NĐ-CP, with the forms of TT 03/2025/TT-VPCP and two levels (contract v1.1,
tthc-rules §0.1). The rule set is data (`config/rule-sets.json`, sources in docs/rule-sets.md);
this module only reads it and picks one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any

from shared.domain.calendar import VN_TZ
from shared.domain.codes import Level

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "config" / "rule-sets.json"


class RuleSetError(ValueError):
    pass


@dataclass(frozen=True)
class ApologyForm:
    """Mẫu số 04 of the circular in force: its number, title and the words that differ."""

    number: str
    title: str
    circular: str
    legal_basis: str
    request_word: str


@dataclass(frozen=True)
class RuleSet:
    code: str  # "nd61-2018" | "nd118-2025" (contract v1.1)
    in_force_from: date
    name: str
    decrees: tuple[str, ...]
    levels: tuple[Level, ...]  # as the law lists them, highest first
    forms_circular: str
    apology_form: ApologyForm
    sources: tuple[str, ...]

    @property
    def starts_at(self) -> datetime:
        """00:00 Vietnam local on the day it comes into force."""
        return datetime.combine(self.in_force_from, time(0), VN_TZ)

    def allows_level(self, level: str | None) -> bool:
        return level is None or level in self.levels

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> RuleSet:
        """A rule set from configuration data (config/rule-sets)."""
        form: Mapping[str, Any] = spec["apology_form"]
        return cls(
            code=str(spec["code"]),
            in_force_from=date.fromisoformat(str(spec["in_force_from"])),
            name=str(spec["name"]),
            decrees=tuple(str(d) for d in spec.get("decrees", ())),
            levels=tuple(Level(str(level)) for level in spec["levels"]),
            forms_circular=str(spec["forms_circular"]),
            apology_form=ApologyForm(**{k: str(form[k]) for k in ApologyForm.__dataclass_fields__}),
            sources=tuple(str(s) for s in spec.get("sources", ())),
        )


@dataclass(frozen=True)
class RuleSets:
    """Every rule set, oldest first; the first also judges receipts before its own date."""

    sets: tuple[RuleSet, ...]

    def __post_init__(self) -> None:
        if not self.sets:
            raise RuleSetError("no rule sets")
        days = [s.in_force_from for s in self.sets]
        if days != sorted(days) or len(set(days)) != len(days):
            raise RuleSetError("rule sets must be listed oldest first, one per date")

    def at(self, received_at: datetime) -> RuleSet:
        """The rule set in force on the local day of the receipt (thời điểm tiếp nhận hợp lệ)."""
        chosen = self.sets[0]
        for rule_set in self.sets:
            if rule_set.starts_at <= received_at:  # instants compare across offsets, even at year 9999
                chosen = rule_set
        return chosen

    def get(self, code: str) -> RuleSet:
        for rule_set in self.sets:
            if rule_set.code == code:
                return rule_set
        raise RuleSetError(f"unknown rule_set {code!r}")

    @classmethod
    def from_mapping(cls, spec: Mapping[str, object]) -> RuleSets:
        items = spec["rule_sets"]
        assert isinstance(items, Sequence)
        return cls(tuple(RuleSet.from_mapping(item) for item in items))


def rule_set_of(case: Mapping[str, object], rule_sets: RuleSets | None = None) -> RuleSet | None:
    """A case's rule set: the one it carries, else (a document folded before cases carried one) the
    one in force at its receipt; None before it is received."""
    rule_sets = rule_sets or load_rule_sets()
    code = case.get("rule_set")
    if code:
        try:
            return rule_sets.get(str(code))
        except RuleSetError:
            pass
    received = case.get("received_at")
    if isinstance(received, str):
        received = datetime.fromisoformat(received)
    return rule_sets.at(received) if isinstance(received, datetime) and received.tzinfo else None


@cache
def load_rule_sets(path: Path = DEFAULT_FILE) -> RuleSets:
    with path.open(encoding="utf-8") as handle:
        return RuleSets.from_mapping(json.load(handle))

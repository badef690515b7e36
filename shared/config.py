"""Loads the registry seed (config/): the calendar rules, agencies and procedures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.domain.calendar import CalendarRules
from shared.domain.catalogue import Catalogue
from shared.domain.registry import Agency, Registry


def _read(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def load_registry(config_dir: str | Path) -> Registry:
    """The registry from `calendar.json`, `registry/agencies.json` and `registry/procedures.json`.

    Agencies are put parents first, so the file may list them in any order.
    """
    root = Path(config_dir)
    calendar_file = root / "calendar.json"
    rules = CalendarRules.from_mapping(_read(calendar_file)) if calendar_file.exists() else CalendarRules()
    registry = Registry(rules)
    agencies_file = root / "registry" / "agencies.json"
    pending = {a["agency_code"]: a for a in _read(agencies_file)} if agencies_file.exists() else {}
    while pending:
        placed = [
            code
            for code, spec in pending.items()
            if not spec.get("parent_code") or spec["parent_code"] in registry.agencies
        ]
        if not placed:
            raise ValueError(f"agencies with unknown parents: {sorted(pending)}")
        for code in placed:
            registry.put_agency(Agency.from_mapping(code, pending.pop(code)))
    registry.catalogue = Catalogue.from_specs((p["procedure_code"], p) for p in load_procedure_specs(root))
    return registry


def load_procedure_specs(config_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(config_dir) / "registry" / "procedures.json"
    return list(_read(path)) if path.exists() else []

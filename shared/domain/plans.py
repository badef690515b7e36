"""Targets of a provincial plan (kế hoạch CCHC), compared as the plan words them.

"trên 30%" is strictly above 30% (`above`); "từ 98% trở lên", "đạt 100%" and a bare "15%" are the
goal or more (`at_least`). The plan's own words stay next to the number (`wording`), so a reader can
check the comparison against the text. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Compare = Literal["above", "at_least"]
COMPARES: tuple[Compare, ...] = ("above", "at_least")
_EPSILON = 1e-12  # a rate computed as a fraction equal to the goal counts as equal


def target_spec(spec: float | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """{"goal", "compare", "wording"} from the plan's entry; a bare number is `at_least` (old files)."""
    if spec is None:
        return None
    if isinstance(spec, int | float):
        return {"goal": float(spec), "compare": "at_least", "wording": None}
    compare = spec.get("compare", "at_least")
    if compare not in COMPARES:
        raise ValueError(f"plan target compare {compare!r} is not one of {', '.join(COMPARES)}")
    return {"goal": float(spec["goal"]), "compare": compare, "wording": spec.get("wording")}


def meets(rate: float | None, goal: float, compare: Compare) -> bool | None:
    """Whether the rate meets the goal as worded; None when there is no rate."""
    if rate is None:
        return None
    if compare == "above":
        return rate > goal + _EPSILON
    return rate >= goal - _EPSILON


def target(name: str, rate: float | None, spec: float | Mapping[str, Any] | None) -> dict[str, Any]:
    """One row of `plan_targets`: the rate, the goal, how it compares, the plan's words, met or not."""
    wanted = target_spec(spec)
    if wanted is None:
        return {"target": name, "rate": rate, "goal": None, "compare": None, "wording": None, "met": None}
    return {"target": name, "rate": rate, **wanted, "met": meets(rate, wanted["goal"], wanted["compare"])}

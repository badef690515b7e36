"""Plan targets compare as the plan words them (tthc-rules §8: "trên" is strictly above)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.domain.plans import meets, target, target_spec

PLAN = json.loads((Path(__file__).parents[2] / "config" / "scoring" / "par.json").read_text(encoding="utf-8"))["plans"]


ROWS = [
    # (rate, goal, compare, met) — the plan's words in the comment (seed: Phú Hữu ward plan 2020, I.2)
    (0.30, 0.30, "above", False),  # "trên 30%": exactly 30% is not above
    (0.3001, 0.30, "above", True),  # "trên 30%"
    (3 / 10, 0.30, "above", False),  # 3 online of 10 received: still not above
    (0.98, 0.98, "at_least", True),  # "đạt 98% trở lên": 98% is enough
    (49 / 50, 0.98, "at_least", True),  # the same as a fraction of counts
    (0.9799, 0.98, "at_least", False),
    (1.0, 1.0, "at_least", True),  # "đạt 100%"
    (0.15, 0.15, "at_least", True),  # a bare "15%": the goal or more
    (None, 0.30, "above", None),  # no case: no verdict
]


@pytest.mark.parametrize("rate, goal, compare, met", ROWS)
def test_targets_compare_as_worded(rate, goal, compare, met) -> None:
    assert meets(rate, goal, compare) is met


def test_the_seed_plan_says_above_for_trên_and_keeps_its_words() -> None:
    plan = PLAN["2026"]
    assert plan["online"]["compare"] == "above" and "trên 30%" in plan["online"]["wording"]
    assert plan["on_time_by_field"]["G09-DD"] == {
        "goal": 0.98,
        "compare": "at_least",
        "wording": "Lĩnh vực nhà đất đạt 98% trở lên",
    }
    for name in ("postal_returns", "apology_coverage", "digitized"):
        assert plan[name]["compare"] == "at_least" and plan[name]["wording"]
    row = target("online", 0.30, plan["online"])
    assert row["met"] is False and row["goal"] == 0.30 and row["compare"] == "above"


def test_a_bare_number_is_at_least_and_an_unknown_comparison_is_refused() -> None:
    assert target_spec(0.5) == {"goal": 0.5, "compare": "at_least", "wording": None}
    assert target("x", 0.5, None)["met"] is None
    with pytest.raises(ValueError):
        target_spec({"goal": 0.5, "compare": "over"})

"""The indicator counters: one named table of the short keys stored in the buckets."""

from __future__ import annotations

import random

from shared.domain.counters import HANDED_OVER, OVERDUE_ENDED, CaseCounter, day_points
from tests.unit.test_metrics_aggregates import random_fact

NAMES = {name: value for name, value in vars(CaseCounter).items() if name.isupper()}


def test_every_stored_key_has_one_name() -> None:
    assert len(set(NAMES.values())) == len(NAMES)


def test_every_counter_a_case_adds_to_is_a_named_one() -> None:
    rng = random.Random(21)
    seen = {counter for _ in range(500) for (_, _, counter) in day_points(random_fact(rng))}
    assert seen <= set(NAMES.values())


def test_lasting_states_move_and_end_through_named_counters() -> None:
    assert set(HANDED_OVER.values()) <= set(NAMES.values())
    assert set(OVERDUE_ENDED) <= set(HANDED_OVER)


def test_a_case_not_yet_received_adds_to_nothing() -> None:
    assert not day_points({"agency_code": "A", "due_at": None})

"""The incremental aggregates give exactly what the fact-by-fact indicators give, for any period."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest

from services.metrics.aggregates import COLLECTIONS, answer, answerable, apply_change, buckets_queries, changes
from services.metrics.mirror import BucketMirror
from shared.domain.calendar import VN_TZ
from shared.domain.indicators import Period, indicators

AGENCIES = ["A", "B", "C"]
FIELDS = ["F1", "F2"]


def random_fact(rng: random.Random) -> dict[str, Any]:
    received = datetime.combine(date(2026, 1, 1) + timedelta(days=rng.randint(0, 150)), time(rng.randint(7, 16)), VN_TZ)
    due = received + timedelta(days=rng.randint(1, 40), hours=rng.randint(0, 9)) if rng.random() < 0.95 else None
    end = received + timedelta(days=rng.randint(0, 60), hours=rng.randint(0, 9)) if rng.random() < 0.7 else None
    on_time = None
    dated = None
    if end is not None and due is not None:
        multi = rng.random() < 0.1
        on_time = end <= due and not multi
        dated = "early" if end.date() < due.date() else "on_time" if end.date() == due.date() else "late"
    else:
        multi = rng.random() < 0.1
    return {
        "agency_code": rng.choice(AGENCIES),
        "level": "province",
        "field_code": rng.choice(FIELDS),
        "channel": rng.choice(["online", "direct", "postal", None]),
        "online_mode": rng.choice(["full", "partial", None]),
        "full_online_eligible": rng.random() < 0.5,
        "fee_bearing": rng.random() < 0.4,
        "paid_online": rng.random() < 0.5,
        "components_digitized": rng.random() < 0.6,
        "reused": rng.random() < 0.2,
        "received_at": received if rng.random() < 0.97 else None,
        "due_at": due,
        "end_at": end,
        "on_time": on_time,
        "result_dated": dated,
        "supplement_requests": 2 if multi else rng.choice([0, 1]),
        "apology_on_time": rng.choice([None, True, False]),
        "satisfied": rng.choice([None, True, False]),
        "complaint": rng.random() < 0.05,
        "result_channel": rng.choice([None, "direct", "online", "postal"]) if end is not None else None,
        "result_digitized": rng.random() < 0.5,
        "e_result": rng.choice([None, True, False]),
    }


def apply(store: dict[tuple[str, str], dict[str, Any]], pairs: list[tuple[dict | None, dict]]) -> None:
    for key, change in changes(pairs).items():
        apply_change(store.setdefault(key, {**change["keys"], "c": {}}), change["inc"])


def select(store: dict[tuple[str, str], dict[str, Any]], kind: str, **filters: str) -> list[dict[str, Any]]:
    return [
        b
        for (collection, _), b in store.items()
        if collection.startswith(kind) and all(b.get(k) == v for k, v in filters.items())
    ]


PERIODS = [
    Period(date(2026, 3, 1), date(2026, 3, 31)),
    Period(date(2026, 1, 1), date(2026, 6, 30)),
    Period(date(2026, 2, 10), date(2026, 4, 17)),
    Period(date(2026, 5, 5), date(2026, 5, 5)),
    Period(date(2025, 12, 1), date(2026, 12, 31)),
]


@pytest.mark.parametrize("seed", range(6))
def test_aggregates_equal_the_fact_by_fact_answer_after_changes(seed: int) -> None:
    rng = random.Random(seed)
    facts = [random_fact(rng) for _ in range(400)]
    store: dict[tuple[str, str], dict[str, Any]] = {}
    apply(store, [(None, fact) for fact in facts])
    # late events refold some cases: their facts change, the buckets follow
    for index in rng.sample(range(len(facts)), 120):
        new = random_fact(rng) | {"agency_code": facts[index]["agency_code"]}
        apply(store, [(facts[index], new)])
        facts[index] = new
    for period in PERIODS:
        expected = indicators(facts, period)
        assert answer(select(store, "c"), period) == expected
        mine = [f for f in facts if f["agency_code"] == "B"]
        assert answer(select(store, "c", agency="B"), period) == indicators(mine, period)
        if answerable(period, "f"):  # fine buckets are by month only
            online_f1 = [f for f in facts if f["field_code"] == "F1" and f["channel"] == "online"]
            assert answer(select(store, "f", field="F1", channel="online"), period) == indicators(online_f1, period)
    assert [answerable(p, "f") for p in PERIODS] == [True, True, False, False, True]


def test_a_case_removed_and_added_back_leaves_no_trace() -> None:
    rng = random.Random(99)
    fact = random_fact(rng) | {"received_at": datetime(2026, 3, 2, 9, tzinfo=VN_TZ)}
    store: dict[tuple[str, str], dict[str, Any]] = {}
    apply(store, [(None, fact)])
    apply(store, [(fact, {**fact, "received_at": None})])
    assert all(value == 0 for bucket in store.values() for value in bucket["c"].values())
    assert all(v == 0 for bucket in store.values() for day in bucket.get("d", {}).values() for v in day.values())


@pytest.mark.parametrize("seed", range(3))
def test_the_in_memory_copy_answers_the_store_queries_exactly(seed: int) -> None:
    """BucketMirror, moved by the same deltas, selects per `buckets_queries` what the store would;
    its per-month sums answer the same, and follow later changes."""
    rng = random.Random(100 + seed)
    facts = [random_fact(rng) for _ in range(300)]
    mirror = BucketMirror({name: None for name in COLLECTIONS})  # type: ignore[misc]
    mirror.applied(changes([(None, fact) for fact in facts]))
    # the province-wide month sums, kept before any query reads them (the checks below use them)
    assert mirror.warm() == len(mirror.buckets["c_m"]) > 0

    def from_mirror(period: Period, kind: str, agencies: set[str] | None, rollup: bool, **filters: str) -> dict:
        end = date.fromordinal(period.last.toordinal() + 1)
        days = {d.strftime("%Y-%m") for d in (period.first, end) if d.day != 1} if rollup else None
        queries = buckets_queries(period, kind, agencies, filters)
        return answer([b for c, q in queries for b in mirror.find(c, q, days)], period)

    for _ in range(2):
        for period in PERIODS:
            for rollup in (False, True):
                assert from_mirror(period, "c", None, rollup) == indicators(facts, period)
                picked = [f for f in facts if f["agency_code"] in {"A", "C"}]
                assert from_mirror(period, "c", {"A", "C"}, rollup, level="province") == indicators(picked, period)
                assert from_mirror(period, "c", None, rollup, level="commune")["received"]["total"] == 0
                if answerable(period, "f"):
                    f2 = [f for f in facts if f["field_code"] == "F2" and f["channel"] == "postal"]
                    assert from_mirror(period, "f", None, rollup, field="F2", channel="postal") == indicators(
                        f2, period
                    )
                    f1 = [f for f in facts if f["field_code"] == "F1"]
                    assert from_mirror(period, "f", {"B"}, rollup, field="F1") == indicators(
                        [f for f in f1 if f["agency_code"] == "B"], period
                    )
                    online = [f for f in facts if f["channel"] == "online"]
                    assert from_mirror(period, "f", None, rollup, channel="online") == indicators(online, period)
        # late events change some cases: the kept sums of their months must not survive
        for index in rng.sample(range(len(facts)), 80):
            new = random_fact(rng) | {"agency_code": facts[index]["agency_code"]}
            mirror.applied(changes([(facts[index], new)]))
            facts[index] = new

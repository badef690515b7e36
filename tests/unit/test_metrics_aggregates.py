"""The incremental aggregates give exactly what the fact-by-fact indicators give, for any period."""

from __future__ import annotations

import asyncio
import copy
import random
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.metrics.aggregates import (
    COLLECTIONS,
    answer,
    answerable,
    apply_change,
    buckets_queries,
    changes,
    fine_selected,
)
from services.metrics.facts import case_facts
from services.metrics.mirror import BucketMirror
from shared.domain.calendar import VN_TZ, CalendarRules
from shared.domain.catalogue import Catalogue
from shared.domain.codes import Level
from shared.domain.fold import CaseEvent, fold_case
from shared.domain.indicators import Period, indicators
from shared.domain.registry import Agency, Registry

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
    # when the case counts overdue (S-766DOC 2.1): from due; never while it waits after one request
    # at or before due or its clock is stopped; from a request's instant after two; or, for a fact
    # stored before the fold derived it, no key at all (judged by due)
    overdue = {}
    if due is not None:
        overdue = rng.choice(
            [
                {},
                {"overdue_from": due},
                {"overdue_from": None},
                {"overdue_from": min(due, received + timedelta(days=rng.randint(0, 30), hours=rng.randint(0, 9)))},
            ]
        )
    agency = rng.choice(AGENCIES)
    history = handed_over(rng, agency, received, end)
    if history:
        agency = history["agency_history"][-1]["agency_code"]  # the case's agency_code: its holder now
    return (
        overdue
        | history
        | {
            "agency_code": agency,
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
    )


def handed_over(rng: random.Random, agency: str, received: datetime | None, end: datetime | None) -> dict[str, Any]:
    """Mostly nothing; else one or two handovers to other agencies (contract v1.1: a dissolved
    agency's open cases go to its successor at valid_to 00:00 local), mostly at local midnight,
    sometimes mid-day, sometimes after the end or a pointless one to the same agency."""
    if received is None or rng.random() < 0.6:
        return {}
    history: list[dict[str, Any]] = [{"agency_code": agency, "from": received, "to": None}]
    at = received
    for _ in range(rng.choice([1, 1, 2])):
        day = at.astimezone(VN_TZ).date() + timedelta(days=rng.randint(0, 50))
        at = datetime.combine(day, time(0) if rng.random() < 0.8 else time(rng.randint(1, 23)), VN_TZ)
        if at <= history[-1]["from"]:
            break
        if end is not None and at > end and rng.random() < 0.8:
            break  # the fold hands over open cases only
        holder = rng.choice([a for a in AGENCIES if a != history[-1]["agency_code"]] + [history[-1]["agency_code"]])
        history[-1]["to"] = at
        history.append({"agency_code": holder, "from": at, "to": None})
    if len(history) == 1:
        return {}
    return {"agency_history": history}


def apply(store: dict[tuple[str, str], dict[str, Any]], pairs: list[tuple[dict | None, dict]]) -> None:
    for key, change in changes(pairs).items():
        apply_change(store.setdefault(key, {**change["keys"], "c": {}}), change["inc"])


def select(store: dict[tuple[str, str], dict[str, Any]], kind: str, **filters: str) -> list[dict[str, Any]]:
    """The buckets of a kind the store would select (the fine ones are views of the stored `f`)."""
    if kind == "f":
        return fine_selected(store.values(), filters)
    return [b for b in store.values() if all(b.get(k) == v for k, v in filters.items())]


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
        for agencies in ({"A"}, {"B"}, {"C"}, {"A", "C"}):  # each figure for the holder at the time
            held = [b for b in select(store, "c") if b["agency"] in agencies]
            assert answer(held, period) == indicators(facts, period, agencies)
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
                assert from_mirror(period, "c", {"A", "C"}, rollup, level="province") == indicators(
                    facts, period, {"A", "C"}
                )
                assert from_mirror(period, "c", None, rollup, level="commune")["received"]["total"] == 0
                if answerable(period, "f"):
                    f2 = [f for f in facts if f["field_code"] == "F2" and f["channel"] == "postal"]
                    assert from_mirror(period, "f", None, rollup, field="F2", channel="postal") == indicators(
                        f2, period
                    )
                    f1 = [f for f in facts if f["field_code"] == "F1"]
                    assert from_mirror(period, "f", {"B"}, rollup, field="F1") == indicators(f1, period, {"B"})
                    online = [f for f in facts if f["channel"] == "online"]
                    assert from_mirror(period, "f", None, rollup, channel="online") == indicators(online, period)
        # late events change some cases: the kept sums of their months must not survive
        for index in rng.sample(range(len(facts)), 80):
            new = random_fact(rng) | {"agency_code": facts[index]["agency_code"]}
            mirror.applied(changes([(facts[index], new)]))
            facts[index] = new


class StoredBuckets:
    """The stored buckets as the store hands them back to BucketMirror.load (copies, with `_id`)."""

    def __init__(self, store: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.store = store

    async def _found(self) -> Any:
        for (_, bucket_id), bucket in self.store.items():
            yield copy.deepcopy(bucket) | {"_id": bucket_id}

    def find(self, query: dict[str, Any], batch_size: int = 0) -> Any:
        assert query == {}
        return self._found()


def test_a_field_or_channel_of_any_spelling_is_its_own_fine_bucket_in_the_store_and_in_memory() -> None:
    """A fine bucket is a view of its stored bucket's `f` counters, under a key without a dot, a
    dollar, a bar or a NUL: field codes holding them stay apart, in the store, in a copy moved by the
    deltas and in one loaded from the store."""
    rng = random.Random(7)
    odd = ["G09.DD", "G09$KD", "G09|HT", "G09%2EDD", "G09\x00CT"]
    facts = [random_fact(rng) | {"field_code": rng.choice(odd)} for _ in range(200)]
    store: dict[tuple[str, str], dict[str, Any]] = {}
    apply(store, [(None, fact) for fact in facts])
    assert {collection for collection, _ in store} == set(COLLECTIONS)
    for bucket in store.values():
        assert all(not {".", "$", "\x00"} & set(key) and key.count("|") == 1 for key in bucket.get("f", {}))
    moved = BucketMirror({name: None for name in COLLECTIONS})  # type: ignore[misc]
    moved.applied(changes([(None, fact) for fact in facts]))
    loaded = BucketMirror({COLLECTIONS[0]: StoredBuckets(store)})  # type: ignore[dict-item]
    asyncio.run(loaded.load())
    period = Period(date(2026, 1, 1), date(2026, 6, 30))
    coarse = buckets_queries(period, "c", None, {})
    assert answer([b for c, q in coarse for b in loaded.find(c, q)], period) == indicators(facts, period)
    for field in odd:
        expected = indicators([f for f in facts if f["field_code"] == field], period)
        assert expected["received"]["total"] > 0
        assert answer(select(store, "f", field=field), period) == expected
        for mirror in (moved, loaded):
            queries = buckets_queries(period, "f", None, {"field": field})
            assert answer([b for c, q in queries for b in mirror.find(c, q)], period) == expected
            assert answer([b for c, q in queries for b in mirror.find(c, q, set())], period) == expected


# ---- cases folded from events: waiting for the citizen, pauses (S-766DOC 2.1, contract v1.1) ----


def make_registry() -> Registry:
    registry = Registry(CalendarRules())
    registry.put_agency(Agency("TOP", "UBND tỉnh", Level.PROVINCE))
    for code in AGENCIES:
        registry.put_agency(Agency(code, f"Cơ quan {code}", Level.PROVINCE, "TOP"))
    registry.catalogue = Catalogue.from_specs(
        [
            (
                "P.LAND",
                {
                    "name": "Đăng ký biến động đất đai",
                    "field_code": "F1",
                    "durations": {"direct": {"value": 3, "unit": "working_days"}},
                    "supplement_mode": "pause",
                    "non_counting_reasons": ["verification"],
                },
            )
        ]
    )
    return registry


REGISTRY = make_registry()
ACTIONS = {
    "request": ("case.supplement_requested", {}),
    "supply": ("case.supplement_received", {}),
    "verify": ("case.paused", {"reason_code": "verification"}),  # stops the clock
    "other": ("case.paused", {"reason_code": "other"}),  # counts towards the deadline
    "resume": ("case.resumed", {}),
    "end": ("case.processed", {"outcome": "approved"}),
}


@st.composite
def folded_facts(draw: st.DrawFn) -> dict[str, Any]:
    """One case's facts from the fold: received, then requests (one or more, before or after due),
    supplies, pauses and an end, a few working hours or days apart; maybe handed over once."""
    agency = draw(st.sampled_from(AGENCIES))
    day = date(2026, 1, 5) + timedelta(days=draw(st.integers(0, 120)))
    at = datetime.combine(day, time(draw(st.integers(7, 16))), VN_TZ)
    events = [
        CaseEvent(
            "e1",
            "case.received",
            "C",
            at,
            agency,
            {"procedure_code": "P.LAND", "level": "province", "channel": "direct"},
            seq=1,
        )
    ]
    for n, action in enumerate(draw(st.lists(st.sampled_from(sorted(ACTIONS)), max_size=5)), start=2):
        at += timedelta(days=draw(st.integers(0, 6)), hours=draw(st.integers(0, 8)))
        kind, data = ACTIONS[action]
        events.append(CaseEvent(f"e{n}", kind, "C", at, agency, data, seq=n))
    facts = case_facts(fold_case(events, REGISTRY), [], None)
    # the receiving agency dissolved into another at a random midnight (sometimes mid-day): the fold
    # hands the case over when it is still open then (contract v1.1, agencies change)
    handover = draw(
        st.none() | st.tuples(st.integers(0, 60), st.sampled_from([0, 0, 0, 13]), st.sampled_from(AGENCIES))
    )
    if handover is not None:
        days, hour, successor = handover
        instant = datetime.combine(day + timedelta(days=days), time(hour), VN_TZ)
        received, end = facts["received_at"], facts["end_at"]
        if successor != agency and received < instant and (end is None or end >= instant):
            facts["agency_history"] = [
                {"agency_code": agency, "from": received, "to": instant},
                {"agency_code": successor, "from": instant, "to": None},
            ]
            facts["agency_code"] = successor
    return facts


@st.composite
def periods(draw: st.DrawFn) -> Period:
    first = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 180)))
    return Period(first, first + timedelta(days=draw(st.integers(0, 100))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(folded_facts(), min_size=1, max_size=20), st.lists(folded_facts(), max_size=8), periods())
def test_aggregates_equal_the_facts_for_folded_waiting_paused_and_handed_over_cases(
    facts: list[dict[str, Any]], refolded: list[dict[str, Any]], period: Period
) -> None:
    store: dict[tuple[str, str], dict[str, Any]] = {}
    apply(store, [(None, fact) for fact in facts])
    for index, new in enumerate(refolded[: len(facts)]):  # late events change some cases
        apply(store, [(facts[index], new)])
        facts[index] = new
    assert answer(select(store, "c"), period) == indicators(facts, period)
    for agencies in ({"B"}, {"A", "C"}):
        held = [b for b in select(store, "c") if b["agency"] in agencies]
        assert answer(held, period) == indicators(facts, period, agencies)

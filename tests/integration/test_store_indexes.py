"""The store profile's indexes (docs/replicas.md), on the store the tests start.

With several replicas the store answers the lists (ADR 0008), so on MongoDB (`TTHC_STORE_PROFILE`
= mongodb) the list queries have indexes; on the stand-in (standin) the case documents have none.

The stand-in implements `explain`, but its planner uses an index only for equalities plus one range
on one field: every list query has a top-level `$or` (`end_at` null or after `as_of`), so there it
is a collection scan whatever the indexes (pinned below: it is why the stand-in gets none). What an
index scan on mongod needs is pinned by the keys instead: for the `end_at: null` branch that mongod
plans apart, an index whose fields before the sort are all pinned to points by the query, then the
sort `(due_at, _id)`; and the stand-in's `explain` shows that very branch, reduced to the keys its
planner takes, as an index scan of that index.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from services.deadline.context import LIST_INDEXES, DeadlineContext, ensure_case_indexes
from services.deadline.lists import ListFilters, build_query
from services.metrics.context import BUCKET_INDEX, FACT_INDEXES, MetricsContext
from shared.domain.calendar import VN_TZ
from shared.settings import Settings
from shared.store import find_by_ids, store_tuning

pytestmark = pytest.mark.integration

AS_OF = datetime(2026, 3, 18, 10, 0, tzinfo=VN_TZ)
AGENCY = "000.00.02.H99"  # a department with a unit below it
KINDS = ("overdue", "due-soon", "apology-due")
SORT_KEYS = ["due_at", "_id"]


def mongodb(settings: Settings) -> Settings:
    return settings.model_copy(update={"store_profile": "mongodb"})


def open_branch(query: dict[str, Any]) -> dict[str, Any]:
    """The conjunction mongod plans for the list's open cases: the `$or` on `end_at` taken at null."""
    assert {"end_at": None} in query["$or"]
    return {key: value for key, value in query.items() if key != "$or"} | {"end_at": None}


def pinned(value: Any) -> bool:
    """An equality or an `$in`: point intervals of an index field (after them, the order is the next field's)."""
    return not isinstance(value, dict) or set(value) <= {"$in", "$eq"}


def serving_index(branch: dict[str, Any], indexes: dict[str, list[tuple[str, int]]]) -> str | None:
    """The index whose scan yields the branch in (due_at, _id) order within its due range, with the
    most fields pinned before the sort; None when no index does."""
    best: tuple[int, str] | None = None
    for name, keys in indexes.items():
        fields = [field for field, _ in keys]
        prefix = fields[: -len(SORT_KEYS)]
        if fields[len(prefix) :] != SORT_KEYS or not all(f in branch and pinned(branch[f]) for f in prefix):
            continue
        if best is None or len(prefix) > best[0]:
            best = (len(prefix), name)
    return best[1] if best else None


def list_queries(context: DeadlineContext) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(kind, agency or None, build_query's filter) for each list, province-wide and for a subtree."""
    subtree = set(context.registry.subtree(AGENCY))
    out = []
    for kind in KINDS:
        for agency, agencies in ((None, None), (AGENCY, subtree)):
            filters = ListFilters(kind, AS_OF, agencies, agency, None, None, None, None, None)
            out.append((kind, agency, build_query(context, filters)))
    return out


async def test_the_mongodb_profile_creates_the_list_indexes_and_the_standin_drops_them(settings: Settings) -> None:
    on_mongodb = DeadlineContext(mongodb(settings))
    assert store_tuning(on_mongodb.cases).list_indexes
    await ensure_case_indexes(on_mongodb.cases, on_mongodb.timers)
    indexes = await on_mongodb.cases.index_information()
    assert {name: indexes[name]["key"] for name in LIST_INDEXES} == LIST_INDEXES
    assert set(indexes) == {"_id_", *LIST_INDEXES}

    on_standin = DeadlineContext(settings)  # the same collections, the stand-in's profile
    assert not store_tuning(on_standin.cases).list_indexes
    await ensure_case_indexes(on_standin.cases, on_standin.timers)
    assert set(await on_standin.cases.index_information()) == {"_id_"}
    assert "next_check_at_1" in await on_standin.timers.index_information()  # the sweep's, on either store
    await on_mongodb.mongo.close()
    await on_standin.mongo.close()


async def test_every_list_query_has_an_index_that_walks_its_open_cases_in_page_order(settings: Settings) -> None:
    context = DeadlineContext(mongodb(settings))
    for kind, agency, query in list_queries(context):
        branch = open_branch(query)
        assert set(branch["due_at"]) & {"$lt", "$lte"}, (kind, "the due range bounds the scan")
        expected = "list_agency_due" if agency else "list_due"
        assert serving_index(branch, LIST_INDEXES) == expected, (kind, agency)
        # `end_at` pinned before the sort: the scan never walks the cases closed before `as_of`
        # (an index led by the due instant would: every case ever closed is "due before now")
        assert "end_at" in [field for field, _ in LIST_INDEXES[expected]][: -len(SORT_KEYS)]
    await context.mongo.close()


async def test_the_standin_explains_the_open_branch_as_an_index_scan_and_scans_a_whole_list_query(
    settings: Settings,
) -> None:
    context = DeadlineContext(mongodb(settings))
    await ensure_case_indexes(context.cases, context.timers)
    await context.cases.insert_many(
        [
            {
                "_id": f"C{i}",
                "agency_code": AGENCY,
                "open": i % 2 == 0,
                "end_at": None if i % 2 == 0 else AS_OF,
                "received_at": AS_OF - timedelta(days=30),
                "due_at": AS_OF - timedelta(days=i),
                "clock_stopped_since": None,
            }
            for i in range(1, 21)
        ]
    )
    sort = [("due_at", 1), ("_id", 1)]
    reduced: dict[str, dict[str, Any]] = {
        "list_due": {"end_at": None, "due_at": {"$lt": AS_OF}},
        "list_agency_due": {"agency_code": AGENCY, "end_at": None, "due_at": {"$lt": AS_OF}},
    }
    overdue = [f"C{i}" for i in (20, 18, 16, 14, 12, 10, 8, 6, 4, 2)]  # the open ones, by due
    for name, branch in reduced.items():
        plan = await winning_plan(context, branch, sort)
        assert scans(plan) == ("IXSCAN", name), plan
        assert [d["_id"] async for d in context.cases.find(branch).sort(sort)] == overdue
    for kind, agency, query in list_queries(context):
        assert scans(await winning_plan(context, query, sort))[0] == "COLLSCAN", (kind, agency)
        if kind == "overdue":  # the whole query, on the store with the indexes: the same rows
            assert [d["_id"] async for d in context.cases.find(query).sort(sort)] == overdue
    await context.mongo.close()


async def winning_plan(context: DeadlineContext, query: dict[str, Any], sort: list[tuple[str, int]]) -> dict[str, Any]:
    explained = await context.cases.find(query).sort(sort).limit(51).explain()
    plan: dict[str, Any] = explained["queryPlanner"]["winningPlan"]
    return plan


def scans(plan: dict[str, Any]) -> tuple[str, str | None]:
    """The leaf stage of a plan and the index it walks."""
    while "inputStage" in plan:
        plan = plan["inputStage"]
    return plan["stage"], plan.get("indexName")


async def test_the_metrics_indexes_follow_the_profile(settings: Settings) -> None:
    on_mongodb = MetricsContext(mongodb(settings))
    await on_mongodb.ensure_indexes()
    facts = await on_mongodb.collection.index_information()
    assert {name: facts[name]["key"] for name in FACT_INDEXES} == FACT_INDEXES
    for collection in on_mongodb.aggregates.values():
        assert (await collection.index_information())["agency_p"]["key"] == BUCKET_INDEX
    await on_mongodb.mongo.close()

    on_standin = MetricsContext(settings.model_copy(update={"mongo_db": f"{settings.mongo_db}_standin"}))
    await on_standin.ensure_indexes()
    assert set(await on_standin.collection.index_information()) == {"_id_", "received_at_1"}
    for collection in on_standin.aggregates.values():
        assert set(await collection.index_information()) == {"_id_", "p_1"}
    await on_standin.mongo.close()


async def test_reads_by_id_find_the_same_documents_in_either_profile_s_query_size(settings: Settings) -> None:
    present = [f"K{i:02d}" for i in range(60)]
    for profile, per_query in (("mongodb", 1000), ("standin", 25)):
        context = DeadlineContext(settings.model_copy(update={"store_profile": profile}))
        assert store_tuning(context.cases).ids_per_query == per_query
        if profile == "mongodb":
            await context.cases.insert_many([{"_id": code} for code in present])
        # 60 present of 70 asked: in one query on MongoDB, in three on the stand-in
        found = await find_by_ids(context.cases, [f"K{i:02d}" for i in range(70)])
        assert sorted(found) == present
        await context.mongo.close()

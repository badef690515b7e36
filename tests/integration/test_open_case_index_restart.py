"""The deadline's open-case index across restarts and rebalances, on the real broker and store: a
graceful stop leaves a snapshot, the next start loads it and applies what came meanwhile; a
rebalance that leaves the service every partition keeps the index, one that gives a partition to
another member voids it and the next sole assignment loads it again; the lists read from memory
equal the lists read from the store after each."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from services.deadline.app import create_app as deadline_app
from services.deadline.context import DeadlineContext
from services.deadline.open_cases import HEAD, OpenCaseIndex
from services.intake.app import create_app as intake_app
from shared.document_cache import CACHE_READS
from shared.domain.calendar import VN_TZ
from shared.settings import Settings
from shared.store import mongo_client
from tests.conftest import AUTH, serve
from tests.integration.test_deadline_service import case_of, post
from tests.support.events import AGENCY, COMMUNE, case_code, event, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.integration

NOW = datetime.now(VN_TZ).replace(microsecond=0)


def new_cases(count: int, first_day: int) -> tuple[list[str], list[dict]]:
    codes = [case_code(COMMUNE if i % 3 == 0 else AGENCY) for i in range(count)]
    events = [
        received(
            code,
            at=(NOW - timedelta(days=first_day + i % 15, hours=i % 5)).isoformat(),
            level="commune" if code.startswith(COMMUNE) else "province",
            channel=["online", "direct", "postal"][i % 3],
        )
        for i, code in enumerate(codes)
    ]
    return codes, events


async def lists(deadline, index: OpenCaseIndex, usable: bool) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """Every overdue and due-soon page at a few instants, from memory (usable) or from the store."""
    index.usable = usable
    out = []
    # no earlier than the index's horizon (its load), else the store answers both ways
    for as_of in (NOW + timedelta(days=1), NOW + timedelta(days=3), NOW + timedelta(days=20)):
        for path in ("/v1/cases/overdue", "/v1/cases/due-soon"):
            codes, cursor = [], None
            while True:
                params = {"as_of": as_of.isoformat(), "limit": 7, **({"cursor": cursor} if cursor else {})}
                response = await deadline.get(path, params=params, headers=AUTH)
                assert response.status_code == 200, response.text
                codes += [item["case_code"] for item in response.json()["items"]]
                if not (cursor := response.json()["next_cursor"]):
                    break
            out.append(codes)
    return out


async def exact(deadline, index: OpenCaseIndex) -> list[list[str]]:  # type: ignore[no-untyped-def]
    assert all(index.answers(NOW + timedelta(days=days)) for days in (1, 3, 20))  # memory is really read
    from_memory = await lists(deadline, index, True)
    from_store = await lists(deadline, index, False)
    index.usable = True
    assert from_memory == from_store
    assert sum(map(len, from_memory)) > 0
    return from_memory


async def usable(index: OpenCaseIndex) -> bool | None:
    return index.usable or None


async def first_start(
    settings: Settings, intake: Any, events: list[dict[str, Any]], codes: list[str], index_loaded: bool = False
) -> FastAPI:
    """A deadline service served until these events' cases are applied (and its open-case index
    loaded), then stopped gracefully: what it saves is there for the next start."""
    app = deadline_app(settings)
    async with serve(app) as deadline:
        await post(intake, *events)
        for code in codes:
            await case_of(deadline, code)
        if index_loaded:
            await eventually(lambda: usable(app.state.context.open_cases))
    return app


async def test_lists_exact_after_a_restart_with_rebalances(settings: Settings) -> None:
    first, first_events = new_cases(24, 1)
    later, later_events = new_cases(9, 2)
    async with serve(intake_app(settings)) as intake:
        app = await first_start(settings, intake, first_events, first, index_loaded=True)
        context: DeadlineContext = app.state.context
        store = mongo_client(settings.mongo_uri)  # the service's client is closed with it
        snapshots = store[context.db.name][f"{context.cases.name}_open_index"]
        head = await snapshots.find_one({"_id": HEAD})
        assert head is not None and len(head["offsets"]) == 3 and head["offsets"] == context.consumer.committed
        # beside it, the case documents the projection kept (ADR 0023), saved before the group was left
        kept = store[context.db.name][f"{context.cases.name}_cache_snapshot"]
        kept_head = await kept.find_one({"_id": "head"})
        assert kept_head is not None and kept_head["offsets"] == head["offsets"]
        assert kept_head["documents"] == len(first)

        # while the service is down: new cases, and one of the first processed (it leaves the lists)
        closed_at = (NOW - timedelta(hours=1)).isoformat()
        await post(intake, *later_events, event("case.processed", first[0], closed_at, outcome="approved"))

        app = deadline_app(settings)
        index: OpenCaseIndex = app.state.context.open_cases
        async with serve(app) as deadline:
            # a member of the same group joins at once, for another topic: the group rebalances
            # during or right after the load, and this service keeps every partition
            bystander = AIOKafkaConsumer(
                settings.dlq_topic, bootstrap_servers=settings.kafka_bootstrap, group_id=DeadlineContext.group_id
            )
            await bystander.start()
            await eventually(lambda: usable(index))
            assert index.loaded_from == "snapshot" and await snapshots.find_one({"_id": HEAD}) is None
            assert await kept.find_one({"_id": "head"}) is None  # taken out (what is put back: below)
            await case_of(deadline, first[0], lambda d: d["status"] == "processed")
            for code in later:
                await case_of(deadline, code)
            generation = index.membership.generation if index.membership else -1
            await bystander.stop()  # another rebalance, every partition still here

            async def rebalanced() -> bool | None:
                return (index.usable and index.membership and index.membership.generation > generation) or None

            await eventually(rebalanced, timeout=30)
            assert index.loads == 1  # kept, not loaded again
            pages = await exact(deadline, index)
            assert later[0] in sum(pages, []) and first[0] not in sum(pages, [])
            assert set(index.cases) == (set(first) | set(later)) - {first[0]}

            # a member that takes partitions of the case events: the index is void; when it leaves,
            # this service holds them all again and loads the index again (a scan: the snapshot was used)
            other = AIOKafkaConsumer(
                settings.case_events_topic,
                bootstrap_servers=settings.kafka_bootstrap,
                group_id=DeadlineContext.group_id,
                enable_auto_commit=False,
            )
            await other.start()

            async def shared() -> bool | None:
                await other.getmany(timeout_ms=100)  # it reads, never commits, never writes a case
                return (bool(other.assignment()) and not index.usable and not index.loaded) or None

            await eventually(shared, timeout=30)
            await other.stop()
            await eventually(lambda: usable(index), timeout=30)
            assert index.loads == 2 and index.loaded_from == "scan"
            assert await exact(deadline, index) == pages
        assert (await snapshots.find_one({"_id": HEAD})) is not None  # saved again at this stop
        await store.close()


async def test_a_graceful_restart_puts_back_the_documents_held_and_known_cases_are_read_from_memory(
    settings: Settings,
) -> None:
    """ADR 0023 through the service: the stop saves the case documents the projection held; the next
    start (the only member, the same offsets) puts them back; a later event of a known case is
    folded from memory, not read from the store, and one that ended while the service was down is
    applied over the saved copy, which does not come back."""
    codes, events = new_cases(12, 1)
    async with serve(intake_app(settings)) as intake:
        await first_start(settings, intake, events, codes)
        closed_at = (NOW - timedelta(hours=1)).isoformat()
        await post(intake, event("case.processed", codes[0], closed_at, outcome="approved"))

        app = deadline_app(settings)
        context: DeadlineContext = app.state.context
        async with serve(app) as deadline:
            await case_of(deadline, codes[0], lambda d: d["status"] == "processed")

            async def restored() -> bool | None:
                return context.documents_snapshot.restored == len(codes) or None

            await eventually(restored, timeout=30)
            held, missing = context.documents.lookup(codes)
            assert missing == [codes[0]]  # ended: not kept, whether put back first or not
            assert set(held) == set(codes[1:]) and all(held[code]["open"] for code in codes[1:])
            reads = {source: CACHE_READS.labels("deadline", source)._value.get() for source in ("memory", "store")}
            await post(intake, event("case.processed", codes[1], closed_at, outcome="approved"))
            await case_of(deadline, codes[1], lambda d: d["status"] == "processed")
            assert CACHE_READS.labels("deadline", "memory")._value.get() == reads["memory"] + 1
            assert CACHE_READS.labels("deadline", "store")._value.get() == reads["store"]

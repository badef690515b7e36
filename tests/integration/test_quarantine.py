"""Contract v1.1, "Nothing stops the pipeline": a record the projection cannot fold or write
quarantines its own case (dead letter with reason and exception class, a mark the admin lists and
retries), the rest of the batch is applied and committed, and /readyz tells a stuck consumer."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import REGISTRY
from pymongo.errors import AutoReconnect, OperationFailure

from services.deadline.app import create_app as deadline_app
from services.deadline.context import DeadlineContext
from services.metrics.app import create_app as metrics_app
from services.metrics.context import MetricsContext
from shared.projection import ChunkWriter
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.events import case_code, event, received, record, wire
from tests.support.kafka_tools import eventually, produce_raw, read_topic

pytestmark = pytest.mark.integration

BEYOND = "9999-12-31T23:59:59-12:00"  # schema-valid, but no instant arithmetic survives it


def later(code: str, n: int) -> dict:
    return event("case.supplement_requested", code, f"2026-03-{17 + n:02d}T09:00:00+07:00", reason="x" * 2000)


async def test_a_case_the_fold_cannot_fold_is_quarantined_and_the_rest_of_the_batch_applied(
    settings: Settings, kafka
) -> None:
    context = DeadlineContext(settings)
    good, bad = case_code(), case_code()
    records = [
        record(0, received(good), "g0"),
        record(1, received(bad, at=BEYOND), "b0"),
        record(2, event("case.supplement_requested", good, "2026-03-17T09:00:00+07:00"), "g1"),
    ]
    result = await context.projection.apply(records)
    assert (result.applied, result.dead_lettered) == (2, 1)
    stored = await context.cases.find_one({"_id": good})
    assert [e["event_id"] for e in stored["events"]] == ["g0", "g1"]
    assert await context.cases.find_one({"_id": bad}) is None
    mark = await context.quarantine.get(bad)
    assert mark["exception"] == "FoldError" and "OverflowError" in mark["reason"]
    assert [(r["offset"], r["event_id"]) for r in mark["records"]] == [(1, "b0")]
    dead = [d["value"] for d in await read_topic(kafka.bootstrap, settings.dlq_topic)]
    assert [(d["case_code"], d["exception"], d["offset"]) for d in dead] == [(bad, "FoldError", 1)]
    assert REGISTRY.get_sample_value("tthc_quarantined_cases", {"projection": "deadline"}) == 1

    # a later event of the quarantined case that can be folded is applied; the mark stays (a record is missing)
    again = await context.projection.apply([record(3, received(bad), "b1")])
    assert again.applied == 1 and (await context.quarantine.get(bad)) is not None
    await context.publisher.stop()
    await context.mongo.close()


async def test_a_write_the_store_refuses_for_one_case_quarantines_that_case_only(
    settings: Settings, monkeypatch
) -> None:
    """The batch's write fails on what one case holds: its halves are applied apart, down to the
    case at fault; the store being away is not a case's fault and fails the batch instead."""
    context = DeadlineContext(settings)
    context.projection.write_chunk = 3
    codes = [case_code() for _ in range(8)]
    bad = codes[5]
    bulk = ChunkWriter._bulk

    async def refusing(self, writes, first):
        if any(w._doc["_id"] == bad for w in writes):
            raise OperationFailure("the store refused this document", code=2)
        return await bulk(self, writes, first)

    monkeypatch.setattr(ChunkWriter, "_bulk", refusing)
    records = [record(i, received(code), f"r{i}") for i, code in enumerate(codes)]
    result = await context.projection.apply(records)
    # the chunk that landed before the failure is found written the second time: duplicates then
    assert (result.applied + result.duplicates, result.dead_lettered) == (7, 1)
    assert sorted([d["_id"] async for d in context.cases.find({}, {"_id": 1})]) == sorted(set(codes) - {bad})
    assert (await context.quarantine.get(bad))["exception"] == "OperationFailure"

    async def away(self, writes, first):
        raise AutoReconnect("the store went away")

    monkeypatch.setattr(ChunkWriter, "_bulk", away)
    with pytest.raises(AutoReconnect):
        await context.projection.apply([record(20, received(case_code()), "n0")])
    await context.publisher.stop()
    await context.mongo.close()


async def test_a_case_that_would_outgrow_the_document_limit_is_quarantined_before_the_store_refuses_it(
    settings: Settings,
) -> None:
    context = MetricsContext(settings)
    context.projection.max_document_bytes = 12_000
    big, small = case_code(), case_code()
    await context.apply([record(0, received(big), "r0"), record(1, received(small), "s0")])
    await context.apply([record(2 + n, later(big, n), f"l{n}") for n in range(8)] + [record(20, later(small, 0), "s1")])
    stored = await context.collection.find_one({"_id": big})
    assert [e["event_id"] for e in stored["events"]] == ["r0"]  # as it was: the batch's events held back
    assert len((await context.collection.find_one({"_id": small}))["events"]) == 2
    mark = await context.quarantine.get(big)
    assert mark["exception"] == "CaseTooLarge" and len(mark["records"]) == 8
    received_total = sum([b["c"].get("r", 0) async for b in context.aggregates["c_m"].find()])
    assert received_total == 2  # the aggregates moved with the facts that were written, once
    await context.publisher.stop()
    await context.mongo.close()


async def test_quarantined_cases_are_listed_shown_and_retried_from_the_log(settings: Settings, kafka) -> None:
    """Through the running services: the admin lists the marks, the case page shows it, a retry
    publishes its records again; once the cause is mended (here a larger document limit) the case
    folds and its mark is gone. /readyz stays ready and no consumer restarted."""
    settings = settings.model_copy(update={"max_case_document_bytes": 12_000})
    poisoned, big, good = case_code(), case_code(), case_code()
    messages = [wire(received(poisoned, at=BEYOND), "p0"), wire(received(big), "b0"), wire(received(good), "g0")]
    messages += [wire(later(big, n), f"b{n + 1}") for n in range(8)]
    messages += [(good.encode(), b"{not json"), wire(later(good, 0), "g1")]
    restarts = REGISTRY.get_sample_value("tthc_consumer_restarts_total", {"group": "tthc-deadline"}) or 0
    await produce_raw(kafka.bootstrap, settings.case_events_topic, messages)
    deadline_service = deadline_app(settings)
    deadline_context = deadline_service.state.context
    async with serve(deadline_service) as deadline, serve(metrics_app(settings)) as metrics:

        async def listed(service):
            answer = (await service.get("/v1/admin/quarantine", headers=AUTH)).json()
            return answer if answer["total"] == 3 else None

        marks = await eventually(lambda: listed(deadline))
        assert {m["case_code"] for m in marks["items"]} == {poisoned, big, good}
        assert (await eventually(lambda: listed(metrics)))["projection"] == "metrics"
        page = (await deadline.get(f"/v1/cases/{good}", headers=AUTH)).json()
        assert len(page["timeline"]) == 2 and page["quarantine"]["reason"].startswith("undecodable record")
        only = (await deadline.get(f"/v1/cases/{poisoned}", headers=AUTH)).json()
        assert only["status"] is None and "OverflowError" in only["quarantine"]["reason"]
        officer = await deadline.get("/v1/admin/quarantine", headers={"Authorization": "Bearer nope"})
        assert officer.status_code == 401

        # still poison: published again, quarantined again
        retried = await deadline.post(f"/v1/admin/quarantine/{poisoned}/retry", headers=AUTH)
        assert retried.status_code == 202 and retried.json()["requeued"] == 1

        async def marked_again():
            mark = await deadline_context.quarantine.get(poisoned)
            return mark if mark and mark["records"][-1]["offset"] > 0 and len(mark["records"]) == 1 else None

        assert (await eventually(marked_again))["exception"] == "FoldError"
        # mended: the case folds from its records, read back from the log
        deadline_context.projection.max_document_bytes = 4 * 1024 * 1024
        retried = await deadline.post(f"/v1/admin/quarantine/{big}/retry", headers=AUTH)
        assert retried.json()["requeued"] == 9  # its receipt came in the same batch

        async def folded():
            r = await deadline.get(f"/v1/cases/{big}", headers=AUTH)
            return r.json() if len(r.json().get("timeline", [])) == 9 else None

        assert (await eventually(folded))["quarantine"] is None
        missing = await deadline.post(f"/v1/admin/quarantine/{case_code()}/retry", headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_quarantined"
        for service in (deadline, metrics):
            ready = await service.get("/readyz")
            assert ready.status_code == 200, ready.json()
    after = REGISTRY.get_sample_value("tthc_consumer_restarts_total", {"group": "tthc-deadline"}) or 0
    assert after == restarts
    dead = [d["value"] for d in await read_topic(kafka.bootstrap, settings.dlq_topic)]
    assert {(d["projection"], d["case_code"]) for d in dead} >= {("deadline", big), ("metrics", poisoned)}
    assert all(json.loads(d["value"]) or True for d in dead if d["exception"] == "FoldError")


async def test_readyz_names_a_consumer_that_keeps_restarting_from_the_same_offsets(settings: Settings, kafka) -> None:
    await produce_raw(kafka.bootstrap, settings.case_events_topic, [wire(received(case_code()), "r0")])
    app = deadline_app(settings)
    context = app.state.context
    applying = context.projection.applying

    def store_away(records):
        raise AutoReconnect("the store went away")

    context.projection.applying = store_away
    async with serve(app) as deadline:

        async def stuck():
            r = await deadline.get("/readyz")
            return r.json() if r.status_code == 503 and "restarted" in r.json()["reasons"]["consumer"] else None

        answer = await eventually(stuck, timeout=30)
        assert answer["checks"]["consumer"] is False
        assert "tthc-deadline restarted 3 times from the same offsets" in answer["reasons"]["consumer"]
        assert REGISTRY.get_sample_value("tthc_consumer_stuck", {"group": "tthc-deadline"}) == 1
        context.projection.applying = applying

        async def ready():
            return (await deadline.get("/readyz")).status_code == 200

        await eventually(ready, timeout=40)
        await asyncio.sleep(0)
        assert REGISTRY.get_sample_value("tthc_consumer_stuck", {"group": "tthc-deadline"}) == 0

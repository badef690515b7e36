"""The deadline and metrics projections consuming the real topic into the real store."""

from __future__ import annotations

import contextlib
import gc
import json

import pytest
from prometheus_client import REGISTRY
from pymongo import MongoClient
from pymongo.errors import AutoReconnect, OperationFailure

from services.deadline.app import create_app as deadline_app
from services.deadline.context import DeadlineContext
from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from services.metrics.context import MetricsContext
from shared.domain.calendar import VN_TZ
from shared.domain.fold import CaseEvent, fold_case
from shared.projection import CasesChanged, ChunkWriter
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.events import AGENCY, COMMUNE, case_code, event, received, record, wire
from tests.support.kafka_tools import eventually, produce_raw, read_topic

pytestmark = pytest.mark.integration


async def test_posted_event_reaches_deadline_and_metrics(settings: Settings) -> None:
    code = case_code()
    async with (
        serve(intake_app(settings)) as intake,
        serve(deadline_app(settings)) as deadline,
        serve(metrics_app(settings)) as metrics,
    ):
        response = await intake.post("/v1/events", json=received(code), headers=AUTH)
        assert response.status_code == 202

        async def case():
            r = await deadline.get(f"/v1/cases/{code}", headers=AUTH)
            return r.json() if r.status_code == 200 else None

        document = await eventually(case)
        assert gc.get_threshold()[0] == settings.gc_threshold  # the projections' batches: see ProjectionContext.start
        assert document["due_at"] == "2026-03-30T09:15:00+07:00"  # 10 working days
        assert document["status"] == "pending"
        assert document["timeline"][0]["type"] == "case.received"

        async def counted():
            return (await metrics.get("/v1/stats", headers=AUTH)).json()["cases_received"] == 1

        await eventually(counted)


async def test_duplicates_on_the_topic_are_applied_once(settings: Settings, kafka) -> None:
    code = case_code()
    request = event("case.supplement_requested", code, "2026-03-17T09:00:00+07:00")
    await produce_raw(
        kafka.bootstrap,
        settings.case_events_topic,
        [wire(received(code), "r1"), wire(request, "s1"), wire(request, "s1"), wire(received(code), "r1")],
    )
    async with serve(deadline_app(settings)) as deadline:

        async def case():
            r = await deadline.get(f"/v1/cases/{code}", headers=AUTH)
            return r.json() if r.status_code == 200 and r.json()["status"] == "waiting_citizen" else None

        document = await eventually(case)
    assert document["supplement_requests"] == 1
    assert len(document["timeline"]) == 2


async def test_late_event_refolds_the_case(settings: Settings, kafka) -> None:
    code = case_code()
    processed = event("case.processed", code, "2026-03-20T09:00:00+07:00", outcome="approved")
    await produce_raw(kafka.bootstrap, settings.case_events_topic, [wire(processed, "p1")])
    async with serve(deadline_app(settings)) as deadline:

        async def case(status):
            r = await deadline.get(f"/v1/cases/{code}", headers=AUTH)
            return r.json() if r.status_code == 200 and r.json()["status"] == status else None

        before = await eventually(lambda: case("processed"))
        assert before["due_at"] is None  # no receipt yet: nothing to count from
        # the receipt arrives after the decision it precedes
        await produce_raw(kafka.bootstrap, settings.case_events_topic, [wire(received(code), "r1")])

        async def refolded():
            document = await case("processed")
            return document if document and document["due_at"] else None

        after = await eventually(refolded)
    assert after["end_at"] == "2026-03-20T09:00:00+07:00"
    assert after["on_time"] is True and after["result_dated"] == "early"


async def test_poison_record_goes_to_the_dead_letter_topic_with_its_reason(settings: Settings, kafka) -> None:
    good = case_code()
    await produce_raw(
        kafka.bootstrap,
        settings.case_events_topic,
        [
            (b"x", b"not json at all"),
            (b"y", json.dumps({"type": "case.received", "case_code": "y"}).encode()),
            wire(received(good), "ok-1"),
        ],
    )
    async with serve(deadline_app(settings)) as deadline:

        async def applied():
            return (await deadline.get(f"/v1/cases/{good}", headers=AUTH)).status_code == 200

        await eventually(applied)
    dead = await read_topic(kafka.bootstrap, settings.dlq_topic)
    assert len(dead) == 2
    reasons = sorted(d["value"]["reason"] for d in dead)
    assert reasons[0].startswith("invalid event") and "occurred_at" in reasons[0]
    assert reasons[1].startswith("undecodable record")
    assert {d["value"]["key"] for d in dead} == {"x", "y"}


def failing_on(code: str, fold):
    """The projection's fold, failing the batch at one case (the store went away meanwhile: not the
    case's fault, so the batch fails and comes again; a case's own fault quarantines it instead)."""

    def failing(state, events, before):
        if state.case_code == code:
            raise AutoReconnect("a fold failed")
        return fold(state, events, before)

    return failing


def failing_batch(context) -> tuple[list[str], list, object]:
    """Seven new cases written two by two, the sixth's fold failing: (codes, records, the real fold)."""
    context.projection.write_chunk = 2  # the fold of the next two cases overlaps the write of these
    codes = [case_code() for _ in range(7)]
    records = [record(i, received(code), f"r{i}") for i, code in enumerate(codes)]
    fold = context.projection.port.document
    context.projection.port.document = failing_on(codes[5], fold)
    return codes, records, fold


async def test_a_batch_written_in_chunks_applies_every_case_once_also_after_a_failed_fold(
    settings: Settings,
) -> None:
    context = DeadlineContext(settings)
    codes, records, fold = failing_batch(context)
    records.append(record(7, event("case.supplement_requested", codes[0], "2026-03-17T09:00:00+07:00"), "s0"))
    with pytest.raises(AutoReconnect, match="a fold failed"):
        await context.projection.apply(records)
    # the chunks before the failure landed (and the write in flight finished); nothing after it
    assert sorted([d["_id"] async for d in context.cases.find({}, {"_id": 1})]) == sorted(codes[:4])

    context.projection.port.document = fold  # the batch comes again, as after a consumer restart
    result = await context.projection.apply(records)
    assert (result.applied, result.duplicates) == (3, 5)
    documents = {d["_id"]: d async for d in context.cases.find()}
    assert sorted(documents) == sorted(codes)
    assert documents[codes[0]]["supplement_requests"] == 1
    assert all(len(d["events"]) == (2 if code == codes[0] else 1) for code, d in documents.items())
    await context.mongo.close()


async def test_a_case_created_between_the_read_and_the_insert_fails_the_batch_then_it_applies_once(
    settings: Settings,
) -> None:
    """Another consumer (a rebalance) writes one of the batch's new cases after this batch read it
    absent: the insert fails on its key, the batch is not done; applied again it reads that case
    and adds only what it lacks."""
    context = DeadlineContext(settings)
    codes = [case_code() for _ in range(4)]
    records = [record(i, received(code), f"r{i}") for i, code in enumerate(codes)]
    records.append(record(4, event("case.supplement_requested", codes[2], "2026-03-17T09:00:00+07:00"), "s2"))
    other = MongoClient(settings.mongo_uri)[f"{settings.mongo_db}_deadline"].cases
    fold = context.projection.port.document

    def meanwhile(state, events, before):
        document = fold(state, events, before)
        if state.case_code == codes[2]:  # the other consumer applied its first event only
            first = [e for e in events if e["event_id"] == "r2"]
            alone = fold_case([CaseEvent.from_dict(e) for e in first], context.registry)
            other.insert_one({"_id": codes[2], **fold(alone, first, None), "events": first})
        return document

    context.projection.port.document = meanwhile
    with pytest.raises(CasesChanged, match="1 of 4 cases the batch found absent were created meanwhile"):
        await context.projection.apply(records)
    context.projection.port.document = fold  # the batch comes again, as after a consumer restart
    result = await context.projection.apply(records)
    assert (result.applied, result.duplicates) == (1, 4)
    documents = {d["_id"]: d async for d in context.cases.find()}
    assert sorted(documents) == sorted(codes)
    assert other.find_one({"_id": codes[2]}) is not None
    assert [e["event_id"] for e in documents[codes[2]]["events"]] == ["r2", "s2"]
    assert documents[codes[2]]["supplement_requests"] == 1
    other.database.client.close()
    await context.mongo.close()


async def test_a_case_marked_by_the_sweeper_after_the_read_keeps_the_marks(settings: Settings, monkeypatch) -> None:
    """The timer sweep marks a case between a batch's read and its write: the marks are the
    timer's, so the batch's replacement of the case leaves them; the timer it re-arms (a pause:
    no check) keeps them too, and lands before the case."""
    context = DeadlineContext(settings)
    code = case_code()
    await context.projection.apply([record(0, received(code), "r0")])
    db = MongoClient(settings.mongo_uri)[f"{settings.mongo_db}_deadline"]
    armed = db.cases_timers.find_one({"_id": code})
    fold = context.projection.port.document
    seen_first = []

    def meanwhile(state, events, before):
        db.cases_timers.update_one({"_id": code}, {"$addToSet": {"emitted": "mark"}})
        return fold(state, events, before)

    async def watched(self, writes, first):  # what the store holds when the case write starts
        for collection, ops in first:
            await collection.bulk_write(ops)
        seen_first.append(db.cases_timers.find_one({"_id": code})["next_check_at"])
        return await case_bulk(self, writes, [])

    context.projection.port.document = meanwhile
    case_bulk = ChunkWriter._bulk
    monkeypatch.setattr(ChunkWriter, "_bulk", watched)
    later = record(1, event("case.supplement_requested", code, "2026-03-17T09:00:00+07:00"), "s0")
    result = await context.projection.apply([later])
    assert result.applied == 1
    stored = db.cases.find_one({"_id": code})
    timer = db.cases_timers.find_one({"_id": code})
    assert armed["next_check_at"] is not None and "emitted" not in armed
    assert timer["emitted"] == ["mark"] and timer["next_check_at"] is None  # paused: disarmed, marks kept
    assert seen_first == [None]  # the timer was re-armed before the case was written
    assert "emitted" not in stored and stored["supplement_requests"] == 1
    assert [e["event_id"] for e in stored["events"]] == ["r0", "s0"]
    db.client.close()
    await context.mongo.close()


async def test_metrics_batch_in_chunks_is_one_transaction_with_its_buckets(settings: Settings) -> None:
    context = MetricsContext(settings)
    codes, records, fold = failing_batch(context)
    with pytest.raises(AutoReconnect, match="a fold failed"):
        await context.apply(records)
    # the chunks written before the failure were in the batch's transaction: nothing is left of them
    assert await context.collection.count_documents({}) == 0
    assert [b async for b in context.aggregates["c_m"].find()] == []

    context.projection.port.document = fold
    await context.apply(records)
    await context.apply(records)  # redelivered: counted once
    assert await context.collection.count_documents({}) == 7
    received_total = sum([b["c"].get("r", 0) async for b in context.aggregates["c_m"].find()])
    assert received_total == 7
    await context.mongo.close()


async def test_a_transaction_retried_after_a_write_conflict_moves_the_bucket_copy_once(
    settings: Settings, monkeypatch
) -> None:
    """A transient transaction error (a write conflict) folds the batch again from a fresh read;
    only the attempt that committed hands its bucket changes to the in-memory copy."""
    context = MetricsContext(settings)
    moved: list[dict] = []
    monkeypatch.setattr(context.mirror, "applied", moved.append)
    context.projection.write_chunk = 2
    codes = [case_code() for _ in range(5)]
    records = [record(i, received(code), f"r{i}") for i, code in enumerate(codes)]
    bulk = ChunkWriter._bulk
    conflicts: list[int] = []

    async def conflicting(self, writes, first):
        await bulk(self, writes, first)  # the first chunk is written in the transaction, then it conflicts
        if not conflicts:
            conflicts.append(1)
            raise OperationFailure("WriteConflict", code=112, details={"errorLabels": ["TransientTransactionError"]})

    monkeypatch.setattr(ChunkWriter, "_bulk", conflicting)
    await context.apply(records)
    assert conflicts == [1] and await context.collection.count_documents({}) == 5
    assert len(moved) == 1
    assert sum(change["inc"].get("c.r", 0) for (name, _), change in moved[0].items() if name == "c_m") == 5
    received_total = sum([b["c"].get("r", 0) async for b in context.aggregates["c_m"].find()])
    assert received_total == 5
    await context.mongo.close()


def cache_reads(since: tuple[float, float] = (0, 0)) -> tuple[float, float]:
    """The deadline projection's cases looked up (from memory, from the store), since an earlier reading."""
    sample = REGISTRY.get_sample_value
    now = [
        sample("tthc_projection_cache_reads_total", {"projection": "deadline", "source": s}) or 0
        for s in ("memory", "store")
    ]
    return now[0] - since[0], now[1] - since[1]


async def test_known_cases_read_from_memory_fold_to_the_same_documents_as_read_from_the_store(
    settings: Settings,
) -> None:
    """ADR 0012: the cases a projection wrote while it holds their partitions are not read again.
    The same batches through a projection reading the store give the same documents; what it
    keeps is what the store holds; a failed batch drops its cases, an ended case is not kept."""
    cached, plain = DeadlineContext(settings), DeadlineContext(settings, collection="cases_plain")
    cached.documents.hold()
    codes = [case_code() for _ in range(6)]
    first = [record(i, received(code), f"r{i}") for i, code in enumerate(codes)]
    later = [
        record(10, event("case.supplement_requested", codes[0], "2026-03-17T09:00:00+07:00"), "s0"),
        record(11, event("case.paused", codes[1], "2026-03-17T10:00:00+07:00", reason_code="verification"), "p1"),
        record(12, event("case.processed", codes[2], "2026-03-18T10:00:00+07:00", outcome="approved"), "e2"),
        record(
            13,
            event("case.transferred", codes[3], "2026-03-18T11:00:00+07:00", from_agency=AGENCY, to_agency=COMMUNE),
            "t3",
        ),
    ]
    for context in (cached, plain):
        await context.projection.apply(first)
    db = MongoClient(settings.mongo_uri, tz_aware=True, tzinfo=VN_TZ)[f"{settings.mongo_db}_deadline"]
    kept, _ = cached.documents.lookup(codes)
    assert dict(kept) == {d["_id"]: d for d in db.cases.find({"_id": {"$in": codes}})}  # as the store holds them

    fold = cached.projection.port.document
    cached.projection.port.document = failing_on(codes[3], fold)
    reads = cache_reads()
    with pytest.raises(AutoReconnect, match="a fold failed"):
        await cached.projection.apply(later)
    assert cache_reads(reads) == (4, 0)  # the batch's known cases, from memory
    assert cached.documents.lookup(codes)[1] == codes[:4]  # failed: its cases are read afresh
    cached.projection.port.document = fold
    reads = cache_reads()
    await cached.projection.apply(later)
    await cached.projection.apply(later[:2])  # redelivered: nothing new
    assert cache_reads(reads) == (2, 4)
    await plain.projection.apply(later)
    await plain.projection.apply(later[:2])

    documents = {d["_id"]: d for d in db.cases.find({"_id": {"$in": codes}})}
    assert documents == {d["_id"]: d for d in db.cases_plain.find({"_id": {"$in": codes}})}
    assert documents[codes[0]]["supplement_requests"] == 1 and not documents[codes[2]]["open"]
    kept, missing = cached.documents.lookup(codes)
    assert missing == [codes[2]]  # ended: not kept
    assert dict(kept) == {code: d for code, d in documents.items() if code != codes[2]}
    db.client.close()
    for context in (cached, plain):
        await context.mongo.close()


async def test_a_chunk_that_landed_is_indexed_and_its_derived_events_published_even_if_the_batch_fails(
    settings: Settings, kafka
) -> None:
    """The deadline publishes each chunk's derived events as its write lands (not after the whole
    batch): a batch that fails after some chunks landed has published theirs, and applied again
    (those cases unchanged now: nothing derived twice) publishes the rest: each once."""
    context = DeadlineContext(settings)
    codes, records, fold = failing_batch(context)
    with pytest.raises(AutoReconnect, match="a fold failed"):
        await context.apply(records)  # as the consumer calls it: first chunk of 2 (FIRST_CHUNK ≥ 2), then 2s
    assert sorted(context.open_cases.cases) == sorted(codes[:4])  # the chunks that landed
    computed = [
        e for e in await read_topic(kafka.bootstrap, settings.deadline_events_topic) if e["value"]["case_code"] in codes
    ]
    assert sorted(e["value"]["case_code"] for e in computed) == sorted(codes[:4])

    context.projection.port.document = fold
    await context.apply(records)
    assert sorted(context.open_cases.cases) == sorted(codes)
    computed = [
        e for e in await read_topic(kafka.bootstrap, settings.deadline_events_topic) if e["value"]["case_code"] in codes
    ]
    assert sorted(e["value"]["case_code"] for e in computed) == sorted(codes)  # each once
    assert {e["value"]["type"] for e in computed} == {"deadline.computed"}
    await context.publisher.stop()
    await context.mongo.close()


async def test_a_run_closed_after_its_first_outcome_settles_before_the_next_batch(settings: Settings) -> None:
    """A service whose own step fails on an outcome closes the run: the write still out lands and
    the batch's cases leave the memory before the projection is free for the next batch (or a
    re-fold), which would otherwise read what the store no longer holds."""
    context = DeadlineContext(settings)
    context.documents.hold()
    context.projection.write_chunk = 2
    codes = [case_code() for _ in range(6)]
    await context.projection.apply([record(i, received(code), f"r{i}") for i, code in enumerate(codes)])
    assert context.documents.lookup(codes)[1] == []  # all held
    later = [
        record(10 + i, event("case.supplement_requested", code, "2026-03-17T09:00:00+07:00"), f"s{i}")
        for i, code in enumerate(codes)
    ]
    run = context.projection.applying(later)
    with pytest.raises(RuntimeError, match="the service's step failed"):
        async with contextlib.aclosing(run):
            async for _ in run:
                raise RuntimeError("the service's step failed")
    # no await in between: the cleanup ran while the run was closed, under the projection's lock
    assert context.documents.lookup(codes)[1] == codes
    assert not context.projection.lock.locked()
    requested = {d["_id"] async for d in context.cases.find({"supplement_requests": 1}, {"_id": 1})}
    assert requested == set(codes[:4])  # the chunk that landed and the one in flight; not the third
    await context.mongo.close()


@pytest.mark.parametrize("service", ["deadline", "metrics"])
async def test_known_cases_read_chunk_by_chunk_apply_once_also_after_a_later_chunks_read_failed(
    settings: Settings, service: str
) -> None:
    """Nothing held (a restart): each chunk's known cases are read from the store while the chunk
    before is written. A read that fails after some chunks landed fails the batch; applied again,
    every case holds each event once, and a redelivery changes nothing (as one chunk would)."""
    chunked = DeadlineContext(settings) if service == "deadline" else MetricsContext(settings)
    # the same batches, each case read before the first write (chunks larger than the batch)
    whole = DeadlineContext(settings, generation=2) if service == "deadline" else MetricsContext(settings, generation=2)
    codes = [case_code() for _ in range(7)]
    first = [record(i, received(code), f"r{i}") for i, code in enumerate(codes)]
    later = [
        record(10 + i, event("case.supplement_requested", code, "2026-03-17T09:00:00+07:00"), f"s{i}")
        for i, code in enumerate(codes)
    ]
    for context in (chunked, whole):
        await context.projection.apply(first)
    chunked.projection.write_chunk = 2  # chunks of 2 after the first (at most FIRST_CHUNK)
    read = chunked.projection._read
    reads: list[list[str]] = []

    async def failing_third(incoming):  # type: ignore[no-untyped-def]
        reads.append(list(incoming))
        if len(reads) == 3:
            raise AutoReconnect("a read failed")
        return await read(incoming)

    chunked.projection._read = failing_third  # type: ignore[method-assign]
    with pytest.raises(AutoReconnect, match="a read failed"):
        await chunked.projection.apply(later)
    assert reads[:3] == [codes[:2], codes[2:4], codes[4:6]]  # chunk by chunk, one ahead
    chunked.projection._read = read  # type: ignore[method-assign]
    result = await chunked.projection.apply(later)
    if service == "deadline":  # the chunks before the failed read landed (in a transaction, none did)
        assert (result.applied, result.duplicates) == (3, 4)
    else:
        assert (result.applied, result.duplicates) == (7, 0)
    again = await chunked.projection.apply(later)  # redelivered
    assert (again.applied, again.duplicates) == (0, 7)
    await whole.projection.apply(later)
    db = MongoClient(settings.mongo_uri, tz_aware=True, tzinfo=VN_TZ)[f"{settings.mongo_db}_{service}"]
    documents = {d["_id"]: d for d in db[chunked.collection.name].find({"_id": {"$in": codes}})}
    assert documents == {d["_id"]: d for d in db[whole.collection.name].find({"_id": {"$in": codes}})}
    assert all(len(d["events"]) == 2 for d in documents.values())
    db.client.close()
    for context in (chunked, whole):
        await context.mongo.close()

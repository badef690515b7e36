"""The deadline service against the real broker and store: timers, apologies, letters, lists,
webhooks, rebuild."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import json
import re
import time
from datetime import datetime, timedelta

import pytest
from docx import Document
from fastapi import FastAPI, Request, Response
from openpyxl import load_workbook
from pypdf import PdfReader

from services.deadline import timers
from services.deadline.app import create_app as deadline_app
from services.deadline.context import DeadlineContext
from services.deadline.gauges import APOLOGY_MISSING, DUE_SOON, OPEN, OVERDUE
from services.deadline.rebuild import rebuild
from services.intake.app import create_app as intake_app
from shared.domain.calendar import VN_TZ
from shared.domain.fold import CaseEvent, fold_case
from shared.settings import Settings
from shared.store import mongo_client
from tests.conftest import AUTH, serve
from tests.integration.test_pull_mode import running
from tests.support.events import AGENCY, COMMUNE, case_code, event, received, record
from tests.support.kafka_tools import eventually, read_topic

pytestmark = pytest.mark.integration

TIMERS = {t.value for t in timers.TIMER_TYPES}  # due soon, apology due soon, apology required, overdue


def fast(settings: Settings, **extra) -> Settings:
    return settings.model_copy(update={"timer_interval_s": 0.3, "webhook_secret": "s3cret", **extra})


async def post(intake, *events) -> None:
    response = await intake.post("/v1/events", json={"events": list(events)}, headers=AUTH)
    assert response.status_code == 202, response.text


async def case_of(deadline, code: str, predicate=lambda d: True):
    async def check():
        r = await deadline.get(f"/v1/cases/{code}", headers=AUTH)
        return r.json() if r.status_code == 200 and predicate(r.json()) else None

    return await eventually(check, timeout=30)


async def derived(kafka, settings: Settings, code: str) -> list[dict]:
    return [r["value"] for r in await read_topic(kafka.bootstrap, settings.deadline_events_topic) if r["key"] == code]


def logged(code: str, *events: dict) -> list[dict]:
    """A case's events as the log gives them to the projection (`received` first when none given)."""
    return [
        {**e, "event_id": f"{code}:{n}", "schema_version": 1, "seq": n}
        for n, e in enumerate(events or (received(code),))
    ]


def folded(context: DeadlineContext, items: list[dict]) -> dict:
    """The case document the deadline's projection writes for these events."""
    return context.port.document(fold_case([CaseEvent.from_dict(i) for i in items], context.registry), items, None)


async def test_timers_fire_once_each_also_across_a_restart(settings: Settings, kafka) -> None:
    settings = fast(settings)
    code, waiting = case_code(), case_code()
    async with serve(intake_app(settings)) as intake:
        async with serve(deadline_app(settings)) as deadline:
            await post(
                intake,
                received(code),
                received(waiting),
                event("case.supplement_requested", waiting, "2026-03-17T09:00:00+07:00"),
            )
            await case_of(deadline, code)

            async def all_fired():
                kinds = [e["type"] for e in await derived(kafka, settings, code)]
                return kinds if TIMERS <= set(kinds) else None

            kinds = await eventually(all_fired, timeout=30)
        # a new instance: the marks are in the store, nothing fires again
        async with serve(deadline_app(settings)) as deadline:
            await asyncio.sleep(1.5)
            await post(intake, event("case.processed", code, "2026-04-02T10:00:00+07:00", outcome="approved"))
            closed = await case_of(deadline, code, lambda d: d["status"] == "processed")
    events = await derived(kafka, settings, code)
    kinds = sorted(e["type"] for e in events)
    assert kinds == sorted(["deadline.computed", *TIMERS, "case.closed"])
    assert len({e["event_id"] for e in events}) == len(events)
    overdue = next(e for e in events if e["type"] == "deadline.overdue")
    assert overdue["data"]["due_at"] == "2026-03-30T09:15:00+07:00"
    closing = next(e for e in events if e["type"] == "case.closed")
    assert closing["data"]["on_time"] is False and closing["data"]["result_dated"] == "late"
    assert closed["next_check_at"] is None
    # the later event replaced the case document; the sweeper's marks are the timer's, and stayed
    assert sorted(mark.split(":")[1] for mark in closed["emitted"]) == sorted(TIMERS)
    # a case waiting for the citizen has its clock stopped: no timer
    assert [e["type"] for e in await derived(kafka, settings, waiting)] == ["deadline.computed"]


async def test_a_backlog_of_timers_is_swept_in_streamed_batches_each_once(
    settings: Settings, kafka, monkeypatch
) -> None:
    """25 cases due at once, swept 2 per batch and 6 per query (the store reads the whole range
    before a limit): each transition is published once and marked; the cases with no timer (paused,
    or all fired: their null sorts before every instant) are neither returned nor touched; a timer
    whose case is still being written (the timer lands first) waits for a later pass."""
    monkeypatch.setattr(timers, "FETCH_BATCHES", 3)
    context = DeadlineContext(settings)
    context.sweeper.batch = 2
    codes = [case_code() for _ in range(25)]
    idle = [case_code() for _ in range(7)]
    pending = case_code()  # its timer is written, its case document not yet
    documents, staged = [], []
    for code in [*codes, *idle, pending]:
        [item] = logged(code)
        document = folded(context, [item])
        staged.append((code, None, document))
        if code != pending:
            documents.append({**document, "_id": code, "events": [item]})
    [(timers_collection, arm)] = context.port.prelude(staged)
    await timers_collection.bulk_write(arm)
    await context.timers.update_many({"_id": {"$in": idle}}, {"$set": {"next_check_at": None}})
    await context.cases.insert_many(documents)
    await context.publisher.start()
    try:
        published = await context.sweeper.sweep(datetime(2026, 4, 30, tzinfo=VN_TZ))
        again = await context.sweeper.sweep(datetime(2026, 4, 30, tzinfo=VN_TZ))
        waiting = await context.timers.find_one({"_id": pending})
        await context.cases.insert_one(documents[0] | {"_id": pending, "events": [{"event_id": f"{pending}:r"}]})
        landed = await context.sweeper.sweep(datetime(2026, 4, 30, tzinfo=VN_TZ))
    finally:
        await context.publisher.stop()
        await context.mongo.close()
    events = [e for code in codes for e in await derived(kafka, settings, code)]
    assert published == len(events) == len({e["event_id"] for e in events}) == len(TIMERS) * len(codes)
    assert again == 0
    for code in codes:
        assert sorted(e["type"] for e in await derived(kafka, settings, code)) == sorted(TIMERS)
    db = mongo_client(settings.mongo_uri)[f"{settings.mongo_db}_deadline"]
    stored = {d["_id"]: d async for d in db.cases_timers.find()}
    assert all(len(stored[code]["emitted"]) == len(TIMERS) and stored[code]["next_check_at"] is None for code in codes)
    assert all("emitted" not in stored[code] for code in idle)
    assert not [e for code in idle for e in await derived(kafka, settings, code)]
    # the pending case's timer stayed due, unmarked, until its case was there; then it fired
    assert "emitted" not in waiting and waiting["next_check_at"] is not None
    assert landed == len(TIMERS) and len(stored[pending]["emitted"]) == len(TIMERS)


async def test_a_stop_ends_a_sweep_after_the_batch_in_hand_and_the_rest_stays_due(
    settings: Settings, kafka, monkeypatch
) -> None:
    """A graceful stop does not wait for a backlog's whole round: the sweep ends after the batch it
    is firing; the timers after it stay due and unmarked, and the next round fires each once."""
    context = DeadlineContext(settings)
    context.sweeper.batch = 3
    codes = [case_code() for _ in range(12)]
    staged, documents = [], []
    for code in codes:
        [item] = logged(code)
        document = folded(context, [item])
        staged.append((code, None, document))
        documents.append({**document, "_id": code, "events": [item]})
    [(timers_collection, arm)] = context.port.prelude(staged)
    await timers_collection.bulk_write(arm)
    await context.cases.insert_many(documents)
    fire = context.sweeper._fire
    fired: list[int] = []

    async def firing_then_stopping(timers_due: list[dict], now: datetime) -> tuple[int, int]:
        fired.append(len(timers_due))
        context.sweeper.stopping = True  # the stop comes while the first batch is fired
        return await fire(timers_due, now)

    monkeypatch.setattr(context.sweeper, "_fire", firing_then_stopping)
    at = datetime(2026, 4, 30, tzinfo=VN_TZ)
    await context.publisher.start()
    try:
        first = await context.sweeper.sweep(at)
        left = await context.timers.count_documents({"_id": {"$in": codes}, "emitted": {"$exists": False}})
        context.sweeper.stopping = False
        monkeypatch.setattr(context.sweeper, "_fire", fire)
        rest = await context.sweeper.sweep(at)
    finally:
        await context.publisher.stop()
        await context.mongo.close()
    assert fired == [3] and first == 3 * len(TIMERS)
    assert left == len(codes) - 3
    assert rest == (len(codes) - 3) * len(TIMERS)
    events = [e for code in codes for e in await derived(kafka, settings, code)]
    assert len(events) == len({e["event_id"] for e in events}) == len(TIMERS) * len(codes)


async def test_a_timer_rearmed_while_it_fires_keeps_its_marks_and_its_earlier_check(
    settings: Settings, kafka, monkeypatch
) -> None:
    """The projection re-arms a timer between the sweeper's read and its write: the next check
    written on the inputs read does not land (the re-armed one, earlier, stays), the marks do (on
    `_id` alone), so the re-armed check publishes nothing twice."""
    context = DeadlineContext(settings)
    code = case_code()
    [item] = logged(code)
    document = folded(context, [item])
    [(timers_collection, arm)] = context.port.prelude([(code, None, document)])
    await timers_collection.bulk_write(arm)
    await context.cases.insert_one({**document, "_id": code, "events": [item]})
    armed = await context.timers.find_one({"_id": code})
    publish = context.publish_derived

    async def publishing_then_rearmed(events: list[dict]) -> None:
        await publish(events)
        # the projection re-arms the timer meanwhile (a later event of the case under way)
        await context.timers.update_one({"_id": code}, {"$set": {"inputs": "re-armed"}})

    monkeypatch.setattr(context, "publish_derived", publishing_then_rearmed)
    at = datetime(2026, 4, 30, tzinfo=VN_TZ)
    await context.publisher.start()
    try:
        first = await context.sweeper.sweep(at)
        after_race = await context.timers.find_one({"_id": code})
        # that event's write landed, with the same timing: the timer's inputs are the case's again
        await context.timers.update_one({"_id": code}, {"$set": {"inputs": armed["inputs"]}})
        monkeypatch.setattr(context, "publish_derived", publish)
        again = await context.sweeper.sweep(at)
        settled = await context.timers.find_one({"_id": code})
    finally:
        await context.publisher.stop()
        await context.mongo.close()
    published = [e["event_id"] for e in await derived(kafka, settings, code) if e["type"] in TIMERS]
    assert first == len(TIMERS) == len(published) == len(set(published)) and again == 0
    assert sorted(after_race["emitted"]) == sorted(published)
    assert after_race["next_check_at"] == armed["next_check_at"] and after_race["inputs"] == "re-armed"
    assert settled["next_check_at"] is None and sorted(settled["emitted"]) == sorted(published)


async def test_a_pause_disarms_a_timer_with_a_check_and_leaves_one_whose_transitions_all_fired(
    settings: Settings,
) -> None:
    """The projection's disarm is written only on a timer with a check still set: on the store, a
    paused case's timer loses its check and takes the new inputs, also when the case read before
    was not armed (a failed attempt armed its timer); a timer whose transitions all fired (no
    check, its marks) is left as it is; a case with no timer gets none."""
    context = DeadlineContext(settings)
    fresh, fired, bare, leftover = (case_code() for _ in range(4))

    def states(code: str) -> tuple[dict, dict, dict]:
        """(running, paused, ended) documents of the case."""
        pause = event("case.supplement_requested", code, "2026-03-17T09:00:00+07:00")
        end = event("case.processed", code, "2026-03-18T09:00:00+07:00", outcome="approved")
        items = logged(code, received(code), pause, end)
        return folded(context, items[:1]), folded(context, items[:2]), folded(context, items)

    try:
        for code in (fresh, fired, bare):
            running, paused, _ = states(code)
            await context.cases.insert_one({**running, "_id": code})
            if code != bare:
                [(collection, arm)] = context.port.prelude([(code, None, running)])
                await collection.bulk_write(arm)
        # the leftover: its case is stored paused, its timer armed by an attempt that failed
        running, paused, _ = states(leftover)
        await context.cases.insert_one({**paused, "_id": leftover})
        [(collection, arm)] = context.port.prelude([(leftover, None, running)])
        await collection.bulk_write(arm)
        marks = [f"{fired}:deadline.overdue:x"]
        await context.timers.update_one({"_id": fired}, {"$set": {"next_check_at": None, "emitted": marks}})
        fired_before = await context.timers.find_one({"_id": fired})
        for code, index in ((fresh, 1), (fired, 1), (bare, 1), (leftover, 2)):
            stored = await context.cases.find_one({"_id": code})
            [(collection, disarm)] = context.port.prelude([(code, stored, states(code)[index])])
            assert len(disarm) == 1
            await collection.bulk_write(disarm)
        for code, index in ((fresh, 1), (leftover, 2)):
            disarmed = await context.timers.find_one({"_id": code})
            assert disarmed["next_check_at"] is None and disarmed["inputs"] == timers.timer_inputs(states(code)[index])
        assert await context.timers.find_one({"_id": fired}) == fired_before
        assert await context.timers.find_one({"_id": bare}) is None
    finally:
        await context.mongo.close()


async def test_a_timer_left_by_a_failed_attempt_is_made_right(settings: Settings, kafka) -> None:
    """A batch that armed its timers and failed before its cases were written is applied again,
    maybe with more events: the projection's insert of a new case's timer finds the leftover and
    sets it to this fold (marks kept); a leftover the projection will not touch again (the events
    that would have changed it came in the failed attempt only) is re-armed by the sweep from the
    case, once it is older than any write takes, and fires."""
    context = DeadlineContext(settings)
    new, settled = case_code(), case_code()
    stale = {"next_check_at": datetime(2026, 3, 1, tzinfo=VN_TZ), "inputs": "left", "emitted": ["m"]}
    await context.timers.insert_one({"_id": new, **stale, "armed_at": datetime.now(VN_TZ)})
    records = [record(0, received(new), f"{new}:r"), record(1, received(settled), f"{settled}:r")]
    await context.projection.apply(records)
    case = await context.cases.find_one({"_id": new})
    timer = await context.timers.find_one({"_id": new})
    assert timer["inputs"] == timers.timer_inputs(case) and timer["emitted"] == ["m"]
    assert timer["next_check_at"] is not None and timer["next_check_at"] != stale["next_check_at"]

    left = {"inputs": "left", "next_check_at": stale["next_check_at"]}
    await context.timers.update_one({"_id": settled}, {"$set": {**left, "armed_at": datetime.now(VN_TZ)}})
    orphan = case_code()  # a timer whose case was never written
    await context.timers.insert_one({"_id": orphan, **left, "armed_at": datetime.now(VN_TZ) - timedelta(hours=1)})
    await context.publisher.start()
    try:
        when = datetime(2026, 4, 30, tzinfo=VN_TZ)
        recent = await context.sweeper.sweep(when)  # as a case write under way: left alone
        untouched = await context.timers.find_one({"_id": settled})
        old = datetime.now(VN_TZ) - timers.STALE_ARMING - timedelta(minutes=1)
        await context.timers.update_one({"_id": settled}, {"$set": {"armed_at": old}})
        fired = await context.sweeper.sweep(when)
    finally:
        await context.publisher.stop()
        await context.mongo.close()
    assert recent == len(TIMERS)  # the new case's transitions; the settled case waited
    assert untouched["inputs"] == "left" and "emitted" not in untouched
    assert fired == len(TIMERS)
    timer = await mongo_client(settings.mongo_uri)[f"{settings.mongo_db}_deadline"].cases_timers.find_one(
        {"_id": settled}
    )
    settled_case = {**case, "_id": settled}
    assert timer["inputs"] == timers.timer_inputs(settled_case) and len(timer["emitted"]) == len(TIMERS)
    assert sorted(e["type"] for e in await derived(kafka, settings, settled)) == sorted(TIMERS)
    orphaned = await mongo_client(settings.mongo_uri)[f"{settings.mongo_db}_deadline"].cases_timers.find_one(
        {"_id": orphan}
    )
    assert orphaned["next_check_at"] is None and not await derived(kafka, settings, orphan)


async def test_no_case_index_and_timers_kept_on_cases_moved_out(settings: Settings) -> None:
    """An earlier version kept the timers on the case documents, with indexes: its open cases'
    timers move to their own collection, marks and all, and the cases' indexes are dropped."""
    client = mongo_client(settings.mongo_uri)
    db = client[f"{settings.mongo_db}_deadline"]
    await db.cases.create_index([("next_check_at", 1)])
    await db.cases.create_index([("open", 1), ("due_at", 1)])
    await db.cases.create_index([("open", 1), ("next_check_at", 1)])
    code, closed = case_code(), case_code()
    [item] = logged(code)
    context = DeadlineContext(settings)
    document = folded(context, [item])
    await context.mongo.close()
    mark = f"{code}:deadline.due_soon:x"
    await db.cases.insert_many(
        [
            {**document, "_id": code, "events": [item], "emitted": [mark], "next_check_at": document["due_at"]},
            {**document, "_id": closed, "open": False, "events": [], "next_check_at": None},
        ]
    )
    async with serve(deadline_app(settings)):
        indexes = await db.cases.index_information()
        timer_indexes = await db.cases_timers.index_information()
        timers = {d["_id"]: d async for d in db.cases_timers.find()}
    await client.close()
    assert [index["key"] for index in indexes.values()] == [[("_id", 1)]]
    assert sorted(index["key"] for index in timer_indexes.values()) == [[("_id", 1)], [("next_check_at", 1)]]
    assert list(timers) == [code] and timers[code]["emitted"] == [mark]
    assert timers[code]["next_check_at"] == document["due_at"]


async def test_apology_once_with_its_letter_and_due_at_unchanged(settings: Settings, kafka) -> None:
    code = case_code()
    async with serve(intake_app(settings)) as intake, serve(deadline_app(settings)) as deadline:
        await post(intake, received(code, applicant_name="Bà Trần Thị Hồng Nhung"))
        before = await case_of(deadline, code)
        other = (await intake.post("/v1/admin/agency-tokens", json={"agency_code": COMMUNE}, headers=AUTH)).json()
        own = (await intake.post("/v1/admin/agency-tokens", json={"agency_code": AGENCY}, headers=AUTH)).json()
        body = {"reason": "Chờ kết quả xác minh nguồn gốc đất", "new_due_at": "2026-04-10T17:00:00+07:00"}

        async def apologise(token: str, payload: dict) -> int:
            for _ in range(50):  # the deadline service learns the new token from the registry topic
                r = await deadline.post(
                    f"/v1/cases/{code}/apology", json=payload, headers={"Authorization": f"Bearer {token}"}
                )
                if r.status_code != 401:
                    return r.status_code
                await asyncio.sleep(0.2)
            return 401

        assert await apologise(other["token"], body) == 403
        too_early = {**body, "new_due_at": "2026-03-30T09:00:00+07:00"}
        assert await apologise(own["token"], too_early) == 422
        assert await apologise(own["token"], body) == 201
        assert await apologise(own["token"], body) == 409
        after = await case_of(deadline, code, lambda d: d["apology"] is not None)
        pdf = await deadline.get(f"/v1/cases/{code}/apology-letter?format=pdf", headers=AUTH)
        docx = await deadline.get(f"/v1/cases/{code}/apology-letter?format=docx", headers=AUTH)
    assert after["due_at"] == before["due_at"] == "2026-03-30T09:15:00+07:00"
    assert after["apology"]["reason"] == body["reason"]
    assert after["apology"]["on_time"] is False  # issued long after one working day before due
    text = " ".join(PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text().split())
    assert "PHIẾU XIN LỖI VÀ ĐỀ NGHỊ GIA HẠN THỜI GIAN GIẢI QUYẾT" in text
    assert "Kính gửi: Bà Trần Thị Hồng Nhung" in text
    assert "Sở Nông nghiệp và Môi trường" in text and code in text
    assert "Chờ kết quả xác minh nguồn gốc đất" in text and "10/04/2026" in text and "30/03/2026" in text
    paragraphs = "\n".join(p.text for p in Document(io.BytesIO(docx.content)).paragraphs)
    assert "Lý do: Chờ kết quả xác minh nguồn gốc đất." in paragraphs
    assert (
        "Thời gian hẹn trả kết quả ghi trên Giấy tiếp nhận hồ sơ và hẹn trả kết quả: 09 giờ 15 phút, ngày 30/03/2026."
        in paragraphs
    )

    async def notified():  # published by the projection once it has folded the apology
        kinds = [e["type"] for e in await derived(kafka, settings, code)]
        return kinds if "apology.issued" in kinds else None

    published = await eventually(notified)
    assert published.count("apology.issued") == 1


async def test_overdue_and_due_soon_lists_filter_page_and_export(settings: Settings) -> None:
    as_of = "2026-04-15T10:00:00+07:00"
    overdue_codes = [case_code() for _ in range(5)]
    commune_code = case_code(COMMUNE)
    soon, done = case_code(), case_code()
    events = [received(c, at=f"2026-03-{16 + i:02d}T09:00:00+07:00") for i, c in enumerate(overdue_codes)]
    events += [
        received(commune_code, at="2026-03-25T09:00:00+07:00", level="commune"),
        received(soon, at="2026-04-01T10:30:00+07:00"),  # 10 working days → due 2026-04-15T10:30
        received(done),
        event("case.processed", done, "2026-03-20T09:00:00+07:00", outcome="approved"),
    ]
    async with serve(intake_app(settings)) as intake, serve(deadline_app(settings)) as deadline:
        await post(intake, *events)
        await case_of(deadline, done, lambda d: d["status"] == "processed")
        for code in [*overdue_codes, commune_code, soon]:
            await case_of(deadline, code)

        async def listing(path: str, **params) -> dict:
            r = await deadline.get(path, params={"as_of": as_of, **params}, headers=AUTH)
            assert r.status_code == 200, r.text
            return r.json()

        everything = await listing("/v1/cases/overdue", limit=500)
        codes = [i["case_code"] for i in everything["items"]]
        assert set(codes) == {*overdue_codes, commune_code}
        assert codes[:5] == overdue_codes  # sorted by due_at
        assert everything["items"][0]["remaining_text"].startswith("quá ")
        mine = await listing("/v1/cases/overdue", agency="000.00.00.H99", level="province", limit=500)
        assert {i["case_code"] for i in mine["items"]} == set(overdue_codes)
        walked, cursor = [], None
        while True:
            page = await listing("/v1/cases/overdue", limit=2, **({"cursor": cursor} if cursor else {}))
            walked += [i["case_code"] for i in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert walked == codes
        assert [i["case_code"] for i in (await listing("/v1/cases/due-soon"))["items"]] == [soon]
        assert (await listing("/v1/cases/overdue", apology="issued"))["items"] == []
        csv_response = await deadline.get("/v1/cases/overdue", params={"as_of": as_of, "format": "csv"}, headers=AUTH)
        rows = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig"))))
        assert rows[0][0] == "Mã hồ sơ" and len(rows) == 7
        xlsx = await deadline.get("/v1/cases/overdue", params={"as_of": as_of, "format": "xlsx"}, headers=AUTH)
        sheet = load_workbook(io.BytesIO(xlsx.content)).active
        header = int(re.search(r"\d+", sheet.auto_filter.ref)[0])  # the table starts below its notes
        assert sheet.title == "Quá hạn" and sheet.max_row - header == 6
        assert sheet["A1"].value == "Danh sách hồ sơ quá hạn" and sheet.cell(header, 1).value == "Mã hồ sơ"
        token = (await intake.post("/v1/admin/agency-tokens", json={"agency_code": COMMUNE}, headers=AUTH)).json()[
            "token"
        ]

        async def scoped():
            r = await deadline.get(
                "/v1/cases/overdue", params={"as_of": as_of}, headers={"Authorization": f"Bearer {token}"}
            )
            return r.json() if r.status_code == 200 else None

        assert [i["case_code"] for i in (await eventually(scoped))["items"]] == [commune_code]
        outside = await deadline.get(
            "/v1/cases/overdue", params={"agency": AGENCY}, headers={"Authorization": f"Bearer {token}"}
        )
        assert outside.status_code == 403
        bad_cursor = await deadline.get("/v1/cases/overdue", params={"cursor": "nope"}, headers=AUTH)
        assert bad_cursor.status_code == 422


async def test_lists_from_memory_equal_lists_from_the_store(settings: Settings) -> None:
    """The in-memory open-case index and the store query give the same pages, cursors and exports."""
    now = datetime.now(VN_TZ).replace(microsecond=0)
    codes = [case_code(COMMUNE if i % 3 == 0 else AGENCY) for i in range(36)]
    events = []
    for i, code in enumerate(codes):
        at = (now - timedelta(days=1 + i % 18, hours=i % 5)).isoformat()
        level = "commune" if code.startswith(COMMUNE) else "province"
        events.append(received(code, at=at, level=level, channel=["online", "direct", "postal"][i % 3]))
    events.append(event("case.processed", codes[1], (now - timedelta(hours=1)).isoformat(), outcome="approved"))
    events.append(event("case.supplement_requested", codes[2], (now - timedelta(hours=2)).isoformat()))
    app = deadline_app(settings)
    index = app.state.context.open_cases
    async with serve(intake_app(settings)) as intake, serve(app) as deadline:
        await post(intake, *events)
        await case_of(deadline, codes[1], lambda d: d["status"] == "processed")
        await case_of(deadline, codes[2], lambda d: d["status"] == "waiting_citizen")
        for code in codes:
            await case_of(deadline, code)

        async def loaded():
            return index.usable or None

        await eventually(loaded)
        assert set(index.cases) >= set(codes) - {codes[1]} and codes[1] not in index.cases

        async def walk(path: str, **params) -> list[dict]:
            items, cursor = [], None
            while True:
                query = {**params, "limit": 4, **({"cursor": cursor} if cursor else {})}
                r = await deadline.get(path, params=query, headers=AUTH)
                assert r.status_code == 200, r.text
                items += r.json()["items"]
                if not (cursor := r.json()["next_cursor"]):
                    return items

        seen = 0
        for as_of in (now + timedelta(minutes=1), now + timedelta(days=3), now + timedelta(days=15)):
            for path in ("/v1/cases/overdue", "/v1/cases/due-soon"):
                for params in (
                    {},
                    {"sort": "-due_at"},
                    {"sort": "received_at", "agency": COMMUNE},
                    {"sort": "-received_at", "channel": "online"},
                    {"level": "province", "apology": "missing"},
                ):
                    params = {**params, "as_of": as_of.isoformat()}
                    index.usable = True
                    from_memory = await walk(path, **params)
                    index.usable = False
                    from_store = await walk(path, **params)
                    assert from_memory == from_store, (path, params)
                    for usable in (True, False):  # the total of every page, counted either way
                        index.usable = usable
                        first = await deadline.get(path, params={**params, "limit": 1}, headers=AUTH)
                        assert first.json()["total"] == len(from_memory), (path, params, usable)
                    seen += len(from_memory)
        index.usable = True
        assert seen > 0
        exports = []
        for usable in (True, False):
            index.usable = usable
            r = await deadline.get(
                "/v1/cases/overdue",
                params={"as_of": (now + timedelta(days=15)).isoformat(), "format": "csv"},
                headers=AUTH,
            )
            exports.append(r.content)
        assert exports[0] == exports[1] and exports[0].count(b"\n") > 10
        metrics = (await deadline.get("/metrics")).text
        assert 'tthc_deadline_list_reads_total{source="memory"}' in metrics
        # the case gauges: the same counts from memory as from the store's aggregation
        gauges = []
        for usable in (True, False):
            index.usable = usable
            await app.state.context.gauges.refresh(now + timedelta(days=3))
            gauges.append(
                {
                    (s.name, s.labels["agency"], s.labels["level"]): s.value
                    for g in (OPEN, OVERDUE, DUE_SOON, APOLOGY_MISSING)
                    for metric in g.collect()
                    for s in metric.samples
                }
            )
        assert gauges[0] == gauges[1]
        assert gauges[0][("tthc_cases_open", COMMUNE, "commune")] == 12
        assert sum(v for (name, _, _), v in gauges[0].items() if name == "tthc_cases_overdue") > 0


async def test_webhooks_are_signed_retried_and_logged(settings: Settings) -> None:
    settings = fast(settings)
    seen: list[tuple[bytes, dict]] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> Response:
        seen.append((await request.body(), dict(request.headers)))
        return Response(status_code=500 if len(seen) == 1 else 200)

    code = case_code("000.00.05.H99")
    async with running(receiver) as url, serve(intake_app(settings)) as intake:
        response = await intake.put(
            "/v1/admin/agencies/000.00.05.H99",
            json={
                "name": "Sở Tư pháp",
                "level": "province",
                "parent_code": "000.00.00.H99",
                "webhook_url": f"{url}/hook",
            },
            headers=AUTH,
        )
        assert response.status_code == 200
        async with serve(deadline_app(settings)) as deadline:
            await post(intake, received(code))

            async def delivered():
                r = await deadline.get("/v1/webhooks/deliveries", params={"case_code": code}, headers=AUTH)
                rows = r.json()
                return rows if len(rows) == len(TIMERS) and all(d["status"] == "delivered" for d in rows) else None

            rows = await eventually(delivered, timeout=40)
    assert sorted(d["type"] for d in rows) == sorted(TIMERS)
    assert max(d["attempts"] for d in rows) == 2  # the first attempt got a 500 and was retried
    by_key: dict[str, list[dict]] = {}
    for body, headers in seen:
        stamp = headers["x-tthc-timestamp"]  # unix seconds; the signature covers it and the body
        assert abs(int(stamp) - time.time()) < 120
        expected = "sha256=" + hmac.new(b"s3cret", f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert headers["x-tthc-signature"] == expected
        by_key.setdefault(headers["idempotency-key"], []).append(json.loads(body))
    assert len(by_key) == len(TIMERS) and sum(len(v) for v in by_key.values()) == len(TIMERS) + 1


async def test_rebuild_gives_identical_documents(settings: Settings) -> None:
    codes = [case_code() for _ in range(4)]
    events = [received(c) for c in codes] + [
        event("case.supplement_requested", codes[0], "2026-03-17T09:00:00+07:00"),
        event("case.supplement_received", codes[0], "2026-03-19T09:00:00+07:00"),
        event("case.processed", codes[1], "2026-03-25T09:00:00+07:00", outcome="approved"),
        event("case.transferred", codes[2], "2026-03-17T09:00:00+07:00", from_agency=AGENCY, to_agency=COMMUNE),
    ]
    async with serve(intake_app(settings)) as intake, serve(deadline_app(settings)) as deadline:
        await post(intake, *events)
        await case_of(deadline, codes[0], lambda d: d["supplement_requests"] == 1 and d["status"] == "pending")
        await case_of(deadline, codes[1], lambda d: d["status"] == "processed")
        await case_of(deadline, codes[2], lambda d: len(d["legs"]) == 1)
        await case_of(deadline, codes[3])
    result = await rebuild(settings, "cases_rebuilt")
    assert result["events_applied"] == len(events)
    client = mongo_client(settings.mongo_uri)
    db = client[f"{settings.mongo_db}_deadline"]
    live = {d["_id"]: d async for d in db.cases.find()}
    rebuilt = {d["_id"]: d async for d in db.cases_rebuilt.find()}
    await client.close()
    assert live == rebuilt and len(live) == 4

"""The documents a projection keeps, saved at a graceful stop and put back at the next start
(shared/cache_snapshot.py, ADR 0023), on the real store."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import bson
import pytest

from shared import cache_snapshot
from shared.cache_snapshot import HEAD, CacheSnapshot
from shared.document_cache import DocumentCache
from shared.kafka import Membership
from shared.settings import Settings
from shared.store import mongo_client
from tests.support.copies import HeldCopy

pytestmark = pytest.mark.integration

OFFSETS = {"t:0": 5, "t:1": 7, "t:2": None}


def case(n: int) -> dict[str, Any]:
    return {"_id": f"C{n:03d}", "open": True, "events": [{"event_id": f"e{n}", "note": "x" * 200}]}


async def stopped_with_snapshot(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, list[str]]:
    """A process that held 40 cases (written to the store as it kept them) and stopped gracefully."""
    monkeypatch.setattr(cache_snapshot, "CHUNK_BYTES", 2000)  # several chunks
    client = mongo_client(settings.mongo_uri, "standin")
    cases = client[f"{settings.mongo_db}_snap"][f"cases_{uuid.uuid4().hex[:8]}"]
    documents = [case(n) for n in range(40)]
    await cases.insert_many(documents)
    cache = DocumentCache("test", 1 << 20, cases.codec_options)
    await cache.assigned(True, Membership("m1", 1, OFFSETS))
    cache.store(cache.generation, [(d["_id"], bson.encode(d)) for d in documents])
    snapshot = CacheSnapshot(cache, cases, 1 << 20)
    assert await snapshot.save(OFFSETS)
    assert await snapshot.snapshots.count_documents({"_id": {"$ne": HEAD}}) > 1
    return client, cases, [d["_id"] for d in documents]


async def started(cases: Any, sole_owner: bool, membership: Membership) -> tuple[DocumentCache, CacheSnapshot]:
    cache = DocumentCache("test", 1 << 20, cases.codec_options)
    snapshot = CacheSnapshot(cache, cases, 1 << 20)
    await cache.assigned(sole_owner, membership)  # the consumer tells its owners in this order
    await snapshot.assigned(sole_owner, membership)
    await snapshot.before_applying()  # and awaits this before it applies a record
    return cache, snapshot


async def test_the_next_start_with_the_same_offsets_puts_every_document_back_as_stored(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, cases, codes = await stopped_with_snapshot(settings, monkeypatch)
    cache, snapshot = await started(cases, True, Membership("m2", 2, OFFSETS))
    assert await snapshot.snapshots.find_one({"_id": HEAD}) is None  # taken out before a record is applied
    await snapshot.wait()
    assert snapshot.restored == 40
    found, missing = cache.lookup(codes)
    assert missing == []
    stored = {d["_id"]: d async for d in cases.find({})}
    assert all(found[code] == stored[code] for code in codes)
    assert await snapshot.snapshots.count_documents({}) == 0  # used once
    await cases.drop()
    await client.close()


@pytest.mark.parametrize(
    ("sole_owner", "offsets"),
    [(True, {**OFFSETS, "t:1": 8}), (False, OFFSETS)],
    ids=["other-offsets", "some-partitions"],
)
async def test_a_start_that_may_lack_a_write_puts_nothing_back_and_takes_the_snapshot_out(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, sole_owner: bool, offsets: dict[str, int | None]
) -> None:
    """Another committed offset: a member wrote since the save; a partial assignment: this process
    writes some cases now and may stop before it commits them."""
    client, cases, codes = await stopped_with_snapshot(settings, monkeypatch)
    cache, snapshot = await started(cases, sole_owner, Membership("m2", 2, offsets))
    await snapshot.wait()
    assert snapshot.restored == 0 and len(cache) == 0
    assert await snapshot.snapshots.find_one({"_id": HEAD}) is None
    # and a later start with the saved offsets finds no snapshot either
    again, later = await started(cases, True, Membership("m3", 3, OFFSETS))
    await later.wait()
    assert len(again) == 0
    await cases.drop()
    await client.close()


async def test_a_collection_made_again_since_the_save_gets_nothing_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, cases, codes = await stopped_with_snapshot(settings, monkeypatch)
    head = await cases.database[f"{cases.name}_cache_snapshot"].find_one({"_id": HEAD})
    await cases.drop()  # a rebuild drops and writes it again
    await cases.insert_many([case(n) for n in range(40)])
    restore = cases.database[f"{cases.name}_cache_snapshot"]
    await restore.replace_one({"_id": HEAD}, head, upsert=True)  # the drop took only the cases
    cache, snapshot = await started(cases, True, Membership("m2", 2, OFFSETS))
    await snapshot.wait()
    assert len(cache) == 0
    await cases.drop()
    await client.close()


async def test_the_copies_the_lists_read_load_before_anything_is_put_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, cases, codes = await stopped_with_snapshot(settings, monkeypatch)
    copy = HeldCopy()
    cache = DocumentCache("test", 1 << 20, cases.codec_options)
    snapshot = CacheSnapshot(cache, cases, 1 << 20)
    snapshot.after = [copy]
    membership = Membership("m2", 2, OFFSETS)
    for owner in (cache, copy, snapshot):  # the consumer's order (shared/service.py)
        await owner.assigned(True, membership)
    await asyncio.sleep(1)
    assert len(cache) == 0 and copy.loading
    copy.release.set()
    await snapshot.wait()
    assert copy.usable and snapshot.restored == 40 and len(cache) == 40
    await cases.drop()
    await client.close()


async def test_a_refold_forgets_the_snapshot_so_no_start_puts_back_what_it_changed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refold (an agency dissolved into a successor) writes cases from no record, and may run at a
    start before the first assignment, while nothing is held: it forgets the snapshot first
    (services/*/context.py `refold`)."""
    client, cases, codes = await stopped_with_snapshot(settings, monkeypatch)
    cache = DocumentCache("test", 1 << 20, cases.codec_options)
    snapshot = CacheSnapshot(cache, cases, 1 << 20)
    await snapshot.forget()
    membership = Membership("m2", 2, OFFSETS)
    await cache.assigned(True, membership)
    await snapshot.assigned(True, membership)
    await snapshot.wait()
    assert snapshot.restored == 0 and len(cache) == 0
    await cases.drop()
    await client.close()

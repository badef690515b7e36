"""The projection's documents kept in memory (ADR 0012): what they return, when they are dropped."""

from __future__ import annotations

from datetime import UTC, datetime

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from shared.document_cache import ENTRY_OVERHEAD, DocumentCache
from shared.domain.calendar import VN_TZ

CODEC = CodecOptions(tz_aware=True, tzinfo=VN_TZ)


def case(code: str, **fields) -> dict:
    return {
        "_id": code,
        "open": True,
        "due_at": datetime(2026, 3, 30, 2, 15, 0, 123456, tzinfo=UTC),
        "events": [{"event_id": "r1", "data": {"note": "Hồ sơ đất đai"}}],
        **fields,
    }


def write(cache: DocumentCache, generation: int, *documents: dict) -> None:
    """What the projection does: encode each document as it folds it, keep them once all landed."""
    encoded = [RawBSONDocument(bson.encode(d, codec_options=CODEC)) for d in documents]
    cache.store(generation, [cache.entry(d["_id"], d, raw) for d, raw in zip(documents, encoded, strict=True)])


def held(max_bytes: int = 1 << 20, keep=None) -> DocumentCache:
    cache = DocumentCache("test", max_bytes, CODEC, keep)
    cache.hold()
    return cache


def test_nothing_is_kept_before_the_partitions_are_held() -> None:
    cache = DocumentCache("test", 1 << 20, CODEC)
    write(cache, cache.generation, case("A"))
    assert cache.lookup(["A"]) == ({}, ["A"])
    assert len(cache) == 0


def test_a_kept_document_reads_back_as_the_store_returns_it() -> None:
    cache = held()
    written = case("A")
    write(cache, cache.generation, written)
    found, missing = cache.lookup(["A", "B"])
    assert missing == ["B"] and list(found) == ["A"]
    # what the store gives back: milliseconds, in Vietnam time, the same keys in the same order
    assert found["A"] == bson.decode(bson.encode(written), CODEC)
    assert list(found["A"]) == list(written)
    assert found["A"]["due_at"].microsecond == 123000
    assert found["A"]["due_at"].utcoffset().total_seconds() == 7 * 3600
    assert found["A"]["due_at"] == written["due_at"].replace(microsecond=123000)
    assert found["A"]["events"][0]["data"]["note"] == "Hồ sơ đất đai"
    found["A"]["events"].append({"event_id": "x"})  # the caller's copy: the kept one is unchanged
    assert len(cache.lookup(["A"])[0]["A"]["events"]) == 1


def test_a_later_write_replaces_the_kept_document() -> None:
    cache = held()
    write(cache, cache.generation, case("A", status="pending"))
    write(cache, cache.generation, case("A", status="processed"))
    assert cache.lookup(["A"])[0]["A"]["status"] == "processed"
    assert len(cache) == 1
    assert cache.bytes == len(bson.encode(case("A", status="processed"))) + ENTRY_OVERHEAD


def test_documents_keep_rejects_are_dropped_even_if_kept_before() -> None:
    cache = held(keep=lambda d: d["open"])
    write(cache, cache.generation, case("A"), case("B"))
    write(cache, cache.generation, case("A", open=False))  # the case ended
    assert cache.lookup(["A", "B"])[1] == ["A"]
    assert len(cache) == 1


def test_revocation_empties_it_and_a_batch_begun_before_does_not_fill_it() -> None:
    cache = held()
    write(cache, cache.generation, case("A"))
    begun = cache.generation
    cache.revoked()
    assert cache.lookup(["A"]) == ({}, ["A"])
    cache.hold()  # assigned again: still nothing from the batch that read before the revocation
    write(cache, begun, case("B"))
    assert cache.lookup(["A", "B"])[1] == ["A", "B"]
    write(cache, cache.generation, case("B"))
    assert "B" in cache.lookup(["B"])[0]


def test_a_failed_batch_drops_its_cases() -> None:
    cache = held()
    write(cache, cache.generation, case("A"), case("B"), case("C"))
    cache.discard(["A", "C", "Z"])
    assert cache.lookup(["A", "B", "C"])[1] == ["A", "C"]
    assert cache.bytes == len(bson.encode(case("B"))) + ENTRY_OVERHEAD


def test_the_least_recently_used_go_first_when_full() -> None:
    size = len(bson.encode(case("A"))) + ENTRY_OVERHEAD
    cache = held(max_bytes=3 * size)
    write(cache, cache.generation, case("A"), case("B"), case("C"))
    cache.lookup(["A"])  # read: the most recently used now
    write(cache, cache.generation, case("D"))
    assert cache.lookup(["A", "B", "C", "D"])[1] == ["B"]
    assert cache.bytes <= 3 * size


def test_a_size_of_zero_keeps_nothing() -> None:
    cache = held(max_bytes=0)
    write(cache, cache.generation, case("A"))
    assert cache.lookup(["A"])[1] == ["A"]


# --- put back at a start (ADR 0023) -------------------------------------------------------------


def encoded(document: dict) -> bytes:
    return bson.encode(document, codec_options=CODEC)


def test_documents_put_back_never_replace_what_this_process_wrote_or_dropped_since() -> None:
    cache = held()
    generation = cache.warming()
    write(cache, cache.generation, case("A", status="written"))  # written after the snapshot's read
    cache.discard(["B"])  # a batch that failed: the store may hold a newer B
    for key in ("A", "B", "C"):
        assert cache.warm(generation, key, encoded(case(key, status="saved")))
    cache.warmed(generation)
    found, missing = cache.lookup(["A", "B", "C"])
    assert missing == ["B"]
    assert found["A"]["status"] == "written" and found["C"]["status"] == "saved"
    # once warmed, a write no longer needs remembering
    write(cache, cache.generation, case("D"))
    assert cache._touched is None


def test_documents_put_back_are_the_least_recently_used_and_never_push_out_a_write() -> None:
    one = len(encoded(case("S1"))) + ENTRY_OVERHEAD
    cache = held(max_bytes=3 * one)
    write(cache, cache.generation, case("W"))
    generation = cache.warming()
    # the snapshot's order: the most recent first
    assert cache.warm(generation, "S1", encoded(case("S1")))
    assert cache.warm(generation, "S2", encoded(case("S2")))
    assert not cache.warm(generation, "S3", encoded(case("S3")))  # the bytes are spent: stop
    cache.warmed(generation)
    assert list(cache._documents) == ["S2", "S1", "W"]  # least recently used first
    write(cache, cache.generation, case("N"))  # a new write pushes out the oldest: S2, not W or S1
    assert set(cache.lookup(["W", "S1", "S2", "N"])[0]) == {"W", "S1", "N"}


def test_nothing_is_put_back_after_the_partitions_changed_hands() -> None:
    cache = held()
    generation = cache.warming()
    cache.revoked()
    cache.hold()
    assert not cache.warm(generation, "A", encoded(case("A")))
    assert len(cache) == 0


def test_the_most_recent_documents_are_saved_first_within_the_bytes() -> None:
    cache = held()
    for key in ("A", "B", "C"):
        write(cache, cache.generation, case(key))
    cache.lookup(["A"])  # used again: the most recent
    size = len(encoded(case("A")))
    assert [key for key, _ in cache.recent(2 * size)] == ["A", "C"]
    assert [key for key, _ in cache.recent(10 * size)] == ["A", "C", "B"]
    assert cache.recent(10 * size)[0][1] == encoded(case("A"))

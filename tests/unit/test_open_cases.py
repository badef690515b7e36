"""The in-memory open-case index answers exactly what the store query answers (pure, no I/O)."""

from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta

import bson
import pytest
from bson.codec_options import CodecOptions

from services.deadline import open_cases
from services.deadline.open_cases import ListQuery, OpenCase, OpenCaseIndex, to_open_case
from shared.domain.apology_due import apology_due
from shared.domain.calendar import VN_TZ

T0 = datetime(2026, 11, 2, 7, 30, tzinfo=VN_TZ)
AGENCIES = ["A", "A.1", "A.2", "B", "B.1"]
SORTS = ["due_at", "-due_at", "received_at", "-received_at"]


def document(rng: random.Random) -> dict:
    received = T0 + timedelta(minutes=rng.randrange(0, 30 * 24 * 60))
    finished = rng.random() < 0.15
    return {
        "agency_code": rng.choice(AGENCIES),
        "procedure_code": rng.choice(["P1", "P2", "P3"]),
        "procedure_name": "Cấp giấy chứng nhận",
        "field_code": rng.choice(["dat-dai", "ho-tich"]),
        "level": rng.choice(["province", "commune"]),
        "channel": rng.choice(["direct", "online", "postal"]),
        "received_at": received,
        # ties on due_at on purpose: the case code breaks them
        "due_at": received + timedelta(days=rng.choice([1, 3, 3, 10])) if rng.random() > 0.05 else None,
        "apology_deadline_at": None,
        "apology": {"reason": "x"} if rng.random() < 0.3 else None,
        "agency_at_fault": None,
        "status": "processing",
        "clock_stopped_since": received if rng.random() < 0.1 else None,
        "open": not finished,
        "end_at": received + timedelta(days=1) if finished else None,
    }


def reference(documents: dict[str, dict], query: ListQuery, sort: str) -> list[str]:
    """The store's semantics: filter every open document, order by (key, code)."""
    rows = [
        (code, d)
        for code, d in documents.items()
        if (case := to_open_case(code, d)) is not None and query.matches(case)
    ]
    key = sort.lstrip("-")
    rows.sort(key=lambda item: (item[1][key], item[0]), reverse=sort.startswith("-"))
    return [code for code, _ in rows]


def walk(index: OpenCaseIndex, query: ListQuery, sort: str, limit: int) -> list[str]:
    """Every page through the cursor, as the route does it."""
    key = sort.lstrip("-")
    out: list[str] = []
    after = None
    while True:
        page = index.page(query, sort, after, limit + 1)
        out += [c.case_code for c in page[:limit]]
        if len(page) <= limit:
            return out
        last = page[limit - 1]
        after = (getattr(last, key), last.case_code)


def queries(rng: random.Random) -> list[ListQuery]:
    out = []
    for _ in range(12):
        as_of = T0 + timedelta(days=rng.randrange(0, 40))
        overdue = rng.random() < 0.5
        out.append(
            ListQuery(
                due_from=None if overdue else as_of,
                due_before=as_of if overdue else None,
                due_until=None if overdue else as_of + timedelta(days=2),
                received_by=as_of,
                agencies=rng.choice([None, frozenset({"A", "A.1", "A.2"}), frozenset({"B.1"})]),
                level=rng.choice([None, "commune"]),
                channel=rng.choice([None, None, "online"]),
                apology=rng.choice([None, "issued", "missing"]),
            )
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pages_equal_the_store_semantics_after_updates(seed: int) -> None:
    rng = random.Random(seed)
    index = OpenCaseIndex(collection=None)  # type: ignore[arg-type]
    documents: dict[str, dict] = {}
    for i in range(400):
        code = f"C-{i:04d}"
        documents[code] = document(rng)
    index.written(documents.items())
    # later batches: due dates move, cases finish, pause, resume, get apologies
    for _ in range(3):
        changed = {code: document(rng) for code in rng.sample(sorted(documents), 80)}
        documents.update(changed)
        index.written(changed.items())
    index.usable = True
    assert set(index.cases) == {c for c, d in documents.items() if to_open_case(c, d) is not None}
    for query in queries(rng):
        for sort in SORTS:
            expected = reference(documents, query, sort)
            assert walk(index, query, sort, limit=7) == expected, (query, sort)
            assert [c.case_code for c in index.page(query, sort, None, 1000)] == expected
        assert index.count(query) == len(reference(documents, query, "due_at"))  # the lists' total


def test_answers_only_when_usable_and_not_before_a_dropped_end() -> None:
    index = OpenCaseIndex(collection=None)  # type: ignore[arg-type]
    doc = document(random.Random(9)) | {"open": True, "due_at": T0 + timedelta(days=3), "end_at": None}
    index.written([("X", doc)])
    assert not index.answers(T0)  # not loaded: the store answers
    index.usable = True
    assert index.answers(T0)
    ended = T0 + timedelta(days=5)
    index.written([("X", doc | {"open": False, "end_at": ended})])
    assert "X" not in index.cases and len(index.by_due) == 0 and len(index.by_received) == 0
    assert not index.answers(ended - timedelta(seconds=1))  # X was still open then: only the store knows
    assert index.answers(ended)
    index.revoked()
    assert not index.answers(ended)


def test_a_row_reads_like_the_case_document() -> None:
    doc = document(random.Random(4)) | {"open": True, "due_at": T0, "apology": {"reason": "x"}}
    case = to_open_case("K", doc)
    assert isinstance(case, OpenCase)
    row = case.document()
    assert row["_id"] == "K" and row["due_at"] == T0 and row["apology"] is not None
    assert {k: row[k] for k in ("agency_code", "channel", "level")} == {
        k: doc[k] for k in ("agency_code", "channel", "level")
    }


def test_tallies_count_what_the_gauges_count() -> None:
    rng = random.Random(7)
    index = OpenCaseIndex(collection=None)  # type: ignore[arg-type]
    documents = {f"C-{i}": document(rng) for i in range(300)}
    for d in documents.values():
        if d["due_at"] is not None and rng.random() < 0.5:
            d["apology_deadline_at"] = d["due_at"] - timedelta(days=1)
    index.written(documents.items())
    now, horizon = T0 + timedelta(days=12), T0 + timedelta(days=13)
    expected: dict[tuple[str, str], dict[str, int]] = {}
    for d in documents.values():
        if not d["open"]:
            continue
        counts = expected.setdefault(
            (d["agency_code"], d["level"]), {"open": 0, "overdue": 0, "soon": 0, "missing": 0, "apology_due": 0}
        )
        counts["open"] += 1
        due, running = d["due_at"], d["clock_stopped_since"] is None
        counts["overdue"] += bool(due is not None and running and due < now)
        counts["soon"] += bool(due is not None and running and now <= due <= horizon)
        deadline = d["apology_deadline_at"]
        counts["missing"] += bool(deadline is not None and deadline < now and d["apology"] is None)
        issued = d["apology"] is not None
        counts["apology_due"] += bool(running and apology_due(now, horizon, deadline, due, issued))
    assert index.tallies(now, horizon, horizon) == expected
    assert any(c["missing"] for c in expected.values()) and any(c["soon"] for c in expected.values())
    assert any(c["apology_due"] for c in expected.values())


@pytest.mark.parametrize(
    ("stopped", "overdue_from", "overdue", "soon"),
    [
        # contract v1.1, S-766DOC 2.1: the gauges count as the figures do (the fold's overdue_from)
        (None, T0 + timedelta(days=1), 1, 0),  # clock running, past due
        (T0, None, 0, 0),  # waiting after one request made before due: within due while it waits
        (T0, T0 + timedelta(days=1), 1, 0),  # waiting after two requests: late from the second
        (None, T0 + timedelta(days=2, hours=12), 0, 1),  # running, due within the horizon
    ],
)
def test_gauges_follow_the_folds_overdue_rule(
    stopped: datetime | None, overdue_from: datetime | None, overdue: int, soon: int
) -> None:
    index = OpenCaseIndex(collection=None)  # type: ignore[arg-type]
    doc = document(random.Random(1)) | {
        "open": True,
        "end_at": None,
        "agency_code": "A",
        "level": "commune",
        "due_at": T0 + timedelta(days=2, hours=12),
        "clock_stopped_since": stopped,
        "overdue_from": overdue_from,
    }
    index.written([("W", doc)])
    now, horizon = T0 + timedelta(days=2), T0 + timedelta(days=3)
    assert index.tallies(now, horizon)[("A", "commune")] == {
        "open": 1,
        "overdue": overdue,
        "soon": soon,
        "missing": 0,
        "apology_due": 0,
    }


def test_a_snapshot_reads_back_as_the_index_it_was_written_from(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunked, BSON-encoded and decoded with the store's codec options (Vietnam time): the same
    cases, field for field, and the same open cases with no due instant."""
    monkeypatch.setattr(open_cases, "CHUNK_ROWS", 37)  # several chunks, the last one short
    rng = random.Random(11)
    index = OpenCaseIndex(collection=None)  # type: ignore[arg-type]
    index.written(
        (f"C-{i:04d}", document(rng) | {"overdue_from": None} if i % 7 == 0 else document(rng)) for i in range(300)
    )
    assert index.undated and len(index.cases) > 100
    chunks = open_cases.snapshot_chunks(list(index.cases.values()), list(index.undated.items()), "s1")
    assert len(chunks) == -(-max(len(index.cases), len(index.undated)) // 37)
    options = CodecOptions(tz_aware=True, tzinfo=VN_TZ)
    cases: dict[str, OpenCase] = {}
    undated: dict[str, tuple[str, str]] = {}
    for chunk in chunks:
        stored = bson.decode(bson.encode(chunk), options)  # through the store's encoding, as a find returns it
        open_cases.read_chunk(bson.decode(stored["rows"], options), cases, undated)
    assert cases == index.cases and undated == index.undated
    assert all(case.due_at.tzinfo is not None for case in cases.values())
    some = next(iter(cases.values()))
    assert some.agency_code is sys.intern(str(some.agency_code))  # interned, as a scan's


def test_an_empty_index_still_writes_one_chunk() -> None:
    chunks = open_cases.snapshot_chunks([], [], "s2")
    assert len(chunks) == 1 and chunks[0]["save"] == "s2"


def test_a_total_is_counted_again_once_the_index_changed() -> None:
    rng = random.Random(5)
    index = OpenCaseIndex(collection=None)  # type: ignore[arg-type]
    documents = {f"C-{i:04d}": document(rng) for i in range(200)}
    index.written(documents.items())
    query = queries(rng)[0]
    first = index.count(query)
    assert index.count(query) == first == len(reference(documents, query, "due_at"))
    code = next(c for c in reference(documents, query, "due_at"))
    documents[code] = documents[code] | {"open": False, "end_at": T0}
    index.written([(code, documents[code])])
    assert index.count(query) == first - 1 == len(reference(documents, query, "due_at"))

"""Submitting DVCQG snapshots: each read with the national field names, turned into the contract
events it implies (dvcqg.py) and submitted like any other events; what was emitted is remembered
per case (collection `dvcqg_snapshots`) so a repeated snapshot yields nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from services.intake.case_event import CaseEvent
from services.intake.dvcqg import Memory, agency_names, snapshot_to_events
from services.intake.dvcqg_snapshot import HoSoDongBoDVC, SnapshotInvalid, read_snapshot
from services.intake.submission import Acceptance, IntakePorts, check_scope, publish
from shared.domain.calendar import VN_TZ
from shared.store import find_by_ids
from shared.web import ApiError, Principal


async def submit_snapshots(
    ports: IntakePorts, principal: Principal, items: list[Any], batch: bool = True
) -> list[Acceptance]:
    """Validate every snapshot (all or nothing), publish the new events, remember what was sent."""
    if not items or len(items) > ports.settings.max_batch:
        raise ApiError(422, f"send 1 to {ports.settings.max_batch} snapshots", details=[{"loc": [], "msg": "size"}])
    now = datetime.now(VN_TZ)
    snapshots = _read_all(ports, items, batch, now)
    memories = await load_memories(ports, [s.MaHoSo for s in snapshots])
    events = _implied_by_all(ports, snapshots, memories, batch, now)
    check_scope(ports, principal, events)
    # Ownership (403/409) names a snapshot's MaHoSo; a snapshot implying no new event is checked too.
    where: dict[str, list[Any]] = {}
    for index, snapshot in enumerate(snapshots):
        where.setdefault(snapshot.MaHoSo, [index, "MaHoSo"] if batch else ["MaHoSo"])
    accepted = await publish(
        ports, principal, events, locs=[where[e.case_code] for e in events], touches=list(where.items())
    )
    await save_memories(ports, memories)
    return accepted


def _read_all(ports: IntakePorts, items: list[Any], batch: bool, now: datetime) -> list[HoSoDongBoDVC]:
    snapshots, details = [], []
    for index, raw in enumerate(items):
        try:
            snapshots.append(read_snapshot(raw, ports.door, now))
        except SnapshotInvalid as exc:
            details.extend(_prefixed(exc.details, [index] if batch else []))
    if details:
        raise ApiError(422, "the snapshots are invalid; nothing was published", details=details)
    return snapshots


def _implied_by_all(
    ports: IntakePorts, snapshots: list[HoSoDongBoDVC], memories: dict[str, Memory], batch: bool, now: datetime
) -> list[CaseEvent]:
    """The new events of every snapshot (each case's memory updated); 422 naming national fields."""
    names = agency_names(ports.registry)
    events: list[CaseEvent] = []
    details = []
    for index, snapshot in enumerate(snapshots):
        memory = memories.setdefault(snapshot.MaHoSo, Memory())
        try:
            events.extend(snapshot_to_events(snapshot, memory, ports.registry, now, ports.door, names))
        except SnapshotInvalid as exc:
            details.extend(_prefixed(exc.details, [index] if batch else []))
    if details:
        raise ApiError(422, "the snapshots are invalid; nothing was published", details=details)
    return events


def _prefixed(details: list[dict[str, Any]], prefix: list[int]) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *d["loc"]], "msg": d["msg"]} for d in details]


async def load_memories(ports: IntakePorts, codes: list[str]) -> dict[str, Memory]:
    try:
        found = await find_by_ids(ports.db.dvcqg_snapshots, codes)
        return {
            code: Memory(set(doc.get("emitted", [])), doc.get("status"), doc.get("financial_pauses", 0))
            for code, doc in found.items()
        }
    except PyMongoError as exc:
        raise ApiError(503, "the store is unavailable", headers={"Retry-After": "5"}) from exc


async def save_memories(ports: IntakePorts, memories: dict[str, Memory]) -> None:
    writes = [
        UpdateOne({"_id": code}, {"$set": memory.as_document(code)}, upsert=True) for code, memory in memories.items()
    ]
    if writes:
        try:
            await ports.db.dvcqg_snapshots.bulk_write(writes, ordered=False)
        except PyMongoError as exc:
            # The events are published (with deterministic ids, so a resend is counted once).
            raise ApiError(503, "the store is unavailable", headers={"Retry-After": "5"}) from exc

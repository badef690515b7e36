"""The cases as one-stop systems send them: our events or DVCQG snapshots, late, out of order, twice.

Half the cases (Case.wire) go as contract events to POST /v1/events, half as HoSoDongBoDVC snapshots
to POST /v1/dvcqg/hoso (a snapshot at each change, cumulative, with the national field names). Then
the stream is disturbed the way real systems disturb it: a share of items is held back and sent a
few batches later (so a case's processing may arrive before its receipt), a share is sent twice.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from simulator.province import Case

CHANNEL_CODE = {"direct": 1, "online": 2, "postal": 3}


@dataclass
class Item:
    at: datetime
    kind: str  # "event" | "snapshot"
    body: dict[str, Any]


def _national(moment: datetime | None) -> str | None:
    return moment.strftime("%Y%m%d%H%M%S") if moment else None


Fact = tuple[str, datetime, dict[str, Any]]  # an event's type, when it happened, its data


def _opening(case: Case) -> Iterator[Fact]:
    if case.channel == "online":
        submitted = case.received_at.replace(minute=0) if case.received_at.minute else case.received_at
        yield "case.submitted", submitted, {"procedure_code": case.procedure.code, "channel": "online"}
    received = {
        "procedure_code": case.procedure.code,
        "field_code": case.procedure.field_code,
        "level": case.level,
        "channel": case.channel,
        "online_mode": case.online_mode,
    }
    yield "case.received", case.received_at, received


def _processing(case: Case) -> Iterator[Fact]:
    for ask, back in case.supplements:
        yield "case.supplement_requested", ask, {"reason": "Thiếu giấy tờ"}
        yield "case.supplement_received", back, {}
    if case.waiting_since is not None:
        yield "case.supplement_requested", case.waiting_since, {"reason": "Thiếu giấy tờ"}
    for start, end in case.pauses:
        yield "case.paused", start, {"reason_code": "verification"}
        yield "case.resumed", end, {"reason_code": "verification"}
    for moment, target in case.transfers:
        yield "case.transferred", moment, {"from_agency": case.agency, "to_agency": target}
    if case.paid_online:
        yield "case.paid_online", case.received_at, {"amount": 50000, "gateway": "dvcqg"}
    if case.components_digitized:
        digitized = {"components_digitized": True, "result_digitized": False, "reused": case.reused}
        yield "case.digitized", case.received_at, digitized
    if case.apology_at:
        apology = {
            "issuer_agency": case.agency,
            "reason": "Hồ sơ cần xác minh thêm",
            "new_due_at": case.due_at.replace(year=case.due_at.year + 1).isoformat(),
            "issued_at": case.apology_at.isoformat(),
        }
        yield "apology.issued", case.apology_at, apology


def _closing(case: Case) -> Iterator[Fact]:
    if case.end_at:
        if case.end_type == "withdrawn":
            yield "case.withdrawn", case.end_at, {"reason": "Công dân rút hồ sơ"}
        else:
            yield "case.processed", case.end_at, {"outcome": "approved"}
    if case.returned_at:
        returned = {"e_result": case.channel == "online", "result_channel": case.result_channel}
        yield "case.returned", case.returned_at, returned
    if case.rating:
        moment, satisfied, complaint = case.rating
        yield "case.rated", moment, {"satisfied": satisfied, "complaint": complaint}


def events_of(case: Case, seed: int) -> list[Item]:
    """The case as contract events, in the order its system sends them, each with a stable id."""
    facts = itertools.chain(_opening(case), _processing(case), _closing(case))
    return [
        Item(
            moment,
            "event",
            {
                "event_id": f"sim{seed}:{case.code}:{n}",
                "type": kind,
                "case_code": case.code,
                "occurred_at": moment.isoformat(),
                "agency_code": case.agency,
                "data": data,
            },
        )
        for n, (kind, moment, data) in enumerate(facts, start=1)
    ]


def snapshots_of(case: Case) -> list[Item]:
    """A cumulative HoSoDongBoDVC at each change of the case."""
    base: dict[str, Any] = {
        "MaHoSo": case.code,
        "MaTTHC": case.procedure.code,
        "MaLinhVuc": case.procedure.field_code,
        "KenhThucHien": CHANNEL_CODE[case.channel],
        "NgayNopHoSo": _national(case.received_at) if case.channel == "online" else None,
        "NgayTiepNhan": _national(case.received_at),
        "NgayHenTra": _national(case.due_at),
        "LaToanTrinh": 1 if case.online_mode == "full" else 0,
        "DuocThanhToanTrucTuyen": 1 if case.paid_online else 0,
        "HoSoCoThanhPhanSoHoa": 1 if case.components_digitized else 0,
        "TaiLieuNop": [{"DuocSoHoa": int(case.components_digitized), "DuocTaiSuDung": int(case.reused)}],
        "DanhSachLePhi": [{"Gia": 50000}] if case.paid_online else [],
        "DanhSachHoSoBoSung": [],
    }
    out = [Item(case.received_at, "snapshot", base | {"TrangThaiHoSo": 4})]
    rounds: list[dict[str, Any]] = []
    for index, (ask, back) in enumerate(case.supplements):
        rounds = [*rounds, {"HoSoBoSungId": index + 1, "NgayBoSung": _national(ask), "NoiDungBoSung": "Thiếu giấy tờ"}]
        out.append(Item(ask, "snapshot", base | {"TrangThaiHoSo": 5, "DanhSachHoSoBoSung": rounds}))
        rounds = [*rounds[:-1], rounds[-1] | {"NgayTiepNhanBoSung": _national(back)}]
        out.append(Item(back, "snapshot", base | {"TrangThaiHoSo": 4, "DanhSachHoSoBoSung": rounds}))
    final = base | {"DanhSachHoSoBoSung": rounds}
    if case.end_at and case.end_type == "withdrawn":
        out.append(
            Item(case.end_at, "snapshot", final | {"TrangThaiHoSo": 7, "NgayKetThucXuLy": _national(case.end_at)})
        )
    elif case.end_at:
        processed = final | {"TrangThaiHoSo": 9, "NgayKetThucXuLy": _national(case.end_at)}
        out.append(Item(case.end_at, "snapshot", processed))
        if case.returned_at:
            out.append(
                Item(
                    case.returned_at,
                    "snapshot",
                    processed | {"TrangThaiHoSo": 10, "NgayTra": _national(case.returned_at)},
                )
            )
    return out


def stream(cases: list[Case], seed: int, late_share: float = 0.08, duplicate_share: float = 0.03) -> list[Item]:
    """Every item in the order a province's systems would send them, then disturbed."""
    rng = random.Random(seed * 7919 + 1)
    items = []
    for case in cases:
        items.extend(events_of(case, seed) if case.wire == "ours" else snapshots_of(case))
    items.sort(key=lambda item: item.at)
    disturbed: list[Item] = []
    held: list[tuple[int, Item]] = []
    for position, item in enumerate(items):
        if rng.random() < late_share:
            held.append((position + rng.randint(50, 400), item))
        else:
            disturbed.append(item)
        if rng.random() < duplicate_share:
            held.append((position + rng.randint(1, 200), item))
        while held and held[0][0] <= position:
            disturbed.append(held.pop(0)[1])
        held.sort(key=lambda pair: pair[0])
    disturbed.extend(item for _, item in held)
    return disturbed


def batches(items: list[Item], size: int = 200) -> list[tuple[str, Any]]:
    """(path, JSON body) requests in stream order: events and snapshots batched separately."""
    out: list[tuple[str, Any]] = []
    current: dict[str, list[dict[str, Any]]] = {"event": [], "snapshot": []}

    def flush(kind: str) -> None:
        bodies, current[kind] = current[kind], []
        out.append(("/v1/events", {"events": bodies}) if kind == "event" else ("/v1/dvcqg/hoso", bodies))

    for item in items:
        current[item.kind].append(item.body)
        if len(current[item.kind]) >= size:
            flush(item.kind)
    for kind, bodies in list(current.items()):
        if bodies:
            flush(kind)
    return out


def size_of(payload: Any) -> int:
    return len(payload["events"]) if isinstance(payload, dict) else len(payload)


async def post(
    items: list[Item], intake_url: str, token: str, batch: int = 200, concurrency: int = 2
) -> dict[str, int]:
    """Send in batches with `concurrency` clients; retries 429 and 503 as a one-stop system would."""
    headers = {"Authorization": f"Bearer {token}"}
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    for entry in batches(items, batch):
        queue.put_nowait(entry)
    sent = {"events": 0, "snapshots": 0, "requests": 0}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            path, payload = queue.get_nowait()
            for attempt in range(30):
                response = await client.post(f"{intake_url}{path}", json=payload, headers=headers)
                if response.status_code == 202:
                    break
                if response.status_code not in (429, 503):
                    raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:500]}")
                await asyncio.sleep(float(response.headers.get("retry-after", 1)) * min(1 + attempt, 5) / 5)
            else:
                raise RuntimeError(f"{path} kept refusing a batch")
            sent["events" if path == "/v1/events" else "snapshots"] += size_of(payload)
            sent["requests"] += 1

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return sent

"""Issue #18's corpus of odd records, interleaved with valid events, through the three services as
real processes: every valid event is applied and counted, every poison record is refused at the
door (a 4xx naming the field) or quarantined (dead letter, mark), /readyz is ready at the end and
no consumer restarted."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from deploy.local import infra
from shared.settings import Settings
from tests.conftest import AUTH, settings_env
from tests.support.events import AGENCY, COMMUNE, case_code, event, received, wire
from tests.support.kafka_tools import eventually, produce_raw, read_topic

pytestmark = pytest.mark.e2e

DOCUMENT_LIMIT = 64 * 1024
VALID_CASES = 24


@pytest.fixture
async def stack(settings: Settings, run_dir: Path) -> AsyncIterator[dict[str, str]]:
    folder = run_dir / f"poison-{settings.topic_prefix}"
    env = settings_env(settings) | {"TTHC_MAX_CASE_DOCUMENT_BYTES": str(DOCUMENT_LIMIT)}
    async with infra.running_services(folder, env, ready_timeout=60) as services:
        yield services.urls


def restarts(metrics_text: str) -> float:
    return sum(float(m) for m in re.findall(r"^tthc_consumer_restarts_total\{[^}]*\} (\S+)$", metrics_text, re.M))


def locs(response: httpx.Response) -> list[list]:
    return [d["loc"] for d in response.json()["error"]["details"]]


async def test_a_poison_corpus_interleaved_with_valid_events_stops_nothing(
    stack: dict[str, str], settings: Settings, kafka
) -> None:
    intake, deadline, metrics = stack["intake"], stack["deadline"], stack["metrics"]
    valid = [case_code() for _ in range(VALID_CASES)]
    quarantined: set[str] = set()
    async with httpx.AsyncClient(timeout=30) as client:

        async def post(body: dict, headers: dict | None = None) -> httpx.Response:
            return await client.post(f"{intake}/v1/events", json=body, headers=headers or AUTH)

        async def valid_batch(codes: list[str]) -> None:
            events = [received(c) for c in codes]
            events += [event("case.processed", c, "2026-03-20T09:00:00+07:00", outcome="approved") for c in codes[::2]]
            answer = await post({"events": events})
            assert answer.status_code == 202, answer.text

        await valid_batch(valid[:8])

        # refused at the door, each naming its field
        beyond = received(case_code(), at="9999-12-31T23:59:59-12:00")
        assert ["occurred_at"] in locs(refused := await post(beyond)) and refused.status_code == 422
        slash = received(case_code().replace("-", "/", 1))
        assert (await post(slash)).status_code == 422 and ["case_code"] in locs(await post(slash))
        district = received(case_code(), level="district")
        assert ["data", "level"] in locs(await post(district))
        oversized = received(case_code(), note="x" * 17_000)
        assert ["data"] in locs(await post(oversized))
        typeless = {k: v for k, v in received(case_code()).items() if k != "type"}
        assert ["type"] in locs(await post(typeless))
        deep = b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        nested = await client.post(
            f"{intake}/v1/events", content=deep, headers={**AUTH, "content-type": "application/json"}
        )
        assert nested.status_code in (400, 422) and "error" in nested.json()
        dvcqg_epoch = {
            "MaHoSo": case_code(),
            "MaTTHC": "1.012790",
            "MaLinhVuc": "G09-DD",
            "KenhThucHien": "1",
            "TrangThaiHoSo": "2",
            "NgayTiepNhan": "00010101000000",
            "DonViXuLy": AGENCY,
        }
        epoch = await client.post(f"{intake}/v1/dvcqg/hoso", json=dvcqg_epoch, headers=AUTH)
        assert epoch.status_code == 422 and any("NgayTiepNhan" in loc for loc in locs(epoch))
        unusable = await client.put(
            f"{intake}/v1/admin/agencies/{COMMUNE}",
            json={
                "name": "UBND xã",
                "level": "commune",
                "parent_code": "000.00.00.H99",
                "calendar": {"office_hours": [["17:00", "07:00"]]},
            },
            headers=AUTH,
        )
        assert unusable.status_code == 422, unusable.text

        # a source scoped to the commune may not touch the department's case, nor move it
        key = (
            await client.post(
                f"{intake}/v1/admin/source-systems", json={"name": "xa", "agency_codes": [COMMUNE]}, headers=AUTH
            )
        ).json()["key"]
        as_commune = {"Authorization": f"Bearer {key}"}
        withdraw = event("case.withdrawn", valid[0], "2026-03-18T09:00:00+07:00")
        withdraw["agency_code"] = COMMUNE
        assert (await post(withdraw, as_commune)).status_code == 403
        moved = received(valid[1])
        moved["agency_code"] = COMMUNE
        assert (await post(moved, as_commune)).status_code in (403, 409)

        await valid_batch(valid[8:16])

        # accepted, but cannot be stored: quarantined downstream
        big = case_code()
        quarantined.add(big)
        assert (await post(received(big))).status_code == 202
        for n in range(6):
            grown = event("case.supplement_requested", big, f"2026-03-{17 + n}T09:00:00+07:00", reason="y" * 1900)
            grown["data"]["note"] = "z" * 14_000
            assert (await post(grown)).status_code == 202
        huge_number = received(case_code(), vendor_counter=2**70)
        answer = await post(huge_number)
        if answer.status_code == 202:  # kept as a vendor's extra field: the store cannot encode it
            quarantined.add(huge_number["case_code"])

        # written straight to the topic, past the door
        beyond_code, garbled_code, typeless_code = case_code(), case_code(), case_code()
        quarantined |= {beyond_code, garbled_code, typeless_code}
        straight = [
            wire(received(beyond_code, at="9999-12-31T23:59:59-12:00"), "raw-beyond"),
            (garbled_code.encode(), b'{"type": "case.received", "case_code": '),
            (typeless_code.encode(), json.dumps({"case_code": typeless_code, "event_id": "t"}).encode()),
        ]
        await produce_raw(kafka.bootstrap, settings.case_events_topic, straight)

        await valid_batch(valid[16:])

        async def all_valid_applied() -> bool:
            for code in valid:
                r = await client.get(f"{deadline}/v1/cases/{code}", headers=AUTH)
                if r.status_code != 200 or r.json().get("agency_code") != AGENCY:
                    return False
            stats = (await client.get(f"{metrics}/v1/stats", headers=AUTH)).json()
            return stats["cases_received"] == VALID_CASES + 1  # the valid ones and the big case's receipt

        await eventually(all_valid_applied, timeout=90, interval=1)
        statuses = [(await client.get(f"{deadline}/v1/cases/{c}", headers=AUTH)).json()["status"] for c in valid]
        assert statuses.count("processed") == len(valid[:8][::2]) + len(valid[8:16][::2]) + len(valid[16:][::2])
        indicators = (await client.get(f"{metrics}/v1/indicators", params={"period": "2026-03"}, headers=AUTH)).json()
        assert indicators["received"]["total"] == VALID_CASES + 1

        async def marked(service: str) -> set[str] | None:
            items = (await client.get(f"{service}/v1/admin/quarantine", headers=AUTH)).json()["items"]
            codes = {i["case_code"] for i in items}
            return codes if codes >= quarantined else None

        for service in (deadline, metrics):
            assert await eventually(lambda s=service: marked(s), timeout=60) == quarantined
        shown = (await client.get(f"{deadline}/v1/cases/{big}", headers=AUTH)).json()
        assert shown["quarantine"]["reason"] and len(shown["timeline"]) < 7
        dead = await read_topic(kafka.bootstrap, settings.dlq_topic)
        assert {d["value"]["case_code"] for d in dead} == quarantined
        assert all(d["value"]["reason"] and d["value"]["exception"] for d in dead)

        for url in (intake, deadline, metrics):
            ready = await client.get(f"{url}/readyz")
            assert ready.status_code == 200, ready.text
        for url in (deadline, metrics):
            assert restarts((await client.get(f"{url}/metrics")).text) == 0

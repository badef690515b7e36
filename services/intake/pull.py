"""Pull mode: for one-stop systems that cannot push, the intake pages through their changed cases.

Each poller (config: `TTHC_PULL_CONFIG`, a JSON list) calls
`GET <url>?<cursor_param>=<cursor>&limit=<page_size>` and expects
`{"items": [...], "next_cursor": "..."}` (our events, or DVCQG snapshots with `"format": "dvcqg"`).
With `"mode": "since"` it sends `since=<last seen>` instead and advances to the largest
`updated_field` of the page. Items go through the same validation and publishing as a push.

No duplicates, no gaps: the cursor is stored only after the broker acknowledged the page's events;
a crash in between fetches the page again and the events' ids (client ids, deterministic derived
ids, or `dvcqg:` ids) make the repeat count once. Timeouts and errors retry with backoff. An item
the intake cannot accept is kept in `pull_rejects` with its error and counted, never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import Counter, Gauge

from services.intake.snapshots import submit_snapshots
from services.intake.submission import IntakePorts, submit_items
from shared.web import ApiError, Principal

log = logging.getLogger(__name__)

PULL_ITEMS = Counter("tthc_intake_pull_items_total", "Items fetched by pull mode", ["source", "outcome"])
PULL_ERRORS = Counter("tthc_intake_pull_errors_total", "Failed pulls (retried)", ["source"])
PULL_LAST_SUCCESS = Gauge(
    "tthc_intake_pull_last_success_timestamp_seconds", "When a poller last completed a page", ["source"]
)


@dataclass
class PullSource:
    name: str
    url: str
    agency_codes: list[str]
    format: str = "events"  # "events" | "dvcqg"
    mode: str = "cursor"  # "cursor" | "since"
    cursor_param: str = "cursor"
    updated_field: str = "updated_at"
    page_size: int = 200
    interval_s: float = 30.0
    timeout_s: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load_all(cls, path: str) -> list[PullSource]:
        if not path or not Path(path).exists():
            return []
        return [cls(**spec) for spec in json.loads(Path(path).read_text(encoding="utf-8"))]


class Poller:
    def __init__(self, context: IntakePorts, source: PullSource) -> None:
        self.context = context
        self.source = source
        # its own source (records' `source` header "pull:<name>", its own event_id space)
        self.principal = Principal("source", f"pull:{source.name}", frozenset(source.agency_codes))
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.pages = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"pull:{self.source.name}")

    async def stop(self) -> None:
        """Graceful: the page in hand is finished (published and its cursor stored) first."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self.source.timeout_s + 30)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        backoff = 1.0
        async with httpx.AsyncClient(timeout=self.source.timeout_s, headers=self.source.headers) as client:
            while not self._stopping.is_set():
                try:
                    more = await self.poll_once(client)
                    backoff = 1.0
                    if not more:
                        await self._pause(self.source.interval_s)
                except Exception as exc:
                    PULL_ERRORS.labels(self.source.name).inc()
                    log.warning("pull failed; retrying", extra={"source": self.source.name, "error": repr(exc)})
                    await self._pause(backoff)
                    backoff = min(backoff * 2, 60)

    async def poll_once(self, client: httpx.AsyncClient) -> bool:
        """Fetch, ingest and commit one page; True when the source said there is more."""
        cursor = await self._load_cursor()
        params: dict[str, Any] = {"limit": self.source.page_size}
        if cursor is not None:
            params["since" if self.source.mode == "since" else self.source.cursor_param] = cursor
        response = await client.get(self.source.url, params=params)
        response.raise_for_status()
        page = response.json()
        items = page.get("items") or []
        await self._ingest(items)
        if self.source.mode == "since":
            stamps = [str(i.get(self.source.updated_field)) for i in items if i.get(self.source.updated_field)]
            next_cursor = max(stamps, default=cursor)
        else:
            next_cursor = page.get("next_cursor", cursor)
        if next_cursor != cursor:
            await self._save_cursor(next_cursor)
        self.pages += 1
        PULL_LAST_SUCCESS.labels(self.source.name).set_to_current_time()
        return bool(items) and next_cursor != cursor and bool(page.get("has_more", len(items) >= self.source.page_size))

    async def _ingest(self, items: list[Any]) -> None:
        """Ingest a page; items refused (403 ownership or scope, 409 moving a case, 422 invalid) are set
        aside in `pull_rejects` (never dropped) and the rest ingested again, until all are placed."""
        submit = submit_snapshots if self.source.format == "dvcqg" else submit_items
        pending = list(items)
        while pending:
            try:
                await submit(self.context, self.principal, pending, True)
                PULL_ITEMS.labels(self.source.name, "accepted").inc(len(pending))
                return
            except ApiError as exc:
                if exc.status not in (403, 409, 422):
                    raise  # the broker or store is down: retry the page later
                error = exc
            # Keep what can be accepted; set aside (never drop) what cannot.
            bad = {
                d["loc"][0]
                for d in error.details
                if d.get("loc") and isinstance(d["loc"][0], int) and 0 <= d["loc"][0] < len(pending)
            }
            if not bad:
                bad = set(range(len(pending)))  # not located: the whole rest is set aside
            await self._reject([pending[i] for i in sorted(bad)], error)
            PULL_ITEMS.labels(self.source.name, "rejected").inc(len(bad))
            pending = [item for index, item in enumerate(pending) if index not in bad]

    async def _reject(self, items: list[Any], error: ApiError) -> None:
        documents = [
            {"source": self.source.name, "item": item, "error": error.message, "details": error.details}
            for item in items
        ]
        await self.context.db.pull_rejects.insert_many(documents)

    async def _load_cursor(self) -> Any:
        document = await self.context.db.pull_cursors.find_one({"_id": self.source.name})
        return document.get("cursor") if document else None

    async def _save_cursor(self, cursor: Any) -> None:
        await self.context.db.pull_cursors.update_one(
            {"_id": self.source.name}, {"$set": {"cursor": cursor}}, upsert=True
        )

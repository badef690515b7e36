"""Who may send events for a case (contract v1.1, "Ownership and idempotency (intake)").

A case belongs to the agency that received it (its first `case.received`: the *owner*) and is
handled by the owner or, after `case.transferred`, by the agency it went to (`data.to_agency`: the
*handler*). A source-system key may send events for a case the intake already knows only when the
owner or the handler is in its scope (its agencies and their subtrees); otherwise 403 naming
`case_code`. A `case.received` naming another agency than the owner would move the case: 409, for
every caller, the admin token included (the owner is a fact, not a permission; a wrongly received
case is corrected by a `case.transferred`, which the admin token may always send).

The intake keeps each case's owner and handler in its own collection `case_owners`, read once per
request and written after the broker acknowledged the request's events (only cases that changed).
Documents are buckets of neighbouring case codes: a case code without its last two characters is
the `_id`, those two characters (with "." written "%2E") key its entry:
`{_id: "000.00.02.H99-261123-00001", v: "<random>", cases: {"23": {owner, handler, provisional,
handler_since}}}`. A batch of consecutive codes then writes a handful of documents instead of one
per case: the store's cost is per document written. `v` (random, new at each write) makes each write
conditional (optimistic): a bucket another request wrote since we read it is read again, this
request's events are applied again to its current entries (the same rules, without refusing), and
written again.

Rules, applied to a request's events in their order (so a received, then a transfer, then an
event by the new handler pass in one batch):
- Unknown case, `case.received`: the event's agency becomes owner and handler.
- Unknown case, any other event (it arrived before its receipt): its agency becomes the
  *provisional* owner and handler (`provisional: true`), so later events of that case need a key
  scoped to it, like a received case's. The `case.received`, when it comes, is admitted from any
  key scoped to its own agency_code (no 403, no 409) and its agency replaces the provisional owner
  (and the handler, unless a transfer set it). Events accepted while the owner was provisional
  stay in the log.
- Known case, `case.received`: same agency as the owner → accepted (a resend); another agency →
  409 (loc `case_code`).
- Known case, any other event: 403 unless the key's scope holds the owner or the handler (the
  admin token may). A `case.transferred` then sets the handler to `data.to_agency`, unless a
  transfer with a later `occurred_at` already set it (late and repeated transfers do not move the
  case back).
- Duplicates (same source, same event_id) are checked like the others and applied again (which
  changes nothing: the rules above are idempotent).

Not a lock: two requests that both see a case as unknown (on two instances, or overlapping on
one) both pass the check; when writing, the second finds the first's entry and applies its own
events to it (a second receipt by another agency then leaves the first owner), but its events are
in the log.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, PyMongoError

from services.intake.case_event import CaseEvent
from services.intake.owner_turns import OwnerTurns
from shared.domain.codes import EventType
from shared.store import Document, find_by_ids
from shared.web import ApiError

log = logging.getLogger(__name__)

OWNERS_COLLECTION = "case_owners"
# Requests of several one-stop systems at once write neighbouring buckets: each lost race is read
# again and written after a short random wait, so that they spread out instead of colliding again.
WRITE_ATTEMPTS = 40
OWNER_WRITE_RACES = Counter(
    "tthc_intake_owner_write_races_total", "Case-owner writes that lost a race with another request and were retried"
)
DUPLICATE_KEY = 11000

OWNERSHIP_REFUSED = Counter("tthc_intake_ownership_refused_total", "Requests refused by case ownership", ["reason"])

_RECEIVED = EventType.RECEIVED.value
_TRANSFERRED = EventType.TRANSFERRED.value


def bucket_of(case_code: str) -> tuple[str, str]:
    """(bucket `_id`, entry key) of a case code; the two make the code again."""
    return case_code[:-2], case_code[-2:].replace(".", "%2E")


def case_code_of(bucket: str, entry: str) -> str:
    return bucket + entry.replace("%2E", ".")


@dataclass(slots=True)
class CaseOwner:
    owner: str
    handler: str
    provisional: bool = False  # no case.received seen yet: owner is the agency of the first event seen
    handler_since: datetime | None = None  # occurred_at of the transfer that set the handler

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> CaseOwner:
        return cls(
            entry["owner"],
            entry.get("handler") or entry["owner"],
            bool(entry.get("provisional", False)),
            entry.get("handler_since"),
        )

    def entry(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "handler": self.handler,
            "provisional": self.provisional,
            "handler_since": self.handler_since,
        }

    def transfer(self, to_agency: str, at: datetime) -> bool:
        """Hand the case to `to_agency` unless a later transfer already did; True when it changed."""
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # as the store keeps it (ms)
        if self.handler_since is not None and at < self.handler_since:
            return False
        if self.handler == to_agency and self.handler_since == at:
            return False
        self.handler, self.handler_since = to_agency, at
        return True


def _apply(cases: dict[str, CaseOwner], event: CaseEvent, scope: set[str] | None) -> str | None:
    """Apply one event to its case's entry; "forbidden" or "conflict" (nothing applied) or None."""
    code, kind, agency = event.case_code, event.type, event.agency_code
    state = cases.get(code)
    if state is None:
        state = cases[code] = CaseOwner(agency, agency, provisional=kind != _RECEIVED)
    elif kind == _RECEIVED:
        if state.provisional:
            state.owner, state.provisional = agency, False
            if state.handler_since is None:
                state.handler = agency
        elif agency != state.owner:
            return "conflict"
        return None
    elif not (scope is None or state.owner in scope or state.handler in scope):
        return "forbidden"
    if kind == _TRANSFERRED:
        to_agency = vars(event.data).get("to_agency")
        if to_agency:
            state.transfer(to_agency, event.occurred_at)
    return None


class Ledger:
    """The owners of one request's cases: read once, checked and updated in order, saved once."""

    def __init__(self, buckets: dict[str, dict[str, Any]], codes: set[str]) -> None:
        self.buckets = buckets  # bucket _id → its document as read
        self.bucket_ids = {bucket_of(code)[0] for code in codes}
        self.written: list[dict[str, Any]] = []  # the bucket documents this ledger wrote
        self.cases: dict[str, CaseOwner] = {}
        for code in codes:
            bucket, key = bucket_of(code)
            entry = buckets.get(bucket, {}).get("cases", {}).get(key)
            if entry is not None:
                self.cases[code] = CaseOwner.from_entry(entry)
        self.events: list[CaseEvent] = []  # those applied (replayed on a bucket written meanwhile)

    @classmethod
    async def load(cls, collection: AsyncCollection[Document], codes: set[str]) -> Ledger:
        return cls(await _read(collection, {bucket_of(code)[0] for code in codes}), codes)

    def admit(
        self,
        events: Sequence[CaseEvent],
        scope: set[str] | None,
        locs: Sequence[list[Any]],
        touches: Sequence[tuple[str, list[Any]]] = (),
    ) -> None:
        """Check and apply `events` in order; 403 (first) or 409 naming every refused case_code.

        `scope`: the agencies the caller may act for (None: the admin token, any). `locs`: each
        event's error location (e.g. `[3, "case_code"]`). `touches`: (case_code, loc) of cases the
        request concerns without an event (a DVCQG snapshot that implies none): checked, not applied.
        """
        refused: dict[str, dict[str, list[list[Any]]]] = {"forbidden": {}, "conflict": {}}  # case_code → locs
        cases = self.cases
        for code, loc in touches:
            state = cases.get(code)
            if state is not None and not (scope is None or state.owner in scope or state.handler in scope):
                refused["forbidden"][code] = [loc]
        for event, loc in zip(events, locs, strict=True):
            outcome = _apply(cases, event, scope)
            if outcome is not None and loc not in refused[outcome].setdefault(event.case_code, []):
                refused[outcome][event.case_code].append(loc)
        forbidden, conflicts = refused["forbidden"], refused["conflict"]
        if forbidden:
            OWNERSHIP_REFUSED.labels("scope").inc()
            raise ApiError(
                403,
                f"this key may not send events for case {', '.join(sorted(forbidden))}: neither the agency "
                "that received it nor the one handling it is in the key's agencies; nothing was published",
                details=_details(forbidden, "is not in this key's agencies (owner or handler)"),
            )
        if conflicts:
            OWNERSHIP_REFUSED.labels("conflict").inc()
            raise ApiError(
                409,
                f"case {', '.join(sorted(conflicts))} was already received by another agency: a case.received "
                "cannot move a case (send case.transferred); nothing was published",
                details=_details(conflicts, "was received by another agency; a case.received cannot move it"),
            )
        self.events.extend(events)

    async def save(
        self, collection: AsyncCollection[Document], turns: OwnerTurns | None = None, read_at: int = 0
    ) -> None:
        """Write the buckets whose entries changed (after the broker acknowledged the events).

        `turns`: this process's other requests (owner_turns.py), whose writes since this ledger's
        read (`read_at`, from `turns.reading`) it builds on, in turn with them.
        """
        if turns is None:
            return await self._save(collection)
        async with turns.turn(self.bucket_ids):
            newer = turns.newer_than(read_at, self.bucket_ids)
            if newer:
                self._rebase(newer)
            try:
                await self._save(collection)
            finally:
                turns.wrote(self.written)

    async def _save(self, collection: AsyncCollection[Document]) -> None:
        try:
            for attempt in range(WRITE_ATTEMPTS):
                stale = await self._write(collection)
                if not stale:
                    return
                OWNER_WRITE_RACES.inc()
                await asyncio.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
                # Written meanwhile by another request: apply this request's events to what is there now.
                self._rebase(await _read(collection, stale))
            raise ApiError(503, "case owners could not be recorded (busy); retry", headers={"Retry-After": "1"})
        except PyMongoError as exc:
            # The events are published; a resend (same ids: duplicates, not republished) saves again.
            raise ApiError(503, "the store is unavailable", headers={"Retry-After": "5"}) from exc

    def _rebase(self, documents: dict[str, dict[str, Any]]) -> None:
        """These buckets as another request wrote them: this request's events applied to them again."""
        self.buckets.update(documents)
        fresh: dict[str, CaseOwner] = {}
        for code in self.cases:
            bucket, key = bucket_of(code)
            entry = self.buckets.get(bucket, {}).get("cases", {}).get(key)
            if entry is not None:
                fresh[code] = CaseOwner.from_entry(entry)
        for event in self.events:
            _apply(fresh, event, None)
        self.cases = fresh

    async def _write(self, collection: AsyncCollection[Document]) -> set[str]:
        """One conditional write per changed bucket; the buckets another request wrote first."""
        changed: dict[str, dict[str, Any]] = {}
        for code, state in self.cases.items():
            bucket, key = bucket_of(code)
            entries = self.buckets.get(bucket, {}).get("cases", {})
            entry = state.entry()
            if entries.get(key) != entry:
                changed.setdefault(bucket, dict(entries))[key] = entry
        if not changed:
            return set()
        writes: list[InsertOne[Document] | ReplaceOne[Document]] = []
        documents: list[dict[str, Any]] = []
        for bucket, entries in changed.items():
            version = self.buckets.get(bucket, {}).get("v")
            # a new random version per write (a counter would give two writers the same next value)
            document: dict[str, Any] = {"_id": bucket, "v": secrets.token_hex(8), "cases": entries}
            documents.append(document)
            writes.append(
                InsertOne(document) if version is None else ReplaceOne({"_id": bucket, "v": version}, document)
            )
        stale: set[str] = set()
        try:
            result = await collection.bulk_write(writes, ordered=False)
            missed = result.matched_count < sum(isinstance(w, ReplaceOne) for w in writes)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            stale |= {documents[e["index"]]["_id"] for e in errors}
            missed = exc.details.get("nMatched", 0) < sum(isinstance(w, ReplaceOne) for w in writes)
        if missed:  # which replace found another version: read them back and compare
            replaced = [d for d, w in zip(documents, writes, strict=True) if isinstance(w, ReplaceOne)]
            now = await _read(collection, {d["_id"] for d in replaced})
            stale |= {d["_id"] for d in replaced if now.get(d["_id"], {}).get("v") != d["v"]}
        for document in documents:
            if document["_id"] not in stale:
                self.buckets[document["_id"]] = document
                self.written.append(document)
        return stale


async def _read(collection: AsyncCollection[Document], buckets: set[str]) -> dict[str, dict[str, Any]]:
    try:
        return await find_by_ids(collection, buckets)
    except PyMongoError as exc:
        raise ApiError(503, "the store is unavailable", headers={"Retry-After": "5"}) from exc


def _details(refused: dict[str, list[list[Any]]], why: str) -> list[dict[str, Any]]:
    return [{"loc": loc, "msg": f"case {code} {why}"} for code, locs in refused.items() for loc in locs]

"""Who may send events for a case (contract v1.1, "Ownership and idempotency (intake)").

A case belongs to the agency that received it (its first `case.received`: the *owner*) and is
handled by the owner or, after `case.transferred`, by the agency it went to (`data.to_agency`: the
*handler*). A source-system key may send events for a case the intake already knows only when the
owner or the handler is in its scope (its agencies and their subtrees); otherwise 403 naming
`case_code`. A `case.received` naming another agency than the owner would move the case: 409, for
every caller, the admin token included (the owner is a fact, not a permission; a wrongly received
case is corrected by a `case.transferred`, which the admin token may always send).

The intake keeps each case's owner and handler in its own collection `case_owners`:
`{_id: case_code, owner, handler, handler_since, provisional}`, read once per request (in chunks of
READ_PER_QUERY ids) and written after the broker acknowledged the request's events (new cases
inserted, changed ones replaced; unchanged ones not written).

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

Not transactional: two requests that both see a case as unknown (on two instances, or overlapping
on one) both pass; the first record written wins (an insert that finds the case already there
updates it only while it is provisional) and the event of the other is in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorCollection
from prometheus_client import Counter
from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from shared.domain.codes import EventType
from shared.events import Envelope
from shared.store import find_by_ids
from shared.web import ApiError

log = logging.getLogger(__name__)

OWNERS_COLLECTION = "case_owners"
# The store checks each document it finds against the whole `$in` list (shared/store.py): absent ids
# (new cases) are cheapest in large queries, present ones in small ones. Measured on the local
# store, 1,000 ids: absent 0.046 s, present 0.30 s in queries of 100 (0.031 s / 2.2 s in one query
# of 1,000; 0.077 s / 0.22 s in queries of 25).
READ_PER_QUERY = 100
DUPLICATE_KEY = 11000

OWNERSHIP_REFUSED = Counter("tthc_intake_ownership_refused_total", "Requests refused by case ownership", ["reason"])

_RECEIVED = EventType.RECEIVED.value
_TRANSFERRED = EventType.TRANSFERRED.value


@dataclass(slots=True)
class CaseOwner:
    owner: str
    handler: str
    provisional: bool = False  # no case.received seen yet: owner is the agency of the first event seen
    handler_since: datetime | None = None  # occurred_at of the transfer that set the handler

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> CaseOwner:
        return cls(
            document["owner"],
            document.get("handler") or document["owner"],
            bool(document.get("provisional", False)),
            document.get("handler_since"),
        )

    def document(self, case_code: str) -> dict[str, Any]:
        return {
            "_id": case_code,
            "owner": self.owner,
            "handler": self.handler,
            "provisional": self.provisional,
            "handler_since": self.handler_since,
        }

    def transfer(self, to_agency: str, at: datetime) -> bool:
        """Hand the case to `to_agency` unless a later transfer already did; True when it changed."""
        if self.handler_since is not None and at < self.handler_since:
            return False
        if self.handler == to_agency and self.handler_since == at:
            return False
        self.handler, self.handler_since = to_agency, at
        return True


class Ledger:
    """The owners of one request's cases: read once, checked and updated in order, saved once."""

    def __init__(self, stored: dict[str, CaseOwner]) -> None:
        self.stored = set(stored)  # the cases the store had when read
        self.cases = stored
        self.changed: set[str] = set()

    @classmethod
    async def load(cls, collection: AsyncIOMotorCollection, codes: set[str]) -> Ledger:
        try:
            found = await find_by_ids(collection, codes, per_query=READ_PER_QUERY)
        except PyMongoError as exc:
            raise ApiError(503, "the store is unavailable", headers={"Retry-After": "5"}) from exc
        return cls({code: CaseOwner.from_document(doc) for code, doc in found.items()})

    def admit(
        self,
        events: Sequence[Envelope],
        scope: set[str] | None,
        locs: Sequence[list[Any]],
        touches: Sequence[tuple[str, list[Any]]] = (),
    ) -> None:
        """Check and apply `events` in order; 403 (first) or 409 naming every refused case_code.

        `scope`: the agencies the caller may act for (None: the admin token, any). `locs`: each
        event's error location (e.g. `[3, "case_code"]`). `touches`: (case_code, loc) of cases the
        request concerns without an event (a DVCQG snapshot that implies none): checked, not applied.
        """
        forbidden: dict[str, list[list[Any]]] = {}  # case_code → the locs of its refused events
        conflicts: dict[str, list[list[Any]]] = {}
        cases = self.cases
        for code, loc in touches:
            state = cases.get(code)
            if state is not None and not _may_act(state, scope):
                forbidden[code] = [loc]
        for event, loc in zip(events, locs, strict=True):
            code, kind, agency = event.case_code, event.type, event.agency_code  # type: ignore[attr-defined]
            state = cases.get(code)
            if state is None:
                state = cases[code] = CaseOwner(agency, agency, provisional=kind != _RECEIVED)
                self.changed.add(code)
            elif kind == _RECEIVED:
                if state.provisional:
                    state.owner, state.provisional = agency, False
                    if state.handler_since is None:
                        state.handler = agency
                    self.changed.add(code)
                elif agency != state.owner and loc not in conflicts.setdefault(code, []):
                    conflicts[code].append(loc)
                continue
            elif not _may_act(state, scope):
                if loc not in forbidden.setdefault(code, []):
                    forbidden[code].append(loc)
                continue
            if kind == _TRANSFERRED:
                to_agency = vars(event.data).get("to_agency")  # type: ignore[attr-defined]
                if to_agency and state.transfer(to_agency, event.occurred_at):
                    self.changed.add(code)
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

    async def save(self, collection: AsyncIOMotorCollection) -> None:
        """Write the changed cases (after the broker acknowledged their events)."""
        if not self.changed:
            return
        writes: list[InsertOne | ReplaceOne] = []
        documents = []
        for code in self.changed:
            document = self.cases[code].document(code)
            documents.append(document)
            writes.append(ReplaceOne({"_id": code}, document) if code in self.stored else InsertOne(document))
        try:
            try:
                await collection.bulk_write(writes, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                # Another request recorded these cases since we read: it wins, unless still provisional.
                again = [
                    UpdateOne(
                        {"_id": documents[e["index"]]["_id"], "provisional": True},
                        {"$set": _fields(documents[e["index"]])},
                    )
                    for e in errors
                ]
                log.warning("case owners recorded concurrently", extra={"cases": len(again)})
                await collection.bulk_write(again, ordered=False)
        except PyMongoError as exc:
            # The events are published; a resend (same ids: duplicates, not republished) saves again.
            raise ApiError(503, "the store is unavailable", headers={"Retry-After": "5"}) from exc
        self.stored |= self.changed
        self.changed = set()


def _details(refused: dict[str, list[list[Any]]], why: str) -> list[dict[str, Any]]:
    return [{"loc": loc, "msg": f"case {code} {why}"} for code, locs in refused.items() for loc in locs]


def _fields(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "_id"}


def _may_act(state: CaseOwner, scope: set[str] | None) -> bool:
    return scope is None or state.owner in scope or state.handler in scope

"""The intake's memory of recently accepted event ids, to answer `"duplicate": true`.

`event_id` is unique per source (contract v1.1): the memory is keyed by (source, event_id), so the
same id from another source is another event (published and applied), and only the same id from
the same source is a duplicate. The source is `source_of(principal)`, also the `source` header of
every record the intake publishes; downstream projections dedupe on the same pair.

Bounded and in-process: it answers "when the intake knows it" (contract) without a store round
trip on the hot path. It is not what guarantees counting once: every projection dedupes on
(source, event_id), so a duplicate the intake forgot (after a restart, or on another instance) is
still applied once downstream.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from shared.web import Principal

ADMIN_SOURCE = "admin"


def source_of(principal: Principal) -> str:
    """A caller's stable source identity (the records' `source` header, the dedupe scope).

    - the admin token: "admin";
    - a source-system key: its credential id in the registry (`sk_…`), which key rotation keeps;
    - a pull-mode poller: "pull:<name>" (its configured name; it has no credential).
    """
    if principal.is_admin:
        return ADMIN_SOURCE
    return principal.credential_id or principal.name


class RecentEventIds:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # (source, event_id), insertion-ordered: the oldest are forgotten first
        self._ids: dict[tuple[str, str], None] = {}

    def known(self, source: str, ids: Iterable[str]) -> set[str]:
        """The ids of `ids` this source sent before."""
        memory = self._ids
        return {i for i in ids if (source, i) in memory}

    def add(self, source: str, ids: Iterable[str]) -> None:
        for event_id in ids:
            self._ids[(source, event_id)] = None
        overflow = len(self._ids) - self.capacity
        if overflow > 0:
            for old in list(islice(self._ids, overflow)):  # the oldest, without copying them all
                del self._ids[old]

    def __len__(self) -> int:
        return len(self._ids)

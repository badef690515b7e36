"""The intake's memory of recently accepted event ids, to answer `"duplicate": true`.

Bounded and in-process: it answers "when the intake knows it" (contract) without a store round
trip on the hot path. It is not what guarantees counting once: every projection dedupes on
event_id, so a duplicate the intake forgot (after a restart, or on another instance) is still
applied once downstream.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice


class RecentEventIds:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: dict[str, None] = {}  # insertion-ordered: the oldest are forgotten first

    def known(self, ids: Iterable[str]) -> set[str]:
        return {i for i in ids if i in self._ids}

    def add(self, ids: Iterable[str]) -> None:
        for event_id in ids:
            self._ids[event_id] = None
        overflow = len(self._ids) - self.capacity
        if overflow > 0:
            for old in list(islice(self._ids, overflow)):  # the oldest, without copying them all
                del self._ids[old]

    def __len__(self) -> int:
        return len(self._ids)

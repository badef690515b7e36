"""The metrics service's case projection: a case's facts, and the aggregate buckets they move,
written in the batch's transaction (the in-memory copy is moved by the same changes once it committed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from services.metrics.aggregates import BucketDeltas, writes_of
from services.metrics.facts import case_facts
from shared.domain.fold import CaseState
from shared.projection import Companion, CompanionWrites, Pairs, ProjectionPort
from shared.store import Document

# (collection, bucket id) → {"keys": the bucket's fields, "inc": {counter path: delta}} (aggregates.changes)
BucketChanges = dict[tuple[str, str], dict[str, Any]]


class MetricsPort(ProjectionPort[BucketChanges]):
    transactional = True

    def __init__(self, aggregates: Mapping[str, AsyncCollection[Document]]) -> None:
        self.aggregates = aggregates

    def document(
        self, state: CaseState, events: list[dict[str, Any]], previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        return case_facts(state, events, previous)

    def companion(self) -> BucketCompanion:
        return BucketCompanion(self.aggregates)


class BucketCompanion(Companion[BucketChanges]):
    """A batch's bucket deltas, each chunk's added while it is written."""

    def __init__(self, aggregates: Mapping[str, AsyncCollection[Document]]) -> None:
        self.aggregates = aggregates
        self.deltas = BucketDeltas()

    def add(self, pairs: Pairs) -> None:
        self.deltas.add(pairs)

    def writes(self) -> CompanionWrites[BucketChanges]:
        """The buckets' $inc upserts for the batch's (before, after) facts, and the changes they make."""
        changed = self.deltas.changes()
        writes = [(self.aggregates[name], ops) for name, ops in writes_of(changed).items()]
        return CompanionWrites(list(writes), changed)

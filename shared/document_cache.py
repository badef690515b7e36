"""The documents a projection wrote, kept in memory while its consumer holds their partitions (ADR 0012).

Every event of a case travels on one partition (keyed by the case code) and only the member that
holds the partition applies it. So while this process holds a partition, the stored document of each
of its cases is the one this process last wrote: the projection keeps those (encoded as BSON,
decoded as the store returns them) and reads from the store only the cases it does not hold: on this
store the read of a batch's known cases is a large part of the time to apply it (ADR 0011).

Valid from an assignment to the next revocation (aiokafka tells the listener before the group
rebalances, so before any other member can write): revoked → emptied, and a batch that began before
does not fill it (`generation`). A batch that fails drops its cases (some of its writes may have
landed). Bounded in bytes, least recently used out first; a document `keep` rejects (the deadline's
ended cases) is not kept. Pure: no I/O, the projection reads the store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from prometheus_client import Counter, Gauge

CACHE_BYTES = Gauge("tthc_projection_cache_bytes", "Bytes of case documents a projection keeps", ["projection"])
CACHE_DOCUMENTS = Gauge("tthc_projection_cache_documents", "Case documents a projection keeps", ["projection"])
CACHE_READS = Counter(
    "tthc_projection_cache_reads_total", "Known-or-new cases a batch looked up, by where", ["projection", "source"]
)

ENTRY_OVERHEAD = 200  # bytes per kept document besides its BSON: the key, the bytes object, the ordered dict's node


Entry = tuple[Any, bytes | None]  # (_id, the document as BSON, or None: not kept)


class Held(Mapping[Any, dict[str, Any]]):
    """Kept documents by `_id`, each decoded when the fold reaches it (a fresh copy each time), as
    the store's would be. (Handed out as `RawBSONDocument`s instead, decoded field by field as read,
    they cost the fold more: pymongo inflates each embedded document in Python.)"""

    def __init__(self, documents: dict[Any, bytes], codec_options: CodecOptions[dict[str, Any]]) -> None:
        self._documents = documents
        self._codec_options = codec_options

    def __getitem__(self, key: Any) -> dict[str, Any]:
        return bson.decode(self._documents[key], self._codec_options)

    def __contains__(self, key: object) -> bool:
        return key in self._documents  # not decoded for that

    def __iter__(self) -> Iterator[Any]:
        return iter(self._documents)

    def __len__(self) -> int:
        return len(self._documents)


class DocumentCache:
    def __init__(
        self,
        name: str,
        max_bytes: int,
        codec_options: CodecOptions[dict[str, Any]],
        keep: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.codec_options = codec_options
        self.keep = keep
        self.usable = False
        self.generation = 0
        self.bytes = 0
        self._documents: OrderedDict[Any, bytes] = OrderedDict()
        # while documents read from the store are put back (`warm`): the cases this process wrote or
        # dropped since they were read, which those documents must not bring back
        self._touched: set[Any] | None = None

    def __len__(self) -> int:
        return len(self._documents)

    # shared.kafka.Ownership
    def revoked(self) -> None:
        """Another member may write these cases from now on: forget them all."""
        self.usable = False
        self.generation += 1
        self._documents.clear()
        self.bytes = 0
        self._touched = None
        self._report()

    async def assigned(self, sole_owner: bool, membership: object = None) -> None:
        self.hold()

    async def before_applying(self) -> None:
        pass

    def hold(self) -> None:
        """This process is from now on the only writer of the cases it will apply (an assignment; a
        rebuild into its own collection)."""
        self.revoked()
        self.usable = self.max_bytes > 0

    def lookup(self, ids: Iterable[Any]) -> tuple[Held, list[Any]]:
        """The kept documents among `ids` (by `_id`) and the ids to read from the store."""
        found: dict[Any, bytes] = {}
        missing: list[Any] = []
        for key in ids:
            data = self._documents.get(key) if self.usable else None
            if data is None:
                missing.append(key)
                continue
            self._documents.move_to_end(key)
            found[key] = data
        CACHE_READS.labels(self.name, "memory").inc(len(found))
        CACHE_READS.labels(self.name, "store").inc(len(missing))
        return Held(found, self.codec_options), missing

    def entry(self, key: Any, document: dict[str, Any], stored: RawBSONDocument) -> Entry:
        """What `store` will keep of a document being written (`stored`: its BSON, `_id` included),
        once the batch's writes landed (None: not kept). The key is given: reading it from `stored`
        would decode the whole document."""
        if not self.usable or (self.keep is not None and not self.keep(document)):
            return key, None
        # encoded by bson.encode: bytes (pymongo types `raw` as bytes or a memoryview)
        return key, cast(bytes, stored.raw)

    def store(self, generation: int, entries: Iterable[Entry]) -> None:
        """Keep these documents (their `entry`), as the store now holds them, unless the partitions
        changed hands since `generation` was read."""
        if not self.usable or generation != self.generation:
            return
        for key, data in entries:
            self._discard(key)
            if self._touched is not None:
                self._touched.add(key)
            if data is not None:
                self._documents[key] = data
                self.bytes += len(data) + ENTRY_OVERHEAD
        while self.bytes > self.max_bytes and self._documents:
            _, data = self._documents.popitem(last=False)
            self.bytes -= len(data) + ENTRY_OVERHEAD
        self._report()

    def discard(self, ids: Iterable[Any]) -> None:
        """Forget these cases (a batch that failed: the store may hold any of its writes or none)."""
        for key in ids:
            self._discard(key)
            if self._touched is not None:
                self._touched.add(key)
        self._report()

    # --- put back at a start (shared/cache_snapshot.py, ADR 0023) ------------------------------

    def warming(self) -> int:
        """Documents read from the store are about to be put back (`warm`): from now on the cases
        this process writes or drops are remembered, not taken from them. Returns the generation
        they are valid for."""
        self._touched = set()
        return self.generation

    def warm(self, generation: int, key: Any, data: bytes) -> bool:
        """Keep a document read from the store since `warming` (its BSON), as the least recently
        used, unless this process wrote or dropped the case since. False when no more can be kept:
        the partitions changed hands, or the bytes are spent (what this process wrote is never
        pushed out for it)."""
        if not self.usable or generation != self.generation or self._touched is None:
            return False
        if key in self._documents or key in self._touched:
            return True
        size = len(data) + ENTRY_OVERHEAD
        if self.bytes + size > self.max_bytes:
            return False
        self._documents[key] = data
        self._documents.move_to_end(key, last=False)
        self.bytes += size
        return True

    def warmed(self, generation: int) -> None:
        """The documents read since `warming` are all put back (or given up)."""
        if generation == self.generation:
            self._touched = None
        self._report()

    def recent(self, max_bytes: int) -> list[tuple[Any, bytes]]:
        """The most recently used documents within `max_bytes` (their BSON), the most recent first
        (the order for `warm`): what a graceful stop saves for the next start."""
        out: list[tuple[Any, bytes]] = []
        spent = 0
        for key in reversed(self._documents):
            data = self._documents[key]
            spent += len(data)
            if spent > max_bytes:
                break
            out.append((key, data))
        return out

    def _discard(self, key: Any) -> None:
        data = self._documents.pop(key, None)
        if data is not None:
            self.bytes -= len(data) + ENTRY_OVERHEAD

    def _report(self) -> None:
        CACHE_BYTES.labels(self.name).set(self.bytes)
        CACHE_DOCUMENTS.labels(self.name).set(len(self._documents))

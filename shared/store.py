"""The MongoDB adapter: one client of PyMongo's asyncio API per process (its I/O on the event
loop, no thread pool; ADR 0022), timestamps read back in Vietnam time.

The store a client talks to has a profile (`TTHC_STORE_PROFILE`): `mongodb`, the production store,
or `standin`, SecantusDB, which the local stack, the tests and the benchmarks run on and whose costs
differ (docs/replicas.md). What only helps the stand-in is chosen here, once, by profile.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.domain.calendar import VN_TZ
from shared.settings import Settings

Document = dict[str, Any]  # a stored document as the driver reads and writes it
StoreProfile = Literal["mongodb", "standin"]


@dataclass(frozen=True)
class StoreTuning:
    """What differs between a real MongoDB and the stand-in."""

    ids_per_query: int  # `_id`s per `$in` query when most are expected present
    absent_ids_per_query: int  # `_id`s per `$in` query when most are expected absent (new cases)
    list_indexes: bool  # the secondary indexes that the store's list and indicator reads need
    # How long pymongo's monitor waits for the store's answer to its heartbeat (its `connectTimeoutMS`)
    # before it declares the store gone, resets the connection pool and cancels every operation in
    # flight. The stand-in answers nothing while one long query holds it: a heartbeat must outwait
    # such a query there, not cancel it (and the scans, loads and writes beside it).
    monitor_timeout_ms: int = 3000
    # The driver's retryable writes (a write retried once after a network error or a failover, the
    # server answering a retry from its record of the first attempt). SecantusDB keeps that record
    # for every write command and walks it, then sorts it once full, at each one: within minutes of a
    # stream every small write command pays for it (bench/results/2026-12-03-issue22-session5.md).
    # Without them a failed write is an error its caller already handles: a consumer applies its batch
    # again (replacements, `$set`s, `$addToSet`s; the buckets' `$inc`s in one transaction with their facts).
    retry_writes: bool = True


TUNINGS: dict[str, StoreTuning] = {
    # mongod looks each `$in` id up in the `_id` index: one query per bulk read
    "mongodb": StoreTuning(ids_per_query=1000, absent_ids_per_query=1000, list_indexes=True),
    # SecantusDB checks each document it finds against the whole `$in` list (n² for n ids), each
    # secondary index costs every write, and its planner takes no `$or` (a list query scans with
    # or without one): ids expected present read a few dozen at a time, no index on the cases
    "standin": StoreTuning(
        ids_per_query=25, absent_ids_per_query=1000, list_indexes=False, monitor_timeout_ms=120_000, retry_writes=False
    ),
}
# by the client's identity: clients of one URI compare equal (pymongo), and a WeakKeyDictionary
# would give them one entry, gone with the first of them
_TUNING_OF: dict[int, StoreTuning] = {}


# every client's options: instants read back aware, in Vietnam time; a store away is an error in
# seconds; the heartbeat's wait and the retryable writes from the profile (mongo_client), the rest
# the driver's defaults
CLIENT_OPTIONS: Final[dict[str, Any]] = {
    "tz_aware": True,
    "tzinfo": VN_TZ,
    "serverSelectionTimeoutMS": 3000,
}


def client_options(profile: StoreProfile) -> dict[str, Any]:
    """The options of a client of a store with this profile (any driver's: pymongo's, Motor's)."""
    tuning = TUNINGS[profile]
    return {**CLIENT_OPTIONS, "connectTimeoutMS": tuning.monitor_timeout_ms, "retryWrites": tuning.retry_writes}


def mongo_client(uri: str, profile: StoreProfile = "mongodb") -> AsyncMongoClient[Document]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, **client_options(profile))
    use_profile(client, profile)
    return client


def use_profile(client: Any, profile: StoreProfile) -> None:
    """The store this client talks to has this profile (what `store_tuning` answers for its collections)."""
    if id(client) not in _TUNING_OF:
        weakref.finalize(client, _TUNING_OF.pop, id(client), None)
    _TUNING_OF[id(client)] = TUNINGS[profile]


def store_tuning(collection: AsyncCollection[Document]) -> StoreTuning:
    """The tuning of the store this collection lives in: its client's profile (mongodb unless told)."""
    return _TUNING_OF.get(id(collection.database.client), TUNINGS["mongodb"])


def service_database(client: AsyncMongoClient[Document], settings: Settings, service: str) -> AsyncDatabase[Document]:
    return client[f"{settings.mongo_db}_{service}"]


async def ping(client: AsyncMongoClient[Document]) -> bool:
    try:
        await asyncio.wait_for(client.admin.command("ping"), 3)
        return True
    except Exception:
        return False


# what a bulk read expects of its ids; the size of its queries follows from the store's profile
PRESENT_IDS: Final = "present"  # mostly present: `ids_per_query`
ABSENT_IDS_PER_QUERY: Final = "absent"  # mostly absent (new cases): `absent_ids_per_query`


async def find_by_ids(
    collection: AsyncCollection[Document],
    ids: Iterable[Any],
    projection: dict[str, Any] | None = None,
    per_query: int | Literal["present", "absent"] = PRESENT_IDS,
) -> dict[Any, Document]:
    """The documents with these `_id`s (those that exist), by `_id`, read in queries of the size
    the store's profile gives for ids mostly present (or mostly absent; or `per_query` ids)."""
    tuning = store_tuning(collection)
    if per_query == PRESENT_IDS:
        size = tuning.ids_per_query
    elif per_query == ABSENT_IDS_PER_QUERY:
        size = tuning.absent_ids_per_query
    else:
        size = int(per_query)
    wanted = list(ids)
    found: dict[Any, Document] = {}
    for start in range(0, len(wanted), size):
        chunk = wanted[start : start + size]
        async for document in collection.find({"_id": {"$in": chunk}}, projection):
            found[document["_id"]] = document
    return found


async def collection_uuid(collection: AsyncCollection[Document]) -> Any:
    """The collection's identity in the store (a collection dropped and created again, as a rebuild
    does, has another); None if it does not exist."""
    found = await collection.database.list_collections(filter={"name": collection.name})
    async for info in found:
        return info.get("info", {}).get("uuid")
    return None


async def take_out(collection: AsyncCollection[Document], key: Any, within_s: float = 60.0) -> Document | None:
    """The document `key`, deleted from the store (None if there was none); tried again while the
    store does not answer, for `within_s` seconds, then its error."""
    delay, give_up = 0.5, asyncio.get_running_loop().time() + within_s
    while True:
        try:
            return await collection.find_one_and_delete({"_id": key})
        except Exception:
            if asyncio.get_running_loop().time() + delay > give_up:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def finished(task: asyncio.Task[Any]) -> None:
    """Until `task` is over, its error raised; nothing if it was cancelled (by a revocation: the
    caller meets the next assignment). Awaiting does not cancel it with the caller."""
    await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        raise cast(BaseException, task.exception())

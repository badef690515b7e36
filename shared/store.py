"""The MongoDB adapter: one motor client per process, timestamps read back in Vietnam time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorCollection, AsyncIOMotorDatabase

from shared.domain.calendar import VN_TZ
from shared.settings import Settings

Document = dict[str, Any]  # a stored document as motor reads and writes it


def mongo_client(uri: str) -> AsyncIOMotorClient[Document]:
    return AsyncIOMotorClient(uri, tz_aware=True, tzinfo=VN_TZ, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)


def service_database(
    client: AsyncIOMotorClient[Document], settings: Settings, service: str
) -> AsyncIOMotorDatabase[Document]:
    return client[f"{settings.mongo_db}_{service}"]


async def ping(client: AsyncIOMotorClient[Document]) -> bool:
    try:
        await asyncio.wait_for(client.admin.command("ping"), 3)
        return True
    except Exception:
        return False


# SecantusDB checks each document it finds against the whole `$in` list, so one query for n ids
# costs n² comparisons: ids expected present are read in queries of a few dozen.
IDS_PER_QUERY = 25
# Ids mostly absent (new cases) cost it a round trip per query and little else: fewer, larger queries.
ABSENT_IDS_PER_QUERY = 1000


async def find_by_ids(
    collection: AsyncIOMotorCollection[Document],
    ids: Iterable[Any],
    projection: dict[str, Any] | None = None,
    per_query: int = IDS_PER_QUERY,
) -> dict[Any, Document]:
    """The documents with these `_id`s (those that exist), by `_id`, read in queries of a few dozen
    (`per_query`: more when most are expected absent)."""
    wanted = list(ids)
    found: dict[Any, Document] = {}
    for start in range(0, len(wanted), per_query):
        chunk = wanted[start : start + per_query]
        async for document in collection.find({"_id": {"$in": chunk}}, projection):
            found[document["_id"]] = document
    return found

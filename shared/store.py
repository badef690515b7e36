"""The MongoDB adapter: one motor client per process, timestamps read back in Vietnam time."""

from __future__ import annotations

import asyncio

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase

from shared.domain.calendar import VN_TZ
from shared.settings import Settings


def mongo_client(uri: str) -> AsyncIOMotorClient:
    return AsyncIOMotorClient(uri, tz_aware=True, tzinfo=VN_TZ, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)


def service_database(client: AsyncIOMotorClient, settings: Settings, service: str) -> AsyncIOMotorDatabase:
    return client[f"{settings.mongo_db}_{service}"]


async def ping(client: AsyncIOMotorClient) -> bool:
    try:
        await asyncio.wait_for(client.admin.command("ping"), 3)
        return True
    except Exception:
        return False

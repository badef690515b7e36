"""What every service's context holds: settings, store, registry (followed live), publisher, auth."""

from __future__ import annotations

from fastapi import Request
from motor.motor_asyncio import AsyncIOMotorDatabase

from shared.domain.registry import Registry
from shared.kafka import Publisher
from shared.registry_sync import RegistryFollower, RegistryState
from shared.settings import Settings
from shared.store import mongo_client, ping, service_database
from shared.web import ApiError, Principal, authenticate


class ServiceContext:
    service = "service"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mongo = mongo_client(settings.mongo_uri)
        self.db: AsyncIOMotorDatabase = service_database(self.mongo, settings, self.service)
        self.registry_state = RegistryState.seeded(settings)
        self.follower = RegistryFollower(settings, self.registry_state)
        self.publisher = Publisher(settings.kafka_bootstrap, client_id=f"tthc-{self.service}")

    @property
    def registry(self) -> Registry:
        return self.registry_state.registry

    async def start(self) -> None:
        await self.publisher.start()
        self.follower.start()
        await self.follower.wait_caught_up(self.settings.registry_catch_up_s)

    async def stop(self) -> None:
        await self.follower.stop()
        await self.publisher.stop()
        self.mongo.close()

    def readiness(self) -> dict:
        return {
            "broker": self.publisher.ready,
            "store": lambda: ping(self.mongo),
            "registry": self._registry_ready,
        }

    async def _registry_ready(self) -> bool:
        return self.follower.caught_up.is_set()

    def principal(self, request: Request) -> Principal:
        return authenticate(request, self.settings.admin_token, self.registry_state.resolve)

    def require_admin(self, request: Request) -> Principal:
        principal = self.principal(request)
        if not principal.is_admin:
            raise ApiError(403, "this needs the admin token")
        return principal

    def visible_agencies(self, principal: Principal) -> set[str] | None:
        """None for admin (everything); else the principal's agencies and every agency below them."""
        if principal.is_admin:
            return None
        allowed: set[str] = set()
        for code in principal.agencies:
            if code in self.registry.agencies:
                allowed |= self.registry.subtree(code)
        return allowed


def context_of(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context

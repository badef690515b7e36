"""What the intake's routes share: settings, the publisher, the store, the registry."""

from __future__ import annotations

from fastapi import Request

from shared.config import load_registry
from shared.domain.registry import Registry
from shared.kafka import Publisher
from shared.settings import Settings
from shared.store import mongo_client, service_database
from shared.web import Principal, authenticate


class IntakeContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.publisher = Publisher(settings.kafka_bootstrap, client_id="tthc-intake")
        self.mongo = mongo_client(settings.mongo_uri)
        self.db = service_database(self.mongo, settings, "intake")
        self.registry: Registry = load_registry(settings.config_dir)

    async def start(self) -> None:
        await self.publisher.start()

    async def stop(self) -> None:
        await self.publisher.stop()
        self.mongo.close()

    def principal(self, request: Request) -> Principal:
        return authenticate(request, self.settings.admin_token)


def get_context(request: Request) -> IntakeContext:
    context: IntakeContext = request.app.state.context
    return context

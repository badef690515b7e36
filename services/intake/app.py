"""The intake service: one-stop systems push case events; we validate, authenticate, publish."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake import admin, events, openapi
from services.intake.context import IntakeContext
from services.intake.readers import SourceKeysOnlySubmit
from shared.limits import RequestTimeLimit
from shared.service import service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    context = IntakeContext(settings)
    app = service_app(
        context,
        "TTHC intake",
        "Case events from one-stop systems (contract v1), validated and published to Kafka.",
        [events.router, admin.router],
    )
    openapi.install(app)
    app.add_middleware(RequestTimeLimit, seconds=settings.request_timeout_s)
    app.add_middleware(SourceKeysOnlySubmit, context=context)  # outermost, as the last added
    return app

"""The intake service: one-stop systems push case events; we validate, authenticate, publish."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.intake import admin, dvcqg, events, openapi
from services.intake.context import IntakeContext
from services.intake.limits import request_time_limit
from shared.logs import configure_logging
from shared.settings import Settings, get_settings
from shared.web import health_router, install_error_handlers


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("intake", settings.log_level)
    context = IntakeContext(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await context.start()
        yield
        await context.stop()

    app = FastAPI(
        title="TTHC intake",
        version="1.0.0",
        description="Case events from one-stop systems (contract v1), validated and published to Kafka.",
        lifespan=lifespan,
    )
    app.state.context = context
    install_error_handlers(app)
    app.include_router(health_router(context.readiness()))
    app.include_router(events.router)
    app.include_router(dvcqg.router)
    app.include_router(admin.router)
    openapi.install(app)
    app.middleware("http")(request_time_limit(settings.request_timeout_s))
    return app

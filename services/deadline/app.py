"""The deadline service: statutory due dates, timers, apologies, overdue lists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.deadline import apologies, cases, compute, lists, webhooks
from services.deadline.context import DeadlineContext
from shared.logs import configure_logging
from shared.settings import Settings, get_settings
from shared.web import health_router, install_error_handlers


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("deadline", settings.log_level)
    context = DeadlineContext(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await context.start()
        yield
        await context.stop()

    app = FastAPI(
        title="TTHC deadline",
        version="1.0.0",
        description="Statutory due dates on the Vietnamese working calendar, case state, overdue lists.",
        lifespan=lifespan,
    )
    app.state.context = context
    install_error_handlers(app)
    app.include_router(health_router(context.readiness()))
    app.include_router(compute.router)
    app.include_router(lists.router)  # before cases: /v1/cases/overdue is not a case code
    app.include_router(apologies.router)
    app.include_router(cases.router)
    app.include_router(webhooks.router)
    return app

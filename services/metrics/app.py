"""The metrics service: on-time rates, online shares and index sub-criteria from case facts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from services.metrics import indicators
from services.metrics.context import MetricsContext, get_context
from shared.logs import configure_logging
from shared.settings import Settings, get_settings
from shared.web import health_router, install_error_handlers


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("metrics", settings.log_level)
    context = MetricsContext(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await context.start()
        yield
        await context.stop()

    app = FastAPI(
        title="TTHC metrics",
        version="1.0.0",
        description="Indicators of TTHC case handling for Biểu 06, the 766 index and the PAR Index.",
        lifespan=lifespan,
    )
    app.state.context = context
    install_error_handlers(app)
    app.include_router(health_router(context.readiness()))

    @app.get("/v1/stats", tags=["metrics"])
    async def stats(request: Request) -> dict[str, Any]:
        """Counts of the metrics projection (ops)."""
        ctx = get_context(request)
        ctx.principal(request)
        facts = ctx.db.facts
        return {
            "cases": await facts.count_documents({}),
            "cases_received": await facts.count_documents({"received_at": {"$ne": None}}),
        }

    app.include_router(indicators.router)
    return app

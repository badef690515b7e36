"""The metrics service: on-time rates, online shares and index sub-criteria from case facts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request

from services.metrics import indicators, series, sync_counts
from services.metrics.context import MetricsContext, get_context
from shared import quarantine
from shared.service import service_app
from shared.settings import Settings, get_settings

stats_router = APIRouter(tags=["metrics"])


@stats_router.get("/v1/stats")
async def stats(request: Request) -> dict[str, Any]:
    """Counts of the metrics projection (ops)."""
    context = get_context(request)
    context.principal(request)
    facts = context.collection
    return {
        "cases": await facts.count_documents({}),
        "cases_received": await facts.count_documents({"received_at": {"$ne": None}}),
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    resolved = settings or get_settings()
    return service_app(
        MetricsContext(resolved),
        "TTHC metrics",
        "Indicators of TTHC case handling for Biểu 06, the 766 index and the PAR Index.",
        [indicators.router, series.router, sync_counts.router, stats_router, quarantine.router],
        generations=lambda generation: MetricsContext(resolved, generation=generation),
    )

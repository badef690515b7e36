"""The deadline service: statutory due dates, timers, apologies, overdue lists."""

from __future__ import annotations

from fastapi import FastAPI

from services.deadline import apologies, cases, compute, lists, webhooks
from services.deadline.context import DeadlineContext
from shared import quarantine
from shared.service import service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    resolved = settings or get_settings()
    return service_app(
        DeadlineContext(resolved),
        "TTHC deadline",
        "Statutory due dates on the Vietnamese working calendar, case state, overdue lists, apologies.",
        # lists before cases: /v1/cases/overdue is not a case code
        [compute.router, lists.router, apologies.router, cases.router, webhooks.router, quarantine.router],
        generations=lambda generation: DeadlineContext(resolved, generation=generation),
    )

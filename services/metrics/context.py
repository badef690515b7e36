"""The metrics service's context: the facts projection and the indicator gauges."""

from __future__ import annotations

from fastapi import Request

from services.metrics.exposition import IndicatorGauges
from services.metrics.facts import case_facts
from shared.service import ProjectionContext
from shared.settings import Settings


class MetricsContext(ProjectionContext):
    service = "metrics"
    group_id = "tthc-metrics"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "facts", case_facts)
        self.gauges = IndicatorGauges(self)

    async def start(self) -> None:
        await self.collection.create_index([("received_at", 1)])
        await super().start()
        self.gauges.start()

    async def stop(self) -> None:
        await self.gauges.stop()
        await super().stop()


def get_context(request: Request) -> MetricsContext:
    context: MetricsContext = request.app.state.context
    return context

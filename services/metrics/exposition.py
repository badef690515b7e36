"""Ratio gauges of the current month by agency and level, for Prometheus alerts and dashboards.

Refreshed periodically from the aggregates; a ratio whose denominator is empty is NaN (not 0, which
would read as a failing agency). Labels: agency and level only.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import Gauge

from services.metrics.aggregates import COARSE_KIND, answer, buckets_queries
from shared.domain.calendar import VN_TZ
from shared.domain.indicators import parse_period
from shared.domain.registry import Registry
from shared.periodic import Periodic

log = logging.getLogger(__name__)

RATIOS = {
    "on_time": Gauge("tthc_on_time_ratio", "766 item 2.1 on-time ratio, current month", ["agency", "level"]),
    "online": Gauge("tthc_online_ratio", "Share of cases received online, current month", ["agency", "level"]),
    "full_online": Gauge(
        "tthc_full_online_ratio", "Toàn trình share of eligible cases, current month", ["agency", "level"]
    ),
    "apology_coverage": Gauge(
        "tthc_apology_coverage_ratio", "Late cases with a timely apology, current month", ["agency", "level"]
    ),
    "digitized": Gauge("tthc_digitized_ratio", "Cases with digitized components, current month", ["agency", "level"]),
}
RECEIVED = Gauge("tthc_cases_received_month", "Cases received in the current month", ["agency", "level"])


class BucketSource(Protocol):
    """What the gauges read: the agencies, and the aggregate buckets of a query."""

    @property
    def registry(self) -> Registry: ...

    async def find_buckets(
        self, collection: str, query: dict[str, Any], fields: dict[str, int], rollup_days: set[str] | None = None
    ) -> list[dict[str, Any]]: ...


class IndicatorGauges:
    def __init__(self, context: BucketSource, interval_s: float = 15.0) -> None:
        self.context = context
        self.interval_s = interval_s
        self.periodic = Periodic("indicator-gauges", interval_s, lambda: self.refresh(datetime.now(VN_TZ)))

    def start(self) -> None:
        self.periodic.start()

    async def stop(self) -> None:
        await self.periodic.stop(15)

    async def refresh(self, now: datetime) -> None:
        """From the coarse month buckets (a few hundred small documents), never the facts."""
        period = parse_period(f"{now:%Y-%m}")
        groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
        for known in self.context.registry.agencies.values():
            groups[(known.code, known.level.value)] = []
        for collection, query in buckets_queries(period, COARSE_KIND, None, {}):
            for bucket in await self.context.find_buckets(collection, query, {"_id": 0, "f": 0}):
                groups[(bucket.get("agency") or "unknown", bucket.get("level") or "unknown")].append(bucket)
        for (agency, level), buckets in groups.items():
            result = answer(buckets, period)
            RECEIVED.labels(agency, level).set(result["received"]["total"])
            for name, gauge in RATIOS.items():
                value = result["rates"][name]
                gauge.labels(agency, level).set(float("nan") if value is None else value)

"""Request limits: a token bucket per credential (429 + Retry-After) and a request time limit."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import Counter

from shared.web import ApiError

RATE_LIMITED = Counter("tthc_intake_rate_limited_total", "Requests refused by the rate limit", ["kind"])


class RateLimiter:
    """Token buckets keyed by credential name; in-process (one intake instance's share)."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # name → (tokens, last refill)

    def check(self, key: str, kind: str, cost: float = 1.0) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.per_second)
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            RATE_LIMITED.labels(kind).inc()
            wait = math.ceil((cost - tokens) / self.per_second)
            raise ApiError(429, "rate limit reached for this credential", headers={"Retry-After": str(max(wait, 1))})
        self._buckets[key] = (tokens - cost, now)


def request_time_limit(
    seconds: float,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            async with asyncio.timeout(seconds):
                return await call_next(request)
        except TimeoutError:
            return ApiError(503, f"the request took longer than {seconds:g}s", headers={"Retry-After": "5"}).response()

    return middleware

"""Request limits every service shares: the body size (413, before anything parses a body), a token
bucket per credential (429 + Retry-After) and a request time limit (503)."""

from __future__ import annotations

import asyncio
import json
import math
import time

from prometheus_client import Counter
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.web import ApiError

RATE_LIMITED = Counter("tthc_intake_rate_limited_total", "Requests refused by the rate limit", ["kind"])
BODY_REFUSED = Counter("tthc_http_body_too_large_total", "Requests refused for a body over the limit")


class RateLimiter:
    """Token buckets keyed by credential name; in-process (one instance's share)."""

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


class RequestTimeLimit:
    """ASGI middleware: 503 (the contract's error shape, Retry-After) for a request whose answer has
    not begun within `seconds`; an answer already begun is left to finish. Plain ASGI, not
    `app.middleware("http")`, which costs every request a task and a pair of memory streams."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        begun = False

        async def send_begun(message: Message) -> None:
            nonlocal begun
            if message["type"] == "http.response.start":
                begun = True
                limit.reschedule(None)
            await send(message)

        try:
            async with asyncio.timeout(self.seconds) as limit:
                await self.app(scope, receive, send_begun)
        except TimeoutError:
            if begun or not limit.expired():
                raise
            response = ApiError(
                503, f"the request took longer than {self.seconds:g}s", headers={"Retry-After": "5"}
            ).response()
            await response(scope, receive, send)


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the streamed body passes the limit. An HTTPException so FastAPI's
    body parsing lets it through (it turns other exceptions into a 400) to the 413 handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is over the limit of {limit} bytes")


class BodySizeLimit:
    """ASGI middleware: 413 (the contract's error shape) for a request whose Content-Length, or whose
    streamed body, is over `max_bytes`; nothing downstream (auth, parsing) sees more than that."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = value.decode("latin-1").strip()
                if not declared.isdigit():
                    await _error(send, 400, "bad_request", "the Content-Length header is not a number")
                    return
                if int(declared) > limit:
                    BODY_REFUSED.inc()
                    await _error(send, 413, "payload_too_large", f"the body is over the limit of {limit} bytes")
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    BODY_REFUSED.inc()
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _error(send, 413, "payload_too_large", str(exc.detail))


async def _error(send: Send, status: int, code: str, message: str) -> None:
    """An answer in the contract's error shape, straight on the ASGI channel."""
    body = json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

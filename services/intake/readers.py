"""Reading is for agency tokens and the admin token: a source-system key may only submit (v1.1).

Every GET (and HEAD) under `/v1/` on the intake (`/v1/me`, `/v1/procedures`, `/v1/admin/...`)
answers 403 to a source-system key, whatever the route checks itself. No or bad credentials are
left to the route (401); `/healthz`, `/readyz`, `/metrics` and the OpenAPI pages stay open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from services.intake.context import IntakeContext
from shared.web import ApiError

READ_METHODS = frozenset({"GET", "HEAD"})


def source_keys_only_submit(
    context: IntakeContext,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method in READ_METHODS and request.url.path.startswith("/v1/"):
            try:
                principal = context.principal(request)
            except ApiError:
                principal = None  # the route answers 401 itself
            if principal is not None and principal.kind == "source":
                return ApiError(
                    403, "a source-system key may only submit events; reading needs an agency token or the admin token"
                ).response()
        return await call_next(request)

    return middleware

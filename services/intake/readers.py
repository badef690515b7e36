"""Reading is for agency tokens and the admin token: a source-system key may only submit (v1.1).

Every GET (and HEAD) under `/v1/` on the intake (`/v1/me`, `/v1/procedures`, `/v1/admin/...`)
answers 403 to a source-system key, whatever the route checks itself. No or bad credentials are
left to the route (401); `/healthz`, `/readyz`, `/metrics` and the OpenAPI pages stay open.
"""

from __future__ import annotations

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.intake.context import IntakeContext
from shared.web import ApiError

READ_METHODS = frozenset({"GET", "HEAD"})


class SourceKeysOnlySubmit:
    """ASGI middleware (plain ASGI: `app.middleware("http")` costs every request a task and a pair of
    memory streams)."""

    def __init__(self, app: ASGIApp, context: IntakeContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in READ_METHODS:
            request = Request(scope, receive)
            if request.url.path.startswith("/v1/"):
                try:
                    principal = self.context.principal(request)
                except ApiError:
                    principal = None  # the route answers 401 itself
                if principal is not None and principal.kind == "source":
                    response = ApiError(
                        403,
                        "a source-system key may only submit events; reading needs an agency token or the admin token",
                    ).response()
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

"""Pages for agency officers and the provincial office, rendered on the server (FastAPI + Jinja2).

One router per feature: `session` (login, logout, the landing page), `lists` (apology due, overdue,
due soon, their downloads), `case` (the search box, the case page, the apology form and letter) and
`indicators` (Biểu 06, 766, PAR with charts). `site` holds what they share; `error_pages` turns every
failure into a Vietnamese page; health, readiness and metrics are shared/web.py's.

Every figure comes from the deadline and metrics APIs, called with the officer's own token, so an
agency sees only its own subtree here exactly as it does through the API. No JavaScript is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.web import case, indicators, lists, session
from services.web.backend import SERVICES, Backend
from services.web.error_pages import install_error_pages
from services.web.site import COOKIE, HERE, Site, page_templates
from shared.limits import BodySizeLimit
from shared.logs import configure_logging
from shared.settings import Settings, get_settings
from shared.web import ReadinessCheck, health_router

__all__ = ["COOKIE", "create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("web", settings.log_level)
    site = Site(settings, Backend(settings), page_templates())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await site.backend.close()

    app = FastAPI(
        title="TTHC web",
        version="1.0.0",
        description="Pages for agencies and the provincial office over the deadline and metrics APIs.",
        lifespan=lifespan,
    )
    app.state.site = site
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)  # before any form is read
    install_error_pages(app)
    # the pages are ready when the services behind them answer
    checks: dict[str, ReadinessCheck] = {name: partial(site.backend.answers, name) for name in SERVICES}
    app.include_router(health_router(checks), include_in_schema=False)
    for feature in (session, lists, case, indicators):
        app.include_router(feature.router)
    return app

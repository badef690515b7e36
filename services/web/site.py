"""What every page shares: the site's state, the session cookie, who is logged in, and rendering a
page inside the site's frame.

The routers (`session`, `lists`, `case`, `indicators`) take these as FastAPI dependencies:
`SiteState` for the state the factory built once, `SessionToken` for the officer's token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import httpx
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from prometheus_client import Counter

from services.web import labels
from services.web.backend import Backend
from shared import labels as shared_labels
from shared.settings import Settings

HERE = Path(__file__).parent
COOKIE = "tthc_phien"
KINDS = {"apology-due": "Hồ sơ cần xin lỗi", "overdue": "Hồ sơ quá hạn", "due-soon": "Hồ sơ sắp đến hạn"}
PAGE_SIZES = (20, 50, 100)

PAGES = Counter("tthc_web_pages_total", "Pages served by the web front", ["page", "outcome"])


def page_templates() -> Jinja2Templates:
    """The templates with the Vietnamese filters and the words every page may show."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(labels.FILTERS)
    templates.env.globals.update(
        STATUS=shared_labels.STATUS,
        CHANNEL=shared_labels.CHANNEL,
        LEVEL=shared_labels.LEVEL,
        FIELD=shared_labels.FIELD,
        RATE=labels.RATE,
        RATE_CHARTS=labels.RATE_CHARTS,
        KINDS=KINDS,
        PAGE_SIZES=PAGE_SIZES,
    )
    return templates


class LoginRequired(Exception):
    """The request has no session cookie: the page sends the officer to the login form."""


@dataclass(frozen=True)
class Officer:
    """Who is logged in, from the deadline API's /v1/me: the agencies in scope (API rows, each with
    its `indent` below the highest one) and the name the frame shows."""

    kind: str
    name: str
    scope: list[str]
    agencies: list[dict[str, Any]]
    display: str

    @classmethod
    def from_me(cls, info: dict[str, Any]) -> Officer:
        agencies = [dict(agency) for agency in info["agencies"]]
        base = min((a["depth"] for a in agencies), default=0)
        for agency in agencies:
            agency["indent"] = agency["depth"] - base
        scope = list(info["scope"])
        in_scope = ", ".join(a["name"] for a in agencies if a["agency_code"] in scope)
        display = "Quản trị hệ thống" if info["kind"] == "admin" else in_scope or info["name"]
        return cls(info["kind"], info["name"], scope, agencies, display)

    @property
    def agency_names(self) -> dict[str, str]:
        return {a["agency_code"]: a["name"] for a in self.agencies}


@dataclass(frozen=True)
class Site:
    """What the factory builds once and every page uses."""

    settings: Settings
    backend: Backend
    templates: Jinja2Templates

    async def officer(self, token: str) -> Officer:
        return Officer.from_me(await self.backend.get("deadline", "/v1/me", token))

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        PAGES.labels(template.removesuffix(".html"), str(status)).inc()
        return self.templates.TemplateResponse(request, template, context, status_code=status)


def site_of(request: Request) -> Site:
    site = request.app.state.site
    if not isinstance(site, Site):
        raise TypeError("the web app was not built by services.web.app.create_app")
    return site


def session_token(request: Request) -> str:
    token = request.cookies.get(COOKIE, "")
    if not token:
        raise LoginRequired
    return token


SiteState = Annotated[Site, Depends(site_of)]
SessionToken = Annotated[str, Depends(session_token)]


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (the pages post nothing else); the last value of each name."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def download(answer: httpx.Response) -> Response:
    """A file from an API, passed on with its type and file name."""
    headers = {k: v for k, v in answer.headers.items() if k.lower() == "content-disposition"}
    return Response(answer.content, media_type=answer.headers.get("content-type"), headers=headers)

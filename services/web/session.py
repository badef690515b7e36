"""Logging in and out: the officer's API token kept in an HTTP-only cookie, and the first page after
login.

The pages never check a token themselves: the login form asks the deadline API who the token is,
and every later page calls the APIs with it, so a revoked token ends the session at its next page.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.web.backend import BackendError
from services.web.site import COOKIE, Officer, SessionToken, SiteState, read_form

EXPIRED = "Phiên làm việc đã hết hạn hoặc mã truy cập đã bị thu hồi. Vui lòng đăng nhập lại."

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, site: SiteState, next: str = "/", expired: int = 0) -> HTMLResponse:
    message = EXPIRED if expired else None
    return site.render(request, "login.html", next=safe_next(next), error=message)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, site: SiteState) -> Response:
    form = await read_form(request)
    token, target = form.get("token", "").strip(), safe_next(form.get("next", "/"))
    if not token:
        return site.render(request, "login.html", 422, next=target, error="Vui lòng nhập mã truy cập.")
    try:
        officer = await site.officer(token)
    except BackendError as exc:
        if exc.status != 401:
            raise
        error = "Mã truy cập không đúng hoặc đã bị thu hồi."
        return site.render(request, "login.html", 401, next=target, error=error)
    response = RedirectResponse(landing(officer) if target == "/" else target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(site.settings.web_session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=site.settings.web_cookie_secure,
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/")
async def home(site: SiteState, token: SessionToken) -> Response:
    return RedirectResponse(landing(await site.officer(token)), status_code=303)


def landing(officer: Officer) -> str:
    """The first page after login: an agency officer's is the cases whose apology is due; the
    provincial office's is the indicators by agency, the province's departments and communes."""
    return "/indicators" if officer.kind == "admin" else "/apology-due"


def safe_next(target: str) -> str:
    """Only a path on this site (no //host, no scheme): an open redirect would phish with our name."""
    return target if target.startswith("/") and not target.startswith("//") else "/"

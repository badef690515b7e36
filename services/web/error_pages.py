"""Every failure answers a page in Vietnamese inside the site's frame, never the APIs' JSON or
English: a missing session goes to the login form, an expired one to the login form saying so, an
API's refusal keeps its 4xx, a service's own failure is a 502, an unknown URL a 404."""

from __future__ import annotations

import logging
from urllib.parse import quote, unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.web.backend import BackendError
from services.web.errors import Explained, explain
from services.web.site import COOKIE, KINDS, LoginRequired, Officer, site_of
from shared.limits import BodyTooLarge

log = logging.getLogger("tthc.web")


async def error_page(request: Request, status: int, words: Explained) -> HTMLResponse:
    """An error inside the site's frame: the menu, the search box and, when the session still
    answers, who is logged in."""
    site = site_of(request)
    who: Officer | None = None
    token = request.cookies.get(COOKIE, "")
    if token and status not in (401, 503):
        try:
            who = await site.officer(token)
        except Exception:  # the error page must render whatever else is wrong
            who = None
    return site.render(
        request, "error.html", status, who=who, menu=True, title=words.title, message=words.message, fields=words.fields
    )


def explain_backend(request: Request, exc: BackendError) -> Explained:
    """The Vietnamese words for a service's refusal, with what the page asked for (a case, its letter)."""
    asked, case_code = "", ""
    if exc.path.startswith("/v1/cases/") and exc.path.rsplit("/", 1)[-1] not in KINDS:
        rest = exc.path.removeprefix("/v1/cases/")
        asked = "letter" if rest.endswith("/apology-letter") else "case"
        case_code = unquote(rest.removesuffix("/apology-letter").removesuffix("/apology"))
    return explain(
        exc.status,
        exc.reason,
        exc.code,
        exc.details,
        asked=asked,
        case_code=case_code,
        agency=request.query_params.get("agency", ""),
        service=exc.service,
    )


async def to_login(request: Request, _: LoginRequired) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


async def backend_refused(request: Request, exc: BackendError) -> Response:
    if exc.status == 401:
        response = RedirectResponse("/login?expired=1", status_code=303)
        response.delete_cookie(COOKIE)
        return response
    # a refusal of the officer's input stays a 4xx here; only a service's own failure is a 502
    status = exc.status if exc.status < 500 or exc.status == 503 else 502
    if status >= 500:
        log.warning("a service failed", extra={"status": exc.status, "path": exc.path, "error": exc.message})
    return await error_page(request, status, explain_backend(request, exc))


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    # unknown URLs (404) and wrong methods (405) answer a page, never {"detail": "Not Found"}
    status = 404 if exc.status_code in (404, 405) else exc.status_code
    return await error_page(request, status, explain(status, asked="page"))


async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    details = [{"loc": list(e.get("loc", ())), "msg": ""} for e in exc.errors()]
    return await error_page(request, 422, explain(422, details=details))


async def too_large(request: Request, _: BodyTooLarge) -> Response:
    return await error_page(request, 413, explain(413))


async def unexpected(request: Request, _: Exception) -> Response:
    log.exception("unhandled error in a page", extra={"path": request.url.path})
    return await error_page(request, 500, explain(500, code="internal"))


def install_error_pages(app: FastAPI) -> None:
    app.exception_handler(LoginRequired)(to_login)
    app.exception_handler(BackendError)(backend_refused)
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(BodyTooLarge)(too_large)
    app.exception_handler(Exception)(unexpected)

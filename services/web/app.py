"""Pages for agency officers and the provincial office, rendered on the server (FastAPI + Jinja2).

Log in with an agency token; an agency officer lands on "Hồ sơ cần xin lỗi" (the cases whose apology
is due soon or late but still possible, issue #19; admin lands on the indicators by agency, #20); overdue and
due-soon lists with filters, paging and CSV/XLSX download;
a case page with its timeline, the remaining working time in words, the apology form and the letter;
indicators for a period (Biểu 06, 766, PAR) with SVG charts: each rate by month against the plan's
target, the agencies ranked worst-first, the 766 points by group (services/web/views.py, charts.py).

Every figure comes from the deadline and metrics APIs, called with the officer's own token, so an
agency sees only its own subtree here exactly as it does through the API. No JavaScript is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.web import labels
from services.web.backend import Backend, BackendError
from services.web.errors import Explained, explain
from services.web.search import code_variants
from services.web.views import indicator_views
from shared.domain.indicators import PERIOD_FORMS, PeriodError, parse_period
from shared.domain.rulesets import rule_set_of
from shared.limits import BodySizeLimit, BodyTooLarge
from shared.logs import configure_logging
from shared.settings import Settings, get_settings

HERE = Path(__file__).parent
COOKIE = "tthc_phien"
KINDS = {"apology-due": "Hồ sơ cần xin lỗi", "overdue": "Hồ sơ quá hạn", "due-soon": "Hồ sơ sắp đến hạn"}
LIST_FILTERS = ("agency", "level", "field", "procedure", "channel", "apology", "sort")
# every case of the apology-due list has no apology: the filter is not offered there
KIND_FILTERS = {kind: LIST_FILTERS for kind in KINDS} | {
    "apology-due": tuple(name for name in LIST_FILTERS if name != "apology")
}
PAGE_SIZES = (20, 50, 100)
EXPIRED = "Phiên làm việc đã hết hạn hoặc mã truy cập đã bị thu hồi. Vui lòng đăng nhập lại."
OPEN_STATUSES = {"pending", "waiting_citizen", "paused"}

PAGES = Counter("tthc_web_pages_total", "Pages served by the web front", ["page", "outcome"])
log = logging.getLogger("tthc.web")

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(labels.FILTERS)
templates.env.globals.update(
    STATUS=labels.STATUS,
    CHANNEL=labels.CHANNEL,
    LEVEL=labels.LEVEL,
    FIELD=labels.FIELD,
    RATE=labels.RATE,
    RATE_CHARTS=labels.RATE_CHARTS,
    KINDS=KINDS,
    PAGE_SIZES=PAGE_SIZES,
)


class LoginRequired(Exception):
    pass


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("web", settings.log_level)
    backend = Backend(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await backend.close()

    app = FastAPI(
        title="TTHC web",
        version="1.0.0",
        description="Pages for agencies and the provincial office over the deadline and metrics APIs.",
        lifespan=lifespan,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)  # before any form is read

    def token_of(request: Request) -> str:
        token = request.cookies.get(COOKIE, "")
        if not token:
            raise LoginRequired
        return token

    async def me(token: str) -> dict[str, Any]:
        info: dict[str, Any] = await backend.get("deadline", "/v1/me", token)
        base = min((a["depth"] for a in info["agencies"]), default=0)
        for agency in info["agencies"]:
            agency["indent"] = agency["depth"] - base
        info["display"] = (
            "Quản trị hệ thống"
            if info["kind"] == "admin"
            else ", ".join(a["name"] for a in info["agencies"] if a["agency_code"] in info["scope"]) or info["name"]
        )
        return info

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        PAGES.labels(template.removesuffix(".html"), str(status)).inc()
        return templates.TemplateResponse(request, template, context, status_code=status)

    async def error_page(request: Request, status: int, words: Explained) -> HTMLResponse:
        """An error in Vietnamese inside the site's frame: the menu, the search box and, when the
        session still answers, who is logged in (issue #20)."""
        who = None
        token = request.cookies.get(COOKIE, "")
        if token and status not in (401, 503):
            try:
                who = await me(token)
            except Exception:  # the error page must render whatever else is wrong
                who = None
        return page(
            request,
            "error.html",
            status,
            who=who,
            menu=True,
            title=words.title,
            message=words.message,
            fields=words.fields,
        )

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(BackendError)
    async def _backend(request: Request, exc: BackendError) -> Response:
        if exc.status == 401:
            response = RedirectResponse("/login?expired=1", status_code=303)
            response.delete_cookie(COOKIE)
            return response
        # a refusal of the officer's input stays a 4xx here; only a service's own failure is a 502
        status = exc.status if exc.status < 500 or exc.status == 503 else 502
        if status >= 500:
            log.warning("a service failed", extra={"status": exc.status, "path": exc.path, "error": exc.message})
        return await error_page(request, status, explain_backend(request, exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # unknown URLs (404) and wrong methods (405) answer a page, never {"detail": "Not Found"}
        status = 404 if exc.status_code in (404, 405) else exc.status_code
        return await error_page(request, status, explain(status, asked="page"))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        details = [{"loc": list(e.get("loc", ())), "msg": ""} for e in exc.errors()]
        return await error_page(request, 422, explain(422, details=details))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> Response:
        return await error_page(request, 413, explain(413))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in a page", extra={"path": request.url.path})
        return await error_page(request, 500, explain(500, code="internal"))

    # ---- ops -----------------------------------------------------------------------------------

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        ok = await backend.ready()
        return Response(
            '{"status": "%s"}' % ("ready" if ok else "unavailable"),
            status_code=200 if ok else 503,
            media_type="application/json",
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # ---- login ---------------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/", expired: int = 0) -> HTMLResponse:
        message = EXPIRED if expired else None
        return page(request, "login.html", next=_safe_next(next), error=message)

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await _form(request)
        token, target = form.get("token", "").strip(), _safe_next(form.get("next", "/"))
        if not token:
            return page(request, "login.html", 422, next=target, error="Vui lòng nhập mã truy cập.")
        try:
            info = await backend.get("deadline", "/v1/me", token)
        except BackendError as exc:
            if exc.status != 401:
                raise
            return page(request, "login.html", 401, next=target, error="Mã truy cập không đúng hoặc đã bị thu hồi.")
        response = RedirectResponse(landing(info) if target == "/" else target, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(settings.web_session_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=settings.web_cookie_secure,
        )
        return response

    @app.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/")
    async def home(request: Request) -> Response:
        token = token_of(request)
        return RedirectResponse(landing(await backend.get("deadline", "/v1/me", token)), status_code=303)

    @app.get("/find")
    async def find(request: Request, code: str = "") -> Response:
        """Case and spaces do not matter: the variants of the code are tried, the stored form first."""
        token = token_of(request)
        variants = code_variants(code)
        if not variants:
            return RedirectResponse("/overdue", status_code=303)
        for variant in variants:
            try:
                await backend.call("deadline", "GET", f"/v1/cases/{quote(variant, safe='')}", token)
            except BackendError as exc:
                if exc.status != 404:
                    raise
                continue
            return RedirectResponse(f"/cases/{quote(variant, safe='')}", status_code=303)
        return RedirectResponse(f"/cases/{quote(variants[0], safe='')}", status_code=303)  # its "not found" page

    # ---- lists ---------------------------------------------------------------------------------

    async def list_page(request: Request, kind: str) -> HTMLResponse:
        token = token_of(request)
        query = request.query_params
        filters = {name: query.get(name, "") for name in KIND_FILTERS[kind]}
        limit = _int(query.get("limit"), 20, PAGE_SIZES)
        cursor = query.get("cursor") or None
        trail = [c for c in query.get("trail", "").split(".") if c]
        who, answer, procedures = await asyncio.gather(
            me(token),
            backend.get("deadline", f"/v1/cases/{kind}", token, **filters, limit=limit, cursor=cursor),
            backend.get("deadline", "/v1/procedures", token),
        )
        kept = {k: v for k, v in filters.items() if v} | {"limit": limit}
        next_url = previous_url = None
        if answer["next_cursor"]:
            next_trail = ".".join([*trail, cursor or "0"])
            next_url = f"/{kind}?" + urlencode(kept | {"cursor": answer["next_cursor"], "trail": next_trail})
        if cursor:
            back = trail[-1] if trail else "0"
            previous = kept | ({"cursor": back} if back != "0" else {}) | {"trail": ".".join(trail[:-1])}
            previous_url = f"/{kind}?" + urlencode({k: v for k, v in previous.items() if v})
        exports = {fmt: f"/export/{kind}.{fmt}?" + urlencode(kept) for fmt in ("csv", "xlsx")}
        return page(
            request,
            "list.html",
            who=who,
            kind=kind,
            title=KINDS[kind],
            items=answer["items"],
            as_of=answer["as_of"],
            filters=filters,
            limit=limit,
            page_number=len(trail) + 1,
            total=answer.get("total"),
            first_row=len(trail) * limit + 1,  # every earlier page was full
            next_url=next_url,
            previous_url=previous_url,
            exports=exports,
            procedures=procedures["procedures"],
            fields=sorted({p["field_code"] for p in procedures["procedures"] if p["field_code"]}),
            counts=answer.get("counts"),
        )

    @app.get("/apology-due", response_class=HTMLResponse)
    async def apology_due(request: Request) -> HTMLResponse:
        return await list_page(request, "apology-due")

    @app.get("/overdue", response_class=HTMLResponse)
    async def overdue(request: Request) -> HTMLResponse:
        return await list_page(request, "overdue")

    @app.get("/due-soon", response_class=HTMLResponse)
    async def due_soon(request: Request) -> HTMLResponse:
        return await list_page(request, "due-soon")

    @app.get("/export/{kind}.{fmt}")
    async def export(request: Request, kind: str, fmt: str) -> Response:
        token = token_of(request)
        if kind not in KINDS or fmt not in ("csv", "xlsx"):
            raise BackendError(404, f"no export {kind}.{fmt}", reason="page_not_found")
        params = {name: request.query_params.get(name) for name in KIND_FILTERS[kind]} | {"format": fmt}
        answer = await backend.call("deadline", "GET", f"/v1/cases/{kind}", token, params)
        return _download(answer)

    # ---- a case --------------------------------------------------------------------------------

    async def case_page(
        request: Request, code: str, status: int = 200, error: str | None = None, form: dict[str, str] | None = None
    ) -> HTMLResponse:
        token = token_of(request)
        who, case = await asyncio.gather(me(token), backend.get("deadline", f"/v1/cases/{quote(code, safe='')}", token))
        names = {a["agency_code"]: a["name"] for a in who["agencies"]}
        can_apologize = case.get("apology") is None and case.get("status") in OPEN_STATUSES and case.get("due_at")
        return page(
            request,
            "case.html",
            status,
            who=who,
            case=case,
            names=names,
            can_apologize=can_apologize,
            rules=rule_set_of(case),
            error=error,
            form=form or {},
            notice="Đã ghi nhận phiếu xin lỗi." if request.query_params.get("issued") else None,
        )

    @app.post("/cases/{code:path}/apology", response_class=HTMLResponse)
    async def apology(request: Request, code: str) -> Response:
        token = token_of(request)
        form = await _form(request)
        reason, new_due = form.get("reason", "").strip(), form.get("new_due_at", "").strip()
        if not reason or not new_due:
            return await case_page(request, code, 422, "Vui lòng nhập lý do và thời hạn hẹn trả mới.", form)
        body = {"reason": reason, "new_due_at": _local_instant(new_due)}
        if form.get("applicant_name", "").strip():
            body["applicant_name"] = form["applicant_name"].strip()
        try:
            await backend.call("deadline", "POST", f"/v1/cases/{quote(code, safe='')}/apology", token, json=body)
        except BackendError as exc:
            if exc.status in (401, 404) or exc.status >= 500:
                raise
            case = await backend.get("deadline", f"/v1/cases/{quote(code, safe='')}", token)
            words = explain(
                exc.status, exc.reason, exc.code, exc.details, case_code=code, due_at=labels.when(case.get("due_at"))
            )
            message = " ".join([words.message, *(f"{line}." for line in words.fields)])
            return await case_page(request, code, exc.status, message, form)
        log.info("apology issued through the web", extra={"case_code": code})
        # The apology is on the log; give the projection a moment so the page shows it (read your write).
        for _ in range(25):
            case = await backend.get("deadline", f"/v1/cases/{quote(code, safe='')}", token)
            if case.get("apology") is not None:
                break
            await asyncio.sleep(0.2)
        return RedirectResponse(f"/cases/{quote(code, safe='')}?issued=1", status_code=303)

    @app.get("/cases/{code:path}/letter.{fmt}")
    async def letter(request: Request, code: str, fmt: str) -> Response:
        token = token_of(request)
        if fmt not in ("docx", "pdf"):
            raise BackendError(404, f"no letter format {fmt}", reason="page_not_found")
        answer = await backend.call(
            "deadline", "GET", f"/v1/cases/{quote(code, safe='')}/apology-letter", token, {"format": fmt}
        )
        return _download(answer)

    @app.get("/cases/{code:path}", response_class=HTMLResponse)  # after the routes below a case
    async def case(request: Request, code: str) -> HTMLResponse:
        return await case_page(request, code)

    # ---- indicators ----------------------------------------------------------------------------

    @app.get("/indicators", response_class=HTMLResponse)
    async def indicators(request: Request, period: str = "", agency: str = "", rank: str = "on_time") -> HTMLResponse:
        token = token_of(request)
        period = period.strip() or f"{date.today().year}-Q{(date.today().month - 1) // 3 + 1}"
        rank = rank if rank in labels.RATE_CHARTS else "on_time"
        try:
            span = parse_period(period)
        except PeriodError:  # its message is for developers; the officer gets the forms the field takes
            who = await me(token)
            message = (
                f"Kỳ báo cáo chưa hợp lệ: “{period}” không phải một kỳ báo cáo. "
                f"Cách ghi được chấp nhận: {PERIOD_FORMS}."
            )
            return page(request, "indicators.html", 422, who=who, period=period, agency=agency, error=message)
        year = span.last.year
        who, answer, index766, par, by_month, by_agency = await asyncio.gather(
            me(token),
            backend.get("metrics", "/v1/indicators", token, period=period, agency=agency),
            backend.get("metrics", "/v1/index/766", token, period=period, agency=agency),
            backend.get("metrics", "/v1/index/par", token, year=year, agency=agency),
            backend.get("metrics", "/v1/indicators/by-month", token, period=period, agency=agency),
            backend.get("metrics", "/v1/indicators/by-agency", token, period=period, agency=agency),
        )
        return page(
            request,
            "indicators.html",
            **indicator_views(who, span, answer, index766, par, by_month, by_agency, settings.config_dir, rank),
            period=period,
            agency=agency,
            span=span,
            answer=answer,
            index766=index766,
            error=None,
        )

    return app


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


def landing(me: dict[str, Any]) -> str:
    """The first page after login: an agency officer's is the cases whose apology is due (#19); the
    provincial office's is the indicators by agency, the province's departments and communes (#20)."""
    return "/indicators" if me.get("kind") == "admin" else "/apology-due"


def _download(answer: Any) -> Response:
    headers = {k: v for k, v in answer.headers.items() if k.lower() == "content-disposition"}
    return Response(answer.content, media_type=answer.headers.get("content-type"), headers=headers)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form (the pages post nothing else); the last value of each name."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _safe_next(target: str) -> str:
    """Only a path on this site (no //host, no scheme): an open redirect would phish with our name."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _int(text: str | None, default: int, allowed: tuple[int, ...]) -> int:
    try:
        value = int(text or default)
    except ValueError:
        return default
    return value if value in allowed else default


def _local_instant(value: str) -> str:
    """A datetime-local field ("2026-03-20T10:00") is Vietnam time; the API wants the offset."""
    if len(value) == 16:
        value += ":00"
    return value if value.endswith("+07:00") or value.endswith("Z") else f"{value}+07:00"

"""A case: the search box, the case page (timeline, remaining working time in words), the apology
form and the apology letter to download."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.web import labels
from services.web.backend import BackendError
from services.web.errors import explain
from services.web.search import code_variants
from services.web.site import SessionToken, Site, SiteState, download, read_form
from shared.domain.rulesets import rule_set_of

OPEN_STATUSES = {"pending", "waiting_citizen", "paused"}
LETTER_FORMATS = ("docx", "pdf")
# the apology is on the log at once; the case page shows it once the projection has applied it
READ_YOUR_WRITE_TRIES = 25
READ_YOUR_WRITE_PAUSE_S = 0.2

log = logging.getLogger("tthc.web")
router = APIRouter()


def case_path(code: str) -> str:
    return f"/v1/cases/{quote(code, safe='')}"


@router.get("/find")
async def find(site: SiteState, token: SessionToken, code: str = "") -> Response:
    """Case and spaces do not matter: the variants of the code are tried, the stored form first."""
    variants = code_variants(code)
    if not variants:
        return RedirectResponse("/overdue", status_code=303)
    for variant in variants:
        try:
            await site.backend.call("deadline", "GET", case_path(variant), token)
        except BackendError as exc:
            if exc.status != 404:
                raise
            continue
        return RedirectResponse(f"/cases/{quote(variant, safe='')}", status_code=303)
    return RedirectResponse(f"/cases/{quote(variants[0], safe='')}", status_code=303)  # its "not found" page


async def case_page(
    request: Request,
    site: Site,
    token: str,
    code: str,
    status: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    who, case = await asyncio.gather(site.officer(token), site.backend.get("deadline", case_path(code), token))
    can_apologize = case.get("apology") is None and case.get("status") in OPEN_STATUSES and case.get("due_at")
    return site.render(
        request,
        "case.html",
        status,
        who=who,
        case=case,
        names=who.agency_names,
        can_apologize=can_apologize,
        rules=rule_set_of(case),
        error=error,
        form=form or {},
        notice="Đã ghi nhận phiếu xin lỗi." if request.query_params.get("issued") else None,
    )


@router.post("/cases/{code:path}/apology", response_class=HTMLResponse)
async def apology(request: Request, site: SiteState, token: SessionToken, code: str) -> Response:
    form = await read_form(request)
    reason, new_due = form.get("reason", "").strip(), form.get("new_due_at", "").strip()
    if not reason or not new_due:
        return await case_page(request, site, token, code, 422, "Vui lòng nhập lý do và thời hạn hẹn trả mới.", form)
    body = {"reason": reason, "new_due_at": local_instant(new_due)}
    if form.get("applicant_name", "").strip():
        body["applicant_name"] = form["applicant_name"].strip()
    try:
        await site.backend.call("deadline", "POST", f"{case_path(code)}/apology", token, json=body)
    except BackendError as exc:
        if exc.status in (401, 404) or exc.status >= 500:
            raise
        message = await refusal_words(site, token, code, exc)
        return await case_page(request, site, token, code, exc.status, message, form)
    log.info("apology issued through the web", extra={"case_code": code})
    for _ in range(READ_YOUR_WRITE_TRIES):
        case = await site.backend.get("deadline", case_path(code), token)
        if case.get("apology") is not None:
            break
        await asyncio.sleep(READ_YOUR_WRITE_PAUSE_S)
    return RedirectResponse(f"/cases/{quote(code, safe='')}?issued=1", status_code=303)


async def refusal_words(site: Site, token: str, code: str, exc: BackendError) -> str:
    """Why the deadline API refused the apology, in Vietnamese, naming the case's due date."""
    case = await site.backend.get("deadline", case_path(code), token)
    words = explain(
        exc.status, exc.reason, exc.code, exc.details, case_code=code, due_at=labels.when(case.get("due_at"))
    )
    return " ".join([words.message, *(f"{line}." for line in words.fields)])


@router.get("/cases/{code:path}/letter.{fmt}")
async def letter(site: SiteState, token: SessionToken, code: str, fmt: str) -> Response:
    if fmt not in LETTER_FORMATS:
        raise BackendError(404, f"no letter format {fmt}", reason="page_not_found")
    answer = await site.backend.call("deadline", "GET", f"{case_path(code)}/apology-letter", token, {"format": fmt})
    return download(answer)


@router.get("/cases/{code:path}", response_class=HTMLResponse)  # after the routes below a case
async def case(request: Request, site: SiteState, token: SessionToken, code: str) -> HTMLResponse:
    return await case_page(request, site, token, code)


def local_instant(value: str) -> str:
    """A datetime-local field ("2026-03-20T10:00") is Vietnam time; the API wants the offset."""
    if len(value) == 16:
        value += ":00"
    return value if value.endswith("+07:00") or value.endswith("Z") else f"{value}+07:00"

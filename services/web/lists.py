"""The case lists: apology due, overdue and due soon, with filters, paging and CSV/XLSX download.

Paging follows the deadline API's cursors. The page keeps the cursors it came through in `trail`
(dot-separated, "0" for the first page) so "previous" needs no state on the server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import QueryParams

from services.web.backend import BackendError
from services.web.site import KINDS, PAGE_SIZES, SessionToken, Site, SiteState, download

LIST_FILTERS = ("agency", "level", "field", "procedure", "channel", "apology", "sort")
# every case of the apology-due list has no apology: the filter is not offered there
KIND_FILTERS = {kind: LIST_FILTERS for kind in KINDS} | {
    "apology-due": tuple(name for name in LIST_FILTERS if name != "apology")
}
EXPORT_FORMATS = ("csv", "xlsx")

router = APIRouter()


@dataclass(frozen=True)
class ListPosition:
    """Where a list page sits: its filters, its size, its cursor and the cursors before it."""

    kind: str
    filters: dict[str, str]
    limit: int
    cursor: str | None
    trail: list[str]

    @classmethod
    def of(cls, kind: str, query: QueryParams) -> ListPosition:
        return cls(
            kind=kind,
            filters={name: query.get(name, "") for name in KIND_FILTERS[kind]},
            limit=allowed_int(query.get("limit"), 20, PAGE_SIZES),
            cursor=query.get("cursor") or None,
            trail=[c for c in query.get("trail", "").split(".") if c],
        )

    @property
    def kept(self) -> dict[str, str | int]:
        """The query every link from this page carries: the filters set and the page size."""
        return {k: v for k, v in self.filters.items() if v} | {"limit": self.limit}

    def next_url(self, next_cursor: str | None) -> str | None:
        if not next_cursor:
            return None
        next_trail = ".".join([*self.trail, self.cursor or "0"])
        return f"/{self.kind}?" + urlencode(self.kept | {"cursor": next_cursor, "trail": next_trail})

    def previous_url(self) -> str | None:
        if not self.cursor:
            return None
        back = self.trail[-1] if self.trail else "0"
        previous = self.kept | ({"cursor": back} if back != "0" else {}) | {"trail": ".".join(self.trail[:-1])}
        return f"/{self.kind}?" + urlencode({k: v for k, v in previous.items() if v})

    def exports(self) -> dict[str, str]:
        return {fmt: f"/export/{self.kind}.{fmt}?" + urlencode(self.kept) for fmt in EXPORT_FORMATS}


async def list_page(request: Request, site: Site, token: str, kind: str) -> HTMLResponse:
    at = ListPosition.of(kind, request.query_params)
    who, answer, procedures = await asyncio.gather(
        site.officer(token),
        site.backend.get("deadline", f"/v1/cases/{kind}", token, **at.filters, limit=at.limit, cursor=at.cursor),
        site.backend.get("deadline", "/v1/procedures", token),
    )
    return site.render(
        request,
        "list.html",
        who=who,
        kind=kind,
        title=KINDS[kind],
        items=answer["items"],
        as_of=answer["as_of"],
        filters=at.filters,
        limit=at.limit,
        page_number=len(at.trail) + 1,
        total=answer.get("total"),
        first_row=len(at.trail) * at.limit + 1,  # every earlier page was full
        next_url=at.next_url(answer["next_cursor"]),
        previous_url=at.previous_url(),
        exports=at.exports(),
        procedures=procedures["procedures"],
        fields=sorted({p["field_code"] for p in procedures["procedures"] if p["field_code"]}),
        counts=answer.get("counts"),
    )


@router.get("/apology-due", response_class=HTMLResponse)
async def apology_due(request: Request, site: SiteState, token: SessionToken) -> HTMLResponse:
    return await list_page(request, site, token, "apology-due")


@router.get("/overdue", response_class=HTMLResponse)
async def overdue(request: Request, site: SiteState, token: SessionToken) -> HTMLResponse:
    return await list_page(request, site, token, "overdue")


@router.get("/due-soon", response_class=HTMLResponse)
async def due_soon(request: Request, site: SiteState, token: SessionToken) -> HTMLResponse:
    return await list_page(request, site, token, "due-soon")


@router.get("/export/{kind}.{fmt}")
async def export(request: Request, site: SiteState, token: SessionToken, kind: str, fmt: str) -> Response:
    if kind not in KINDS or fmt not in EXPORT_FORMATS:
        raise BackendError(404, f"no export {kind}.{fmt}", reason="page_not_found")
    params = {name: request.query_params.get(name) for name in KIND_FILTERS[kind]} | {"format": fmt}
    answer = await site.backend.call("deadline", "GET", f"/v1/cases/{kind}", token, params)
    return download(answer)


def allowed_int(text: str | None, default: int, allowed: tuple[int, ...]) -> int:
    """A number from the query if it is one of `allowed`, else the default."""
    try:
        value = int(text or default)
    except ValueError:
        return default
    return value if value in allowed else default

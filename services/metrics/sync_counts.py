"""National sync counts (admin token): what BCQG and DVCQG report an agency received in a month.

766 item 1.4 divides the cases this product holds by the larger of the two (S-766DOC 1.4); the
figures come from outside, so ops enter them here. One document per agency and month in the
metrics store; `GET /v1/index/766` reads those of the months it scores.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from pymongo.asynchronous.collection import AsyncCollection

from services.metrics.context import MetricsContext, get_context
from shared.domain.calendar import VN_TZ
from shared.domain.sync_ratio import MONTH, SyncCount, month_in_range
from shared.store import Document
from shared.web import ApiError, Principal, error_responses

EARLIEST_MONTH = date(2015, 1, 1)
COLLECTION = "sync_counts"


async def admin_only(request: Request) -> None:
    """Before the path and body are read: only the admin token may see or change the counts."""
    get_context(request).require_admin(request)


router = APIRouter(
    prefix="/v1/admin/sync-counts",
    tags=["admin"],
    dependencies=[Depends(admin_only)],
    responses=error_responses(400, 401, 403, 404, 422),
)

Count = Annotated[StrictInt, Field(ge=0, le=1_000_000_000)]
MonthPath = Annotated[str, Path(pattern=MONTH.pattern, description="YYYY-MM", examples=["2026-03"])]


class SyncCountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bcqg: Count | None = Field(None, description="cases received in the month per the national reporting system")
    dvcqg: Count | None = Field(None, description="cases received in the month synced to the national portal")
    note: str | None = Field(None, max_length=500, description="where the figures come from")

    @field_validator("note")
    @classmethod
    def _storable(cls, note: str | None) -> str | None:
        """JSON may carry a lone surrogate (\\ud800) that no store can hold: 422, not a 500."""
        if note is not None:
            try:
                note.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("note is not valid Unicode text") from None
        return note


def collection(context: MetricsContext) -> AsyncCollection[Document]:
    return context.db[COLLECTION]


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    count = SyncCount(doc["agency_code"], doc["month"], doc.get("bcqg"), doc.get("dvcqg"))
    return {
        "agency_code": count.agency_code,
        "month": count.month,
        "bcqg": count.bcqg,
        "dvcqg": count.dvcqg,
        "expected": count.expected,
        "note": doc.get("note"),
        "updated_at": doc.get("updated_at"),
    }


def _known_agency(context: MetricsContext, agency_code: str) -> None:
    if agency_code not in context.registry.agencies:
        message = f"unknown agency_code {agency_code!r}"
        raise ApiError(422, message, details=[{"loc": ["path", "agency_code"], "msg": message}])


def _month(month: str) -> None:
    latest = datetime.now(VN_TZ).date()
    if not month_in_range(month, EARLIEST_MONTH, latest):
        message = f"month {month!r} must lie between {EARLIEST_MONTH:%Y-%m} and {latest:%Y-%m}"
        raise ApiError(422, message, details=[{"loc": ["path", "month"], "msg": message}])


@router.put("/{agency_code}/{month}", summary="Set an agency's national sync counts for a month (766 item 1.4)")
async def put_sync_count(agency_code: str, month: MonthPath, body: SyncCountIn, request: Request) -> dict[str, Any]:
    context = get_context(request)
    _known_agency(context, agency_code)
    _month(month)
    if body.bcqg is None and body.dvcqg is None:
        message = "give bcqg or dvcqg (or both)"
        raise ApiError(
            422,
            message,
            details=[{"loc": ["body", "bcqg"], "msg": message}, {"loc": ["body", "dvcqg"], "msg": message}],
        )
    doc = {
        "_id": f"{agency_code}|{month}",
        "agency_code": agency_code,
        "month": month,
        "bcqg": body.bcqg,
        "dvcqg": body.dvcqg,
        "note": body.note,
        "updated_at": datetime.now(UTC).isoformat(),
    }
    await collection(context).replace_one({"_id": doc["_id"]}, doc, upsert=True)
    return _public(doc)


@router.get("", summary="The national sync counts entered, by agency and month")
async def list_sync_counts(
    request: Request,
    agency: str | None = Query(None, description="only this agency's counts"),
    year: int | None = Query(None, ge=2015, le=2100),
) -> dict[str, Any]:
    context = get_context(request)
    query: dict[str, Any] = {}
    if agency:
        query["agency_code"] = agency
    if year is not None:
        query["month"] = {"$regex": f"^{year}-"}
    docs = [doc async for doc in collection(context).find(query).sort([("agency_code", 1), ("month", 1)])]
    return {"sync_counts": [_public(doc) for doc in docs]}


@router.delete("/{agency_code}/{month}", status_code=204, summary="Remove a month's counts (1.4 is then null)")
async def delete_sync_count(agency_code: str, month: MonthPath, request: Request) -> Response:
    context = get_context(request)
    result = await collection(context).delete_one({"_id": f"{agency_code}|{month}"})
    if result.deleted_count == 0:
        raise ApiError(404, f"no sync count for {agency_code} {month}")
    return Response(status_code=204)


def selection_roots(context: MetricsContext, principal: Principal, agency: str | None) -> list[str]:
    """The agencies whose counts cover a selection: `agency`, else the tops of the caller's scope."""
    if agency:
        return [agency]
    scope = context.visible_agencies(principal)
    return sorted(
        a.code
        for a in context.registry.agencies.values()
        if (scope is None or a.code in scope)
        and (a.parent_code is None or (scope is not None and a.parent_code not in scope))
    )


async def counts_for(
    context: MetricsContext, agencies: list[str], months: list[str] | None
) -> dict[tuple[str, str], SyncCount]:
    if not agencies or not months:
        return {}
    query = {"agency_code": {"$in": agencies}, "month": {"$in": months}}
    return {
        (doc["agency_code"], doc["month"]): SyncCount(
            doc["agency_code"], doc["month"], doc.get("bcqg"), doc.get("dvcqg")
        )
        async for doc in collection(context).find(query)
    }

"""GET /v1/cases/overdue, /v1/cases/due-soon and /v1/cases/apology-due: what an agency must act on,
as of an instant.

The apology-due list (contract v1.1) holds the open cases with no apology whose apology
deadline lies within TTHC_APOLOGY_DUE_WORKING_HOURS after `as_of`, or has passed while their due
instant has not (shared/domain/apology_due.py); its JSON answer adds `counts` of the whole list.
Every list's JSON answer adds `total`: how many cases all its pages hold.

Filters: agency (with every agency below it), level, field, procedure, channel, apology
(issued | missing), as_of. Keyset pagination on (sort key, case code) with an opaque cursor, so a
page costs the same at the end of the list as at its start. format=csv|xlsx exports every
matching row (up to EXPORT_LIMIT) with Vietnamese headers.

The open cases are answered from the in-memory index (open_cases.py) whenever it can answer
exactly; otherwise (several replicas, an `as_of` before a case it dropped ended) from the store,
with the same filters, order and cursors. While this process, the only writer, still loads its
index (a restart), a list waits for it a little, then answers 503 with Retry-After rather than
send the store a scan of every case that competes with the load it waits for (ADR 0008).
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from prometheus_client import Counter
from pydantic import AwareDatetime

from services.deadline.apology_due_query import apology_due_match
from services.deadline.cases import remaining
from services.deadline.context import DeadlineContext, get_context
from services.deadline.open_cases import ListQuery
from shared.domain.apology_due import DUE_AFTER_APOLOGY_AT_MOST, apology_late
from shared.domain.calendar import VN_TZ, CalendarError
from shared.domain.deadlines import remaining_in_words
from shared.exports import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, csv_bytes, xlsx_bytes
from shared.labels import APOLOGY_FILTER, CHANNEL, FIELD, LEVEL, SORT, STATUS, label
from shared.web import ApiError, content_disposition, error_responses

router = APIRouter(tags=["lists"], responses=error_responses(401, 403, 422, 503))
LOADING_RETRY_AFTER_S = 5  # a list asked while the index loads: when to ask again

EXPORT_LIMIT = 100_000
LIST_READS = Counter(
    "tthc_deadline_list_reads_total",
    "Overdue, due-soon and apology-due list reads, by source (unavailable: 503 while the index loads)",
    ["source"],
)
for _source in ("memory", "store", "unavailable"):
    LIST_READS.labels(_source)
SORTS = {
    "due_at": ("due_at", 1),
    "-due_at": ("due_at", -1),
    "received_at": ("received_at", 1),
    "-received_at": ("received_at", -1),
}
# every code beside its Vietnamese words: the code for machines and filters, the words
# for people (shared/labels.py, the same words as the pages)
COLUMNS = [
    ("case_code", "Mã hồ sơ"),
    ("agency_code", "Mã cơ quan"),
    ("agency_name", "Cơ quan"),
    ("procedure_code", "Mã TTHC"),
    ("procedure_name", "Tên thủ tục"),
    ("field_code", "Mã lĩnh vực"),
    ("field_name", "Lĩnh vực"),
    ("level", "Mã cấp"),
    ("level_name", "Cấp"),
    ("channel", "Mã kênh"),
    ("channel_name", "Kênh nộp"),
    ("received_at", "Ngày tiếp nhận"),
    ("due_at", "Hạn giải quyết"),
    ("remaining_text", "Thời gian còn lại"),
    ("remaining_working_hours", "Số giờ làm việc còn lại"),
    ("apology_issued", "Đã xin lỗi"),
    ("agency_at_fault", "Mã cơ quan chậm"),
    ("agency_at_fault_name", "Cơ quan chậm"),
    ("status", "Mã trạng thái"),
    ("status_name", "Trạng thái"),
]
WORDS = {  # export column → (the code's column, its words)
    "field_name": ("field_code", FIELD),
    "level_name": ("level", LEVEL),
    "channel_name": ("channel", CHANNEL),
    "status_name": ("status", STATUS),
}
# the apology-due export: the apology deadline and the time left to it after the due instant (every
# row has no apology: that column is left out)
_AFTER_DUE = COLUMNS.index(("due_at", "Hạn giải quyết")) + 1
APOLOGY_COLUMNS = [
    *COLUMNS[:_AFTER_DUE],
    ("apology_deadline_at", "Hạn xin lỗi"),
    ("apology_remaining_text", "Thời gian còn lại đến hạn xin lỗi"),
    *(column for column in COLUMNS[_AFTER_DUE:] if column[0] != "apology_issued"),
]
EXPORTS = {  # kind → (file name, sheet title, columns)
    "overdue": ("ho-so-qua-han", "Quá hạn", COLUMNS),
    "due-soon": ("ho-so-sap-den-han", "Sắp đến hạn", COLUMNS),
    "apology-due": ("ho-so-can-xin-loi", "Cần xin lỗi", APOLOGY_COLUMNS),
}
HEADINGS = {
    "overdue": "Danh sách hồ sơ quá hạn",
    "due-soon": "Danh sách hồ sơ sắp đến hạn",
    "apology-due": "Danh sách hồ sơ cần xin lỗi",
}


def _encode_cursor(value: Any, case_code: str) -> str:
    raw = json.dumps([value.isoformat() if isinstance(value, datetime) else value, case_code])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _bad_cursor() -> ApiError:
    return ApiError(
        422,
        "cursor is not one this service issued",
        reason="bad_cursor",
        details=[{"loc": ["query", "cursor"], "msg": "bad cursor"}],
    )


def _decode_cursor(cursor: str) -> tuple[Any, str]:
    """[sort value, case code] as _encode_cursor wrote it; 422 for anything else (a dict, a naive or
    malformed instant, a number, …) so nothing odd reaches a comparison with the stored instants."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, RecursionError):
        raise _bad_cursor() from None
    if not (isinstance(decoded, list) and len(decoded) == 2 and isinstance(decoded[1], str)):
        raise _bad_cursor()
    value, case_code = decoded
    if not isinstance(value, str):  # both sort keys are instants, present on every listed case
        raise _bad_cursor()
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise _bad_cursor() from None
    if instant.tzinfo is None:
        raise _bad_cursor()
    return instant, case_code


EARLIEST_AS_OF = datetime(2015, 1, 1, tzinfo=VN_TZ)
AS_OF_HORIZON = timedelta(days=3660)  # about ten years ahead


def check_as_of(as_of: datetime) -> datetime:
    """An instant the calendar can answer for: 2015-01-01 (Vietnam) to about ten years from now."""
    if not EARLIEST_AS_OF <= as_of <= datetime.now(UTC) + AS_OF_HORIZON:
        message = "as_of must lie between 2015-01-01 and ten years from now"
        raise ApiError(422, message, reason="invalid_as_of", details=[{"loc": ["query", "as_of"], "msg": message}])
    return as_of


@dataclass(frozen=True)
class ListFilters:
    kind: str
    as_of: datetime
    agencies: set[str] | None
    agency: str | None
    level: str | None
    field: str | None
    procedure: str | None
    channel: str | None
    apology: str | None


DueRange = tuple[datetime | None, datetime | None, datetime | None]


def _horizon(context: DeadlineContext, filters: ListFilters, seconds: int) -> datetime:
    """`as_of` plus `seconds` of working time on the calendar of the agency asked for."""
    calendar = context.registry.calendar_for(filters.agency)
    try:
        return calendar.add_working_time(filters.as_of, seconds)
    except CalendarError as exc:
        raise ApiError(422, str(exc), details=[{"loc": ["query", "as_of"], "msg": str(exc)}]) from None


def apology_window_end(context: DeadlineContext, filters: ListFilters) -> datetime:
    """The end of the apology-due window: TTHC_APOLOGY_DUE_WORKING_HOURS after `as_of`."""
    return _horizon(context, filters, context.apology_due_seconds)


def apology_due_bound(context: DeadlineContext, window_end: datetime) -> datetime:
    """The latest due instant a case of the apology-due list can have: DUE_AFTER_APOLOGY_AT_MOST
    after the window's end on the slowest calendar of the registry (a few distinct calendars)."""
    registry = context.registry
    calendars = {id(c): c for c in map(registry.calendar_for, [None, *registry.agencies])}.values()
    try:
        return max(c.add_working_time(window_end, DUE_AFTER_APOLOGY_AT_MOST) for c in calendars)
    except CalendarError:  # beyond the years the calendar knows: a month of calendar days
        return window_end + timedelta(days=31)


def due_range(context: DeadlineContext, filters: ListFilters) -> DueRange:
    """(due from, inclusive; due before, exclusive; due until, inclusive) of the list's cases."""
    if filters.kind == "overdue":
        return None, filters.as_of, None
    if filters.kind == "apology-due":
        # not overdue; and due at most about a working day after the window (apology_due.py)
        return filters.as_of, None, apology_due_bound(context, apology_window_end(context, filters))
    return filters.as_of, None, _horizon(context, filters, context.due_soon_seconds)


def build_query(context: DeadlineContext, filters: ListFilters) -> dict[str, Any]:
    """The store query of a list (when the in-memory index cannot answer)."""
    as_of = filters.as_of
    query: dict[str, Any] = {
        "received_at": {"$lte": as_of},
        "clock_stopped_since": None,
        "$or": [{"end_at": None}, {"end_at": {"$gt": as_of}}],
    }
    due_from, due_before, due_until = due_range(context, filters)
    if due_before is not None:
        query["due_at"] = {"$lt": due_before}
    else:
        query["due_at"] = {"$gte": due_from, "$lte": due_until}
    if filters.agencies is not None:
        query["agency_code"] = {"$in": sorted(filters.agencies)}
    for key, value in (
        ("level", filters.level),
        ("field_code", filters.field),
        ("procedure_code", filters.procedure),
        ("channel", filters.channel),
    ):
        if value:
            query[key] = value
    if filters.apology == "issued":
        query["apology"] = {"$ne": None}
    elif filters.apology == "missing":
        query["apology"] = None
    if filters.kind == "apology-due":
        query |= apology_due_match(apology_window_end(context, filters))
        if filters.apology == "issued":
            query["apology"] = {"$in": []}  # the list holds no case with an apology: nothing
    return query


def index_query(context: DeadlineContext, filters: ListFilters) -> ListQuery:
    """The same list as a query of the in-memory open-case index."""
    due_from, due_before, due_until = due_range(context, filters)
    return ListQuery(
        due_from=due_from,
        due_before=due_before,
        due_until=due_until,
        received_by=filters.as_of,
        agencies=frozenset(filters.agencies) if filters.agencies is not None else None,
        level=filters.level,
        field=filters.field,
        procedure=filters.procedure,
        channel=filters.channel,
        apology=filters.apology,
        apology_due_until=apology_window_end(context, filters) if filters.kind == "apology-due" else None,
    )


def row(context: DeadlineContext, document: dict[str, Any], as_of: datetime, kind: str = "") -> dict[str, Any]:
    agency = context.registry.agencies.get(document.get("agency_code", ""))
    item = {
        "case_code": document["_id"],
        "agency_code": document.get("agency_code"),
        "agency_name": agency.name if agency else None,
        "procedure_code": document.get("procedure_code"),
        "procedure_name": document.get("procedure_name"),
        "field_code": document.get("field_code"),
        "level": document.get("level"),
        "channel": document.get("channel"),
        "received_at": document.get("received_at"),
        "due_at": document.get("due_at"),
        "apology_deadline_at": document.get("apology_deadline_at"),
        "apology_issued": document.get("apology") is not None,
        "agency_at_fault": document.get("agency_at_fault"),
        "status": document.get("status"),
    }
    item.update(remaining(context, {**document, "end_at": None}, as_of))
    if kind == "apology-due":
        item.update(apology_remaining(context, document, as_of))
    return item


def apology_remaining(context: DeadlineContext, document: dict[str, Any], as_of: datetime) -> dict[str, Any]:
    """Working time left to the apology deadline (negative: late, the apology still possible)."""
    deadline = document.get("apology_deadline_at")
    late = apology_late(as_of, deadline)
    out: dict[str, Any] = {
        "apology_late": late,
        "apology_remaining_working_hours": None,
        "apology_remaining_text": None,
    }
    if deadline is not None:
        calendar = context.registry.calendar_for(document.get("agency_code"))
        try:
            seconds = calendar.working_time_between(as_of, deadline)
        except CalendarError:
            return out
        out["apology_remaining_working_hours"] = round(seconds / 3600, 2)
        out["apology_remaining_text"] = remaining_in_words(seconds)
    return out


async def case_list(
    request: Request,
    kind: str,
    agency: str | None,
    level: str | None,
    field: str | None,
    procedure: str | None,
    channel: str | None,
    apology: str | None,
    as_of: datetime | None,
    sort: str,
    limit: int,
    cursor: str | None,
    format: str,
) -> Any:
    context = get_context(request)
    principal = context.principal(request)
    as_of = check_as_of(as_of) if as_of is not None else datetime.now(UTC)
    filters = ListFilters(
        kind, as_of, context.agency_filter(principal, agency), agency, level, field, procedure, channel, apology
    )
    after = _decode_cursor(cursor) if cursor and format == "json" else None
    size = EXPORT_LIMIT if format != "json" else limit + 1
    documents = await _documents(context, filters, sort, after, size)
    if format != "json":
        # up to EXPORT_LIMIT rows: built in a worker thread, so the consumer and the timer sweep of
        # this process keep running meanwhile
        names = {code: agency.name for code, agency in context.registry.agencies.items()}
        notes = export_notes(filters, sort, names, datetime.now(UTC), len(documents))
        return await asyncio.to_thread(
            lambda: export([row(context, doc, as_of, kind) for doc in documents], kind, format, names, notes)
        )
    key = SORTS[sort][0]
    page, more = documents[:limit], len(documents) > limit
    answer = {
        "as_of": as_of,
        "items": [row(context, doc, as_of, kind) for doc in page],
        "next_cursor": _encode_cursor(page[-1][key], page[-1]["_id"]) if more and page else None,
    }
    answer["total"] = await list_total(context, filters)
    if kind == "apology-due":
        answer["counts"] = await apology_counts(context, filters)
    return answer


async def _from_memory(context: DeadlineContext, filters: ListFilters) -> bool:
    """Whether the in-memory index answers this list (after waiting a little for a load or a
    rebalance in progress); else the store does, unless this process is the only writer and still
    loads the index: then 503, the store left to the load."""
    index = context.open_cases
    if await index.ready(filters.as_of):
        return True
    if index.loading:
        LIST_READS.labels("unavailable").inc()
        raise ApiError(
            503,
            "the open cases are being loaded after a restart; retry later",
            headers={"Retry-After": str(LOADING_RETRY_AFTER_S)},
        )
    return False


async def _documents(
    context: DeadlineContext, filters: ListFilters, sort: str, after: tuple[Any, str] | None, size: int
) -> list[dict[str, Any]]:
    """Up to `size` cases of the list after the cursor, in order: from the in-memory index when it
    answers for `as_of`, else from the store."""
    index = context.open_cases
    if await _from_memory(context, filters):
        LIST_READS.labels("memory").inc()
        return [case.document() for case in index.page(index_query(context, filters), sort, after, size)]
    LIST_READS.labels("store").inc()
    key, direction = SORTS[sort]
    query = build_query(context, filters)
    if after is not None:
        value, last = after
        op = "$gt" if direction == 1 else "$lt"
        query = {"$and": [query, {"$or": [{key: {op: value}}, {key: value, "_id": {op: last}}]}]}
    found = context.cases.find(query, {"events": 0, "timeline": 0}).sort([(key, direction), ("_id", direction)])
    return [doc async for doc in found.limit(size)]


async def list_total(context: DeadlineContext, filters: ListFilters) -> int:
    """How many cases the whole list holds (every page), additive to the contract: from
    the in-memory index when it answers (a walk of the due range, no I/O), else counted by the store."""
    index = context.open_cases
    if await _from_memory(context, filters):
        return index.count(index_query(context, filters))
    return int(await context.cases.count_documents(build_query(context, filters)))


async def apology_counts(context: DeadlineContext, filters: ListFilters) -> dict[str, int]:
    """The whole apology-due list counted: total, apology deadline passed (late), still ahead (soon).
    The list is a few working days of cases, so reading all of it is cheap on either path."""
    index = context.open_cases
    if await _from_memory(context, filters):
        deadlines = [
            c.apology_deadline_at for c in index.page(index_query(context, filters), "due_at", None, EXPORT_LIMIT)
        ]
    else:
        found = context.cases.find(build_query(context, filters), {"apology_deadline_at": 1}).limit(EXPORT_LIMIT)
        deadlines = [doc.get("apology_deadline_at") async for doc in found]
    late = sum(apology_late(filters.as_of, deadline) for deadline in deadlines)
    return {"total": len(deadlines), "apology_late": late, "apology_due_soon": len(deadlines) - late}


def _local(moment: datetime) -> str:
    return moment.astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M")


def export_notes(filters: ListFilters, sort: str, names: dict[str, str], now: datetime, count: int) -> list[str]:
    """The lines above an XLSX table: the filters as the officer chose them, in words, and when."""
    chosen = []
    if filters.agency:
        chosen.append(
            f"Cơ quan: {names.get(filters.agency, filters.agency)} ({filters.agency}) và các cơ quan trực thuộc"
        )
    if filters.level:
        chosen.append(f"Cấp: {label(LEVEL, filters.level)}")
    if filters.field:
        chosen.append(f"Lĩnh vực: {label(FIELD, filters.field)} ({filters.field})")
    if filters.procedure:
        chosen.append(f"Thủ tục: {filters.procedure}")
    if filters.channel:
        chosen.append(f"Kênh nộp: {label(CHANNEL, filters.channel)}")
    if filters.apology:
        chosen.append(f"Xin lỗi: {label(APOLOGY_FILTER, filters.apology)}")
    return [
        "Bộ lọc: " + ("; ".join(chosen) if chosen else "không có (mọi hồ sơ trong phạm vi được xem)"),
        f"Sắp xếp: {label(SORT, sort)}",
        f"Tính đến: {_local(filters.as_of)} (giờ Việt Nam)",
        f"Thời điểm xuất: {_local(now)} (giờ Việt Nam)",
        f"Số hồ sơ: {count}",
    ]


def export(
    rows: list[dict[str, Any]],
    kind: str,
    format: str,
    names: dict[str, str] | None = None,
    notes: list[str] | None = None,
) -> Response:
    """The rows as CSV or XLSX, every cell inert (shared/exports.py); each code beside its words, the
    XLSX with the filters and the time of export above the table (the CSV: the same columns only)."""
    name, sheet, columns = EXPORTS[kind]
    headers = [title for _, title in columns]
    names = names or {}

    def value(item: dict[str, Any], key: str) -> Any:
        if key in WORDS:
            code_key, words = WORDS[key]
            return label(words, item.get(code_key)) if item.get(code_key) else None
        if key == "agency_at_fault_name":
            return names.get(item.get("agency_at_fault") or "")
        return item.get(key)

    values = ([value(item, key) for key, _ in columns] for item in rows)
    if format == "csv":
        content, media = csv_bytes(headers, values), CSV_MEDIA_TYPE
    else:
        content = xlsx_bytes(sheet, headers, values, heading=HEADINGS[kind], notes=notes or [])
        media = XLSX_MEDIA_TYPE
    return Response(content, media_type=media, headers={"Content-Disposition": content_disposition(f"{name}.{format}")})


def _list_route(kind: str, path: str, summary: str) -> None:
    @router.get(path, summary=summary)
    async def handler(
        request: Request,
        agency: str | None = Query(None, description="an agency code; its sub-agencies are included"),
        level: Literal["province", "district", "commune"] | None = None,
        field: str | None = None,
        procedure: str | None = None,
        channel: Literal["direct", "online", "postal"] | None = None,
        apology: Literal["issued", "missing"] | None = None,
        as_of: AwareDatetime | None = Query(None, description="default: now"),
        sort: Literal["due_at", "-due_at", "received_at", "-received_at"] = "due_at",
        limit: int = Query(50, ge=1, le=500),
        cursor: str | None = None,
        format: Literal["json", "csv", "xlsx"] = "json",
    ) -> Any:
        return await case_list(
            request, kind, agency, level, field, procedure, channel, apology, as_of, sort, limit, cursor, format
        )

    handler.__name__ = f"list_{kind.replace('-', '_')}"


_list_route("overdue", "/v1/cases/overdue", "Open cases past their statutory due instant")
_list_route("due-soon", "/v1/cases/due-soon", "Open cases due within the due-soon working time")
_list_route(
    "apology-due",
    "/v1/cases/apology-due",
    "Open cases with no apology whose apology deadline is within the apology-due working time, or passed "
    "while due has not (contract v1.1)",
)

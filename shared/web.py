"""What every service's HTTP side shares: the error format, bearer auth, health, readiness, metrics."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.domain.codes import EventType

log = logging.getLogger(__name__)

STATUS_CODES = {  # the contract's error `code` of each status
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []
    reason: str | None = None  # additive: a stable machine word finer than `code`


class ErrorBody(BaseModel):
    """The contract's error shape."""

    error: ErrorInfo


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring the contract error body for these statuses."""
    return {status: {"model": ErrorBody, "description": STATUS_CODES.get(status, "error")} for status in statuses}


class ApiError(Exception):
    """An error answered in the contract's shape: {"error": {"code", "message", "details"}}.

    `reason` (additive) is a stable machine word finer than the status's `code`
    (`apology_exists`, `new_due_not_after_due`, `outside_scope`, …): the web pages map it to
    Vietnamese words, never the English `message`. Absent when not given.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Iterable[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = message
        self.details = list(details)
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "details": self.details}
        if self.reason:
            error["reason"] = self.reason
        body = {"error": error}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def unavailable(what: str, retry_after: int = 5) -> ApiError:
    return ApiError(503, f"{what} is unavailable; retry later", headers={"Retry-After": str(retry_after)})


_EVENT_TAGS = frozenset(t.value for t in EventType)


def pydantic_details(errors: Iterable[dict[str, Any]], prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Validation errors as contract details; the discriminator tag pydantic adds is dropped."""
    details = []
    for error in errors:
        # drop the tag pydantic adds for the discriminated union ("case.received", …)
        loc = [part for part in error.get("loc", ()) if not (isinstance(part, str) and part in _EVENT_TAGS)]
        details.append({"loc": [*prefix, *loc], "msg": error.get("msg", "invalid")})
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return ApiError(400, "the body is not valid JSON").response()
        loc_errors = [{**e, "loc": tuple(e.get("loc", ()))} for e in errors]
        return ApiError(422, "the request is invalid", details=pydantic_details(loc_errors)).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return ApiError(500, "internal error", code="internal").response()


MAX_JSON_DEPTH = 32


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def json_depth(value: Any) -> int:
    """How deep arrays and objects nest in a parsed JSON value (a scalar is 0, `[]` is 1)."""
    if not isinstance(value, dict | list):
        return 0
    depth, level = 0, [value]
    while level:  # breadth first, one level at a time: no recursion, whatever the depth
        depth += 1
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, dict | list)
        ]
    return depth


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The parsed body; 400 for malformed JSON, NaN/Infinity, or nesting deeper than `max_depth` (never a 500)."""
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        body = None
        depth_exceeded = True
    else:
        depth_exceeded = json_depth(body) > max_depth
    if depth_exceeded:
        raise ApiError(
            400,
            f"the body nests arrays and objects deeper than {max_depth} levels",
            details=[{"loc": [], "msg": f"nested deeper than {max_depth} levels"}],
        )
    return body


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, with 413 over the limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"the body is over the limit of {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"the body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """A Content-Disposition value for any file name (RFC 6266): an ASCII fallback `filename="…"`
    (accents dropped, anything else unsafe as `_`) and the exact name as `filename*=UTF-8''…`
    (RFC 5987 percent-encoding), so a case code in any script never breaks the header."""
    stem, dot, extension = filename.rpartition(".") if "." in filename else (filename, "", "")

    def ascii_only(text: str) -> str:
        text = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
        return re.sub(r"[^A-Za-z0-9._-]", "_", text.encode("ascii", "ignore").decode("ascii")).strip("._")

    ascii_name = (ascii_only(stem) or "download") + dot + ascii_only(extension)
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


# ---- credentials -----------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """Keys and tokens are stored hashed (sha256); the plain value is shown once at creation."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: admin (everything), a source system (submit for its agencies), an agency."""

    kind: str  # "admin" | "source" | "agency"
    name: str
    agencies: frozenset[str] = field(default_factory=frozenset)  # scope, before subtree expansion
    credential_id: str | None = None  # the registry credential (stable across key rotation); None for admin

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


TokenResolver = Callable[[str], Principal | None]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def authenticate(request: Request, admin_token: str, resolve: TokenResolver | None = None) -> Principal:
    token = bearer_token(request)
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal("admin", "admin")
    principal = resolve(hash_token(token)) if resolve else None
    if principal is None:
        raise ApiError(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return principal


# ---- health ----------------------------------------------------------------------------------

ReadinessCheck = Callable[[], Awaitable[bool | str]]


def health_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        responses={503: {"description": "a dependency (broker, store, registry, consumer) is unreachable or stuck"}},
    )
    async def readyz() -> JSONResponse:
        results: dict[str, bool] = {}
        reasons: dict[str, str] = {}
        for name, check in checks.items():
            try:
                outcome = await check()
            except Exception:  # a readiness probe answers, it does not fail
                outcome = False
            # a check answers True, False, or why it is not ready
            results[name] = bool(outcome) and not isinstance(outcome, str)
            if isinstance(outcome, str):
                reasons[name] = outcome
        ready = all(results.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": results}
        if reasons:
            body["reasons"] = reasons
        return JSONResponse(body, status_code=200 if ready else 503, headers={} if ready else {"Retry-After": "5"})

    @router.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router

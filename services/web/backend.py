"""The web pages' only way to data: the deadline and metrics APIs, called with the officer's own token.

The pages hold no data and make no access decisions of their own: every read goes through the same
contract routes (and the same scope checks) that outside callers use.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import Settings


class BackendError(Exception):
    """A non-2xx answer (or no answer) from a service, with the contract's error code, its machine
    `reason` when the service gives one, and what was asked (service, path) so the pages can say in
    Vietnamese what went wrong (services/web/errors.py); `message` is the API's English, for logs only."""

    def __init__(
        self,
        status: int,
        message: str,
        details: list[dict[str, Any]] | None = None,
        *,
        code: str | None = None,
        reason: str | None = None,
        service: str | None = None,
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []
        self.code = code
        self.reason = reason
        self.service = service
        self.path = path


SERVICES = ("deadline", "metrics")


class Backend:
    """The two services' HTTP APIs, each call carrying the officer's token."""

    def __init__(self, settings: Settings) -> None:
        self.urls = {"deadline": settings.deadline_url.rstrip("/"), "metrics": settings.metrics_url.rstrip("/")}
        self.http = httpx.AsyncClient(timeout=settings.request_timeout_s)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        token: str,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = await self.http.request(
                method,
                f"{self.urls[service]}{path}",
                params=clean,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise BackendError(
                503,
                f"the {service} service does not answer ({type(exc).__name__})",
                reason="service_unreachable",
                service=service,
                path=path,
            ) from None
        if response.status_code >= 400:
            raise _error(response, service, path)
        return response

    async def get(self, service: str, path: str, token: str, **params: Any) -> dict[str, Any]:
        """A GET's JSON object (every read route of the contract answers one)."""
        answer = (await self.call(service, "GET", path, token, params)).json()
        if not isinstance(answer, dict):
            raise BackendError(502, f"{path} did not answer a JSON object", service=service, path=path)
        return answer

    async def answers(self, service: str) -> bool:
        """Whether a service's process is up (its /healthz): the pages are ready when both are."""
        try:
            return (await self.http.get(f"{self.urls[service]}/healthz", timeout=2)).status_code == 200
        except httpx.HTTPError:
            return False


def _error(response: httpx.Response, service: str, path: str) -> BackendError:
    try:
        error = response.json()["error"]
        return BackendError(
            response.status_code,
            str(error.get("message", "")),
            error.get("details") or [],
            code=error.get("code"),
            reason=error.get("reason"),
            service=service,
            path=path,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return BackendError(response.status_code, response.text[:200], service=service, path=path)

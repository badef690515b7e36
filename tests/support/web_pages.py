"""The web pages against a fake backend: /v1/me, the cases in `FakeBackend.cases`, and the errors in
`FakeBackend.errors`; the `web_client` gives a TestClient with a session cookie."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.web import app as web_app
from services.web.backend import BackendError
from shared.settings import Settings

ME = {
    "kind": "agency",
    "name": "so",
    "scope": ["000.00.02.H99"],
    "agencies": [{"agency_code": "000.00.02.H99", "name": "Sở Nông nghiệp và Môi trường", "depth": 1}],
}


class FakeBackend:
    """Answers /v1/me and the cases in `cases`; every other path raises what `errors` holds."""

    cases: dict[str, dict[str, Any]] = {}
    errors: dict[tuple[str, str], BackendError] = {}
    asked: list[str] = []

    def __init__(self, settings: Settings) -> None:
        pass

    async def close(self) -> None:
        pass

    async def answers(self, service: str) -> bool:
        return True

    async def call(self, service: str, method: str, path: str, token: str, params: Any = None, json: Any = None) -> Any:
        self.asked.append(path)
        if (method, path) in self.errors:
            raise self.errors[(method, path)]
        if path == "/v1/me":
            return Answer(ME)
        if path.startswith("/v1/cases/") and path.removeprefix("/v1/cases/") in self.cases:
            return Answer(self.cases[path.removeprefix("/v1/cases/")])
        raise BackendError(404, f"no case {path!r}", code="not_found", reason="case_not_found", path=path)

    async def get(self, service: str, path: str, token: str, **params: Any) -> Any:
        return (await self.call(service, "GET", path, token, params)).json()


class Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def json(self) -> dict[str, Any]:
        return self.body


def web_client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The pages over a fresh FakeBackend, logged in (a session cookie)."""
    monkeypatch.setattr(web_app, "Backend", FakeBackend)
    FakeBackend.cases, FakeBackend.errors, FakeBackend.asked = {}, {}, []
    test = TestClient(web_app.create_app(Settings()), raise_server_exceptions=False, follow_redirects=False)
    test.cookies.set(web_app.COOKIE, "token")
    return test

"""The web pages' health, readiness and metrics are shared/web.py's: readiness names the service behind
the pages that does not answer; the ops routes stay out of the pages' OpenAPI document."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.web_pages import FakeBackend, web_client


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    return web_client(monkeypatch)


def test_the_pages_are_ready_when_both_services_answer(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"deadline": True, "metrics": True}}


def test_readiness_names_the_service_that_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    async def answers(self: FakeBackend, service: str) -> bool:
        return service != "metrics"

    monkeypatch.setattr(FakeBackend, "answers", answers)
    response = web_client(monkeypatch).get("/readyz")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["checks"] == {"deadline": True, "metrics": False}


def test_metrics_count_the_pages_served(client: TestClient) -> None:
    client.get("/login")
    assert 'tthc_web_pages_total{outcome="200",page="login"}' in client.get("/metrics").text


def test_the_ops_routes_are_not_pages(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)
    assert {"/login", "/overdue", "/cases/{code}", "/indicators"} <= set(paths)

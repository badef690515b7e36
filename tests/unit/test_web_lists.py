"""The list pages (issue #20): the total of every page, working time said as such, the agency on
every card (phones too), against a fake backend."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.web_pages import Answer, FakeBackend, web_client

ITEM = {
    "case_code": "000.00.02.H99-261116-00001",
    "agency_code": "000.00.02.H99",
    "agency_name": "Sở Nông nghiệp và Môi trường",
    "procedure_code": "1.004227",
    "procedure_name": "Cấp giấy chứng nhận",
    "field_code": "G09-DD",
    "channel": "online",
    "received_at": "2026-10-01T09:15:00+07:00",
    "due_at": "2026-10-15T16:00:00+07:00",
    "remaining_text": "quá 431 ngày làm việc",
    "overdue": True,
    "apology_issued": False,
}


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    return web_client(monkeypatch)


@pytest.fixture
def listing(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "as_of": "2026-12-02T09:00:00+07:00",
        "items": [ITEM] * 20,
        "next_cursor": "c2",
        "total": 45,
    }
    original = FakeBackend.call

    async def call(
        self: FakeBackend, service: str, method: str, path: str, token: str, params: Any = None, json: Any = None
    ) -> Any:
        if path in ("/v1/cases/overdue", "/v1/cases/due-soon", "/v1/cases/apology-due"):
            return Answer(answer)
        if path == "/v1/procedures":
            return Answer({"procedures": []})
        return await original(self, service, method, path, token, params, json)

    monkeypatch.setattr(FakeBackend, "call", call)
    return answer


def test_the_list_shows_its_total_and_where_this_page_sits(client: TestClient, listing: dict[str, Any]) -> None:
    html = client.get("/overdue").text
    assert '<p class="total" id="list-total"><strong>45</strong> hồ sơ · trang này 1–20</p>' in html
    html = client.get("/overdue?cursor=c2&trail=0&limit=20").text
    assert "trang này 21–40" in html


def test_a_short_list_shows_only_its_total(client: TestClient, listing: dict[str, Any]) -> None:
    listing.update(items=[ITEM] * 3, next_cursor=None, total=3)
    assert "<strong>3</strong> hồ sơ</p>" in client.get("/due-soon").text


def test_an_old_api_without_total_shows_no_count(client: TestClient, listing: dict[str, Any]) -> None:
    listing.pop("total")
    assert 'id="list-total"' not in client.get("/overdue").text


def test_working_time_and_the_agency_reach_every_card(client: TestClient, listing: dict[str, Any]) -> None:
    for path in ("/overdue", "/apology-due"):
        html = client.get(path).text
        assert '<td data-label="Cơ quan" class="agency">Sở Nông nghiệp và Môi trường</td>' in html
        assert 'class="wide">Sở Nông' not in html  # the agency is no longer hidden on phones
    assert "quá 431 ngày làm việc" in client.get("/overdue").text

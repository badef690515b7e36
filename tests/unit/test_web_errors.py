"""Every API error the pages can meet, in Vietnamese (issue #20): the mapping table, the error pages
with the menu (unknown URLs too), the apology form's refusals, and the search box's normalisation.
The pages run against a fake backend; the API's English message must never reach the officer."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.web import case as case_pages
from services.web.backend import BackendError
from services.web.errors import explain
from services.web.search import code_variants, normalise_code
from tests.support.web_pages import FakeBackend, web_client

CASE = "000.00.02.H99-261116-00001"
ENGLISH = re.compile(
    r"\b(no case|already has|must be after|outside this token|is not YYYY|internal error|Not Found|"
    r"the request|invalid|unavailable|retry)\b",
    re.I,
)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    return web_client(monkeypatch)


@pytest.mark.parametrize(
    "status, reason, code, details, facts, words",
    [
        (404, "case_not_found", "not_found", [], {"case_code": CASE}, f"Không tìm thấy hồ sơ {CASE}."),
        (404, None, "not_found", [], {"asked": "case", "case_code": CASE}, f"Không tìm thấy hồ sơ {CASE}."),
        (404, None, "not_found", [], {"asked": "letter", "case_code": CASE}, "chưa có phiếu xin lỗi"),
        (404, None, None, [], {"asked": "page"}, "Không có trang này"),
        (409, "apology_exists", "conflict", [], {}, "Hồ sơ đã có phiếu xin lỗi; chỉ được hẹn lại một lần."),
        (409, None, "conflict", [], {}, "xung đột với dữ liệu hiện có"),
        (
            422,
            "new_due_not_after_due",
            "invalid",
            [{"loc": ["body", "new_due_at"], "msg": "not after due_at"}],
            {"due_at": "20/11/2026 16:00"},
            "Ngày hẹn trả mới phải sau hạn giải quyết theo quy định (20/11/2026 16:00).",
        ),
        (422, "no_due_date", "invalid", [], {}, "chưa có hạn giải quyết"),
        (403, "not_agency_at_fault", "forbidden", [], {}, "Chỉ cơ quan để hồ sơ quá hạn"),
        (403, "outside_scope", "forbidden", [], {"agency": "001.30.00.H99"}, "Cơ quan 001.30.00.H99 nằm ngoài phạm vi"),
        (403, None, "forbidden", [], {}, "không được xem hoặc thao tác"),
        (403, "submit_only", "forbidden", [], {}, "chỉ dùng để gửi dữ liệu"),
        (401, None, "unauthorized", [], {}, "Phiên làm việc đã hết hạn"),
        (422, "unknown_agency", "invalid", [], {"agency": "X.1"}, "Không có cơ quan X.1 trong danh mục."),
        (422, "invalid_period", "invalid", [{"loc": ["query", "period"], "msg": "x"}], {}, "Kỳ báo cáo chưa hợp lệ"),
        (422, None, "invalid", [{"loc": ["query", "period"], "msg": "x"}], {}, "6 tháng đầu năm 2026"),
        (422, "period_out_of_range", "invalid", [], {}, "từ 01/01/2015"),
        (422, "bad_cursor", "invalid", [], {}, "Liên kết phân trang"),
        (422, "invalid_as_of", "invalid", [], {}, "Thời điểm tính"),
        (
            422,
            None,
            "invalid",
            [{"loc": ["body", "reason"], "msg": "String should have at least 3 characters"}],
            {},
            "Thông tin chưa hợp lệ.",
        ),
        (413, None, "payload_too_large", [], {}, "Dữ liệu gửi lên quá lớn."),
        (429, None, "too_many_requests", [], {}, "thử lại sau ít phút"),
        (503, None, "unavailable", [], {}, "tạm thời chưa sẵn sàng"),
        (503, "service_unreachable", None, [], {"service": "metrics"}, "Không kết nối được tới dịch vụ chỉ số."),
        (500, None, "internal", [], {}, "gặp lỗi khi xử lý yêu cầu"),
        (502, None, None, [], {}, "gặp lỗi khi xử lý yêu cầu"),
        (418, "something_new", "teapot", [], {}, "Yêu cầu chưa hợp lệ."),
    ],
)
def test_each_api_error_has_vietnamese_words(
    status: int, reason: str | None, code: str | None, details: list[dict[str, Any]], facts: dict[str, Any], words: str
) -> None:
    explained = explain(status, reason, code, details, **facts)
    assert words in explained.message
    assert explained.title and not ENGLISH.search(explained.title + explained.message + " ".join(explained.fields))


def test_a_refused_field_is_named_in_vietnamese_once() -> None:
    details = [
        {"loc": ["body", "reason"], "msg": "too short"},
        {"loc": ["body", "reason"], "msg": "again"},
        {"loc": ["query", "level"], "msg": "x"},
        {"loc": ["body", 0, "zzz"], "msg": "x"},
    ]
    assert explain(422, None, "invalid", details).fields == [
        "Lý do: chưa hợp lệ",
        "Cấp: chưa hợp lệ",
        "Một thông tin gửi lên chưa hợp lệ",
    ]


@pytest.mark.parametrize(
    "typed, first",
    [
        ("000.00.02.h99-261116-00001", CASE),
        (" 000.00.02.H99 - 261116 - 00001 ", CASE),
        ("000.00.02.h99–261116–00001", CASE),  # an en dash pasted from a document
        ("０００.00.02.H99-261116-00001", CASE),  # full-width digits
    ],
)
def test_search_turns_what_is_typed_into_the_stored_form(typed: str, first: str) -> None:
    assert code_variants(typed)[0] == first


def test_search_tries_each_variant_once() -> None:
    assert code_variants("Ab-1") == ["AB-1", "Ab-1", "ab-1"]
    assert code_variants("AB-1") == ["AB-1", "ab-1"]
    assert code_variants("   ") == [] and normalise_code(" a b ") == "ab"


# ---- the pages, against a fake backend --------------------------------------------------------


def assert_vietnamese_page_with_menu(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    assert 'nav aria-label="Chức năng"' in text and 'action="/find"' in text
    assert not ENGLISH.search(re.sub(r"<[^>]+>", " ", text))
    return text


def test_an_unknown_url_is_a_vietnamese_page_with_the_menu(client: TestClient) -> None:
    text = assert_vietnamese_page_with_menu(client.get("/no/such/page"), 404)
    assert "Không có trang này" in text and "Sở Nông nghiệp và Môi trường" in text
    assert "detail" not in text
    assert_vietnamese_page_with_menu(client.post("/overdue"), 404)


def test_an_unknown_url_without_a_session_still_has_the_menu(client: TestClient) -> None:
    client.cookies.clear()
    text = assert_vietnamese_page_with_menu(client.get("/nothing-here"), 404)
    assert 'href="/login"' in text


def test_a_missing_case_names_it(client: TestClient) -> None:
    text = assert_vietnamese_page_with_menu(client.get(f"/cases/{CASE}"), 404)
    assert f"Không tìm thấy hồ sơ {CASE}" in text


@pytest.mark.parametrize(
    "status, reason, words",
    [
        (403, "outside_scope", "nằm ngoài phạm vi mã truy cập"),
        (503, None, "tạm thời chưa sẵn sàng"),
        (500, "internal", "gặp lỗi khi xử lý yêu cầu"),
    ],
)
def test_service_refusals_are_vietnamese_pages(client: TestClient, status: int, reason: str, words: str) -> None:
    FakeBackend.cases[CASE] = {"case_code": CASE}
    FakeBackend.errors[("GET", f"/v1/cases/{CASE}")] = BackendError(
        status,
        "internal error; agency X is outside this token's scope",
        code=reason,
        reason=reason,
        path=f"/v1/cases/{CASE}",
    )
    text = assert_vietnamese_page_with_menu(client.get(f"/cases/{CASE}"), 502 if status == 500 else status)
    assert words in text


def test_an_expired_session_goes_to_the_login_page(client: TestClient) -> None:
    FakeBackend.errors[("GET", "/v1/me")] = BackendError(401, "unknown or revoked token", code="unauthorized")
    response = client.get("/overdue")
    assert response.status_code == 303 and response.headers["location"] == "/login?expired=1"


def test_a_page_crash_is_a_vietnamese_500_with_the_menu(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(value: Any) -> str:
        raise RuntimeError("internal error")

    monkeypatch.setattr(case_pages, "code_variants", boom)
    text = assert_vietnamese_page_with_menu(client.get("/find?code=x"), 500)
    assert "gặp lỗi khi xử lý yêu cầu" in text


def test_a_bad_query_value_is_a_vietnamese_422(client: TestClient) -> None:
    client.cookies.clear()
    text = assert_vietnamese_page_with_menu(client.get("/login?expired=abc"), 422)
    assert "Thông tin chưa hợp lệ" in text


@pytest.mark.parametrize(
    "status, reason, words",
    [
        (409, "apology_exists", "Hồ sơ đã có phiếu xin lỗi; chỉ được hẹn lại một lần."),
        (422, "new_due_not_after_due", "Ngày hẹn trả mới phải sau hạn giải quyết theo quy định (20/11/2026 16:00)."),
        (403, "not_agency_at_fault", "Chỉ cơ quan để hồ sơ quá hạn"),
    ],
)
def test_the_apology_form_says_why_in_vietnamese(client: TestClient, status: int, reason: str, words: str) -> None:
    FakeBackend.cases[CASE] = {
        "case_code": CASE,
        "status": "pending",
        "due_at": "2026-11-20T16:00:00+07:00",
        "apology": None,
        "timeline": [],
        "events": [],
    }
    path = f"/v1/cases/{CASE}/apology"
    FakeBackend.errors[("POST", path)] = BackendError(
        status, "this case already has an apology; new_due_at must be after", code="x", reason=reason, path=path
    )
    response = client.post(f"/cases/{CASE}/apology", data={"reason": "Cần xác minh", "new_due_at": "2026-11-19T10:00"})
    assert response.status_code == status
    assert words in response.text
    assert "already" not in response.text and "must be after" not in response.text


def test_search_finds_the_case_whatever_the_case_and_spaces(client: TestClient) -> None:
    FakeBackend.cases[CASE] = {"case_code": CASE}
    response = client.get("/find", params={"code": " 000.00.02.h99 -261116-00001"})
    assert response.status_code == 303 and response.headers["location"] == f"/cases/{CASE}"


def test_search_tries_the_code_as_typed_when_the_stored_form_is_not_upper_case(client: TestClient) -> None:
    stored = "abc.Local-1"
    FakeBackend.cases[stored] = {"case_code": stored}
    response = client.get("/find", params={"code": "abc.Local-1 "})
    assert response.headers["location"] == f"/cases/{stored}"
    assert FakeBackend.asked[:2] == ["/v1/cases/ABC.LOCAL-1", "/v1/cases/abc.Local-1"]


def test_search_for_an_absent_case_lands_on_its_vietnamese_404(client: TestClient) -> None:
    response = client.get("/find", params={"code": "000.00.02.h99-x"})
    assert response.headers["location"] == "/cases/000.00.02.H99-X"


def test_a_letter_not_yet_issued_says_so(client: TestClient) -> None:
    path = f"/v1/cases/{CASE}/apology-letter"
    FakeBackend.errors[("GET", path)] = BackendError(404, f"case {CASE!r} has no apology", code="not_found", path=path)
    text = assert_vietnamese_page_with_menu(client.get(f"/cases/{CASE}/letter.pdf"), 404)
    assert f"Hồ sơ {CASE} chưa có phiếu xin lỗi" in text


def test_a_letter_that_fails_is_a_vietnamese_502(client: TestClient) -> None:
    path = f"/v1/cases/{CASE}/apology-letter"
    FakeBackend.errors[("GET", path)] = BackendError(500, "internal error", code="internal", path=path)
    assert "gặp lỗi khi xử lý yêu cầu" in assert_vietnamese_page_with_menu(
        client.get(f"/cases/{CASE}/letter.docx"), 502
    )


def test_an_unreachable_service_is_named_in_vietnamese(client: TestClient) -> None:
    FakeBackend.errors[("GET", f"/v1/cases/{CASE}")] = BackendError(
        503, "the deadline service does not answer (ConnectError)", reason="service_unreachable", service="deadline"
    )
    text = assert_vietnamese_page_with_menu(client.get(f"/cases/{CASE}"), 503)
    assert "Không kết nối được tới dịch vụ theo dõi hạn giải quyết" in text

"""An officer's first day, in headless Chromium at 1366 px and at 390 px (issue #20): the three list
pages (the total, working days, the agency on every phone card, nothing wider than the screen), the
search box (case and spaces do not matter), and every error page (an unknown URL, 403 outside the
token's scope, 422 a period that is not one, 422 a new return date before due, 409 a second
apology), each in Vietnamese inside the site's frame. No English word reaches any of these pages.
A screenshot of each is kept in tests/output/screenshots/ (first-day-*.png).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local import infra
from shared.domain.calendar import VN_TZ
from shared.settings import Settings
from tests.conftest import AUTH, settings_env
from tests.e2e.test_web_pages import CHROMIUM, CHROMIUM_FLAGS, SHOTS, seed
from tests.support.events import AGENCY, COMMUNE, LAND_PROCEDURE, case_code, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.e2e

WIDTHS = {"wide": 1366, "phone": 390}

# English an API could leak (its messages, its codes, FastAPI's defaults); none may reach a page
ENGLISH = {
    "the",
    "is",
    "not",
    "no",
    "of",
    "and",
    "or",
    "to",
    "be",
    "has",
    "have",
    "this",
    "that",
    "after",
    "before",
    "must",
    "only",
    "once",
    "already",
    "allowed",
    "case",
    "cases",
    "error",
    "internal",
    "found",
    "detail",
    "agency",
    "token",
    "scope",
    "outside",
    "belongs",
    "period",
    "invalid",
    "request",
    "required",
    "field",
    "unavailable",
    "retry",
    "later",
    "service",
    "does",
    "answer",
    "apology",
    "rescheduling",
    "due",
    "new",
    "pending",
    "direct",
    "online",
    "postal",
    "province",
    "commune",
    "district",
    "overdue",
    "processed",
    "none",
    "null",
    "true",
    "false",
    "undefined",
    "nan",
    "unknown",
    "revoked",
    "missing",
    "forbidden",
    "conflict",
    "unauthorized",
    "string",
    "should",
    "least",
    "characters",
    "value",
    "input",
    "expected",
}
# ASCII words the pages do use: Vietnamese written without marks, formats and units, the site's names
ALLOWED = {
    "csv",
    "xlsx",
    "excel",
    "pdf",
    "docx",
    "utc",
    "tthc",
    "par",
    "q",
    "h",
    "m",
    "px",
    "ii",
    "iii",
    "iv",
}
CODE = re.compile(r"[A-Za-z]*\d[\w.\-/]*|[\w.\-]*\d[\w.\-]*")  # case codes, agency codes, dates, numbers


def english_words(text: str) -> list[str]:
    """The English words of a page's visible text (codes, case codes and numbers set aside)."""
    words = re.findall(r"[\w.\-/]+", CODE.sub(" ", text))
    return sorted({w.strip(".-/").lower() for w in words} & ENGLISH - ALLOWED)


@pytest.fixture
async def site(settings: Settings, run_dir: Path) -> AsyncIterator[dict[str, str]]:
    assert shutil.which(CHROMIUM), "these tests need Debian's chromium package (make tools installs it)"
    folder = run_dir / f"web-first-day-{settings.topic_prefix}"
    async with infra.running_services(folder, settings_env(settings), web=True, ready_timeout=60) as services:
        yield services.urls


async def seed_due_soon(urls: dict[str, str], count: int = 2) -> list[str]:
    """Cases of the department due at the next working moments after now: on the due-soon and the
    apology-due lists whatever the hour the test runs (the receipt found by bisection: due_at grows
    with received_at)."""
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as client:

        async def due_of(received_at: datetime) -> datetime:
            r = await client.post(
                f"{urls['deadline']}/v1/deadlines/compute",
                json={"received_at": received_at.isoformat(), "procedure_code": LAND_PROCEDURE, "agency_code": AGENCY},
                headers=AUTH,
            )
            assert r.status_code == 200, r.text
            return datetime.fromisoformat(r.json()["due_at"])

        early, late = now - timedelta(days=40), now  # due_of(early) is past, due_of(late) is ahead
        while late - early > timedelta(minutes=1):
            middle = early + (late - early) / 2
            if await due_of(middle) > now + timedelta(minutes=10):
                late = middle
            else:
                early = middle
        receipts = [(late + timedelta(minutes=5 * i)).astimezone(VN_TZ).replace(microsecond=0) for i in range(count)]
        codes = [case_code(AGENCY) for _ in range(count)]
        events = [received(code, at=at.isoformat()) for code, at in zip(codes, receipts, strict=True)]
        response = await client.post(f"{urls['intake']}/v1/events", json={"events": events}, headers=AUTH)
        assert response.status_code == 202, response.text

        async def listed() -> bool:
            r = await client.get(f"{urls['deadline']}/v1/cases/due-soon", params={"limit": 100}, headers=AUTH)
            return {i["case_code"] for i in r.json()["items"]} >= set(codes)

        await eventually(listed, timeout=60)
    return codes


async def no_english(page: Any, where: str) -> None:
    text = await page.inner_text("body")
    assert not english_words(text), f"{where}: English on the page: {english_words(text)}\n{text[:2000]}"


async def has_menu(page: Any) -> None:
    assert await page.locator('header nav[aria-label="Chức năng"] a[href="/overdue"]').is_visible()
    assert await page.locator("header form.find input").count() == 1


async def fits(page: Any, width: int, where: str) -> None:
    scroll = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{where} is {scroll}px wide on a {width}px screen"
    widest = await page.evaluate(
        "Math.max(0, ...Array.from(document.querySelectorAll('#case-list tr, .card'))"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= width, f"{where}: a card reaches {widest}px on a {width}px screen"


async def test_an_officers_first_day_at_both_widths(site: dict[str, str]) -> None:
    from playwright.async_api import async_playwright

    data = await seed(site)
    soon = await seed_due_soon(site)
    ours: list[str] = list(data["ours"])  # type: ignore[arg-type]
    web = site["web"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for n, (name, width) in enumerate(WIDTHS.items()):
                phone = width < 500
                context = await browser.new_context(viewport={"width": width, "height": 900}, is_mobile=phone)
                page = await context.new_page()
                await page.goto(f"{web}/login")
                await page.fill("#token", str(data["token"]))
                await page.click("button.primary")
                await page.wait_for_url(f"{web}/apology-due")

                # -- the lists: the total of every page, working days, the agency on every card
                for kind, total in (("apology-due", len(soon)), ("overdue", len(ours)), ("due-soon", len(soon))):
                    response = await page.goto(f"{web}/{kind}")
                    assert response is not None and response.status == 200
                    line = await page.inner_text("#list-total")
                    assert line.startswith(f"{total} hồ sơ"), (kind, line)
                    if kind == "overdue":
                        assert "trang này 1–20" in line
                        assert re.search(
                            r"quá \d+ ngày .*làm việc", await page.inner_text("#case-list tbody tr:first-child")
                        )
                    agencies = page.locator("#case-list td.agency")
                    assert await agencies.count() == min(total, 20)
                    assert await agencies.first.is_visible(), f"{kind}: the agency is hidden at {width}px"
                    assert "Sở Nông nghiệp và Môi trường" in await agencies.first.inner_text()
                    await fits(page, width, f"/{kind}")
                    await no_english(page, f"/{kind} at {width}px")
                    await page.screenshot(path=SHOTS / f"first-day-{kind}-{name}.png", full_page=True)

                # -- search: lower case and spaces find the case as stored
                typed = " " + ours[n].lower().replace("-", " - ", 1)
                await page.fill("#find-code", typed)
                await page.click("header form.find button")
                await page.wait_for_url(f"**/cases/{ours[n]}")
                assert ours[n] in await page.inner_text("main")

                # -- an unknown URL: a Vietnamese page with the menu, not {"detail": "Not Found"}
                response = await page.goto(f"{web}/khong-co-trang-nay")
                assert response is not None and response.status == 404
                assert await page.inner_text("h1") == "Không tìm thấy"
                assert "Không có trang này" in await page.inner_text(".alert")
                await has_menu(page)
                await no_english(page, "404")
                await fits(page, width, "404")
                await page.screenshot(path=SHOTS / f"first-day-404-{name}.png", full_page=True)

                # -- a case code that does not exist (typed in lower case)
                response = await page.goto(f"{web}/find?code={AGENCY.lower()}-000000-99999")
                assert response is not None and response.status == 404
                assert f"Không tìm thấy hồ sơ {AGENCY}-000000-99999" in await page.inner_text(".alert")
                await no_english(page, "404 case")

                # -- 403: an agency outside the token's subtree
                response = await page.goto(f"{web}/overdue?agency={COMMUNE}")
                assert response is not None and response.status == 403
                assert await page.inner_text("h1") == "Không có quyền xem nội dung này"
                assert f"Cơ quan {COMMUNE} nằm ngoài phạm vi mã truy cập của bạn" in await page.inner_text(".alert")
                await has_menu(page)
                await no_english(page, "403")
                await fits(page, width, "403")
                await page.screenshot(path=SHOTS / f"first-day-403-{name}.png", full_page=True)

                # -- 422: a period that is not one, refused with the forms officers write
                response = await page.goto(f"{web}/indicators?period=13/2026")
                assert response is not None and response.status == 422
                alert = await page.inner_text(".alert")
                assert "Kỳ báo cáo" in alert and "11/2026" in alert and "6 tháng đầu năm 2026" in alert
                await has_menu(page)
                await no_english(page, "422 period")
                await fits(page, width, "422 period")
                await page.screenshot(path=SHOTS / f"first-day-422-period-{name}.png", full_page=True)

                # -- 422: a new return date before the statutory due date
                code = ours[2 + n]
                await page.goto(f"{web}/cases/{code}")
                async with httpx.AsyncClient() as client:
                    case = (await client.get(f"{site['deadline']}/v1/cases/{code}", headers=AUTH)).json()
                due = datetime.fromisoformat(case["due_at"]).astimezone(VN_TZ)
                await page.fill("#reason", "Hồ sơ cần xác minh thêm")
                # the field's `min` stops this in a browser that checks it; the server must still say why
                await page.evaluate("document.getElementById('new_due_at').removeAttribute('min')")
                await page.fill("#new_due_at", (due - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
                async with page.expect_response(lambda r: r.url.endswith("/apology")) as info:
                    await page.click("#apology-form button")
                assert (await info.value).status == 422
                alert = await page.inner_text("#apology-error")
                assert "Ngày hẹn trả mới phải sau hạn giải quyết theo quy định" in alert
                assert due.strftime("%d/%m/%Y %H:%M") in alert
                await has_menu(page)
                await no_english(page, "422 new_due_at")
                await fits(page, width, "422 new_due_at")
                await page.screenshot(path=SHOTS / f"first-day-422-apology-{name}.png", full_page=True)

                # -- 409: a colleague issued the apology while this form was open
                await page.goto(f"{web}/cases/{code}")
                async with httpx.AsyncClient() as client:
                    first = await client.post(
                        f"{site['deadline']}/v1/cases/{code}/apology",
                        json={"reason": "Đồng nghiệp đã xin lỗi", "new_due_at": (due + timedelta(days=30)).isoformat()},
                        headers=AUTH,
                    )
                    assert first.status_code == 201, first.text
                await page.fill("#reason", "Hồ sơ cần xác minh thêm")
                await page.fill("#new_due_at", (due + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M"))
                async with page.expect_response(lambda r: r.url.endswith("/apology")) as info:
                    await page.click("#apology-form button")
                assert (await info.value).status == 409
                assert "Hồ sơ đã có phiếu xin lỗi; chỉ được hẹn lại một lần." in await page.inner_text("#apology-error")
                await has_menu(page)
                await no_english(page, "409")
                await fits(page, width, "409")
                await page.screenshot(path=SHOTS / f"first-day-409-{name}.png", full_page=True)
                await context.close()
        finally:
            await browser.close()


def test_the_english_check_finds_what_an_api_would_leak() -> None:
    assert english_words("Không tìm thấy hồ sơ 000.00.02.H99-261116-00001 (no case '000.00.02.H99-1')") == [
        "case",
        "no",
    ]
    assert english_words('{"detail":"Not Found"}') == ["detail", "found", "not"]
    assert english_words("Tải CSV · Excel (XLSX) · 390px · quá 431 ngày làm việc · Q1/2026") == []

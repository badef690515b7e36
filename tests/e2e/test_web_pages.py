"""The officers' pages, driven in headless Chromium against the services as real processes.

Log in (a wrong token first), the overdue list with paging and a filter, CSV and XLSX downloads, a
case page, an apology and its letter, a case outside the token's subtree, the indicators page, a
phone-sized screen, and the landing page after a fresh login ("Hồ sơ cần xin lỗi"). A screenshot of
every page is kept in tests/output/screenshots/.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from deploy.local import infra
from shared.domain.calendar import VN_TZ
from shared.settings import Settings
from tests.conftest import AUTH, settings_env
from tests.support.events import AGENCY, COMMUNE, case_code, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = infra.REPO / "tests" / "output" / "screenshots"
ONLINE, DIRECT, OUTSIDE = 10, 15, 3


@pytest.fixture
async def site(settings: Settings, run_dir: Path) -> AsyncIterator[dict[str, str]]:
    assert shutil.which(CHROMIUM), "these tests need Debian's chromium package (.ci/run installs it)"
    folder = run_dir / f"web-{settings.topic_prefix}"
    async with infra.running_services(folder, settings_env(settings), web=True, ready_timeout=60) as services:
        yield services.urls


async def seed(urls: dict[str, str]) -> dict[str, object]:
    """25 overdue cases of one department (10 online), 3 of a commune outside its subtree."""
    ours = [case_code(AGENCY) for _ in range(ONLINE + DIRECT)]
    theirs = [case_code(COMMUNE) for _ in range(OUTSIDE)]
    events = [
        received(code, at=f"2026-10-{1 + i % 9:02d}T09:15:00+07:00", channel="online" if i < ONLINE else "direct")
        for i, code in enumerate(ours)
    ] + [received(code, at="2026-10-05T10:00:00+07:00", level="commune") for code in theirs]
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{urls['intake']}/v1/events", json={"events": events}, headers=AUTH)
        assert response.status_code == 202, response.text
        token = await client.post(
            f"{urls['intake']}/v1/admin/agency-tokens", json={"agency_code": AGENCY}, headers=AUTH
        )
        assert token.status_code == 201, token.text

        async def listed() -> bool:
            r = await client.get(f"{urls['deadline']}/v1/cases/overdue", params={"limit": 100}, headers=AUTH)
            return len(r.json()["items"]) == len(events)

        async def counted() -> bool:
            r = await client.get(f"{urls['metrics']}/v1/stats", headers=AUTH)
            return r.json()["cases_received"] == len(events)

        await eventually(listed, timeout=60)
        await eventually(counted, timeout=60)
    return {"token": token.json()["token"], "ours": ours, "theirs": theirs}


async def test_an_officer_works_through_the_pages(site: dict[str, str], tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    data = await seed(site)
    web = site["web"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            context = await browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
            page = await context.new_page()

            # -- log in: a wrong token first, then the department's token
            await page.goto(f"{web}/overdue")
            assert "/login" in page.url
            await page.fill("#token", "not-a-token")
            await page.click("button.primary")
            assert "Mã truy cập không đúng hoặc đã bị thu hồi" in await page.inner_text(".alert")
            await page.screenshot(path=SHOTS / "login.png", full_page=True)
            await page.fill("#token", str(data["token"]))
            await page.click("button.primary")
            await page.wait_for_url(f"{web}/overdue")
            assert await page.inner_text("h1") == "Hồ sơ quá hạn"

            # -- the list: only the department's cases, 20 a page, then the next page and back
            first = await codes_on(page)
            assert len(first) == 20 and all(code.startswith(AGENCY) for code in first)
            await page.screenshot(path=SHOTS / "overdue.png", full_page=True)
            await page.click("#page-next")
            second = await codes_on(page)
            assert "Trang 2" in await page.inner_text(".pager")
            assert len(second) == ONLINE + DIRECT - 20
            assert set(first) | set(second) == set(data["ours"])
            await page.click("#page-previous")
            assert await codes_on(page) == first

            # -- a filter, and the downloads that follow it
            await page.select_option("#f-channel", "online")
            await page.click("#apply-filters")
            online = await codes_on(page)
            assert len(online) == ONLINE
            assert all(
                "Trực tuyến" in cell
                for cell in await page.locator("#case-list tbody td:nth-child(2)").all_inner_texts()
            )
            async with page.expect_download() as info:
                await page.click("#download-csv")
            download = await info.value
            rows = list(csv.reader(io.StringIO((await read(download, tmp_path)).decode("utf-8-sig"))))
            assert rows[0][0] == "Mã hồ sơ" and sorted(r[0] for r in rows[1:]) == sorted(online)
            async with page.expect_download() as info:
                await page.click("#download-xlsx")
            sheet = load_workbook(io.BytesIO(await read(await info.value, tmp_path))).active
            header = int(sheet.auto_filter.ref.split(":")[0][1:])  # the filters are written above the table
            assert sheet.max_row == header + ONLINE and sheet.cell(header, 1).value == "Mã hồ sơ"

            # -- a case: remaining time in words, timeline, an apology and its letter
            await page.click(f"#case-list a >> text={online[0]}")
            await page.wait_for_url(f"**/cases/{online[0]}")
            assert (await page.inner_text("#remaining")).startswith("Quá ")
            assert "Tiếp nhận hồ sơ" in await page.inner_text("#timeline")
            await page.screenshot(path=SHOTS / "case.png", full_page=True)
            async with httpx.AsyncClient() as client:
                case = (await client.get(f"{site['deadline']}/v1/cases/{online[0]}", headers=AUTH)).json()
            later = datetime.fromisoformat(case["due_at"]).astimezone(VN_TZ) + timedelta(days=60)
            await page.fill("#reason", "Hồ sơ cần xác minh thêm nguồn gốc đất")
            await page.fill("#new_due_at", later.strftime("%Y-%m-%dT%H:%M"))
            await page.fill("#applicant_name", "Ông Nguyễn Văn An")
            await page.click("#apology-form button")
            await page.wait_for_url(f"**/cases/{online[0]}?issued=1")
            assert "Đã ghi nhận phiếu xin lỗi" in await page.inner_text(".notice")
            assert await page.inner_text("#apology-reason") == "Hồ sơ cần xác minh thêm nguồn gốc đất"
            assert await page.locator("#apology-form").count() == 0  # a second one is not offered
            assert "(Mẫu số 04, Thông tư số 03/2025/TT-VPCP)" in await page.content()  # the case's rule set's form
            await page.screenshot(path=SHOTS / "case-apology.png", full_page=True)
            async with page.expect_download() as info:
                await page.click("#letter-pdf")
            assert (await read(await info.value, tmp_path)).startswith(b"%PDF")
            async with page.expect_download() as info:
                await page.click("#letter-docx")
            assert (await read(await info.value, tmp_path))[:2] == b"PK"

            # -- a case of another agency: as if absent (contract v1.1), in Vietnamese
            response = await page.goto(f"{web}/cases/{data['theirs'][0]}")
            assert response is not None and response.status == 404
            assert "Không tìm thấy" in await page.inner_text("h1")

            # -- indicators for the year: Biểu 06 counts the department's cases only
            await page.goto(f"{web}/indicators?period=2026")
            assert await page.inner_text("#b06-total") == str(ONLINE + DIRECT)
            assert await page.inner_text("#b06-online") == str(ONLINE)
            assert await page.inner_text("#rate-online") == "40,00 %"
            assert await page.locator("#index-766 tbody tr").count() > 5
            assert await page.locator("#index-par tbody tr").count() >= 3
            assert await page.locator("#rates-by-month svg.chart").count() == 6  # issue #20: every rate by month
            await page.screenshot(path=SHOTS / "indicators.png", full_page=True)
            await page.fill("#period", "2026-13")
            await page.click("#show-indicators")
            assert "Kỳ báo cáo chưa hợp lệ" in await page.inner_text(".alert")

            # -- a phone: the list and the case fit the screen's width
            phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
            await phone.add_cookies(await context.cookies())
            small = await phone.new_page()
            for name, path in (
                ("phone-overdue", "/overdue"),
                ("phone-case", f"/cases/{online[0]}"),
                ("phone-apology-due", "/apology-due"),
            ):
                await small.goto(f"{web}{path}")
                width = await small.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, f"{path} is {width}px wide on a 390px screen"
                await small.screenshot(path=SHOTS / f"{name}.png", full_page=True)

            # -- log out: the pages ask for the token again
            await page.goto(f"{web}/overdue")
            await page.click(".who button")
            await page.wait_for_url(f"{web}/login")
            await page.goto(f"{web}/due-soon")
            assert "/login" in page.url

            # -- logged in afresh (no deep link), an officer lands on the cases needing an apology (#19)
            await page.goto(f"{web}/login")
            await page.fill("#token", str(data["token"]))
            await page.click("button.primary")
            await page.wait_for_url(f"{web}/apology-due")
            assert await page.inner_text("h1") == "Hồ sơ cần xin lỗi"
            assert await page.get_attribute('header nav a[aria-current="page"]', "href") == "/apology-due"
            assert await page.inner_text("#count-total") == "0"  # the seeded cases are long overdue
            await page.screenshot(path=SHOTS / "apology-due.png", full_page=True)
        finally:
            await browser.close()


async def codes_on(page) -> list[str]:  # type: ignore[no-untyped-def]
    return await page.locator("#case-list tbody td:first-child a").all_inner_texts()


async def read(download, folder: Path) -> bytes:  # type: ignore[no-untyped-def]
    target = folder / download.suggested_filename
    await download.save_as(target)
    return target.read_bytes()

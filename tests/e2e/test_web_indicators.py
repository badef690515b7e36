"""The indicators pages in headless Chromium at 1366 px and 390 px (issue #20 items 4, 5, 7).

Cases over three months for two departments and a commune; then, as the provincial office and as a
department's officer: the page fits the screen (no sideways scrolling), every rate is a chart with
month labels and printed values that equal the API's answers month by month, the agencies are ranked
worst-first with the API's numbers, the 766 points by group equal the API's, and no English text or
internal id reaches the page. Screenshots go to tests/output/screenshots/ with the other pages'.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local import infra
from services.web.charts import value_text
from services.web.labels import points_text
from shared.settings import Settings
from tests.conftest import ADMIN_TOKEN, AUTH, settings_env
from tests.support.events import AGENCY, COMMUNE, case_code, event, received
from tests.support.kafka_tools import eventually

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
]
SHOTS = infra.REPO / "tests" / "output" / "screenshots"  # with the other pages' screenshots

FINANCE = "000.00.03.H99"  # Sở Tài chính
FULL_ONLINE_PROCEDURE = "1.012792"  # Đất đai, 3 working days, toàn trình, fee-bearing
PERIOD = "2026-11"
RATES = ("on_time", "online", "full_online", "online_payment", "digitized", "apology_coverage")
WIDTHS = {"desktop": (1366, 900), "phone": (390, 844)}
# English or internal ids that must not reach an officer (issue #20 item 7); codes and units are fine.
FORBIDDEN = re.compile(
    r"\b(?:[a-z]+_[a-z_]+|\d\.(?:tt|cttd)|766-\d{4}\.\d|par-\d{4}\.\d|null|None|true|false|NaN|the|not|case|cases|"
    r"rate|period|agency|scored|needs|data|sync|online|direct|postal|province|district|commune|pending|every|"
    r"read as|error|internal)\b"
)

# Every word of the page written in plain ASCII must be a Vietnamese word without diacritics or a code.
VIETNAMESE_ASCII = set(
    "an ban cho chia danh gia giao in khai khi kho minh qua quan quy sau sinh so thang thanh thao theo tin "
    "trong xanh xem xin y du khoa long nam ninh trung".split()
)
CODE = re.compile(r"T\d{1,2}|Q[1-4]|H[12]|9M|\d+[ab]|TTHC|UBND|CSDL|DVCQG|BCQG|PAR|INDEX")


@pytest.fixture
async def site(settings: Settings, run_dir: Path) -> AsyncIterator[dict[str, str]]:
    assert shutil.which(CHROMIUM), "these tests need Debian's chromium package"
    folder = run_dir / f"web-indicators-{settings.topic_prefix}"
    async with infra.running_services(folder, settings_env(settings), web=True, ready_timeout=60) as services:
        yield services.urls


def cases_of(agency: str, month: int, count: int) -> list[dict[str, Any]]:
    """`count` cases received in the month: some online (toàn trình, paid, digitized), some finished
    within two days (on time), some a month later (late), one late with an apology."""
    events: list[dict[str, Any]] = []
    level = "commune" if agency == COMMUNE else "province"
    for i in range(count):
        code = case_code(agency)
        day = 2 + i
        at = f"2026-{month:02d}-{day:02d}T09:00:00+07:00"
        online = i % 3 != 0
        events.append(
            received(
                code,
                at=at,
                level=level,
                procedure_code=FULL_ONLINE_PROCEDURE,
                channel="online" if online else "direct",
                online_mode=("full" if i % 2 else "partial") if online else None,
            )
        )
        if online and i % 2:
            events.append(event("case.paid_online", code, at, amount=50000, gateway="dvcqg"))
        if i % 4 != 3:
            events.append(
                event("case.digitized", code, at, components_digitized=True, result_digitized=True, reused=False)
            )
        if i % 5 in (0, 1, 2):
            events.append(
                event("case.processed", code, f"2026-{month:02d}-{day + 1:02d}T15:00:00+07:00", outcome="approved")
            )
        elif i % 5 == 3 and month < 11:  # late; November's late ones stay open (overdue), December is the future
            events.append(
                event("case.processed", code, f"2026-{month + 1:02d}-{day:02d}T15:00:00+07:00", outcome="approved")
            )
    return events


async def seed(urls: dict[str, str]) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    for month in (9, 10, 11):
        for agency, count in ((AGENCY, 8 + month % 3), (FINANCE, 5), (COMMUNE, 6 + month % 2)):
            events += cases_of(agency, month, count)
    async with httpx.AsyncClient(timeout=60) as client:
        for start in range(0, len(events), 500):
            response = await client.post(
                f"{urls['intake']}/v1/events", json={"events": events[start : start + 500]}, headers=AUTH
            )
            assert response.status_code == 202, response.text
        token = await client.post(
            f"{urls['intake']}/v1/admin/agency-tokens", json={"agency_code": AGENCY}, headers=AUTH
        )
        assert token.status_code == 201, token.text
        received_count = sum(1 for e in events if e["type"] == "case.received")

        async def counted() -> bool:
            r = await client.get(f"{urls['metrics']}/v1/stats", headers=AUTH)
            return bool(r.json()["cases_received"] == received_count)

        await eventually(counted, timeout=90)

        async def settled() -> bool:  # every event folded: the finished counts stop moving
            r = await client.get(f"{urls['metrics']}/v1/indicators", params={"period": "2026"}, headers=AUTH)
            return bool(r.json()["finished"]["total"] == sum(1 for e in events if e["type"] == "case.processed"))

        await eventually(settled, timeout=90)
    return {"token": token.json()["token"]}


async def api(urls: dict[str, str], path: str, token: str, **params: Any) -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(
            f"{urls['metrics']}{path}", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        return response.json()


async def chart_values(page: Any, selector: str, attribute: str) -> dict[str, str]:
    return await page.evaluate(
        """([selector, attribute]) => Object.fromEntries([...document.querySelectorAll(selector + ' text.value')]
            .map(t => [t.getAttribute('data-' + attribute), t.textContent]))""",
        [selector, attribute],
    )


async def check_page(page: Any, urls: dict[str, str], token: str, agency: str = "", rank: str = "on_time") -> None:
    """The page against the API: charts by month, ranking, 766 groups; no overflow, no English."""
    width = page.viewport_size["width"]  # not innerWidth: a phone's layout viewport grows with the page
    scroll = await page.evaluate("Math.max(document.documentElement.scrollWidth, window.innerWidth)")
    assert scroll <= width, f"{page.url} is {scroll}px wide on a {width}px screen"
    text = await page.inner_text("main")
    leaks = sorted({m.group(0) for m in FORBIDDEN.finditer(text)})
    assert not leaks, f"English or internal ids on {page.url}: {leaks}"
    ascii_words = {w for w in re.findall(r"\w+", text) if w.isascii() and not w.isdigit()}
    strange = sorted(w for w in ascii_words if w.lower() not in VIETNAMESE_ASCII and not CODE.fullmatch(w))
    assert not strange, f"words that are neither Vietnamese nor a code on {page.url}: {strange}"
    params = {"agency": agency} if agency else {}

    answers = {
        m: await api(urls, "/v1/indicators", token, period=m, **params)
        for m in ("2026-08", "2026-09", "2026-10", "2026-11")
    }
    # every rate by month: month labels T1…T11 (not December on the November page), the API's values
    for rate in RATES:
        labels = await page.locator(f"#chart-{rate} svg text.month").all_text_contents()
        assert labels == [f"T{m}" for m in range(1, 12)], labels
        svg = page.locator(f"#chart-{rate} svg")
        assert await svg.get_attribute("role") == "img" and (await svg.get_attribute("aria-label"))
        assert await page.locator(f"#chart-{rate} svg > title").count() == 1
        printed = await chart_values(page, f"#chart-{rate}", "month")
        for month, answer in answers.items():
            assert printed[month] == value_text(answer["rates"][rate]), (rate, month, printed[month], answer["rates"])
    assert "Chỉ tiêu: trên 30%" in await page.inner_text("#chart-online")  # the plan's words, on the chart

    # agencies ranked worst first, with the API's on-time rate of each
    by_agency = await api(urls, "/v1/indicators/by-agency", token, period=PERIOD, **params)
    shown: dict[str, str] = {}
    for level in ("province", "commune"):
        if await page.locator(f"#ranking-{level}").count():
            shown |= await chart_values(page, f"#ranking-{level}", "agency")
    assert shown, "no ranking on the page"
    for code, value in shown.items():
        answer = await api(urls, "/v1/indicators", token, period=PERIOD, agency=code)
        assert answer["rates"][rank] is not None and value == f"{value_text(answer['rates'][rank])}%", (code, value)
    assert set(shown) <= {row["agency_code"] for row in by_agency["agencies"]}
    province = await chart_values(page, "#ranking-province", "agency")
    rates = [float(v.rstrip("%").replace(",", ".")) for v in province.values()]
    assert rates == sorted(rates), "the ranking is worst first"

    # the 766 points by group, as the API gives them
    index = await api(urls, "/v1/index/766", token, period=PERIOD, **params)
    groups = await chart_values(page, "#chart-766", "group")
    for group in index["groups"]:
        assert groups[group["group"]] == f"{points_text(group['points'])} / {points_text(group['max_points'])}"
    summary = await page.inner_text("#index-766-summary")
    assert (
        f"{points_text(index['total'])} / {points_text(index['scored_max_total'])} điểm" in summary
        and "dữ liệu ngoài luồng hồ sơ" in summary
    )
    unscored = await page.inner_text("#index-766-unscored")
    assert "TTHC công bố đúng hạn" in unscored


async def test_the_indicators_pages_in_a_browser_at_both_widths(site: dict[str, str]) -> None:
    from playwright.async_api import async_playwright

    data = await seed(site)
    web = site["web"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for who, token in (("admin", ADMIN_TOKEN), ("officer", str(data["token"]))):
                for size, (width, height) in WIDTHS.items():
                    context = await browser.new_context(
                        viewport={"width": width, "height": height}, is_mobile=size == "phone"
                    )
                    page = await context.new_page()
                    await page.goto(f"{web}/login")
                    await page.fill("#token", token)
                    await page.click("button.primary")
                    if who == "admin":  # the provincial office lands on the indicators by agency (#20)
                        await page.wait_for_url(f"{web}/indicators")
                        assert await page.locator("#ranking-province").count() == 1
                        assert await page.locator("#ranking-commune").count() == 1
                    await page.goto(f"{web}/indicators?period={PERIOD}")
                    await check_page(page, site, token)
                    text = await page.inner_text("main")
                    assert "Tỷ lệ đúng hạn cấp tỉnh" in text and "Bộ tiêu chí 766 (bản 2026.2)" in text
                    assert "cấp huyện" not in text.lower() and "UBND huyện" not in text  # no district in 2026
                    assert "T12" not in await page.inner_text("#rates-by-month")
                    await page.screenshot(path=SHOTS / f"indicators-{who}-{size}.png", full_page=True)
                    if who == "admin":
                        await page.goto(f"{web}/indicators?period={PERIOD}&agency={AGENCY}&rank=online")
                        await check_page(page, site, token, agency=AGENCY, rank="online")
                        await page.screenshot(path=SHOTS / f"indicators-agency-{size}.png", full_page=True)
                    if who == "admin" and size == "phone":
                        # a malformed period: said in Vietnamese, no developer's message
                        await page.goto(f"{web}/indicators?period=2026-13")
                        text = await page.inner_text("main")
                        assert "Kỳ báo cáo chưa hợp lệ" in text and not FORBIDDEN.search(text), text
                        # before 01/07/2025 the district existed: listed, and its PAR row is there
                        await page.goto(f"{web}/indicators?period=2025-06")
                        assert "UBND huyện Mẫu Sơn" in await page.inner_text("#by-agency")
                        assert "UBND huyện Mẫu Sơn" in await page.inner_text("#i-agency")
                        assert "cấp huyện" in await page.inner_text("#index-par")
                        months = await page.locator("#chart-on_time svg text.month").all_text_contents()
                        assert months == [f"T{m}" for m in range(1, 7)]
                        scroll = await page.evaluate(
                            "Math.max(document.documentElement.scrollWidth, window.innerWidth)"
                        )
                        assert scroll <= width, f"2025-06 is {scroll}px wide on a {width}px screen"
                        await page.screenshot(path=SHOTS / "indicators-2025-06-phone.png", full_page=True)
                    await context.close()
        finally:
            await browser.close()

"""Trust at the boundary (contract v1.1) through the real apps, broker and store: inert exports and
letters, any case code reachable, 4xx (never 5xx) for bad input, body and rate limits, webhooks
never unsigned and never to a refused address."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
import time
import zipfile
from urllib.parse import quote, unquote
from xml.dom import minidom

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from openpyxl import load_workbook

from services.deadline.app import create_app as deadline_app
from services.deadline.timers import TIMER_TYPES
from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from services.web.app import COOKIE
from services.web.app import create_app as web_app
from shared.settings import Settings
from shared.webhooks import verify
from tests.conftest import ADMIN_TOKEN, AUTH, serve
from tests.integration.test_pull_mode import running
from tests.support.events import AGENCY, case_code, received, wire
from tests.support.kafka_tools import eventually, produce_raw

pytestmark = pytest.mark.integration

FORMULA = '=HYPERLINK("http://evil.example/x","Bấm")'  # a field code the event schema lets through
AS_OF = "2026-06-01T09:00:00+07:00"  # every case below is overdue by then


def path_of(code: str) -> str:
    return quote(code, safe="")


async def produce(settings: Settings, *bodies: dict) -> None:
    """Straight onto the case topic, as if the intake had let them through."""
    messages = [wire(body, f"boundary-{body['case_code']}-{i}") for i, body in enumerate(bodies)]
    await produce_raw(settings.kafka_bootstrap, settings.case_events_topic, messages)


async def case_of(client: httpx.AsyncClient, code: str) -> dict:
    async def check():
        r = await client.get(f"/v1/cases/{path_of(code)}", headers=AUTH)
        return r.json() if r.status_code == 200 else None

    return await eventually(check, timeout=30)


def filename_star(response: httpx.Response) -> str:
    header = response.headers["content-disposition"]
    assert header.isascii() and re.search(r'filename="[A-Za-z0-9._-]+"', header), header
    match = re.search(r"filename\*=UTF-8''(\S+)", header)
    assert match, header
    return unquote(match[1])


def assert_error(response: httpx.Response, status: int, loc: list | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "details"}
    if loc is not None:
        assert [d["loc"] for d in error["details"]][0] == loc, error


async def test_exports_letters_and_odd_case_codes(settings: Settings) -> None:
    formula_code, slash_code, accented_code = case_code(), f"{AGENCY}/260316-0001", f"{AGENCY}-ĐÀ-{time.time_ns()}"
    await produce(
        settings,
        received(formula_code, field_code=FORMULA),
        {**received(slash_code), "agency_code": AGENCY},
        {**received(accented_code), "agency_code": AGENCY},
    )
    reason = 'Chờ xác minh </w:t></w:r><w:r><w:t>CHÈN & <b>"x"</b>'
    async with serve(deadline_app(settings)) as deadline:
        for code in (formula_code, slash_code, accented_code):
            assert (await case_of(deadline, code))["case_code"] == code

        # the lists: CSV and XLSX cells are inert, numbers and dates real
        params = {"as_of": AS_OF, "format": "csv"}
        csv_response = await deadline.get("/v1/cases/overdue", params=params, headers=AUTH)
        assert csv_response.status_code == 200 and filename_star(csv_response) == "ho-so-qua-han.csv"
        rows = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig"))))
        header = rows[0]
        by_code = {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}
        assert by_code[formula_code]["Lĩnh vực"] == "'" + FORMULA
        hours = by_code[formula_code]["Số giờ làm việc còn lại"]
        assert float(hours) < 0 and not hours.startswith("'")
        assert by_code[formula_code]["Hạn giải quyết"].startswith("2026-03-30T")  # ISO instant
        xlsx = await deadline.get("/v1/cases/overdue", params={**params, "format": "xlsx"}, headers=AUTH)
        assert filename_star(xlsx) == "ho-so-qua-han.xlsx"
        sheet = load_workbook(io.BytesIO(xlsx.content)).active
        header = int(re.search(r"\d+", sheet.auto_filter.ref)[0])  # the table starts below its notes
        titles = [c.value for c in sheet[header]]
        row = next(r for r in sheet.iter_rows(min_row=header + 1) if r[0].value == formula_code)
        cells = dict(zip(titles, row, strict=True))
        assert cells["Lĩnh vực"].data_type == "s" and cells["Lĩnh vực"].value == "'" + FORMULA
        assert cells["Số giờ làm việc còn lại"].data_type == "n" and cells["Số giờ làm việc còn lại"].value < 0
        assert cells["Hạn giải quyết"].is_date
        with zipfile.ZipFile(io.BytesIO(xlsx.content)) as archive:
            assert "<f>" not in archive.read("xl/worksheets/sheet1.xml").decode()

        # a case code with '/' and one in Vietnamese letters: page, apology and letter
        assert_error(await deadline.get(f"/v1/cases/{path_of(AGENCY + '/none')}", headers=AUTH), 404)
        for code in (slash_code, accented_code):
            answer = await deadline.post(
                f"/v1/cases/{path_of(code)}/apology",
                json={"reason": reason, "new_due_at": "2026-04-20T17:00:00+07:00", "applicant_name": "Bà A & <B>"},
                headers=AUTH,
            )
            assert answer.status_code == 201, answer.text
            letters = answer.json()["letter"]
            docx = await deadline.get(letters["docx"], headers=AUTH)
            assert docx.status_code == 200, docx.text
            assert filename_star(docx) == f"phieu-xin-loi-{code}.docx"
            pdf = await deadline.get(
                f"/v1/cases/{path_of(code)}/apology-letter", params={"format": "pdf"}, headers=AUTH
            )
            assert pdf.status_code == 200 and filename_star(pdf) == f"phieu-xin-loi-{code}.pdf"
            with zipfile.ZipFile(io.BytesIO(docx.content)) as archive:
                document = minidom.parseString(archive.read("word/document.xml"))  # well formed
            shown = "".join(
                n.data for t in document.getElementsByTagName("w:t") for n in t.childNodes if n.nodeType == n.TEXT_NODE
            )
            assert reason.rstrip(".") in shown and "Bà A & <B>" in shown and code in shown
            assert not document.getElementsByTagName("b")


async def test_bad_list_input_is_a_4xx_naming_the_field(settings: Settings) -> None:
    def cursor(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()

    async with serve(deadline_app(settings)) as deadline:
        cases = [
            ({"cursor": cursor({"a": 1, "b": 2})}, ["query", "cursor"]),
            ({"cursor": cursor(["2026-03-16T09:15:00", "X"])}, ["query", "cursor"]),
            ({"cursor": cursor([7, "X"])}, ["query", "cursor"]),
            ({"as_of": "0001-01-01T00:00:00+00:00"}, ["query", "as_of"]),
            ({"as_of": "9999-12-31T23:59:59+07:00"}, ["query", "as_of"]),
            ({"as_of": "2026-03-16T09:15:00"}, ["query", "as_of"]),  # no offset
            ({"limit": 0}, ["query", "limit"]),
            ({"limit": 10**30}, ["query", "limit"]),
        ]
        for path in ("/v1/cases/overdue", "/v1/cases/due-soon"):
            for params, loc in cases:
                assert_error(await deadline.get(path, params=params, headers=AUTH), 422, loc)


async def test_metrics_bad_periods_are_422_naming_the_field(settings: Settings) -> None:
    async with serve(metrics_app(settings)) as metrics:
        for path in ("/v1/indicators", "/v1/index/766"):
            for period in ("9999", "2026-01-01..9999-12-31", "2014-12", "1900-01-01..2026-01-01"):
                response = await metrics.get(path, params={"period": period}, headers=AUTH)
                assert_error(response, 422, ["query", "period"])
        for path in ("/v1/index/par", "/v1/indicators/monthly"):
            for year in (9999, 1999):
                assert_error(await metrics.get(path, params={"year": year}, headers=AUTH), 422, ["query", "year"])
        ok = await metrics.get("/v1/indicators", params={"period": "2026-01-01..2026-03-31"}, headers=AUTH)
        assert ok.status_code == 200
        empty_agency = await metrics.get("/v1/indicators/monthly", params={"year": 2039, "agency": ""}, headers=AUTH)
        assert empty_agency.status_code == 200  # schemathesis found a 500 here
        unknown = await metrics.get("/v1/indicators/monthly", params={"year": 2026, "agency": "X"}, headers=AUTH)
        assert_error(unknown, 422, ["query", "agency"])


async def test_body_size_and_rate_limits_on_deadline_and_metrics(settings: Settings) -> None:
    tight = settings.model_copy(update={"max_body_bytes": 1000, "rate_limit_per_s": 0.2, "rate_limit_burst": 3})
    async with (
        serve(intake_app(settings)) as intake,
        serve(deadline_app(tight)) as deadline,
        serve(metrics_app(tight)) as metrics,
    ):
        token = (await intake.post("/v1/admin/agency-tokens", json={"agency_code": AGENCY}, headers=AUTH)).json()
        officer = {"Authorization": f"Bearer {token['token']}"}
        for client in (deadline, metrics):
            # before authentication and before parsing: no credentials, a body over the limit
            big = await client.post("/v1/deadlines/compute", content=b"{" + b" " * 5000 + b"}")
            assert_error(big, 413)

            async def chunks():
                for _ in range(10):
                    yield b" " * 200

            if client is deadline:  # a route that reads a body: the streamed size counts too
                streamed = await client.post(
                    "/v1/deadlines/compute", content=chunks(), headers={"content-type": "application/json"}
                )
                assert_error(streamed, 413)

            async def known():
                r = await client.get("/v1/me", headers=officer)  # noqa: B023 - awaited in this iteration
                return r if r.status_code != 401 else None

            statuses = [(await eventually(known)).status_code]
            statuses += [(await client.get("/v1/me", headers=officer)).status_code for _ in range(4)]
            assert statuses[0] == 200 and 429 in statuses
            refused = await client.get("/v1/me", headers=officer)
            assert_error(refused, 429)
            assert int(refused.headers["retry-after"]) >= 1
            for _ in range(6):  # the admin token is exempt
                assert (await client.get("/v1/me", headers=AUTH)).status_code == 200


def receiver(seen: list[tuple[bytes, dict]]) -> FastAPI:
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        seen.append((await request.body(), dict(request.headers)))
        return Response(status_code=200)

    return app


async def deliveries(deadline: httpx.AsyncClient, code: str, status: str) -> list[dict] | None:
    rows = (await deadline.get("/v1/webhooks/deliveries", params={"case_code": code}, headers=AUTH)).json()
    return rows if len(rows) == len(TIMER_TYPES) and all(d["status"] == status for d in rows) else None


async def register_hook(intake: httpx.AsyncClient, url: str) -> None:
    agency = {"name": "Sở Tư pháp", "level": "province", "parent_code": "000.00.00.H99"}
    for refused in ("ftp://example.com/h", "http://169.254.169.254/latest", "http://[fe80::1]/h"):
        response = await intake.put(
            "/v1/admin/agencies/000.00.05.H99", json={**agency, "webhook_url": refused}, headers=AUTH
        )
        assert_error(response, 422, ["body", "webhook_url"])
    response = await intake.put("/v1/admin/agencies/000.00.05.H99", json={**agency, "webhook_url": url}, headers=AUTH)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ({"webhook_secret": ""}, "no webhook secret"),
        ({"webhook_secret": "s3cret", "webhook_allowed_networks": "10.0.0.0/8"}, "outside TTHC_WEBHOOK_ALLOWED"),
    ],
)
async def test_webhooks_without_a_secret_or_to_a_refused_address_are_not_sent(
    settings: Settings, update: dict, reason: str
) -> None:
    settings = settings.model_copy(update={"timer_interval_s": 0.3, **update})
    seen: list[tuple[bytes, dict]] = []
    code = case_code("000.00.05.H99")
    async with running(receiver(seen)) as url, serve(intake_app(settings)) as intake:
        await register_hook(intake, f"{url}/hook")
        async with serve(deadline_app(settings)) as deadline:
            response = await intake.post("/v1/events", json={"events": [received(code)]}, headers=AUTH)
            assert response.status_code == 202, response.text
            rows = await eventually(lambda: deliveries(deadline, code, "not_sent"), timeout=40)
            listed = (await deadline.get("/v1/webhooks/deliveries", params={"status": "not_sent"}, headers=AUTH)).json()
            metrics = (await deadline.get("/metrics")).text
            await asyncio.sleep(1.5)  # a few dispatcher rounds: still nothing goes out
    assert seen == []
    assert all(reason in d["reason"] for d in rows) and {d["idempotency_key"] for d in rows} <= {
        d["idempotency_key"] for d in listed
    }
    assert re.search(r'tthc_webhook_deliveries_total\{outcome="not_sent"\} [1-9]', metrics)


async def test_webhooks_are_signed_over_a_timestamp(settings: Settings) -> None:
    settings = settings.model_copy(update={"timer_interval_s": 0.3, "webhook_secret": "s3cret"})
    seen: list[tuple[bytes, dict]] = []
    code = case_code("000.00.05.H99")
    async with running(receiver(seen)) as url, serve(intake_app(settings)) as intake:
        await register_hook(intake, f"{url}/hook")
        async with serve(deadline_app(settings)) as deadline:
            response = await intake.post("/v1/events", json={"events": [received(code)]}, headers=AUTH)
            assert response.status_code == 202, response.text
            await eventually(lambda: deliveries(deadline, code, "delivered"), timeout=40)
    assert len(seen) == len(TIMER_TYPES)
    for body, headers in seen:
        assert verify("s3cret", headers, body, now=time.time())
        assert not verify("s3cret", headers, body, now=time.time() + 600)  # a replay later is refused
        moved = str(int(headers["x-tthc-timestamp"]) - 7)  # the signature binds the timestamp
        assert not verify("s3cret", {**headers, "x-tthc-timestamp": moved}, body, time.time())


async def test_web_pages_never_answer_5xx_for_bad_input(settings: Settings) -> None:
    code = f"{AGENCY}/260316-0002"
    await produce(settings, {**received(code), "agency_code": AGENCY})
    deadline_service, metrics_service = deadline_app(settings), metrics_app(settings)
    async with serve(deadline_service) as deadline, serve(metrics_service):
        await case_of(deadline, code)
        async with running(deadline_service) as deadline_url, running(metrics_service) as metrics_url:
            small = settings.model_copy(
                update={"deadline_url": deadline_url, "metrics_url": metrics_url, "max_body_bytes": 2000}
            )
            web = web_app(small)
            async with serve(web) as pages:
                pages.cookies.set(COOKIE, ADMIN_TOKEN)
                page = await pages.get(f"/cases/{path_of(code)}")
                assert page.status_code == 200 and code in page.text
                checks = [
                    ("GET", "/indicators?period=2026-01-01..9999-12-31"),
                    ("GET", "/indicators?period=9999"),
                    ("GET", "/overdue?cursor=" + base64.urlsafe_b64encode(b'{"a": 1}').decode()),
                    ("GET", "/overdue?limit=abc&sort=zzz"),
                    ("GET", f"/cases/{path_of(AGENCY + '/none')}"),
                    ("GET", f"/cases/{path_of(code)}/letter.docx"),  # no apology yet: 404
                    ("GET", "/export/overdue.pdf"),
                ]
                for method, target in checks:
                    response = await pages.request(method, target)
                    assert 400 <= response.status_code < 500, (target, response.status_code)
                big = await pages.post(f"/cases/{path_of(code)}/apology", content=b"reason=" + b"x" * 5000)
                assert big.status_code == 413

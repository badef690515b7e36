"""Outputs are inert (contract v1.1): spreadsheet cells, the DOCX letter, download file names,
webhook signatures and URLs; and the pure limits (body size, rate) every service shares."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import time
import zipfile
from datetime import UTC, datetime
from urllib.parse import unquote
from xml.dom import minidom

import httpx
import pytest
from fastapi import FastAPI, Request
from openpyxl import load_workbook

from services.deadline.letters.render import letter_fields, render_docx
from services.deadline.lists import _decode_cursor, _encode_cursor, check_as_of
from services.metrics.indicators import period_asked
from shared.domain.calendar import VN_TZ
from shared.exports import csv_bytes, csv_cell, neutralise, xlsx_bytes
from shared.limits import BodySizeLimit, RateLimiter
from shared.web import ApiError, content_disposition, install_error_handlers
from shared.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    UrlPolicy,
    WebhookUrlRefused,
    parse_networks,
    signature,
    signed_headers,
    verify,
)

# ---- spreadsheet cells -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_text_that_starts_a_formula_is_prefixed(text: str) -> None:
    assert neutralise(text) == "'" + text
    assert csv_cell(text) == "'" + text


def test_plain_text_numbers_and_dates_are_left_as_they_are() -> None:
    assert neutralise("G09-DD") == "G09-DD"
    assert csv_cell(-3) == -3 and csv_cell(-2.5) == -2.5
    moment = datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ)
    assert csv_cell(moment) == "2026-03-16T09:15:00+07:00"
    assert csv_cell(True) == "Có" and csv_cell(None) == ""


def test_csv_export_has_no_live_formula_and_keeps_negative_numbers() -> None:
    content = csv_bytes(["Lĩnh vực", "Giờ"], [['=HYPERLINK("http://evil","x")', -3.5], ["-cmd", 2]])
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[1] == ['\'=HYPERLINK("http://evil","x")', "-3.5"]
    assert rows[2] == ["'-cmd", "2"]


def test_xlsx_export_has_text_cells_real_numbers_and_date_cells() -> None:
    moment = datetime(2026, 3, 16, 2, 15, tzinfo=UTC)
    content = xlsx_bytes(
        "Quá hạn", ["Lĩnh vực", "Giờ", "Hạn"], [['=HYPERLINK("http://evil","x")', -3, moment], ["@x\x01", 0, None]]
    )
    sheet = load_workbook(io.BytesIO(content)).active
    formula, hours, due = sheet["A2"], sheet["B2"], sheet["C2"]
    assert formula.data_type == "s" and formula.value == '\'=HYPERLINK("http://evil","x")'
    assert hours.data_type == "n" and hours.value == -3
    assert due.is_date and due.value == datetime(2026, 3, 16, 9, 15)  # Vietnam wall time
    assert "yy" in due.number_format
    assert sheet["A3"].value.startswith("'@x")  # a control character cannot break the file either
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert "<f>" not in archive.read("xl/worksheets/sheet1.xml").decode()


# ---- file names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["phieu-xin-loi-000.00.02.H99-261123-0001.pdf", 'phieu-xin-loi-HỒ-SƠ-Đà/1";x.docx', "東京.csv"]
)
def test_content_disposition_carries_rfc5987_and_an_ascii_fallback(name: str) -> None:
    header = content_disposition(name)
    header.encode("latin-1")  # what failed before: a header must be latin-1 encodable
    assert header.isascii()
    match = re.fullmatch(r'attachment; filename="([A-Za-z0-9._-]+)"; filename\*=UTF-8\'\'(\S+)', header)
    assert match, header
    assert unquote(match[2]) == name
    assert match[1].endswith(name.rsplit(".", 1)[1])


# ---- the DOCX letter -------------------------------------------------------------------------


def _letter_xml(reason: str, applicant: str) -> str:
    moment = datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ)
    fields = letter_fields(
        agency_name="Sở <Tư pháp> & Co",
        parent_name="UBND",
        place="Hà Nội",
        applicant=applicant,
        case_code="000.00.02.H99-260316-0001",
        procedure_name="Cấp phép & <thẩm định>",
        received_at=moment,
        due_at=moment,
        reason=reason,
        new_due_at=moment,
        issued_at=moment,
    )
    with zipfile.ZipFile(io.BytesIO(render_docx(fields))) as archive:
        return archive.read("word/document.xml").decode("utf-8")


def test_docx_letter_escapes_every_field() -> None:
    reason = 'Thiếu giấy tờ </w:t></w:r><w:r><w:t>INJECTED & <b>"x"</b>'
    applicant = "Nguyễn Văn </w:t>A"
    document = minidom.parseString(_letter_xml(reason, applicant))  # well formed
    texts = [n.data for t in document.getElementsByTagName("w:t") for n in t.childNodes if n.nodeType == n.TEXT_NODE]
    shown = "".join(texts)
    assert reason in shown and applicant in shown and "Sở <Tư pháp> & Co" in shown
    assert "Cấp phép & <thẩm định>" in shown
    benign = minidom.parseString(_letter_xml("Thiếu giấy tờ", "Nguyễn Văn A"))
    runs = len(document.getElementsByTagName("w:r"))
    assert runs == len(benign.getElementsByTagName("w:r"))  # no run was injected
    assert not document.getElementsByTagName("b")


def test_docx_letter_drops_characters_xml_cannot_carry() -> None:
    document = minidom.parseString(_letter_xml("Lý do\x01\x0b có ký tự điều khiển", "Ông B\x00"))
    shown = "".join(
        n.data for t in document.getElementsByTagName("w:t") for n in t.childNodes if n.nodeType == n.TEXT_NODE
    )
    assert "Lý do có ký tự điều khiển" in shown and "Ông B" in shown


# ---- list cursors and as_of ------------------------------------------------------------------


def _raw_cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def test_cursors_round_trip() -> None:
    moment = datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ)
    assert _decode_cursor(_encode_cursor(moment, "A-1")) == (moment, "A-1")


@pytest.mark.parametrize(
    "cursor",
    [
        _raw_cursor({"a": 1, "b": 2}),
        _raw_cursor(["2026-03-16T09:15:00", "A-1"]),  # naive
        _raw_cursor([3, "A-1"]),
        _raw_cursor([None, "A-1"]),
        _raw_cursor(["2026-03-16T09:15:00+07:00", 5]),
        _raw_cursor(["2026-03-16T09:15:00+07:00", "A", "B"]),
        _raw_cursor(["not a date", "A"]),
        "!!!",
        "",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_cursor_we_did_not_issue_is_a_422_naming_cursor(cursor: str) -> None:
    with pytest.raises(ApiError) as caught:
        _decode_cursor(cursor)
    assert caught.value.status == 422 and caught.value.details[0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("moment", [datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)])
def test_as_of_outside_the_calendar_is_a_422(moment: datetime) -> None:
    with pytest.raises(ApiError) as caught:
        check_as_of(moment)
    assert caught.value.status == 422 and caught.value.details[0]["loc"] == ["query", "as_of"]
    assert check_as_of(datetime(2026, 3, 16, tzinfo=UTC)) == datetime(2026, 3, 16, tzinfo=UTC)


# ---- metrics periods -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "period", ["9999", "2026-01-01..9999-12-31", "2014-12", "0001-01-01..0001-01-02", "2026-13", "x"]
)
def test_periods_outside_2015_to_ten_years_ahead_are_422_naming_period(period: str) -> None:
    with pytest.raises(ApiError) as caught:
        period_asked(period)
    assert caught.value.status == 422 and caught.value.details[0]["loc"] == ["query", "period"]


def test_ordinary_periods_pass() -> None:
    assert period_asked("2026-Q1").first.isoformat() == "2026-01-01"
    assert period_asked("2015-01-01..2015-01-31").last.isoformat() == "2015-01-31"


# ---- webhooks --------------------------------------------------------------------------------


def test_signature_is_over_the_timestamp_and_the_body() -> None:
    body = b'{"type": "deadline.overdue"}'
    headers = signed_headers("s3cret", 1_700_000_000, body)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}" == signature("s3cret", 1_700_000_000, body)
    assert verify("s3cret", headers, body, now=1_700_000_100)
    assert not verify("s3cret", headers, body + b" ", now=1_700_000_100)  # another body
    assert not verify("other", headers, body, now=1_700_000_100)
    assert not verify("s3cret", headers, body, now=1_700_000_000 + 301)  # a replay after 5 min
    with pytest.raises(ValueError):
        signed_headers("", 1, body)  # never unsigned


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.1.2/",
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.GOOGLE.INTERNAL./",
        "http://user:pw@example.com/",
        "http:///nohost",
        "http://example.com:99999/",
    ],
)
def test_refused_webhook_urls(url: str) -> None:
    with pytest.raises(WebhookUrlRefused):
        UrlPolicy().check_url(url)


def test_allowed_webhook_urls_and_the_allow_list() -> None:
    open_policy = UrlPolicy()
    assert open_policy.check_url("https://hooks.example.vn/tthc") == ("hooks.example.vn", 443)
    assert open_policy.check_url("http://10.1.2.3:8080/h") == ("10.1.2.3", 8080)  # private: allowed by default
    listed = UrlPolicy(parse_networks("203.0.113.0/24, 2001:db8::/32"))
    assert listed.check_url("http://203.0.113.9/h")[0] == "203.0.113.9"
    assert listed.check_url("http://[2001:db8::5]/h")[0] == "2001:db8::5"
    with pytest.raises(WebhookUrlRefused):
        listed.check_url("http://10.1.2.3/h")  # private, and the list leaves it out
    with pytest.raises(WebhookUrlRefused):
        UrlPolicy(parse_networks("169.254.0.0/16")).check_url("http://169.254.169.254/")  # never, even listed


async def test_the_resolved_address_is_checked_at_delivery() -> None:
    await UrlPolicy().check_resolved("http://localhost:9/hook")  # loopback: allowed by default
    with pytest.raises(WebhookUrlRefused):
        await UrlPolicy(parse_networks("10.0.0.0/8")).check_resolved("http://localhost:9/hook")
    with pytest.raises(WebhookUrlRefused):
        await UrlPolicy().check_resolved("http://2852039166/")  # 169.254.169.254 written as a number


# ---- limits ----------------------------------------------------------------------------------


def _echo_app(limit: int) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=limit)

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"size": len(await request.body())}

    @app.post("/model")
    async def model(body: dict) -> dict:
        return {"keys": len(body)}

    return app


async def test_body_size_limit_answers_413_in_the_error_shape() -> None:
    transport = httpx.ASGITransport(app=_echo_app(100))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/echo", content=b"x" * 100)).json() == {"size": 100}
        declared = await client.post("/echo", content=b"x" * 101)
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"

        async def chunks():
            for _ in range(5):
                yield b"y" * 40

        streamed = await client.post("/echo", content=chunks())  # no Content-Length: counted as it comes
        assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "payload_too_large"
        parsed = await client.post("/model", content=chunks(), headers={"content-type": "application/json"})
        assert parsed.status_code == 413


def test_rate_limiter_refuses_past_the_burst_with_retry_after() -> None:
    limiter = RateLimiter(per_second=0.5, burst=2)
    limiter.check("a", "agency")
    limiter.check("a", "agency")
    with pytest.raises(ApiError) as caught:
        limiter.check("a", "agency")
    assert caught.value.status == 429 and int(caught.value.headers["Retry-After"]) >= 1
    limiter.check("b", "agency")  # per credential
    assert time.monotonic() > 0

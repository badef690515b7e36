"""GET /v1/cases/{case_code}/apology-letter through the real pipeline (issue #19 item 5): the form
of the case's rule set, the applicant from case.received, the appointment the one-stop system printed
on the receipt, the registry's place name; NĐ 30/2020 layout in PDF and DOCX alike."""

from __future__ import annotations

import pytest

from services.deadline.app import create_app as deadline_app
from services.intake.app import create_app as intake_app
from shared.settings import Settings
from tests.conftest import AUTH, serve
from tests.support.events import AGENCY, case_code, event, received
from tests.support.kafka_tools import eventually
from tests.support.letters import assert_official_docx, assert_official_pdf

pytestmark = pytest.mark.integration

NATION = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
TITLE_61 = "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ"
TITLE_118 = "PHIẾU XIN LỖI VÀ ĐỀ NGHỊ GIA HẠN THỜI GIAN GIẢI QUYẾT"


async def test_letters_follow_the_case_rule_set_with_applicant_receipt_date_and_place(settings: Settings) -> None:
    old, new = case_code(), case_code()
    events = [
        # before 2025-07-01: NĐ 61/2018, Mẫu 04 of TT 01/2018; the one-stop system printed 25/03 10:00
        received(
            old,
            at="2025-03-10T09:15:00+07:00",
            due_at_reported="2025-03-25T10:00:00+07:00",
            applicant_name="Ông Nguyễn Văn An",
            applicant_id="001086012345",
        ),
        # from 2025-07-01: NĐ 118/2025, Mẫu 04 of TT 03/2025; no applicant known
        received(new),
    ]
    async with serve(intake_app(settings)) as intake, serve(deadline_app(settings)) as deadline:
        answer = await intake.post("/v1/events", json={"events": events}, headers=AUTH)
        assert answer.status_code == 202, answer.text
        for code, new_due in ((old, "2025-04-04T17:00:00+07:00"), (new, "2026-04-10T17:00:00+07:00")):

            async def folded(code: str = code):  # type: ignore[no-untyped-def]
                r = await deadline.get(f"/v1/cases/{code}", headers=AUTH)
                return r.json() if r.status_code == 200 and r.json().get("due_at") else None

            case = await eventually(folded, timeout=30)
            assert case["rule_set"] == ("nd61-2018" if code == old else "nd118-2025")
            body = {"reason": "Chờ kết quả xác minh nguồn gốc đất", "new_due_at": new_due}
            issued = await deadline.post(f"/v1/cases/{code}/apology", json=body, headers=AUTH)
            assert issued.status_code == 201, issued.text
        letters = {
            (code, fmt): await deadline.get(f"/v1/cases/{code}/apology-letter", params={"format": fmt}, headers=AUTH)
            for code in (old, new)
            for fmt in ("pdf", "docx")
        }
    for response in letters.values():
        assert response.status_code == 200, response.text

    for fmt, check in (("pdf", assert_official_pdf), ("docx", assert_official_docx)):
        text = check(letters[old, fmt].content)
        for part in (
            NATION,
            MOTTO,
            TITLE_61,
            "UBND TỈNH MẪU",
            "SỞ NÔNG NGHIỆP VÀ MÔI TRƯỜNG",
            "Mẫu, ngày",
            "Kính gửi: Ông Nguyễn Văn An",
            old,
            "001086012345",
            "10 giờ 00 phút, ngày 25/03/2025",  # due_at_reported, not the statutory 24/03 09:15
            "17 giờ 00 phút, ngày 04/04/2025",
            "Thông tư số 01/2018/TT-VPCP",
        ):
            assert part in text, (fmt, part)
        assert TITLE_118 not in text and "Tỉnh mẫu" not in text and "mẫu, ngày" not in text

        text = check(letters[new, fmt].content)
        for part in (NATION, MOTTO, TITLE_118, "Mẫu, ngày", new, "09 giờ 15 phút, ngày 30/03/2026", "03/2025/TT-VPCP"):
            assert part in text, (fmt, part)
        assert TITLE_61 not in text and "None" not in text
        assert "Kính gửi: ……" in text and "số định danh cá nhân/tổ chức: ……" in text


async def test_an_apology_reported_before_the_receipt_has_no_letter_yet(settings: Settings) -> None:
    code = case_code()
    apology = event(
        "apology.issued",
        code,
        "2026-03-20T10:00:00+07:00",
        issuer_agency=AGENCY,
        reason="Chờ xác minh",
        new_due_at="2026-04-10T17:00:00+07:00",
        issued_at="2026-03-20T10:00:00+07:00",
    )
    async with serve(intake_app(settings)) as intake, serve(deadline_app(settings)) as deadline:
        assert (await intake.post("/v1/events", json=apology, headers=AUTH)).status_code == 202

        async def folded():  # type: ignore[no-untyped-def]
            r = await deadline.get(f"/v1/cases/{code}", headers=AUTH)
            return r.json() if r.status_code == 200 and r.json().get("apology") else None

        await eventually(folded, timeout=30)
        for fmt in ("pdf", "docx"):
            letter = await deadline.get(f"/v1/cases/{code}/apology-letter", params={"format": fmt}, headers=AUTH)
            assert letter.status_code == 422, letter.text
            assert letter.json()["error"]["message"] == "the case has no receipt yet"

"""The apology letter in official form (issue #19 item 5): Mẫu số 04 of the rule set in force at
receipt, laid out as NĐ 30/2020/NĐ-CP Phụ lục I, alike in DOCX and PDF."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pytest
from docx import Document

from services.deadline.apologies import rule_set_of
from services.deadline.letters.render import (
    BLANK,
    LetterFontMissing,
    letter_fields,
    letter_font,
    render_docx,
    render_pdf,
)
from shared.domain.calendar import VN_TZ
from shared.domain.rulesets import load_rule_sets
from tests.support.letters import assert_official_docx, assert_official_pdf

NATION = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
TITLE_61 = "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ"
TITLE_118 = "PHIẾU XIN LỖI VÀ ĐỀ NGHỊ GIA HẠN THỜI GIAN GIẢI QUYẾT"


def fields(received_at: datetime, **changes):  # type: ignore[no-untyped-def]
    spec = {
        "agency_name": "Sở Nông nghiệp và Môi trường",
        "parent_name": "UBND tỉnh Mẫu",
        "place": "Mẫu",
        "applicant": "Bà Trần Thị Hồng Nhung",
        "applicant_id": "001086012345",
        "case_code": "000.00.02.H99-260316-0001",
        "procedure_name": "Đăng ký đất đai, tài sản gắn liền với đất lần đầu",
        "received_at": received_at,
        "due_at": datetime(2026, 3, 30, 9, 15, tzinfo=VN_TZ),
        "reason": "Chờ kết quả xác minh nguồn gốc đất",
        "new_due_at": datetime(2026, 4, 10, 17, 0, tzinfo=VN_TZ),
        "issued_at": datetime(2026, 12, 2, 10, 0, tzinfo=VN_TZ),
    }
    return letter_fields(**{**spec, **changes})


# Which form for which receipt date. Sources: contract v1.1 ("nd61-2018" for cases received before
# 2025-07-01, Vietnam local; "nd118-2025" from then); tthc-rules §2.2 (Mẫu 04: "Phiếu xin lỗi và hẹn
# lại ngày trả kết quả" in TT 01/2018/TT-VPCP, "Phiếu xin lỗi và đề nghị gia hạn thời gian giải
# quyết" in TT 03/2025/TT-VPCP Phụ lục I) and §8 (TT 03/2025 dated 15/09/2025; Bộ Y tế QĐ 3621/2025
# BM.04 titles the form "Phiếu xin lỗi và đề nghị gia hạn…").
FORM_BY_RECEIPT = [
    ("2017-05-02T08:00:00+07:00", "nd61-2018", TITLE_61, "01/2018/TT-VPCP"),  # before NĐ 61: the first set
    ("2018-06-21T08:00:00+07:00", "nd61-2018", TITLE_61, "01/2018/TT-VPCP"),  # NĐ 61 in force
    ("2021-12-31T16:00:00+07:00", "nd61-2018", TITLE_61, "01/2018/TT-VPCP"),  # as amended by NĐ 107/2021
    ("2025-06-30T23:59:59+07:00", "nd61-2018", TITLE_61, "01/2018/TT-VPCP"),  # last instant of NĐ 61
    ("2025-06-30T17:00:00+00:00", "nd118-2025", TITLE_118, "03/2025/TT-VPCP"),  # 00:00 on 1 July in Vietnam
    ("2025-07-01T00:00:00+07:00", "nd118-2025", TITLE_118, "03/2025/TT-VPCP"),  # NĐ 118 in force
    ("2025-09-15T09:00:00+07:00", "nd118-2025", TITLE_118, "03/2025/TT-VPCP"),  # the day TT 03/2025 is dated
    ("2026-03-16T09:15:00+07:00", "nd118-2025", TITLE_118, "03/2025/TT-VPCP"),
]


@pytest.mark.parametrize(("received", "code", "title", "circular"), FORM_BY_RECEIPT)
def test_the_form_follows_the_rule_set_in_force_at_receipt(received: str, code: str, title: str, circular: str) -> None:
    received_at = datetime.fromisoformat(received)
    assert rule_set_of({"received_at": received_at}).code == code  # an older document, without rule_set
    letter = fields(received_at)  # no rule set given: the one in force at receipt
    assert (letter.tieu_de, letter.mau_so) == (title, "Mẫu số 04")
    assert circular in letter.thong_tu
    text = assert_official_docx(render_docx(letter))
    assert title in text and circular in text


def test_the_case_rule_set_wins_over_the_receipt_date_and_an_unknown_one_is_derived() -> None:
    received_at = datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ)
    assert rule_set_of({"received_at": received_at, "rule_set": "nd61-2018"}).code == "nd61-2018"
    assert rule_set_of({"received_at": received_at, "rule_set": "nd999"}).code == "nd118-2025"
    letter = fields(received_at, rule_set=load_rule_sets().get("nd61-2018"))
    assert letter.tieu_de == TITLE_61 and letter.de_nghi == "hẹn lại ngày trả kết quả"


def test_pdf_is_a4_with_an_embedded_serif_and_the_official_parts() -> None:
    letter = fields(datetime(2025, 3, 10, 9, 15, tzinfo=VN_TZ), due_at=datetime(2025, 3, 25, 10, 0, tzinfo=VN_TZ))
    text = assert_official_pdf(render_pdf(letter))
    for part in (
        NATION,
        MOTTO,
        TITLE_61,
        "UBND TỈNH MẪU",
        "SỞ NÔNG NGHIỆP VÀ MÔI TRƯỜNG",
        "Số: ....../PXL",
        "Mẫu, ngày 02 tháng 12 năm 2026",
        "Kính gửi: Bà Trần Thị Hồng Nhung",
        "000.00.02.H99-260316-0001",
        "001086012345",
        "10 giờ 00 phút, ngày 25/03/2025",
        "17 giờ 00 phút, ngày 10/04/2026",
        "Nơi nhận:",
        "THỦ TRƯỞNG CƠ QUAN",
        "(Ký, ghi rõ họ tên và đóng dấu)",
        "Thông tư số 01/2018/TT-VPCP",
        "Nghị định số 61/2018/NĐ-CP",
    ):
        assert part in text, part


def test_docx_and_pdf_carry_the_same_text() -> None:
    letter = fields(datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ))
    pdf = assert_official_pdf(render_pdf(letter))
    docx = assert_official_docx(render_docx(letter))
    for part in (
        NATION,
        MOTTO,
        TITLE_118,
        "Mẫu, ngày 02 tháng 12 năm 2026",
        "Lý do: Chờ kết quả xác minh nguồn gốc đất.",
    ):
        assert part in pdf and part in docx, part
    assert "đề nghị gia hạn thời gian giải quyết hồ sơ" in pdf and "đề nghị gia hạn thời gian giải quyết hồ sơ" in docx


def test_docx_layout_title_bold_centred_body_13_pt_place_italic() -> None:
    document = Document(io.BytesIO(render_docx(fields(datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ)))))
    title = next(p for p in document.paragraphs if p.text == TITLE_118)
    assert title.alignment == 1 and all(run.bold for run in title.runs)  # centred
    body = next(p for p in document.paragraphs if p.text.startswith("Mã số hồ sơ"))
    assert all(13 <= run.font.size.pt <= 14 for run in body.runs)
    header = document.tables[0]
    agency, nation = header.rows[0].cells
    assert [p.text for p in agency.paragraphs][:2] == ["UBND TỈNH MẪU", "SỞ NÔNG NGHIỆP VÀ MÔI TRƯỜNG"]
    assert agency.paragraphs[1].runs[0].bold and not agency.paragraphs[0].runs[0].bold
    assert [p.text for p in nation.paragraphs][:2] == [NATION, MOTTO]
    assert all(p.runs[0].bold for p in nation.paragraphs[:2])
    number, place = header.rows[1].cells
    assert number.text == "Số: ....../PXL"
    assert place.text == "Mẫu, ngày 02 tháng 12 năm 2026" and place.paragraphs[0].runs[0].italic
    recipients, signer = document.tables[1].rows[0].cells
    label = recipients.paragraphs[0].runs[0]
    assert label.text == "Nơi nhận:" and label.bold and label.italic
    assert all(run.font.size.pt == 11 for p in recipients.paragraphs[1:] for run in p.runs)
    assert signer.paragraphs[0].text == "THỦ TRƯỞNG CƠ QUAN" and signer.paragraphs[0].runs[0].bold
    assert signer.paragraphs[1].runs[0].italic


def test_an_unknown_applicant_and_place_leave_dotted_blanks_never_none() -> None:
    letter = fields(datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ), applicant=None, applicant_id=None, place=None)
    for text in (assert_official_pdf(render_pdf(letter)), assert_official_docx(render_docx(letter))):
        assert "None" not in text
        assert f"Kính gửi: {BLANK}" in text
        assert f"số định danh cá nhân/tổ chức: {BLANK}" in text
        assert ", ngày 02 tháng 12 năm 2026" in text and "Tỉnh mẫu" not in text
        assert "của Ông/Bà/tổ chức" in text


def test_the_place_name_is_written_as_the_registry_has_it() -> None:
    letter = fields(datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ), place="Thành phố Hồ Chí Minh")
    assert "Thành phố Hồ Chí Minh, ngày 02 tháng 12 năm 2026" in assert_official_pdf(render_pdf(letter))


def test_a_machine_without_the_font_is_told_which_package_to_install(tmp_path: Path) -> None:
    with pytest.raises(LetterFontMissing, match="fonts-liberation2"):
        letter_font((("LiberationSerif", tmp_path, "LiberationSerif-{style}.ttf"),))
    family, files = letter_font()
    assert family in ("LiberationSerif", "Tinos") and len(files) == 4


def test_odd_fields_print_as_text_in_the_pdf_and_never_fail_it() -> None:
    reason = "Thiếu giấy tờ </w:t> & <b>x</b> **đậm** 😀 東京 \x00\x07 " * 60
    letter = fields(datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ), reason=reason[:2000], applicant="Ông A <B> & C")
    text = assert_official_pdf(render_pdf(letter))  # a long reason runs onto a second A4 page
    assert "Thiếu giấy tờ </w:t> & <b>x</b> **đậm**" in text and "Kính gửi: Ông A <B> & C" in text


def test_a_field_that_looks_like_a_placeholder_is_printed_as_typed() -> None:
    letter = fields(datetime(2026, 3, 16, 9, 15, tzinfo=VN_TZ), applicant="{{ applicant_id }}")
    text = assert_official_pdf(render_pdf(letter))
    assert "Kính gửi: {{ applicant_id }}" in text
    assert "Kính gửi: 001086012345" not in text

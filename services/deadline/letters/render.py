"""The apology letter (Mẫu 04, TT 03/2025/TT-VPCP) as DOCX (docxtpl template) or PDF (fpdf2)."""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from docxtpl import DocxTemplate
from fontpkg_be_vietnam_pro import __file__ as _font_package
from fpdf import FPDF

from services.deadline.letters.build_template import BODY, TEMPLATE
from shared.domain.calendar import VN_TZ

FONTS = Path(_font_package).parent / "files"


@dataclass
class LetterFields:
    co_quan_cap_tren: str
    co_quan: str
    so_phieu: str
    dia_danh: str
    ngay: str
    thang: str
    nam: str
    nguoi_nhan: str
    ngay_tiep_nhan: str
    ten_thu_tuc: str
    ma_ho_so: str
    gio_hen: str
    ngay_hen: str
    ly_do: str
    gio_moi: str
    ngay_moi: str


def _date(moment: datetime) -> str:
    return moment.astimezone(VN_TZ).strftime("%d/%m/%Y")


def _clock(moment: datetime) -> str:
    local = moment.astimezone(VN_TZ)
    return f"{local.hour:02d} giờ {local.minute:02d} phút"


def letter_fields(
    *,
    agency_name: str,
    parent_name: str,
    place: str,
    applicant: str,
    case_code: str,
    procedure_name: str,
    received_at: datetime,
    due_at: datetime,
    reason: str,
    new_due_at: datetime,
    issued_at: datetime,
) -> LetterFields:
    issued = issued_at.astimezone(VN_TZ)
    return LetterFields(
        co_quan_cap_tren=parent_name.upper(),
        co_quan=agency_name,
        so_phieu="......",
        dia_danh=place,
        ngay=f"{issued.day:02d}",
        thang=f"{issued.month:02d}",
        nam=str(issued.year),
        nguoi_nhan=applicant,
        ngay_tiep_nhan=_date(received_at),
        ten_thu_tuc=procedure_name,
        ma_ho_so=case_code,
        gio_hen=_clock(due_at),
        ngay_hen=_date(due_at),
        ly_do=reason.rstrip("."),
        gio_moi=_clock(new_due_at),
        ngay_moi=_date(new_due_at),
    )


# characters XML 1.0 cannot carry at all (escaping does not help): dropped from the DOCX fields
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def render_docx(fields: LetterFields) -> bytes:
    template = DocxTemplate(str(TEMPLATE))
    # every field is escaped: a reason holding `</w:t><w:r>…` or `&<>` shows as text, never as markup
    template.render({key: _NOT_XML.sub("", value) for key, value in asdict(fields).items()}, autoescape=True)
    out = io.BytesIO()
    template.save(out)
    return out.getvalue()


def _fill(text: str, fields: LetterFields) -> str:
    for key, value in asdict(fields).items():
        text = text.replace("{{ " + key + " }}", value)
    return text


def render_pdf(fields: LetterFields) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_margins(25, 20, 20)
    pdf.add_font("BeVietnamPro", "", str(FONTS / "BeVietnamPro-Regular.ttf"))
    pdf.add_font("BeVietnamPro", "B", str(FONTS / "BeVietnamPro-Bold.ttf"))
    pdf.add_font("BeVietnamPro", "I", str(FONTS / "BeVietnamPro-Italic.ttf"))
    pdf.add_page()
    width = (pdf.w - pdf.l_margin - pdf.r_margin) / 2
    top = pdf.get_y()
    pdf.set_font("BeVietnamPro", "", 10)
    pdf.multi_cell(width, 5.5, f"{fields.co_quan_cap_tren}\n{fields.co_quan}\nSố: {fields.so_phieu}/PXL", align="C")
    bottom = pdf.get_y()
    pdf.set_xy(pdf.l_margin + width, top)
    pdf.set_font("BeVietnamPro", "B", 10)
    pdf.multi_cell(
        width,
        5.5,
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc",
        align="C",
        new_x="LEFT",
        new_y="NEXT",
    )
    pdf.set_font("BeVietnamPro", "I", 10)
    pdf.multi_cell(
        width,
        5.5,
        f"{fields.dia_danh}, ngày {fields.ngay} tháng {fields.thang} năm {fields.nam}",
        align="C",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_y(max(pdf.get_y(), bottom))
    pdf.ln(8)
    pdf.set_font("BeVietnamPro", "B", 12.5)
    pdf.multi_cell(
        0, 7, "PHIẾU XIN LỖI VÀ ĐỀ NGHỊ GIA HẠN THỜI GIAN GIẢI QUYẾT", align="C", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("BeVietnamPro", "", 11.5)
    pdf.multi_cell(0, 7, f"Kính gửi: {fields.nguoi_nhan}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for text in BODY:
        pdf.multi_cell(0, 6.5, _fill(text, fields), align="J", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1.5)
    pdf.ln(6)
    pdf.set_font("BeVietnamPro", "B", 11.5)
    pdf.multi_cell(0, 6, "THỦ TRƯỞNG CƠ QUAN", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("BeVietnamPro", "I", 10)
    pdf.multi_cell(0, 6, "(Ký, ghi rõ họ tên và đóng dấu)", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(12)
    pdf.set_font("BeVietnamPro", "I", 8.5)
    pdf.multi_cell(0, 5, "Mẫu số 04, Phụ lục I, Thông tư số 03/2025/TT-VPCP", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())

"""The apology letter (Mẫu số 04 of the circular in force at receipt) as DOCX or PDF.

The form follows the case's rule set (contract v1.1): "Phiếu xin lỗi và hẹn lại ngày trả kết quả"
(TT 01/2018/TT-VPCP) for `nd61-2018` cases, "Phiếu xin lỗi và đề nghị gia hạn thời gian giải
quyết" (TT 03/2025/TT-VPCP) for `nd118-2025` ones; number, title, circular and legal basis come from
config/rule-sets.json. The layout is NĐ 30/2020/NĐ-CP Phụ lục I (see `layout`): A4, Times New Roman
in the DOCX (docxtpl over mau04.docx), Liberation Serif or Tinos, its metric twins, embedded in the
PDF (fpdf2). Both carry the same text: the template's wording (layout.BODY …) filled alike.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from docxtpl import DocxTemplate
from fontTools.ttLib import TTFont
from fpdf import FPDF

from services.deadline.letters import layout
from services.deadline.letters.build_template import TEMPLATE
from shared.domain.calendar import VN_TZ
from shared.domain.rulesets import RuleSet, load_rule_sets

BLANK = "…………………………"  # a dotted blank the officer fills by hand
SHORT_BLANK = "………"
ADDRESSEE = "Ông/Bà/tổ chức"  # how the body names an applicant whose name is not known


@dataclass
class LetterFields:
    co_quan_cap_tren: str  # tên cơ quan cấp trên, in hoa ("" when the agency is a root)
    co_quan_in_hoa: str  # tên cơ quan ban hành, in hoa
    co_quan: str  # the agency's name as registered, for the body
    so_phieu: str
    dia_danh: str  # địa danh: the registry's place name, as written there
    ngay: str
    thang: str
    nam: str
    tieu_de: str  # tên loại văn bản: the rule set's form title, in hoa
    nguoi_nhan: str  # Kính gửi
    xung_ho: str  # how the body names the applicant
    so_dinh_danh: str  # số định danh cá nhân / mã số tổ chức
    ngay_tiep_nhan: str
    ten_thu_tuc: str
    ma_ho_so: str
    gio_hen: str  # the appointment on the receipt (giấy tiếp nhận và hẹn trả kết quả)
    ngay_hen: str
    ly_do: str
    de_nghi: str  # the rule set's words: "hẹn lại ngày trả kết quả" | "đề nghị gia hạn thời gian giải quyết"
    gio_moi: str
    ngay_moi: str
    mau_so: str
    thong_tu: str
    can_cu: str


def _date(moment: datetime) -> str:
    return moment.astimezone(VN_TZ).strftime("%d/%m/%Y")


def _clock(moment: datetime) -> str:
    local = moment.astimezone(VN_TZ)
    return f"{local.hour:02d} giờ {local.minute:02d} phút"


def _text(value: str | None) -> str:
    return " ".join(value.split()) if value else ""


def letter_fields(
    *,
    agency_name: str,
    parent_name: str,
    place: str | None,
    applicant: str | None,
    case_code: str,
    procedure_name: str,
    received_at: datetime,
    due_at: datetime,
    reason: str,
    new_due_at: datetime,
    issued_at: datetime,
    applicant_id: str | None = None,
    rule_set: RuleSet | None = None,
) -> LetterFields:
    """`due_at`: the appointment printed on the receipt (due_at_reported when the one-stop system
    reported it, else the statutory due_at); `rule_set`: the case's, else the one in force at receipt."""
    form = (rule_set or load_rule_sets().at(received_at)).apology_form
    issued = issued_at.astimezone(VN_TZ)
    name = _text(applicant)
    return LetterFields(
        co_quan_cap_tren=_text(parent_name).upper(),
        co_quan_in_hoa=_text(agency_name).upper(),
        co_quan=_text(agency_name),
        so_phieu="......",
        dia_danh=_text(place) or SHORT_BLANK,
        ngay=f"{issued.day:02d}",
        thang=f"{issued.month:02d}",
        nam=str(issued.year),
        tieu_de=form.title.upper(),
        nguoi_nhan=name or BLANK,
        xung_ho=name or ADDRESSEE,
        so_dinh_danh=_text(applicant_id) or BLANK,
        ngay_tiep_nhan=_date(received_at),
        ten_thu_tuc=_text(procedure_name) or BLANK,
        ma_ho_so=case_code,
        gio_hen=_clock(due_at),
        ngay_hen=_date(due_at),
        ly_do=reason.strip().rstrip("."),
        de_nghi=form.request_word,
        gio_moi=_clock(new_due_at),
        ngay_moi=_date(new_due_at),
        mau_so=form.number,
        thong_tu=form.circular,
        can_cu=form.legal_basis,
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
    """The wording with the fields in, as the DOCX shows them (characters XML cannot carry dropped);
    a letter the font lacks (emoji, CJK) is left out by fpdf2 with a warning, never an error."""
    values = {key: _NOT_XML.sub("", value) for key, value in asdict(fields).items()}
    # one pass: a field holding "{{ other }}" stays as typed, never filled in turn
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), text)


_PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")


# ---- the PDF font ------------------------------------------------------------------------------


class LetterFontMissing(RuntimeError):
    """No serif font metric-compatible with Times New Roman, with the Vietnamese letters, is installed."""


STYLES = {"": "Regular", "B": "Bold", "I": "Italic", "BI": "BoldItalic"}
# Debian: fonts-liberation2 (bookworm) or fonts-liberation ≥ 2 (trixie on), fonts-croscore (Tinos).
# fonts-liberation 1.x has no Vietnamese letters: the coverage check passes over it.
FONT_CANDIDATES = (
    ("LiberationSerif", Path("/usr/share/fonts/truetype/liberation2"), "LiberationSerif-{style}.ttf"),
    ("LiberationSerif", Path("/usr/share/fonts/truetype/liberation"), "LiberationSerif-{style}.ttf"),
    ("Tinos", Path("/usr/share/fonts/truetype/croscore"), "Tinos-{style}.ttf"),
)
FONT_PACKAGE = "fonts-liberation2 (Debian; `make tools` installs it)"
VIETNAMESE = "ẠảẤầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹĐđƠơƯư"


@cache
def letter_font(candidates: tuple[tuple[str, Path, str], ...] = FONT_CANDIDATES) -> tuple[str, dict[str, Path]]:
    """The family and its four files, the first candidate that has them all with every Vietnamese letter."""
    for family, folder, pattern in candidates:
        files = {style: folder / pattern.format(style=name) for style, name in STYLES.items()}
        if all(path.is_file() and _covers(path) for path in files.values()):
            return family, files
    raise LetterFontMissing(f"no serif font for the PDF letter; install {FONT_PACKAGE}")


def _covers(path: Path) -> bool:
    cmap = TTFont(str(path), lazy=True).getBestCmap() or {}
    return all(ord(letter) in cmap for letter in VIETNAMESE)


def render_pdf(fields: LetterFields) -> bytes:
    family, files = letter_font()
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_title(_fill("{{ tieu_de }} {{ ma_ho_so }}", fields))
    for style, path in files.items():
        pdf.add_font(family, style, str(path))  # TrueType, embedded as a subset
    layout.draw(pdf, family, lambda text: _fill(text, fields))
    return bytes(pdf.output())

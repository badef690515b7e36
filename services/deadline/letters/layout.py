"""NĐ 30/2020/NĐ-CP Phụ lục I, the layout of an administrative document, for both letter formats.

A4 (210 × 297 mm); margins top and bottom 20–25 mm, left 30–35 mm, right 15–20 mm. Header in two
columns: left the issuing agency (the agency above it in capitals, the agency in bold capitals, a
short rule under it, then "Số: …"), right the Quốc hiệu in bold capitals, the Tiêu ngữ in bold with
a rule as long as itself, then the place and date in italics. Title bold capitals, centred; body
13–14 pt; "Nơi nhận:" bold italic 12 pt over an 11 pt list, bottom left; the signer's title bold
capitals, bottom right. mau04.docx (build_template) and the PDF (`draw`) use the numbers below.
"""

from __future__ import annotations

from collections.abc import Callable

from fpdf import FPDF

PAGE_MM = (210, 297)  # A4
MARGIN_TOP_MM, MARGIN_BOTTOM_MM, MARGIN_LEFT_MM, MARGIN_RIGHT_MM = 20, 20, 30, 15
LEFT_COLUMN_MM = 68  # the agency; the Quốc hiệu takes the rest (97 mm)
FOOT_LEFT_MM = 80  # Nơi nhận; the signature takes the rest

AGENCY_PT = 12.5  # cơ quan cấp trên, cơ quan ban hành: 12–13
NUMBER_PT = 13  # số, ký hiệu: 13
NATION_PT = 12.5  # Quốc hiệu: 12–13
MOTTO_PT = 13.5  # Tiêu ngữ: 13–14
PLACE_PT = 13.5  # địa danh, ngày tháng: 13–14
TITLE_PT = 14  # tên loại văn bản: 13–14
ADDRESSEE_PT = 14  # kính gửi: 14
BODY_PT = 13  # nội dung: 13–14
RECIPIENTS_LABEL_PT = 12  # "Nơi nhận:": 12
RECIPIENTS_PT = 11  # the list: 11
SIGNER_PT = 13.5  # chức vụ người ký: 13–14
NOTE_PT = 10

NATION = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"  # Quốc hiệu
MOTTO = "Độc lập - Tự do - Hạnh phúc"  # Tiêu ngữ
RECIPIENTS_LABEL = "Nơi nhận:"
RECIPIENTS = ("- Như trên;", "- Bộ phận Một cửa (để phối hợp);", "- Lưu: VT.")
SIGNER = "THỦ TRƯỞNG CƠ QUAN"
SIGNATURE_NOTE = "(Ký, ghi rõ họ tên và đóng dấu)"

# The wording, with the {{ fields }} of render.LetterFields (docxtpl placeholders in mau04.docx).
NUMBER = "Số: {{ so_phieu }}/PXL"
PLACE_DATE = "{{ dia_danh }}, ngày {{ ngay }} tháng {{ thang }} năm {{ nam }}"
ADDRESSEE = "Kính gửi: {{ nguoi_nhan }}"
BODY = [
    "Ngày {{ ngay_tiep_nhan }}, {{ co_quan }} tiếp nhận hồ sơ đề nghị giải quyết thủ tục hành chính "
    "“{{ ten_thu_tuc }}” của {{ xung_ho }}; số định danh cá nhân/tổ chức: {{ so_dinh_danh }}.",
    "Mã số hồ sơ: {{ ma_ho_so }}.",
    "Thời gian hẹn trả kết quả ghi trên Giấy tiếp nhận hồ sơ và hẹn trả kết quả: {{ gio_hen }}, ngày {{ ngay_hen }}.",
    "Tuy nhiên, đến nay {{ co_quan }} chưa trả được kết quả giải quyết hồ sơ đúng hạn.",
    "Lý do: {{ ly_do }}.",
    "Sự chậm trễ này đã gây phiền hà, tốn kém thời gian, chi phí, công sức của {{ xung_ho }}. "
    "{{ co_quan }} xin lỗi {{ xung_ho }} và {{ de_nghi }} hồ sơ; thời gian trả kết quả mới: "
    "{{ gio_moi }}, ngày {{ ngay_moi }}.",
    "Xin trân trọng cảm ơn sự hợp tác của {{ xung_ho }}./.",
]
NOTE = "{{ mau_so }} ban hành kèm theo {{ thong_tu }}; thực hiện {{ can_cu }}."

PT_MM = 25.4 / 72


def _line_mm(points: float, spacing: float = 1.2) -> float:
    return points * PT_MM * spacing


def draw(pdf: FPDF, family: str, fill: Callable[[str], str]) -> None:
    """Lays the letter out on `pdf` (A4, mm, `family` registered in the four styles); `fill` puts
    the fields into a piece of wording."""
    pdf.set_margins(MARGIN_LEFT_MM, MARGIN_TOP_MM, MARGIN_RIGHT_MM)
    pdf.set_auto_page_break(True, margin=MARGIN_BOTTOM_MM)
    pdf.add_page()
    pdf.set_line_width(0.3)
    _draw_header(pdf, family, fill)
    _draw_body(pdf, family, fill)
    _draw_foot(pdf, family, fill)


def _draw_header(pdf: FPDF, family: str, fill: Callable[[str], str]) -> None:
    """The agency (left) and the Quốc hiệu (right) side by side, then the number and the place and date."""
    left = pdf.l_margin
    right_width = pdf.epw - LEFT_COLUMN_MM
    top = pdf.t_margin

    # left column: the issuing agency, a short rule under it
    pdf.set_xy(left, top)
    parent, agency = fill("{{ co_quan_cap_tren }}"), fill("{{ co_quan_in_hoa }}")
    if parent:
        pdf.set_font(family, "", AGENCY_PT)
        pdf.multi_cell(LEFT_COLUMN_MM, _line_mm(AGENCY_PT), parent, align="C", new_x="LEFT")
    pdf.set_font(family, "B", AGENCY_PT)
    pdf.multi_cell(LEFT_COLUMN_MM, _line_mm(AGENCY_PT), agency, align="C", new_x="LEFT")
    rule = min(pdf.get_string_width(agency), LEFT_COLUMN_MM) / 3  # 1/3 to 1/2 of the line
    y = pdf.get_y() + 0.8
    centre = left + LEFT_COLUMN_MM / 2
    pdf.line(centre - rule / 2, y, centre + rule / 2, y)
    left_bottom = y

    # right column: Quốc hiệu, Tiêu ngữ with a rule as long as itself
    pdf.set_xy(left + LEFT_COLUMN_MM, top)
    pdf.set_font(family, "B", NATION_PT)
    pdf.multi_cell(right_width, _line_mm(AGENCY_PT), NATION, align="C", new_x="LEFT")
    pdf.set_font(family, "B", MOTTO_PT)
    pdf.multi_cell(right_width, _line_mm(MOTTO_PT), MOTTO, align="C", new_x="LEFT")
    rule = pdf.get_string_width(MOTTO)
    y = pdf.get_y() + 0.5
    centre = left + LEFT_COLUMN_MM + right_width / 2
    pdf.line(centre - rule / 2, y, centre + rule / 2, y)

    # số, ký hiệu under the agency; place and date under the Tiêu ngữ, on one row
    row = max(left_bottom, y) + 3
    pdf.set_xy(left, row)
    pdf.set_font(family, "", NUMBER_PT)
    pdf.multi_cell(LEFT_COLUMN_MM, _line_mm(NUMBER_PT), fill(NUMBER), align="C", new_x="LEFT")
    number_bottom = pdf.get_y()
    pdf.set_xy(left + LEFT_COLUMN_MM, row)
    pdf.set_font(family, "I", PLACE_PT)
    pdf.multi_cell(right_width, _line_mm(PLACE_PT), fill(PLACE_DATE), align="C", new_x="LEFT")
    pdf.set_xy(left, max(number_bottom, pdf.get_y()))


def _draw_body(pdf: FPDF, family: str, fill: Callable[[str], str]) -> None:
    """Title, addressee and the body's paragraphs, justified."""
    width = pdf.epw
    pdf.set_xy(pdf.l_margin, pdf.get_y() + 8)
    pdf.set_font(family, "B", TITLE_PT)
    pdf.multi_cell(width, _line_mm(TITLE_PT), fill("{{ tieu_de }}"), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font(family, "", ADDRESSEE_PT)
    pdf.multi_cell(width, _line_mm(ADDRESSEE_PT), fill(ADDRESSEE), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(family, "", BODY_PT)
    with pdf.text_columns(text_align="J", line_height=1.25) as columns:
        for text in BODY:
            with columns.paragraph(first_line_indent=10, bottom_margin=1.5) as paragraph:
                paragraph.write(fill(text))
    pdf.ln(4)


def _draw_foot(pdf: FPDF, family: str, fill: Callable[[str], str]) -> None:
    """Nơi nhận bottom left, the signer bottom right, side by side; the form's note under them."""
    left, width = pdf.l_margin, pdf.epw
    foot_height = 45
    if pdf.get_y() + foot_height > pdf.h - pdf.b_margin:
        pdf.add_page()
    foot = pdf.get_y()
    pdf.set_xy(left, foot + 1)
    pdf.set_font(family, "BI", RECIPIENTS_LABEL_PT)
    pdf.cell(FOOT_LEFT_MM, _line_mm(RECIPIENTS_LABEL_PT), RECIPIENTS_LABEL, new_x="LEFT", new_y="NEXT")
    pdf.set_font(family, "", RECIPIENTS_PT)
    for line in RECIPIENTS:
        pdf.cell(FOOT_LEFT_MM, _line_mm(RECIPIENTS_PT), line, new_x="LEFT", new_y="NEXT")
    recipients_bottom = pdf.get_y()
    sign_width = width - FOOT_LEFT_MM
    pdf.set_xy(left + FOOT_LEFT_MM, foot)
    pdf.set_font(family, "B", SIGNER_PT)
    pdf.multi_cell(sign_width, _line_mm(SIGNER_PT), SIGNER, align="C", new_x="LEFT")
    pdf.set_font(family, "I", BODY_PT)
    pdf.multi_cell(sign_width, _line_mm(BODY_PT), SIGNATURE_NOTE, align="C", new_x="LEFT")
    pdf.set_xy(left, max(recipients_bottom, pdf.get_y()) + 24)  # room for the signature and seal

    pdf.set_font(family, "I", NOTE_PT)
    pdf.multi_cell(width, _line_mm(NOTE_PT), fill(NOTE), align="L", new_x="LMARGIN", new_y="NEXT")

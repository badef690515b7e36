"""Builds mau04.docx, the docxtpl template of Mẫu 04 (TT 03/2025/TT-VPCP), from this script.

Run `python -m services.deadline.letters.build_template` after changing the wording; the .docx is
committed so that officers (and lawyers) can also edit it in Word, keeping the {{ placeholders }}.
"""

from __future__ import annotations

from pathlib import Path

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Pt

TEMPLATE = Path(__file__).with_name("mau04.docx")

BODY = [
    "Ngày {{ ngay_tiep_nhan }}, {{ co_quan }} tiếp nhận hồ sơ đề nghị giải quyết thủ tục hành chính "
    "“{{ ten_thu_tuc }}” của {{ nguoi_nhan }}.",
    "Mã số hồ sơ: {{ ma_ho_so }}.",
    "Thời hạn giải quyết theo quy định: {{ gio_hen }}, ngày {{ ngay_hen }}.",
    "Tuy nhiên, đến nay {{ co_quan }} chưa thể trả kết quả giải quyết hồ sơ đúng hạn.",
    "Lý do: {{ ly_do }}.",
    "Sự chậm trễ này đã gây phiền hà, tốn kém thời gian, chi phí, công sức của {{ nguoi_nhan }}. "
    "{{ co_quan }} xin lỗi {{ nguoi_nhan }} và đề nghị gia hạn thời gian giải quyết hồ sơ đến "
    "{{ gio_moi }}, ngày {{ ngay_moi }}.",
    "Xin trân trọng cảm ơn sự hợp tác của {{ nguoi_nhan }}./.",
]


def build(path: Path = TEMPLATE) -> Path:
    document = Document()
    style = document.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(13)

    header = document.add_table(rows=2, cols=2)
    header.cell(0, 0).text = "{{ co_quan_cap_tren }}"
    header.cell(1, 0).text = "{{ co_quan }}\nSố: {{ so_phieu }}/PXL"
    header.cell(0, 1).text = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
    header.cell(
        1, 1
    ).text = "Độc lập - Tự do - Hạnh phúc\n{{ dia_danh }}, ngày {{ ngay }} tháng {{ thang }} năm {{ nam }}"
    for row in header.rows:
        for cell in row.cells:
            for paragraph in cell.paragraphs:
                paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER

    document.add_paragraph()
    title = document.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = title.add_run("PHIẾU XIN LỖI VÀ ĐỀ NGHỊ GIA HẠN THỜI GIAN GIẢI QUYẾT")
    run.bold = True
    salutation = document.add_paragraph()
    salutation.alignment = WD_ALIGN_PARAGRAPH.CENTER
    salutation.add_run("Kính gửi: {{ nguoi_nhan }}")
    for text in BODY:
        paragraph = document.add_paragraph(text)
        paragraph.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
    signature = document.add_paragraph()
    signature.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    signature.add_run("THỦ TRƯỞNG CƠ QUAN\n").bold = True
    signature.add_run("(Ký, ghi rõ họ tên và đóng dấu)").italic = True
    document.add_paragraph("Mẫu số 04, Phụ lục I, Thông tư số 03/2025/TT-VPCP").runs[0].italic = True
    document.save(path)
    return path


if __name__ == "__main__":
    print(build())

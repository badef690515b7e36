"""Builds mau04.docx, the docxtpl template of the apology letter (Mẫu số 04), from this script.

One template serves both rule sets: the title, the request words, the circular and the legal basis
are fields (render.letter_fields takes them from config/rule-sets.json). The layout is NĐ 30/2020
Phụ lục I (layout.py): A4, Times New Roman, header in two borderless columns.

Run `python -m services.deadline.letters.build_template` after changing the wording or the layout;
the .docx is committed so that officers (and lawyers) can also edit it in Word, keeping the
{{ placeholders }} (each within one run).
"""

from __future__ import annotations

import math
from pathlib import Path

from docx import Document
from docx.document import Document as DocumentObject
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, Twips
from docx.styles.style import CharacterStyle
from docx.table import _Cell
from docx.text.paragraph import Paragraph
from docx.text.run import Run

from services.deadline.letters import layout

TEMPLATE = Path(__file__).with_name("mau04.docx")
FONT = "Times New Roman"
CENTER, JUSTIFY, LEFT = WD_ALIGN_PARAGRAPH.CENTER, WD_ALIGN_PARAGRAPH.JUSTIFY, WD_ALIGN_PARAGRAPH.LEFT
A4_TWIPS = (11906, 16838)  # Word's A4: 210 × 297 mm


def _margin(mm: float) -> Twips:
    """A margin in whole twips, rounded up: the law gives minima (15 mm is 850.4 twips, not 850)."""
    return Twips(math.ceil(mm * 1440 / 25.4))


def _font(element: Run | CharacterStyle, size: float) -> None:
    """Times New Roman for every script (ascii, hAnsi, cs, eastAsia) at `size` points."""
    font = element.font
    font.name = FONT
    font.size = Pt(size)
    r_pr = element.element.get_or_add_rPr()
    fonts = r_pr.find(qn("w:rFonts"))
    for attribute in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(attribute), FONT)


def _paragraph(
    where: _Cell | DocumentObject,
    text: str,
    size: float,
    align: WD_ALIGN_PARAGRAPH = CENTER,
    bold: bool = False,
    italic: bool = False,
    after: float = 0,
) -> Paragraph:
    paragraph = where.add_paragraph()
    paragraph.alignment = align
    paragraph.paragraph_format.space_before = Pt(0)
    paragraph.paragraph_format.space_after = Pt(after)
    if text:
        run = paragraph.add_run(text)
        run.bold, run.italic = bold, italic
        _font(run, size)
    return paragraph


def _rule(cell: _Cell, length_mm: float, column_mm: float) -> None:
    """A solid rule `length_mm` long, centred in the cell: the bottom border of an empty, indented
    1 pt paragraph (Word draws a paragraph's border between its indents)."""
    paragraph = _paragraph(cell, "", 1)
    side = Mm(max(column_mm - length_mm, 0) / 2)
    paragraph.paragraph_format.left_indent = side
    paragraph.paragraph_format.right_indent = side
    paragraph.paragraph_format.line_spacing = Pt(1)
    p_pr = paragraph._p.get_or_add_pPr()
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for key, value in (("w:val", "single"), ("w:sz", "6"), ("w:space", "1"), ("w:color", "000000")):
        bottom.set(qn(key), value)
    borders.append(bottom)
    p_pr.append(borders)


def _columns(document: DocumentObject, rows: int, widths_mm: tuple[float, float]) -> list[list[_Cell]]:
    """A borderless table of two columns of fixed widths; each cell starts without a paragraph."""
    table = document.add_table(rows=rows, cols=2)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    for column, width in zip(table.columns, widths_mm, strict=True):
        column.width = Mm(width)
    cells = []
    for row in table.rows:
        row_cells = []
        for cell, width in zip(row.cells, widths_mm, strict=True):
            cell.width = Mm(width)
            cell._tc.remove(cell.paragraphs[0]._p)  # _paragraph adds each one
            row_cells.append(cell)
        cells.append(row_cells)
    return cells


def build(path: Path = TEMPLATE) -> Path:
    document = Document()
    section = document.sections[0]
    section.page_width, section.page_height = Twips(A4_TWIPS[0]), Twips(A4_TWIPS[1])
    section.top_margin, section.bottom_margin = _margin(layout.MARGIN_TOP_MM), _margin(layout.MARGIN_BOTTOM_MM)
    section.left_margin, section.right_margin = _margin(layout.MARGIN_LEFT_MM), _margin(layout.MARGIN_RIGHT_MM)
    normal = document.styles["Normal"]
    _font(normal, layout.BODY_PT)
    normal.paragraph_format.space_after = Pt(0)

    width = layout.PAGE_MM[0] - layout.MARGIN_LEFT_MM - layout.MARGIN_RIGHT_MM
    left_width, right_width = layout.LEFT_COLUMN_MM, width - layout.LEFT_COLUMN_MM
    (agency, nation), (number, place) = _columns(document, 2, (left_width, right_width))
    _paragraph(agency, "{{ co_quan_cap_tren }}", layout.AGENCY_PT)
    _paragraph(agency, "{{ co_quan_in_hoa }}", layout.AGENCY_PT, bold=True)
    _rule(agency, 24, left_width)
    _paragraph(nation, layout.NATION, layout.NATION_PT, bold=True)
    _paragraph(nation, layout.MOTTO, layout.MOTTO_PT, bold=True)
    _rule(nation, 62, right_width)  # as long as the Tiêu ngữ in 13.5 pt bold
    _paragraph(number, layout.NUMBER, layout.NUMBER_PT, after=0).paragraph_format.space_before = Pt(6)
    _paragraph(place, layout.PLACE_DATE, layout.PLACE_PT, italic=True).paragraph_format.space_before = Pt(6)

    _paragraph(document, "", layout.BODY_PT, after=12)
    _paragraph(document, "{{ tieu_de }}", layout.TITLE_PT, bold=True, after=6)
    _paragraph(document, layout.ADDRESSEE, layout.ADDRESSEE_PT, after=12)
    for text in layout.BODY:
        paragraph = _paragraph(document, text, layout.BODY_PT, align=JUSTIFY, after=4)
        paragraph.paragraph_format.first_line_indent = Mm(10)
        paragraph.paragraph_format.line_spacing = 1.15
    _paragraph(document, "", layout.BODY_PT, after=6)

    ((recipients, signer),) = _columns(document, 1, (layout.FOOT_LEFT_MM, width - layout.FOOT_LEFT_MM))
    _paragraph(recipients, layout.RECIPIENTS_LABEL, layout.RECIPIENTS_LABEL_PT, LEFT, bold=True, italic=True)
    for line in layout.RECIPIENTS:
        _paragraph(recipients, line, layout.RECIPIENTS_PT, LEFT)
    _paragraph(signer, layout.SIGNER, layout.SIGNER_PT, bold=True)
    _paragraph(signer, layout.SIGNATURE_NOTE, layout.BODY_PT, italic=True, after=72)  # room for the signature

    _paragraph(document, layout.NOTE, layout.NOTE_PT, LEFT, italic=True).paragraph_format.space_before = Pt(12)
    document.save(str(path))
    return path


if __name__ == "__main__":
    print(build())

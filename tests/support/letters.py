"""Reading the apology letter back as a person would: poppler for the PDF, python-docx for the DOCX.

poppler-utils is a Debian package `make tools` installs; a machine without it fails these tests
(naming the package), it never passes them silently.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from docx import Document
from docx.document import Document as DocxDocument
from docx.oxml.ns import qn
from docx.shared import Length
from docx.text.run import Run

A4_PT = (595.0, 842.0)
SERIF = re.compile(r"LiberationSerif|Tinos|TimesNewRoman|Times-Roman", re.IGNORECASE)


def poppler(tool: str) -> str:
    exe = shutil.which(tool)
    assert exe, f"{tool} is missing: install Debian's poppler-utils (`make tools` does)"
    return exe


def _run(tool: str, pdf: bytes, *args: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "letter.pdf"
        path.write_bytes(pdf)
        out = subprocess.run([poppler(tool), *args, str(path), "-"], capture_output=True, check=True, timeout=60)
        return out.stdout.decode("utf-8")


def pdf_text(pdf: bytes) -> str:
    """pdftotext's text, whitespace collapsed (lines wrap where the layout wraps them)."""
    return " ".join(_run("pdftotext", pdf, "-enc", "UTF-8").split())


def pdf_fonts(pdf: bytes) -> list[dict[str, str]]:
    """pdffonts' table: one {name, type, emb} per font."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "letter.pdf"
        path.write_bytes(pdf)
        lines = subprocess.run(
            [poppler("pdffonts"), str(path)], capture_output=True, check=True, timeout=60, text=True
        ).stdout.splitlines()
    header = lines[0]
    emb = header.index("emb")
    fonts = []
    for line in lines[2:]:
        fonts.append({"name": line.split()[0], "emb": line[emb : emb + 3].strip(), "line": line})
    return fonts


def png_pages_at_72_dpi(pdf: bytes) -> list[tuple[int, int]]:
    """Each page rendered by pdftoppm at 72 dpi: its size in pixels, i.e. in points."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "letter.pdf"
        path.write_bytes(pdf)
        subprocess.run(
            [poppler("pdftoppm"), "-r", "72", "-png", str(path), str(Path(folder) / "page")],
            check=True,
            capture_output=True,
            timeout=60,
        )
        sizes = []
        for page in sorted(Path(folder).glob("page*.png")):
            data = page.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            sizes.append(struct.unpack(">II", data[16:24]))  # IHDR width, height
        return sizes


def assert_official_pdf(pdf: bytes) -> str:
    """A4 pages, every font embedded and a serif: returns the text."""
    pages = png_pages_at_72_dpi(pdf)
    assert pages, "no page"
    for width, height in pages:
        assert abs(width - A4_PT[0]) <= 1 and abs(height - A4_PT[1]) <= 1, (width, height)
    fonts = pdf_fonts(pdf)
    assert fonts, "no font in the PDF"
    for font in fonts:
        assert font["emb"] == "yes", font["line"]
        assert SERIF.search(font["name"]), font["line"]
    return pdf_text(pdf)


def docx_text(docx: bytes) -> str:
    """Every paragraph, the tables' included, whitespace collapsed."""
    document = Document(io.BytesIO(docx))
    body = document.element.body
    texts = ["".join(t.text or "" for t in p.iter(qn("w:t"))) for p in body.iter(qn("w:p"))]
    return " ".join(" ".join(texts).split())


def assert_official_docx(docx: bytes) -> str:
    """A4, NĐ 30 margins, Times New Roman throughout: returns the text."""
    document = Document(io.BytesIO(docx))
    for section in document.sections:
        assert abs(_mm(section.page_width) - 210) < 0.5 and abs(_mm(section.page_height) - 297) < 0.5
        assert 20 <= _mm(section.top_margin) <= 25 and 20 <= _mm(section.bottom_margin) <= 25
        assert 30 <= _mm(section.left_margin) <= 35 and 15 <= _mm(section.right_margin) <= 20
    assert document.styles["Normal"].font.name == "Times New Roman"
    for fonts in document.element.body.iter(qn("w:rFonts")):
        named = {key: value for key, value in fonts.attrib.items() if not key.endswith("Theme")}
        assert set(named.values()) <= {"Times New Roman"}, named
    sizes = {run.font.size.pt for run in _runs(document) if run.font.size is not None and run.text.strip()}
    assert sizes and min(sizes) >= 10 and max(sizes) <= 14, sizes
    return docx_text(docx)


def _mm(length: Length | None) -> float:
    assert length is not None, "the section sets no such length"
    return float(length.mm)


def _runs(document: DocxDocument) -> Iterator[Run]:
    for paragraph in document.paragraphs:
        yield from paragraph.runs
    for table in document.tables:
        for row in table.rows:
            for cell in row.cells:
                for paragraph in cell.paragraphs:
                    yield from paragraph.runs

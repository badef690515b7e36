"""CSV and XLSX files whose cells are inert: text that a spreadsheet would read as a formula
(starting with `=`, `+`, `-`, `@`, tab or CR) is prefixed with `'`; numbers stay numbers (a negative
number is -3, not '-3) and instants are real dates (XLSX: a date cell in Vietnam local time with a
number format; CSV: ISO 8601 text with the offset).

Pure and synchronous: the services call these off the event loop (asyncio.to_thread).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from shared.domain.calendar import VN_TZ

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_DATETIME_FORMAT = "dd/mm/yyyy hh:mm"
XLSX_DATE_FORMAT = "dd/mm/yyyy"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
MIN_WIDTH, MAX_WIDTH = 8, 60  # characters; Excel's default is 8.43


def neutralise(text: str) -> str:
    """Text a spreadsheet would evaluate, made literal with a leading apostrophe."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return "Có" if value else "Không"
    return value


def csv_cell(value: Any) -> Any:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return neutralise(str(value))


def xlsx_cell(value: Any) -> Any:
    value = _plain(value)
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, datetime):
        # Excel has no time zones: the instant as Vietnam local wall time
        return value.astimezone(VN_TZ).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return value
    # control characters are not allowed in the file format (openpyxl would refuse the whole sheet)
    return neutralise(ILLEGAL_CHARACTERS_RE.sub("\ufffd", str(value)))


def csv_bytes(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM (Excel then opens Vietnamese text correctly)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([csv_cell(h) for h in headers])
    for values in rows:
        writer.writerow([csv_cell(v) for v in values])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _shown_length(value: Any) -> int:
    """About how many characters a cell shows (a date cell: its dd/mm/yyyy hh:mm form)."""
    if isinstance(value, datetime):
        return len(XLSX_DATETIME_FORMAT)
    if isinstance(value, date):
        return len(XLSX_DATE_FORMAT)
    if isinstance(value, float):
        return len(f"{value:.2f}")
    return max((len(line) for line in str(value).splitlines()), default=0) if value is not None else 0


def xlsx_bytes(
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    heading: str | None = None,
    notes: Sequence[str] = (),
) -> bytes:
    """One sheet named `title`: `heading` and `notes` (one line each) above the table, then a blank
    row, the header row (bold, with an autofilter over the table) and the rows. Without heading or
    notes the header row is row 1."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    above = ([heading] if heading else []) + list(notes)
    for line in above:
        sheet.append([xlsx_cell(line)])
    if heading:
        sheet["A1"].font = Font(bold=True, size=13)
    if above:
        sheet.append([])  # a blank row between the notes and the table
    header_row = len(above) + 2 if above else 1
    widths = [_shown_length(h) for h in headers]
    sheet.append([xlsx_cell(h) for h in headers])
    for column in range(1, len(headers) + 1):
        cell = sheet.cell(row=header_row, column=column)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="EEF1F4")
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for values in rows:
        cells = [xlsx_cell(v) for v in values]
        sheet.append(cells)
        for column, value in enumerate(cells, start=1):
            if column <= len(widths):
                widths[column - 1] = max(widths[column - 1], _shown_length(value))
            if isinstance(value, (datetime, date)):
                cell = sheet.cell(row=sheet.max_row, column=column)
                cell.number_format = XLSX_DATETIME_FORMAT if isinstance(value, datetime) else XLSX_DATE_FORMAT
    for column, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = min(max(width + 2, MIN_WIDTH), MAX_WIDTH)
    if headers:
        last = get_column_letter(len(headers))
        sheet.auto_filter.ref = f"A{header_row}:{last}{max(sheet.max_row, header_row)}"
    sheet.freeze_panes = f"A{header_row + 1}"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()

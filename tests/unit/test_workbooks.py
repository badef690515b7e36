"""Workbooks ready to read (issue #20): Vietnamese words beside the codes, real date cells with a
dd/mm/yyyy hh:mm format, column widths, an autofilter on the header row, the filters and the time of
export above the table; the CSV has the same columns and stays inert."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from openpyxl import load_workbook

from services.deadline.lists import COLUMNS, ListFilters, export, export_notes
from shared.domain.calendar import VN_TZ
from shared.exports import XLSX_DATETIME_FORMAT, xlsx_bytes

AS_OF = datetime(2026, 12, 2, 9, 0, tzinfo=VN_TZ)
ROW = {
    "case_code": "000.00.02.H99-261116-00001",
    "agency_code": "000.00.02.H99",
    "agency_name": "Sở Nông nghiệp và Môi trường",
    "procedure_code": "1.004227",
    "procedure_name": "Cấp giấy chứng nhận quyền sử dụng đất lần đầu cho hộ gia đình, cá nhân",
    "field_code": "G09-DD",
    "level": "province",
    "channel": "online",
    "received_at": datetime(2026, 10, 1, 2, 15, tzinfo=UTC),
    "due_at": datetime(2026, 10, 15, 9, 0, tzinfo=UTC),
    "remaining_text": "quá 31 ngày làm việc",
    "remaining_working_hours": -248.0,
    "apology_issued": False,
    "agency_at_fault": "000.00.02.H99",
    "status": "pending",
}
NAMES = {"000.00.02.H99": "Sở Nông nghiệp và Môi trường"}


def filters(**chosen: str) -> ListFilters:
    values = {name: chosen.get(name) for name in ("agency", "level", "field", "procedure", "channel", "apology")}
    return ListFilters("overdue", AS_OF, None, **values)  # type: ignore[arg-type]


def workbook(notes: list[str] | None = None):  # type: ignore[no-untyped-def]
    answer = export(
        [ROW, {**ROW, "case_code": "=cmd", "level": "commune", "channel": "direct"}],
        "overdue",
        "xlsx",
        NAMES,
        notes if notes is not None else export_notes(filters(), "due_at", NAMES, AS_OF, 2),
    )
    return load_workbook(io.BytesIO(answer.body)).active


def header_row(sheet) -> int:  # type: ignore[no-untyped-def]
    return int(sheet.auto_filter.ref.split(":")[0][1:])


def test_the_codes_stand_beside_their_vietnamese_words() -> None:
    sheet = workbook()
    top = header_row(sheet)
    titles = [c.value for c in sheet[top]]
    cells = dict(zip(titles, [c.value for c in sheet[top + 1]], strict=True))
    assert (cells["Mã cấp"], cells["Cấp"]) == ("province", "Cấp tỉnh")
    assert (cells["Mã kênh"], cells["Kênh nộp"]) == ("online", "Trực tuyến")
    assert (cells["Mã trạng thái"], cells["Trạng thái"]) == ("pending", "Đang giải quyết")
    assert (cells["Mã lĩnh vực"], cells["Lĩnh vực"]) == ("G09-DD", "Đất đai")
    assert cells["Cơ quan chậm"] == "Sở Nông nghiệp và Môi trường" and cells["Đã xin lỗi"] == "Không"
    second = dict(zip(titles, [c.value for c in sheet[top + 2]], strict=True))
    assert (second["Cấp"], second["Kênh nộp"], second["Mã hồ sơ"]) == ("Cấp xã", "Trực tiếp", "'=cmd")


def test_dates_are_date_cells_with_a_day_first_format() -> None:
    sheet = workbook()
    top = header_row(sheet)
    titles = [c.value for c in sheet[top]]
    received = sheet.cell(top + 1, titles.index("Ngày tiếp nhận") + 1)
    due = sheet.cell(top + 1, titles.index("Hạn giải quyết") + 1)
    assert received.is_date and received.value == datetime(2026, 10, 1, 9, 15)  # Vietnam wall time
    assert received.number_format == XLSX_DATETIME_FORMAT == "dd/mm/yyyy hh:mm"
    assert due.is_date and due.number_format == "dd/mm/yyyy hh:mm"
    hours = sheet.cell(top + 1, titles.index("Số giờ làm việc còn lại") + 1)
    assert hours.data_type == "n" and hours.value == -248


def test_columns_are_wide_enough_and_the_header_row_has_a_filter() -> None:
    sheet = workbook()
    top = header_row(sheet)
    assert sheet.auto_filter.ref == f"A{top}:{sheet.cell(top, len(COLUMNS)).column_letter}{top + 2}"
    assert sheet.freeze_panes == f"A{top + 1}"
    assert sheet[f"A{top}"].font.bold
    widths = {letter: sheet.column_dimensions[letter].width for letter in ("A", "C", "E", "L")}
    assert all(width > 8.43 for width in widths.values()), widths  # wider than Excel's default
    assert widths["E"] == 60  # a long procedure name: capped, not a screen wide
    assert widths["L"] >= len("dd/mm/yyyy hh:mm")


def test_the_filters_and_the_time_of_export_are_written_above_the_table() -> None:
    chosen = filters(agency="000.00.02.H99", level="province", channel="online", apology="missing", field="G09-DD")
    notes = export_notes(chosen, "-due_at", NAMES, datetime(2026, 12, 2, 15, 30, tzinfo=UTC), 2)
    sheet = workbook(notes)
    above = [sheet.cell(row, 1).value for row in range(1, header_row(sheet))]
    assert above[0] == "Danh sách hồ sơ quá hạn" and sheet["A1"].font.bold
    assert above[1] == (
        "Bộ lọc: Cơ quan: Sở Nông nghiệp và Môi trường (000.00.02.H99) và các cơ quan trực thuộc; Cấp: Cấp tỉnh; "
        "Lĩnh vực: Đất đai (G09-DD); Kênh nộp: Trực tuyến; Xin lỗi: Chưa xin lỗi"
    )
    assert "Sắp xếp: Hạn muộn nhất trước" in above
    assert "Tính đến: 02/12/2026 09:00 (giờ Việt Nam)" in above
    assert "Thời điểm xuất: 02/12/2026 22:30 (giờ Việt Nam)" in above
    assert "Số hồ sơ: 2" in above and above[-1] is None  # a blank row before the table


def test_no_filter_says_so() -> None:
    assert export_notes(filters(), "due_at", {}, AS_OF, 0)[0] == "Bộ lọc: không có (mọi hồ sơ trong phạm vi được xem)"


def test_a_note_that_looks_like_a_formula_stays_text() -> None:
    sheet = load_workbook(io.BytesIO(xlsx_bytes("T", ["A"], [[1]], heading="=x", notes=["+1"]))).active
    assert sheet["A1"].value == "'=x" and sheet["A2"].value == "'+1"
    assert sheet["A4"].value == "A" and sheet.auto_filter.ref == "A4:A5"


def test_the_csv_has_the_same_columns_and_no_notes() -> None:
    answer = export([ROW], "overdue", "csv", NAMES, ["Bộ lọc: x"])
    rows = list(csv.reader(io.StringIO(answer.body.decode("utf-8-sig"))))
    assert rows[0] == [title for _, title in COLUMNS]
    cells = dict(zip(rows[0], rows[1], strict=True))
    assert cells["Cấp"] == "Cấp tỉnh" and cells["Kênh nộp"] == "Trực tuyến" and cells["Trạng thái"] == "Đang giải quyết"
    assert cells["Ngày tiếp nhận"] == "2026-10-01T02:15:00+00:00"  # CSV keeps ISO instants

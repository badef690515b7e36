"""What an officer reads when an API says no: Vietnamese words chosen by the error's status, its
machine `reason` (shared/web.py ApiError) and the field it names, never the API's English
`message`.

`explain(status, reason, details, **facts)` → (title, message, field lines). `facts` fill the
words: `case_code`, `due_at` (a formatted date), `agency`, `service`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.domain.indicators import PERIOD_FORMS
from shared.web import STATUS_CODES

TITLES = {
    400: "Yêu cầu chưa hợp lệ",
    401: "Phiên làm việc đã hết hạn",
    403: "Không có quyền xem nội dung này",
    404: "Không tìm thấy",
    405: "Không tìm thấy",
    409: "Yêu cầu xung đột với dữ liệu hiện có",
    413: "Dữ liệu gửi lên quá lớn",
    422: "Yêu cầu chưa hợp lệ",
    429: "Quá nhiều yêu cầu, vui lòng thử lại sau",
    500: "Lỗi hệ thống",
    502: "Lỗi từ hệ thống nghiệp vụ",
    503: "Hệ thống tạm thời chưa sẵn sàng",
}

# by the API's `reason` (the finest word), then by its `code` (one per status)
BY_REASON = {
    "case_not_found": "Không tìm thấy hồ sơ{case_code}. Kiểm tra lại mã hồ sơ; hồ sơ của cơ quan ngoài phạm vi "
    "được xem cũng không hiện ở đây.",
    "apology_exists": "Hồ sơ đã có phiếu xin lỗi; chỉ được hẹn lại một lần.",
    "new_due_not_after_due": "Ngày hẹn trả mới phải sau hạn giải quyết theo quy định{due_clause}.",
    "no_due_date": "Hồ sơ chưa có hạn giải quyết nên chưa lập được phiếu xin lỗi.",
    "not_agency_at_fault": "Chỉ cơ quan để hồ sơ quá hạn (hoặc cơ quan cấp trên của cơ quan đó) mới được lập "
    "phiếu xin lỗi cho hồ sơ này.",
    "no_apology": "Hồ sơ{case_code} chưa có phiếu xin lỗi nên chưa có thư xin lỗi để tải.",
    "outside_scope": "Cơ quan{agency} nằm ngoài phạm vi mã truy cập của bạn: bạn chỉ xem được cơ quan mình và "
    "các cơ quan trực thuộc.",
    "admin_only": "Chức năng này chỉ dành cho quản trị hệ thống.",
    "submit_only": "Mã truy cập này là khóa của hệ thống một cửa, chỉ dùng để gửi dữ liệu; để xem hồ sơ, "
    "vui lòng dùng mã truy cập của cơ quan.",
    "unknown_agency": "Không có cơ quan{agency} trong danh mục.",
    "invalid_period": f"Kỳ báo cáo chưa hợp lệ. Cách ghi được chấp nhận: {PERIOD_FORMS}.",
    "period_out_of_range": "Kỳ báo cáo phải nằm trong khoảng từ 01/01/2015 đến mười năm tới.",
    "bad_cursor": "Liên kết phân trang không còn hợp lệ; vui lòng mở lại danh sách từ trang đầu.",
    "invalid_as_of": "Thời điểm tính phải nằm trong khoảng từ 01/01/2015 đến mười năm tới.",
    "service_unreachable": "Không kết nối được tới {service}. Vui lòng thử lại sau ít phút; nếu vẫn không được, "
    "báo cho bộ phận quản trị hệ thống.",
    "page_not_found": "Không có trang này. Kiểm tra lại đường dẫn, hoặc chọn một mục trong thanh chức năng.",
}
BY_CODE = {
    "bad_request": "Yêu cầu chưa hợp lệ.",
    "unauthorized": "Phiên làm việc đã hết hạn hoặc mã truy cập đã bị thu hồi. Vui lòng đăng nhập lại.",
    "forbidden": "Mã truy cập của bạn không được xem hoặc thao tác trên nội dung này.",
    "not_found": "Không tìm thấy nội dung yêu cầu.",
    "method_not_allowed": "Không tìm thấy nội dung yêu cầu.",
    "conflict": "Yêu cầu xung đột với dữ liệu hiện có; vui lòng tải lại trang rồi thử lại.",
    "payload_too_large": "Dữ liệu gửi lên quá lớn.",
    "unsupported_media_type": "Yêu cầu chưa hợp lệ.",
    "invalid": "Thông tin chưa hợp lệ.",
    "too_many_requests": "Quá nhiều yêu cầu trong thời gian ngắn; vui lòng thử lại sau ít phút.",
    "unavailable": "Hệ thống nghiệp vụ tạm thời chưa sẵn sàng (máy chủ dữ liệu hoặc hàng đợi sự kiện chưa trả lời). "
    "Vui lòng thử lại sau ít phút.",
    "internal": "Hệ thống nghiệp vụ gặp lỗi khi xử lý yêu cầu. Lỗi đã được ghi lại; vui lòng thử lại sau ít phút.",
}
# a 404 names what was not found by what the page asked for
NOT_FOUND_OF = {"case": "case_not_found", "letter": "no_apology", "page": "page_not_found"}
# fields the pages send, as officers call them
FIELDS = {
    "new_due_at": "Ngày hẹn trả mới",
    "reason": "Lý do",
    "applicant_name": "Người nhận phiếu",
    "case_code": "Mã hồ sơ",
    "period": "Kỳ báo cáo",
    "year": "Năm",
    "agency": "Cơ quan",
    "level": "Cấp",
    "field": "Lĩnh vực",
    "procedure": "Thủ tục",
    "channel": "Kênh nộp",
    "apology": "Xin lỗi",
    "as_of": "Thời điểm tính",
    "sort": "Sắp xếp",
    "limit": "Số dòng mỗi trang",
    "cursor": "Trang",
    "format": "Định dạng tệp",
    "rules_version": "Phiên bản bộ chỉ số",
}
SERVICES = {"deadline": "dịch vụ theo dõi hạn giải quyết", "metrics": "dịch vụ chỉ số"}


@dataclass(frozen=True)
class Explained:
    title: str
    message: str
    fields: list[str]


def title_of(status: int) -> str:
    return TITLES.get(status, "Yêu cầu chưa hợp lệ" if status < 500 else "Lỗi từ hệ thống nghiệp vụ")


def field_lines(details: Iterable[Mapping[str, Any]]) -> list[str]:
    """One Vietnamese line per field an error names ("Ngày hẹn trả mới: chưa hợp lệ"), once each."""
    lines: list[str] = []
    for detail in details:
        names = [str(part) for part in detail.get("loc") or () if isinstance(part, str)]
        name = next((FIELDS[part] for part in reversed(names) if part in FIELDS), None)
        line = f"{name}: chưa hợp lệ" if name else "Một thông tin gửi lên chưa hợp lệ"
        if line not in lines:
            lines.append(line)
    return lines


def explain(
    status: int,
    reason: str | None = None,
    code: str | None = None,
    details: Iterable[Mapping[str, Any]] = (),
    *,
    asked: str = "",
    **facts: Any,
) -> Explained:
    """The words for an API error. `asked` is what the page was fetching (`case`, `letter`, `page`):
    a bare 404 then says what was not found. Unknown reasons fall back to the status's words."""
    details = list(details)
    if reason not in BY_REASON and status == 404 and asked in NOT_FOUND_OF:
        reason = NOT_FOUND_OF[asked]
    if reason not in BY_REASON and status == 422 and _names(details, "period"):
        reason = "invalid_period"
    values = {
        "case_code": f" {facts['case_code']}" if facts.get("case_code") else "",
        "agency": f" {facts['agency']}" if facts.get("agency") else "",
        "service": SERVICES.get(str(facts.get("service")), "hệ thống nghiệp vụ"),
        "due_clause": f" ({facts['due_at']})" if facts.get("due_at") else "",
    }
    if reason in BY_REASON:
        message = BY_REASON[str(reason)].format(**values)
        fields = [] if reason in ("invalid_period", "new_due_not_after_due") else field_lines(details)
        return Explained(title_of(status), message, fields)
    word = code if code in BY_CODE else STATUS_CODES.get(status, "internal" if status >= 500 else "bad_request")
    return Explained(title_of(status), BY_CODE[word], field_lines(details) if status in (400, 422) else [])


def _names(details: Iterable[Mapping[str, Any]], field: str) -> bool:
    return any(field in (detail.get("loc") or ()) for detail in details)

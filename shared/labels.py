"""Vietnamese words for the codes the APIs speak (status, channel, online mode, level, field), for
every place an officer reads them: the web pages and the CSV/XLSX exports of the deadline service.
Pure data, no I/O."""

from __future__ import annotations

from typing import Any

STATUS = {
    "pending": "Đang giải quyết",
    "waiting_citizen": "Chờ bổ sung",
    "paused": "Tạm dừng",
    "processed": "Đã giải quyết",
    "returned": "Đã trả kết quả",
    "withdrawn": "Rút hồ sơ",
    "stopped": "Dừng xử lý",
    "refused": "Từ chối tiếp nhận",
}
CHANNEL = {"direct": "Trực tiếp", "online": "Trực tuyến", "postal": "Bưu chính"}
ONLINE_MODE = {"full": "Toàn trình", "partial": "Một phần"}
LEVEL = {"province": "Cấp tỉnh", "district": "Cấp huyện", "commune": "Cấp xã"}
FIELD = {
    "G09-CT": "Công thương",
    "G09-CTh": "Chứng thực",
    "G09-DD": "Đất đai",
    "G09-DTTG": "Dân tộc, tôn giáo",
    "G09-GD": "Giáo dục và đào tạo",
    "G09-HT": "Hộ tịch",
    "G09-KD": "Đăng ký kinh doanh",
    "G09-KHCN": "Khoa học và công nghệ",
    "G09-LLTP": "Lý lịch tư pháp",
    "G09-NV": "Nội vụ",
    "G09-TC": "Tài chính",
    "G09-TTr": "Thanh tra, khiếu nại",
    "G09-VH": "Văn hóa, thể thao và du lịch",
    "G09-XD": "Xây dựng",
    "G09-YT": "Y tế",
}
APOLOGY_FILTER = {"issued": "Đã xin lỗi", "missing": "Chưa xin lỗi"}
SORT = {
    "due_at": "Hạn sớm nhất trước",
    "-due_at": "Hạn muộn nhất trước",
    "received_at": "Tiếp nhận sớm nhất trước",
    "-received_at": "Tiếp nhận muộn nhất trước",
}


def label(table: dict[str, str], code: Any) -> str:
    """The Vietnamese word of a code; an unknown code stays visible as itself; nothing is "—"."""
    if code is None or code == "":
        return "—"
    return table.get(str(code), str(code))

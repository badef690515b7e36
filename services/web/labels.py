"""Vietnamese words for the codes the APIs speak, and the formats officers read dates and rates in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.domain.calendar import VN_TZ
from shared.domain.rulesets import RuleSetError, load_rule_sets
from shared.labels import CHANNEL, FIELD, LEVEL, ONLINE_MODE, STATUS, label  # shared with the exports

EVENT = {
    "case.submitted": "Nộp hồ sơ",
    "case.received": "Tiếp nhận hồ sơ",
    "case.receipt_refused": "Từ chối tiếp nhận",
    "case.supplement_requested": "Yêu cầu bổ sung",
    "case.supplement_received": "Nhận hồ sơ bổ sung",
    "case.paused": "Tạm dừng",
    "case.resumed": "Tiếp tục xử lý",
    "case.transferred": "Chuyển liên thông",
    "case.processed": "Có kết quả giải quyết",
    "case.returned": "Trả kết quả",
    "case.withdrawn": "Rút hồ sơ",
    "case.stopped": "Dừng xử lý",
    "case.paid_online": "Thanh toán trực tuyến",
    "case.digitized": "Số hóa",
    "case.rated": "Đánh giá",
    "apology.issued": "Phiếu xin lỗi",
}
OUTCOME = {"approved": "Chấp thuận", "denied": "Từ chối"}
DATED = {"early": "Trước hạn", "on_time": "Đúng hạn", "late": "Quá hạn"}
PAUSE_REASON = {
    "supplement": "Chờ bổ sung hồ sơ",
    "verification": "Xác minh",
    "financial_obligation": "Nghĩa vụ tài chính",
    "other": "Lý do khác",
}
RATE = {
    "on_time": "Tỷ lệ đúng hạn (766, theo thời điểm)",
    "on_time_dated": "Tỷ lệ trước và đúng hạn (Biểu 06, theo ngày)",
    "online": "Tỷ lệ hồ sơ trực tuyến",
    "full_online": "Tỷ lệ hồ sơ trực tuyến toàn trình",
    "online_payment": "Tỷ lệ thanh toán trực tuyến",
    "digitized": "Tỷ lệ số hóa thành phần hồ sơ",
    "apology_coverage": "Tỷ lệ hồ sơ quá hạn có xin lỗi đúng hạn",
}


def when(value: Any, with_time: bool = True) -> str:
    """An ISO timestamp from the APIs as Vietnamese officers write it, in Vietnam time: 16/03/2026 09:15."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(VN_TZ)
    return moment.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


def local_input(value: Any) -> str:
    """For a datetime-local field: 2026-03-20T10:00 in Vietnam time."""
    if not value:
        return ""
    return datetime.fromisoformat(str(value)).astimezone(VN_TZ).strftime("%Y-%m-%dT%H:%M")


def percent(rate: Any) -> str:
    """0.9534 → "95,34 %" (Vietnamese decimal comma); no denominator → "—"."""
    if rate is None:
        return "—"
    return f"{rate * 100:.2f}".replace(".", ",") + " %"


def number(value: Any) -> str:
    """12345 → "12.345" (Vietnamese thousands separator)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    return f"{value:,}".replace(",", ".")


def rule_set(code: Any) -> str:
    """The law a case is judged by, named as officers know it (NĐ 118/2025/NĐ-CP …)."""
    if not code:
        return "—"
    try:
        return load_rule_sets().get(str(code)).name
    except RuleSetError:
        return str(code)


FILTERS = {
    "when": when,
    "day": lambda value: when(value, with_time=False),
    "percent": percent,
    "local_input": local_input,
    "number": number,
    "status": lambda code: label(STATUS, code),
    "channel": lambda code: label(CHANNEL, code),
    "online_mode": lambda code: label(ONLINE_MODE, code),
    "level": lambda code: label(LEVEL, code),
    "field": lambda code: label(FIELD, code),
    "event": lambda code: label(EVENT, code),
    "outcome": lambda code: label(OUTCOME, code),
    "dated": lambda code: label(DATED, code),
    "pause_reason": lambda code: label(PAUSE_REASON, code),
    "rule_set": rule_set,
}

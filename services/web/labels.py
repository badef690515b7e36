"""Vietnamese words for the codes the APIs speak, and the formats officers read dates and rates in."""

from __future__ import annotations

import re
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


# ---- indicators: names for the ids of config/scoring and of the plan ----------------------------

# The rates drawn month by month, in the order of the page.
RATE_CHARTS = {
    "on_time": "Tỷ lệ hồ sơ giải quyết đúng hạn",
    "online": "Tỷ lệ hồ sơ trực tuyến",
    "full_online": "Tỷ lệ hồ sơ trực tuyến toàn trình",
    "online_payment": "Tỷ lệ thanh toán trực tuyến",
    "digitized": "Tỷ lệ số hóa hồ sơ",
    "apology_coverage": "Tỷ lệ hồ sơ trễ hạn có xin lỗi đúng hạn",
}

# Every 766 item of every version in config/scoring/766.json: the number officers know (empty where
# the product's id is not an item number of the decision) and a short name.
ITEM_766 = {
    "1.1": ("1.1", "TTHC công bố đúng hạn"),
    "1.2": ("1.2", "TTHC cập nhật, công khai đúng hạn"),
    "1.3": ("1.3", "TTHC công khai đầy đủ các bộ phận"),
    "1.4": ("1.4", "Hồ sơ đồng bộ lên Cổng Dịch vụ công quốc gia"),
    "2.1": ("2.1", "Hồ sơ xử lý trước hạn, đúng hạn"),
    "3.tt": ("", "Hồ sơ trực tuyến toàn trình"),
    "3.3": ("3.3", "Hồ sơ nộp trực tuyến"),
    "3.5": ("3.5", "TTHC có nghĩa vụ tài chính tích hợp thanh toán trực tuyến"),
    "3.5b": ("3.5b", "TTHC có phát sinh giao dịch thanh toán trực tuyến"),
    "3.6": ("3.6", "Hồ sơ thanh toán trực tuyến"),
    "4.1": ("4.1", "Hồ sơ có kết quả giải quyết điện tử"),
    "4.2": ("4.2", "Hồ sơ được số hóa"),
    "4.cttd": ("", "Chứng thực điện tử"),
    "4.3": ("4.3", "Hồ sơ sử dụng lại dữ liệu số hóa"),
    "4.4": ("4.4", "Hồ sơ số hóa kết nối kho dữ liệu cá nhân"),
    "4.5a": ("4.5a", "TTHC kết nối, chia sẻ dữ liệu dân cư"),
    "4.5b": ("4.5b", "Hồ sơ sử dụng dữ liệu dân cư"),
    "5.2": ("5.2", "Tiến độ xử lý phản ánh, kiến nghị"),
    "5.3": ("5.3", "Hài lòng trong xử lý phản ánh, kiến nghị"),
    "5.4": ("5.4", "Hài lòng trong tiếp nhận, giải quyết TTHC"),
}
# What an item the case stream cannot score needs (the `deviation` of config/scoring/766.json, in words).
OUTSIDE_DATA_766 = {
    "1.1": "ngày công bố TTHC và ngày hiệu lực của văn bản (CSDL quốc gia về TTHC)",
    "1.2": "thời điểm công khai TTHC (CSDL quốc gia về TTHC)",
    "1.3": "hồ sơ công bố TTHC (CSDL quốc gia về TTHC)",
    "3.5": "danh mục TTHC tích hợp thanh toán trên Cổng DVCQG",
    "3.5b": "giao dịch thanh toán theo TTHC trên Cổng DVCQG",
    "4.1": "kết quả giải quyết điện tử trên Cổng DVCQG",
    "4.cttd": "số liệu chứng thực điện tử",
    "4.4": "kết nối kho dữ liệu cá nhân trên Cổng DVCQG",
    "4.5a": "kết nối với CSDL quốc gia về dân cư",
    "4.5b": "kết nối với CSDL quốc gia về dân cư",
    "5.2": "hệ thống phản ánh, kiến nghị",
    "5.3": "hệ thống phản ánh, kiến nghị",
}
PAR_CRITERION = {
    "on_time_province": "Tỷ lệ đúng hạn cấp tỉnh",
    "on_time_district": "Tỷ lệ đúng hạn cấp huyện (trước 01/07/2025)",
    "on_time_commune": "Tỷ lệ đúng hạn cấp xã",
    "apology": "Xin lỗi người dân khi trễ hẹn",
    "online": "Tỷ lệ hồ sơ nộp trực tuyến",
    "full_online": "Tỷ lệ hồ sơ trực tuyến toàn trình",
}
PLAN_TARGET = {
    "online": "Hồ sơ trực tuyến",
    "postal_returns": "Trả kết quả qua bưu chính công ích",
    "apology_coverage": "Xin lỗi đúng hạn khi trễ hẹn",
    "digitized": "Số hóa hồ sơ",
}
RULES = {"766": "Bộ tiêu chí 766", "par": "Bộ tiêu chí PAR INDEX"}
DISTRICTS_END = "2025-07-01"  # NĐ 118/2025: no district level from this day


def item_766(code: Any, name: Any = None) -> str:
    """ "2.1. Hồ sơ xử lý trước hạn, đúng hạn"; an id that is not an item number shows no number."""
    number_, short = ITEM_766.get(str(code), ("", str(name or "—")))
    return f"{number_}. {short}" if number_ else short


def group_766(group: Any) -> str:
    """ "2. Tiến độ giải quyết"; the payment group the portal shows apart from group 3 ("3'") by name."""
    code = str(group["group"])
    return str(group["name"]) if "'" in code else f"{code}. {group['name']}"


def par_criterion(code: Any, name: Any = None) -> str:
    return PAR_CRITERION.get(str(code), str(name or "—"))


def plan_target(code: Any) -> str:
    """ "on_time:G09-DD" → "Đúng hạn · Đất đai"; "online" → "Hồ sơ trực tuyến"."""
    text = str(code or "")
    if text.startswith("on_time:"):
        field = text.removeprefix("on_time:")
        return "Đúng hạn · " + ("Các lĩnh vực khác" if field in ("*", "unknown") else label(FIELD, field))
    return PLAN_TARGET.get(text, text)


def rules_version(code: Any) -> str:
    """ "766-2026.2" → "Bộ tiêu chí 766 (bản 2026.2)"; "par-2026.1" → "Bộ tiêu chí PAR INDEX (bản 2026.1)"."""
    text = str(code or "")
    family, _, edition = text.partition("-")
    if family.lower() in RULES and edition:
        return f"{RULES[family.lower()]} (bản {edition})"
    return text or "—"


def points_text(value: Any) -> str:
    """Points as the API gives them, decimal comma, no trailing zeros: 12.5 → "12,5", 18.0 → "18"."""
    if value is None:
        return "—"
    return f"{float(value):.2f}".rstrip("0").rstrip(".").replace(".", ",")


def whole_percent(rate: float) -> str:
    """0.3 → "30%", 0.985 → "98,5%": a goal as a plan writes it."""
    return f"{rate * 100:.2f}".rstrip("0").rstrip(".").replace(".", ",") + "%"


def goal_words(goal: float | None, compare: Any) -> str:
    """A plan goal as the plan words it: "trên 30%" (strictly above), "đạt 100%", "từ 98% trở lên"."""
    if goal is None:
        return "—"
    if compare == "above":
        return f"trên {whole_percent(goal)}"
    return f"đạt {whole_percent(goal)}" if goal >= 1 else f"từ {whole_percent(goal)} trở lên"


def plan_wording(text: Any) -> str:
    """The plan's sentence without the team's English reading notes in brackets ("(every late case)")."""
    words = re.sub(r"\s*\([\x20-\x7e]*\)", "", str(text or "")).strip()
    return words or "—"


FILTERS.update(
    {
        "item_766": item_766,
        "group_766": group_766,
        "points": points_text,
        "par_criterion": par_criterion,
        "plan_target": plan_target,
        "rules_version": rules_version,
        "goal_words": lambda target: goal_words(target.get("goal"), target.get("compare")),
        "plan_wording": plan_wording,
    }
)

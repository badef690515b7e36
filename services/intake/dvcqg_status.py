"""The national portal's case statuses (TrangThaiHoSo), as DVCQG sync sends them (tthc-rules §3.1)."""

from __future__ import annotations

from enum import IntEnum


class DvcqgStatus(IntEnum):
    """TrangThaiHoSo, 1–10.

    1 Mới đăng ký · 2 Được tiếp nhận · 3 Không được tiếp nhận · 4 Đang xử lý ·
    5 Yêu cầu bổ sung giấy tờ · 6 Yêu cầu thực hiện nghĩa vụ tài chính ·
    7 Công dân yêu cầu rút hồ sơ · 8 Dừng xử lý · 9 Đã xử lý xong · 10 Đã trả kết quả.
    """

    SUBMITTED = 1  # submitted online, not yet received
    RECEIVED = 2  # the clock runs
    REFUSED = 3  # refused at reception
    PROCESSING = 4
    AWAITING_SUPPLEMENT = 5  # waiting for the applicant's documents
    AWAITING_FINANCIAL_OBLIGATION = 6  # waiting for a fee or tax to be paid
    WITHDRAWN = 7  # the applicant withdrew the case
    STOPPED = 8
    PROCESSED = 9  # the result is ready: the end of processing
    RETURNED = 10  # the result was handed over

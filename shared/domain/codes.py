"""The public codes of contract v1: channels, online modes, levels, units, conventions, statuses."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """Kênh thực hiện. DVCQG KenhThucHien 1 | 2 | 3."""

    DIRECT = "direct"
    ONLINE = "online"
    POSTAL = "postal"


class OnlineMode(StrEnum):
    """Toàn trình (full) or một phần (partial)."""

    FULL = "full"
    PARTIAL = "partial"


class Level(StrEnum):
    """Cấp: province and commune; district only for cases received before 2025-07-01."""

    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"


class DurationUnit(StrEnum):
    WORKING_DAYS = "working_days"
    CALENDAR_DAYS = "calendar_days"
    WORKING_HOURS = "working_hours"


class Convention(StrEnum):
    """How a working-day duration is counted.

    working_hours: 1 working day = 8 working hours from the receipt instant through office hours.
    end_of_day: the receipt day is not counted; due at the close of the Nth working day.
    """

    WORKING_HOURS = "working_hours"
    END_OF_DAY = "end_of_day"


class SupplementMode(StrEnum):
    """What a supplement request (yêu cầu bổ sung) during processing does to the clock."""

    PAUSE = "pause"  # the remaining time resumes when the citizen completes the file
    RESTART = "restart"  # the full duration counts again from the complete resubmission


class PauseReason(StrEnum):
    VERIFICATION = "verification"
    FINANCIAL_OBLIGATION = "financial_obligation"
    OTHER = "other"


class Cutoff(StrEnum):
    """Per-procedure receipt cut-off: received after it, counting starts the next working day."""

    AT_15 = "15:00"
    ONE_HOUR_BEFORE_CLOSE = "1h_before_close"


class ApologyTiming(StrEnum):
    """When a case that will be late must have its apology (thời hạn xin lỗi), per procedure."""

    ONE_WORKING_DAY_BEFORE_DUE = "one_working_day_before_due"  # NĐ 61/2018, NĐ 118/2025 (tthc-rules §2.1)
    AT_DUE = "at_due"  # when the time runs out without a result: the NĐ 297/2025 group (Điều 6 k5)


class CaseStatus(StrEnum):
    SUBMITTED = "submitted"  # filed online, not yet received (DVCQG 1)
    PENDING = "pending"
    WAITING_CITIZEN = "waiting_citizen"
    PAUSED = "paused"
    PROCESSED = "processed"
    RETURNED = "returned"
    WITHDRAWN = "withdrawn"
    STOPPED = "stopped"
    REFUSED = "refused"


class EventType(StrEnum):
    SUBMITTED = "case.submitted"
    RECEIVED = "case.received"
    RECEIPT_REFUSED = "case.receipt_refused"
    SUPPLEMENT_REQUESTED = "case.supplement_requested"
    SUPPLEMENT_RECEIVED = "case.supplement_received"
    PAUSED = "case.paused"
    RESUMED = "case.resumed"
    TRANSFERRED = "case.transferred"
    PROCESSED = "case.processed"
    RETURNED = "case.returned"
    WITHDRAWN = "case.withdrawn"
    STOPPED = "case.stopped"
    PAID_ONLINE = "case.paid_online"
    DIGITIZED = "case.digitized"
    RATED = "case.rated"
    APOLOGY_ISSUED = "apology.issued"


class DerivedEventType(StrEnum):
    """Events the deadline service publishes on tthc.deadline-events, once per transition."""

    DEADLINE_COMPUTED = "deadline.computed"
    DUE_SOON = "deadline.due_soon"
    APOLOGY_DUE_SOON = "deadline.apology_due_soon"  # the apology deadline is within the window (v1.1)
    APOLOGY_REQUIRED = "deadline.apology_required"
    OVERDUE = "deadline.overdue"
    APOLOGY_ISSUED = "apology.issued"
    CASE_CLOSED = "case.closed"


END_OF_PROCESSING = frozenset({EventType.PROCESSED, EventType.RETURNED, EventType.WITHDRAWN, EventType.STOPPED})

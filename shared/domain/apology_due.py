"""Hồ sơ cần xin lỗi: the open cases whose apology is due soon, or late but still possible.

Contract v1.1: "`GET /v1/cases/apology-due`: open cases with no apology whose `apology_deadline_at`
lies within `TTHC_APOLOGY_DUE_WORKING_HOURS` (default 8) after `as_of`, or has passed while
`due_at` has not". The apology deadline (hạn xin lỗi) is one working day before due (tthc-rules
§2.1), which is exactly where the due-soon window starts: without this list an officer first sees
a case when its apology is already late.

Pure functions of instants; the window's end (`as_of` + the working hours, on the case's calendar)
is computed by the caller.
"""

from __future__ import annotations

from datetime import datetime

from shared.domain.deadlines import WORKING_DAY_SECONDS

# The apology deadline is at most one working day before due (contract v1.1: one working day
# before, or at due), so a case in the window is due at most one working day after the window's end
# on its calendar. Twice that, on every calendar in use, bounds the walk over the cases ordered by
# due instant with room to spare (a deadline counted another way, a case moved between calendars):
# a bound on the work of a page, not a rule.
DUE_AFTER_APOLOGY_AT_MOST = 2 * WORKING_DAY_SECONDS


def apology_due(
    as_of: datetime,
    window_end: datetime,
    apology_deadline_at: datetime | None,
    due_at: datetime | None,
    apology_issued: bool,
) -> bool:
    """A case with no apology whose apology deadline lies in [as_of, window_end], or has passed
    while its statutory due instant has not (due_at ≥ as_of: a case due at as_of is not overdue)."""
    if apology_issued or apology_deadline_at is None or due_at is None:
        return False
    if as_of <= apology_deadline_at <= window_end:
        return True
    return apology_deadline_at < as_of and due_at >= as_of


def apology_late(as_of: datetime, apology_deadline_at: datetime | None) -> bool:
    """The apology deadline has passed (the case is listed as late but still possible)."""
    return apology_deadline_at is not None and apology_deadline_at < as_of

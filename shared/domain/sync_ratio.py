"""766 item 1.4, tỷ lệ hồ sơ đồng bộ lên Cổng DVCQG, from the national counts ops supply.

S-766DOC 1.4: synced cases with NgayTiepNhan in the period ÷ the cases the national side expects,
the larger of the national reporting system's count (BCQG, Hệ thống báo cáo quốc gia) and the
count synced to the national portal (DVCQG). Those counts live outside this product: ops enter them
per agency and month. The numerator is every case this product holds with receipt in the period.
S-766DOC 3.3 multiplies the online share by this ratio. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from shared.domain.indicators import Period

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
ADMIN_ROUTE = "PUT /v1/admin/sync-counts/{agency_code}/{YYYY-MM}"


@dataclass(frozen=True)
class SyncCount:
    """The national counts of cases received by an agency (with the agencies below it) in a month."""

    agency_code: str
    month: str  # YYYY-MM
    bcqg: int | None  # Hệ thống báo cáo quốc gia
    dvcqg: int | None  # Cổng Dịch vụ công quốc gia

    @property
    def expected(self) -> int:
        """The denominator's share of this month: the larger count (S-766DOC 1.4)."""
        return max(n for n in (self.bcqg, self.dvcqg) if n is not None)


def period_months(period: Period) -> list[str] | None:
    """The months a period covers, or None when it does not start and end on month boundaries."""
    if period.first.day != 1 or (period.last + timedelta(days=1)).day != 1:
        return None
    months, day = [], period.first
    while day <= period.last:
        months.append(day.strftime("%Y-%m"))
        day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return months


def sync_ratio(
    received: int, period: Period, agencies: Iterable[str], counts: Mapping[tuple[str, str], SyncCount]
) -> tuple[float | None, str | None]:
    """(rate, None), or (None, why) when the national counts cannot give one.

    `agencies` are the roots of the selection (the agency asked for, or the top agencies): their
    counts cover the agencies below them, as the cases in `received` do. Rate capped at 1.
    """
    months = period_months(period)
    if months is None:
        return None, "the national sync counts are monthly: item 1.4 needs a period of whole months"
    roots = sorted(agencies)
    if not roots:
        return None, "no agency in the selection"
    missing = [f"{a} {m}" for a in roots for m in months if (a, m) not in counts]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        return None, f"no national sync count (BCQG/DVCQG) for {shown}; ops supply them at {ADMIN_ROUTE}"
    expected = sum(counts[(a, m)].expected for a in roots for m in months)
    if expected == 0:
        return None, "the national sync counts for the period are 0"
    return min(1.0, received / expected), None


def with_sync(answer: dict[str, Any], rate: float | None, reason: str | None) -> dict[str, Any]:
    """The answer with `extra.sync` (1.4), `extra.online_synced` (3.3: online share × sync ratio)
    and, for each null among them, `extra.reasons[name]`."""
    extra = dict(answer["extra"])
    reasons = dict(extra.get("reasons", {}))
    online = answer["rates"]["online"]
    extra["sync"] = rate
    extra["online_synced"] = None if rate is None or online is None else online * rate
    if rate is None:
        reasons["sync"] = reason or "no national sync count"
        reasons["online_synced"] = f"the sync ratio (item 1.4) is null: {reasons['sync']}"
    elif online is None:
        reasons["online_synced"] = "no case received in the period"
    extra["reasons"] = reasons
    return {**answer, "extra": extra}


def month_in_range(month: str, earliest: date, latest: date) -> bool:
    """YYYY-MM, between the months of `earliest` and `latest`."""
    match = MONTH.match(month)
    if not match:
        return False
    return earliest.strftime("%Y-%m") <= month <= latest.strftime("%Y-%m")

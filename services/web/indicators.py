"""The indicators page for a period: Biểu 06, the 766 index and PAR, with SVG charts of each rate by
month against the plan's target, the agencies ranked worst-first and the 766 points by group (the
rows and charts are built in services/web/views.py and charts.py)."""

from __future__ import annotations

import asyncio
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.web import labels
from services.web.site import SessionToken, SiteState
from services.web.views import indicator_views
from shared.domain.indicators import PERIOD_FORMS, PeriodError, parse_period

router = APIRouter()


def current_quarter(today: date) -> str:
    return f"{today.year}-Q{(today.month - 1) // 3 + 1}"


@router.get("/indicators", response_class=HTMLResponse)
async def indicators(
    request: Request, site: SiteState, token: SessionToken, period: str = "", agency: str = "", rank: str = "on_time"
) -> HTMLResponse:
    period = period.strip() or current_quarter(date.today())
    rank = rank if rank in labels.RATE_CHARTS else "on_time"
    try:
        span = parse_period(period)
    except PeriodError:  # its message is for developers; the officer gets the forms the field takes
        message = (
            f"Kỳ báo cáo chưa hợp lệ: “{period}” không phải một kỳ báo cáo. Cách ghi được chấp nhận: {PERIOD_FORMS}."
        )
        who = await site.officer(token)
        return site.render(request, "indicators.html", 422, who=who, period=period, agency=agency, error=message)
    metrics, scope = site.backend, {"period": period, "agency": agency}
    who, answer, index766, par, by_month, by_agency = await asyncio.gather(
        site.officer(token),
        metrics.get("metrics", "/v1/indicators", token, **scope),
        metrics.get("metrics", "/v1/index/766", token, **scope),
        metrics.get("metrics", "/v1/index/par", token, year=span.last.year, agency=agency),
        metrics.get("metrics", "/v1/indicators/by-month", token, **scope),
        metrics.get("metrics", "/v1/indicators/by-agency", token, **scope),
    )
    return site.render(
        request,
        "indicators.html",
        **indicator_views(who, span, answer, index766, par, by_month, by_agency, site.settings.config_dir, rank),
        period=period,
        agency=agency,
        span=span,
        answer=answer,
        index766=index766,
        error=None,
    )

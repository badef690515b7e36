"""Server-side SVG: the monthly on-time rate of each agency as a row of bars (small multiples).

No JavaScript and no chart library: an <svg> per agency, sized for a phone, with a <title> on each
bar so a tap or hover shows the month, the rate and how many cases it counts.
"""

from __future__ import annotations

from html import escape
from typing import Any

from services.web.labels import number, percent

BAR, GAP, HEIGHT = 14, 4, 44
GOOD, FAIR = 0.95, 0.85


def tone(rate: float | None) -> str:
    if rate is None:
        return "none"
    return "good" if rate >= GOOD else "fair" if rate >= FAIR else "poor"


def month_bars(points: list[dict[str, Any]], label: str) -> str:
    width = max(len(points), 1) * (BAR + GAP)
    parts = [
        f'<svg class="bars" role="img" aria-label="{escape(label)}" width="{width}" height="{HEIGHT}" '
        f'viewBox="0 0 {width} {HEIGHT}">'
    ]
    for i, point in enumerate(points):
        rate = point.get("on_time")
        x = i * (BAR + GAP)
        height = 2 if rate is None else max(2, round(rate * (HEIGHT - 2)))
        title = f"{point['month']}: {percent(rate)} ({number(point.get('counted', 0))} hồ sơ)"
        parts.append(
            f'<rect class="{tone(rate)}" x="{x}" y="{HEIGHT - height}" width="{BAR}" height="{height}">'
            f"<title>{escape(title)}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)

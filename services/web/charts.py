"""Server-side SVG charts for the indicators page: no JavaScript and no chart library.

Three kinds, all drawn on a 360-unit-wide viewBox that the page scales to the card's width (100%),
so the same chart reads on a 390 px phone and on a desktop:
- `rate_by_month`: one bar per month, its value printed above it and the month under it, and the
  plan's target as a dashed line labelled with the plan's words ("Chỉ tiêu: trên 30%");
- `ranking`: agencies as horizontal bars, worst first, the value printed at the end of each row;
- `points_by_group`: the 766 points of each group against the group's maximum.

Every chart is `role="img"` with an `aria-label` and a `<title>`; the printed values are the API's
rates in percent with one decimal ("95,3"), so a reader (and a test) can check them against the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from services.web.labels import goal_words, group_766, number, percent, points_text
from shared.domain.plans import meets

WIDTH = 320
FONT = 13  # in viewBox units: about 12 px on a 390 px phone, where a chart is about 300 px wide
SMALL = 12


@dataclass(frozen=True)
class Target:
    """A plan's goal for a rate: the line on the chart and the words beside it."""

    goal: float
    compare: str  # "above" | "at_least"
    wording: str | None = None

    @property
    def words(self) -> str:
        return goal_words(self.goal, self.compare)

    def met(self, rate: float | None) -> bool | None:
        return meets(rate, self.goal, "above" if self.compare == "above" else "at_least")


def value_text(rate: float | None) -> str:
    """A rate as printed on a chart: percent with one decimal and a comma, "100" and "0" bare."""
    if rate is None:
        return "—"
    text = f"{rate * 100:.1f}".replace(".", ",")
    return text.removesuffix(",0")


def month_label(month: str) -> str:
    """ "2026-11" → "T11"."""
    return f"T{int(month[5:7])}"


def _svg(kind: str, height: float, label: str, body: list[str], summary: list[str] | None = None) -> str:
    """The chart's frame. A screen reader reads an image's label, not its texts: the label carries the
    printed values too (`summary`); the visible `<title>` stays short."""
    spoken = f"{label}. {'; '.join(summary)}." if summary else label
    return (
        f'<svg class="chart {kind}" role="img" aria-label="{escape(spoken)}" viewBox="0 0 {WIDTH} {height:g}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>" + "".join(body) + "</svg>"
    )


def _met_class(target: Target | None, rate: float | None) -> str:
    if rate is None:
        return "none"
    if target is None:
        return "plain"
    return "met" if target.met(rate) else "unmet"


# ---- one rate, month by month ------------------------------------------------------------------

TOP, PLOT, BOTTOM = 34, 146, 22  # the target's words above, the bars, the month labels below


def bar_geometry(count: int) -> tuple[float, float]:
    """(slot width, bar width) for `count` months across the chart."""
    slot = (WIDTH - 8) / max(count, 1)
    return slot, min(slot - 6, 34)


def y_of(rate: float) -> float:
    """The y of a rate on the month chart: 100% at the top of the plot, 0 at its base."""
    return round(TOP + PLOT * (1 - min(max(rate, 0.0), 1.0)), 1)


def rate_by_month(months: Sequence[Mapping[str, Any]], rate: str, label: str, target: Target | None) -> str:
    """Bars of `rate` for each month ({"month": "2026-01", "rates": {...}, ...} as /v1/indicators/by-month
    answers), the value above each bar, "T1"… under it, and the target line with its words."""
    height = TOP + PLOT + BOTTOM
    slot, bar = bar_geometry(len(months))
    base = TOP + PLOT
    body = [f'<line class="axis" x1="0" y1="{base}" x2="{WIDTH}" y2="{base}"/>']
    if target is not None:
        y = y_of(target.goal)
        body.append(f'<line class="target" x1="0" y1="{y}" x2="{WIDTH}" y2="{y}" data-goal="{target.goal:g}"/>')
        body.append('<line class="target" x1="4" y1="14" x2="26" y2="14"/>')
        body.append(
            f'<text class="target-label" x="30" y="18" font-size="{FONT}">Chỉ tiêu: {escape(target.words)}</text>'
        )
    else:
        body.append(
            f'<text class="target-label none" x="4" y="18" font-size="{FONT}">Kế hoạch chưa đặt chỉ tiêu</text>'
        )
    for i, month in enumerate(months):
        value = month["rates"].get(rate)
        centre = round(4 + slot * i + slot / 2, 1)
        x = round(centre - bar / 2, 1)
        counted = month_count(month, rate)
        title = f"Tháng {int(month['month'][5:7])}/{month['month'][:4]}: {percent(value)} ({number(counted)} hồ sơ)"
        if value is not None:
            top = y_of(value)
            h = max(round(base - top, 1), 1.0)
            body.append(
                f'<rect class="bar {_met_class(target, value)}" x="{x}" y="{round(base - h, 1)}" width="{bar:.1f}" '
                f'height="{h}"><title>{escape(title)}</title></rect>'
            )
            label_y = round(base - h - 4, 1)
        else:
            label_y = base - 4
        body.append(
            f'<text class="value" data-month="{month["month"]}" x="{centre}" y="{label_y}" '
            f'font-size="{SMALL}" text-anchor="middle">{value_text(value)}</text>'
        )
        body.append(
            f'<text class="month" x="{centre}" y="{base + 16}" font-size="{FONT}" text-anchor="middle">'
            f"{month_label(month['month'])}</text>"
        )
    spoken = [f"tháng {int(m['month'][5:7])}: {percent(m['rates'].get(rate))}" for m in months]
    if target is not None:
        spoken.insert(0, f"chỉ tiêu {target.words}")
    return _svg("by-month", height, label, body, spoken)


def month_count(month: Mapping[str, Any], rate: str) -> int:
    """How many cases a month's rate speaks of, for the bar's tooltip."""
    if rate == "on_time":
        return int(month["finished"]["total"] + month["pending"]["total"])
    return int(month["received"]["total"])


# ---- agencies ranked, worst first --------------------------------------------------------------

ROW, NAME_MAX, BAR_MAX = 38, 46, 240


def ranked(rows: Sequence[Mapping[str, Any]], rate: str) -> list[Mapping[str, Any]]:
    """Worst first; agencies with no case for the rate at the end, by name (the chart leaves them out)."""
    with_rate = sorted(
        (r for r in rows if r["rates"].get(rate) is not None), key=lambda r: (r["rates"][rate], r["name"])
    )
    without = sorted((r for r in rows if r["rates"].get(rate) is None), key=lambda r: r["name"])
    return [*with_rate, *without]


def short_name(name: str) -> str:
    return name if len(name) <= NAME_MAX else name[: NAME_MAX - 1].rstrip() + "…"


def ranking(rows: Sequence[Mapping[str, Any]], rate: str, label: str, target: Target | None = None) -> str:
    """One row per agency ({"agency_code", "name", "rates": {...}}) that has the rate: its name, then a
    bar of the rate with the value printed after it; worst first; the target as a vertical dashed line.
    Agencies without the rate (no case) are not drawn: the page names them under the chart."""
    ordered = [row for row in ranked(rows, rate) if row["rates"].get(rate) is not None]
    head = 24
    height = head + ROW * max(len(ordered), 1)
    body: list[str] = []
    if target is not None:
        x = round(BAR_MAX * target.goal, 1)
        body.append(
            f'<line class="target" x1="{x}" y1="{head - 4}" x2="{x}" y2="{height}" data-goal="{target.goal:g}"/>'
        )
        body.append(
            f'<text class="target-label" x="0" y="16" font-size="{FONT}">'
            f"Chỉ tiêu: {escape(target.words)} (vạch đứt)</text>"
        )
    for i, row in enumerate(ordered):
        y = head + ROW * i
        value = row["rates"].get(rate)
        name = row["name"] + (" (hồ sơ của chính cơ quan)" if row.get("own_cases_only") else "")
        body.append(
            f'<text class="name" x="0" y="{y + 13}" font-size="{FONT}"><title>{escape(name)}</title>'
            f"{escape(short_name(name))}</text>"
        )
        body.append(f'<rect class="track" x="0" y="{y + 18}" width="{BAR_MAX}" height="13"/>')
        w = max(round(BAR_MAX * min(value, 1.0), 1), 1.0)
        body.append(f'<rect class="bar {_met_class(target, value)}" x="0" y="{y + 18}" width="{w}" height="13"/>')
        words = value_text(value) + "%"
        body.append(
            f'<text class="value" data-agency="{escape(row["agency_code"])}" x="{WIDTH}" y="{y + 30}" '
            f'font-size="{FONT}" text-anchor="end">{escape(words)}</text>'
        )
    return _svg("ranking", height, label, body, [f"{r['name']}: {percent(r['rates'][rate])}" for r in ordered])


# ---- 766 points by group -----------------------------------------------------------------------


def points_by_group(groups: Sequence[Mapping[str, Any]], label: str) -> str:
    """For each 766 group: its name, a track as long as its maximum (on one scale for all groups),
    the part the case data can score, the points; "12,5 / 20" printed at the end of the row."""
    widest = max((float(g["max_points"]) for g in groups), default=1.0) or 1.0
    scale = BAR_MAX / widest
    height = ROW * max(len(groups), 1) + 4
    body: list[str] = []
    for i, group in enumerate(groups):
        y = ROW * i
        scorable = sum(float(item["max_points"]) for item in group["items"] if item.get("scored", True))
        widths = {
            "track": float(group["max_points"]) * scale,
            "scorable": scorable * scale,
            "bar points": float(group["points"]) * scale,
        }
        body.append(f'<text class="name" x="0" y="{y + 12}" font-size="{FONT}">{escape(group_766(group))}</text>')
        for kind, width in widths.items():
            if width > 0:
                body.append(
                    f'<rect class="{kind}" x="0" y="{y + 17}" width="{max(round(width, 1), 1.0)}" height="12"/>'
                )
        words = f"{points_text(group['points'])} / {points_text(group['max_points'])}"
        body.append(
            f'<text class="value" data-group="{escape(str(group["group"]))}" x="{WIDTH}" y="{y + 28}" '
            f'font-size="{FONT}" text-anchor="end">{words}</text>'
        )
    spoken = [f"{group_766(g)}: {points_text(g['points'])} trên {points_text(g['max_points'])} điểm" for g in groups]
    return _svg("points", height, label, body, spoken)

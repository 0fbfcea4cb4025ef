"""The dashboard's charts as inline SVG, drawn on the server with pygal.

No JavaScript: pygal is given no script to link (js=[]) and its inline configuration
script, useless without one, is taken out. Each chart sits beside a table holding the
same figures, which is also what screen readers and printouts rely on.
"""

import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import pygal
from django.core.cache import cache
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from pygal.style import Style

from cases.models import CaseStatus, IncidentKind, InterviewOutcome, Sex
from cases.selectors import StatusCount
from reports.selectors import (
    AGE_BANDS,
    AGING_BUCKETS,
    AgingRow,
    InterviewFigures,
    MonthIncidents,
    NeedCount,
    SexRow,
    WeekDepartures,
)

FONT = 'system-ui, "Segoe UI", "Noto Sans", "Noto Naskh Arabic", sans-serif'
# The app's accent blue first, then calm colours that stay apart in greyscale print.
PALETTE = ("#1d5c8f", "#e0b252", "#1e6b3a", "#a61b1b", "#8c6bb1", "#7fa7c9", "#9aa5b1", "#c9773a")
STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#d9dee5",
    opacity="1",
    opacity_hover="1",
    transition="none",
    colors=PALETTE,
    font_family=FONT,
    label_font_family=FONT,
    major_label_font_family=FONT,
    legend_font_family=FONT,
    value_font_family=FONT,
    title_font_family=FONT,
    tooltip_font_family=FONT,
    no_data_font_family=FONT,
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=14,
    no_data_font_size=18,
    guide_stroke_color="#d9dee5",
    major_guide_stroke_color="#d9dee5",
    guide_stroke_dasharray="0",
    major_guide_stroke_dasharray="0",
)
# Widths in SVG units: a chart across a card, and one beside a table or another chart.
FULL = 1100
HALF = 560
_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)

# Outcome colours follow their meaning: attended green, no-show red, refused amber.
OUTCOME_COLOURS = {
    InterviewOutcome.ATTENDED: "#1e6b3a",
    InterviewOutcome.NO_SHOW: "#a61b1b",
    InterviewOutcome.REFUSED: "#e0b252",
    InterviewOutcome.PENDING: "#7fa7c9",
    InterviewOutcome.RESCHEDULED: "#8c6bb1",
    InterviewOutcome.CANCELLED: "#9aa5b1",
}
KIND_COLOURS = {
    IncidentKind.ATTACK: "#a61b1b",
    IncidentKind.MEDICAL: "#1d5c8f",
    IncidentKind.FIRE: "#c9773a",
    IncidentKind.PROTEST: "#8c6bb1",
    IncidentKind.OTHER: "#9aa5b1",
}
# Aging buckets from light to dark: the longer a case waits, the darker.
AGING_COLOURS = ("#c6dbef", "#8fb6d9", "#4f8abf", "#1d5c8f", "#0d2f4f")


def _chart(
    kind: type, *, width: int = FULL, height: int = 360, colours: Sequence[str] = PALETTE, **options: object
) -> pygal.graph.graph.Graph:
    """A chart drawn at about the size it shows at on a laptop, so that its text reads like the page's."""
    style = Style(**{**STYLE.to_dict(), "colors": tuple(colours)})
    settings: dict[str, object] = {
        "js": [],
        "disable_xml_declaration": True,
        "style": style,
        "width": width,
        "height": height,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 4,
        "margin": 12,
        "margin_bottom": 28,
        "truncate_label": -1,
        "truncate_legend": -1,
        "spacing": 14,
        "no_data_text": _("No data for these filters"),
    }
    return kind(**(settings | options))


# pygal takes 10–60 ms a chart; figures change far less often than the page is read.
CACHE_SECONDS = 600


def _remembered(draw: Callable[..., SafeString]) -> Callable[..., SafeString]:
    """Keep each chart's SVG, keyed by its data and language, so that the same figures are drawn once."""

    @functools.wraps(draw)
    def wrapper(*args: Any) -> SafeString:
        digest = hashlib.sha256(repr((draw.__name__, get_language(), args)).encode()).hexdigest()
        key = f"reports:chart:{digest}"
        svg = cache.get(key)
        if svg is None:
            svg = draw(*args)
            cache.set(key, str(svg), CACHE_SECONDS)
        return mark_safe(svg)  # noqa: S308 - drawn by pygal, which escapes every label

    return wrapper


def _svg(chart: pygal.graph.graph.Graph) -> SafeString:
    # pygal builds the SVG with an XML serialiser, which escapes every label.
    svg = _SCRIPT.sub("", chart.render(is_unicode=True))
    return mark_safe(svg)  # noqa: S308


def _counts(highest: int) -> dict[str, Any]:
    """A count axis: whole numbers only, about five of them, the last at or above the
    highest bar (pygal's own would show 0.1, 0.2 … for a few incidents, and crowd a
    long axis with figures that run together)."""
    if highest <= 0:
        return {}  # nothing to draw: pygal shows "no data" (and cannot place labels then)
    step = 1
    while highest > 5 * step:
        step = _next_step(step)
    top = max(step, -(-highest // step) * step)
    return {"y_labels": list(range(0, top + 1, step)), "range": (0, top)}


def _next_step(step: int) -> int:
    """1, 2, 5, 10, 20, 50, …"""
    digits = str(step)
    return step * 5 // 2 if digits.startswith("2") else step * 2


def _week_options(count: int) -> dict[str, Any]:
    """Label about eight weeks so that the axis stays readable."""
    every = max(1, round(count / 8))
    return {"x_label_rotation": 0, "x_labels_major_every": every, "show_minor_x_labels": False}


@_remembered
def pipeline(rows: Sequence[StatusCount]) -> SafeString:
    rows = list(reversed(rows))  # horizontal bars are drawn bottom up: the first status on top
    highest = max((max(row.cases, row.persons) for row in rows), default=0)
    chart = _chart(pygal.HorizontalBar, width=640, height=520, **_counts(highest))
    chart.x_labels = [str(CaseStatus(row.status).label) for row in rows]
    chart.add(_("Cases"), [row.cases or None for row in rows])
    chart.add(_("Persons"), [row.persons or None for row in rows])
    return _svg(chart)


@_remembered
def departures(weeks: Sequence[WeekDepartures]) -> SafeString:
    highest = max((w.persons for w in weeks), default=0)
    chart = _chart(pygal.Bar, width=HALF, height=320, **_week_options(len(weeks)), **_counts(highest))
    chart.x_labels = [f"{w.week:%d %b}" for w in weeks]
    chart.add(_("Persons departed"), [w.persons or None for w in weeks])
    return _svg(chart)


@_remembered
def relocated_cumulative(weeks: Sequence[WeekDepartures]) -> SafeString:
    options = _week_options(len(weeks))
    options |= _counts(max((w.cumulative for w in weeks), default=0))
    chart = _chart(pygal.Line, width=HALF, height=320, fill=True, show_dots=False, colours=("#1e6b3a",), **options)
    chart.x_labels = [f"{w.week:%d %b}" for w in weeks]
    chart.add(_("Persons relocated (total)"), [w.cumulative for w in weeks])
    return _svg(chart)


@_remembered
def interviews(figures: InterviewFigures) -> SafeString:
    weeks = figures.weeks
    shown = [o for o in OUTCOME_COLOURS if figures.totals.get(o)]
    highest = max((sum(w.by_outcome.get(o, 0) for o in shown) for w in weeks), default=0)
    chart = _chart(
        pygal.StackedBar,
        colours=[OUTCOME_COLOURS[o] for o in shown],
        **_week_options(len(weeks)),
        **_counts(highest),
    )
    chart.x_labels = [f"{w.week:%d %b}" for w in weeks]
    for outcome in shown:
        chart.add(str(outcome.label), [w.by_outcome.get(outcome, 0) or None for w in weeks])
    return _svg(chart)


@_remembered
def aging(rows: Sequence[AgingRow]) -> SafeString:
    shown = [row for row in reversed(rows) if row.total]
    highest = max((sum(row.buckets) for row in shown), default=0)
    chart = _chart(
        pygal.HorizontalStackedBar,
        height=max(240, 90 + 32 * len(shown)),
        colours=AGING_COLOURS,
        **_counts(highest),
    )
    chart.x_labels = [str(CaseStatus(row.status).label) for row in shown]
    for index, (label, _low, _high) in enumerate(AGING_BUCKETS):
        chart.add(str(label), [row.buckets[index] or None for row in shown])
    return _svg(chart)


@_remembered
def sex_and_age(rows: Sequence[SexRow]) -> SafeString:
    highest = max((n for row in rows for n in row.bands), default=0)
    chart = _chart(pygal.Bar, width=HALF, height=340, colours=("#8c6bb1", "#1d5c8f", "#9aa5b1"), **_counts(highest))
    chart.x_labels = [label for label, _low, _high in AGE_BANDS]
    for row in rows:
        if row.total:
            chart.add(str(Sex(row.sex).label), [n or None for n in row.bands])
    return _svg(chart)


@_remembered
def needs(rows: Sequence[NeedCount]) -> SafeString:
    rows = list(reversed(rows))
    highest = max((row.persons for row in rows), default=0)
    chart = _chart(
        pygal.HorizontalBar,
        width=HALF,
        height=max(200, 60 + 30 * len(rows)),
        show_legend=False,
        **_counts(highest),
    )
    chart.x_labels = [row.label for row in rows]
    chart.add(_("Persons"), [row.persons for row in rows])
    return _svg(chart)


@_remembered
def incidents(months: Sequence[MonthIncidents]) -> SafeString:
    shown = [k for k in IncidentKind if any(m.by_kind.get(k, 0) for m in months)]
    highest = max((sum(m.by_kind.get(k, 0) for k in shown) for m in months), default=0)
    chart = _chart(pygal.StackedBar, height=300, colours=[KIND_COLOURS[k] for k in shown], **_counts(highest))
    chart.x_labels = [f"{m.month:%b %Y}" for m in months]
    for kind in shown:
        chart.add(str(kind.label), [m.by_kind.get(kind, 0) or None for m in months])
    return _svg(chart)

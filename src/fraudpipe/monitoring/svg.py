"""Small SVG charts for the monitoring report: line charts (dots, histogram outlines, reference lines,
a linear, log or calendar axis) and grouped bars, each with its title, legend, ticks and axis labels.

Written here rather than drawn with matplotlib: its import and drawing cost the monitor stage about a
second a run, against a stage budget under two, and inline SVG keeps the report one self-contained
file whose figures are text. Every number is written with a fixed format, so the same data give the
same bytes. Text widths are estimated from the number of characters (no font metrics): enough to
leave room for the tick labels and to lay the legend out in rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

#: An average character's width at the 11 px of labels, a little generous, and a legend row's height.
CHAR, ROW = 6.2, 15.0
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Axis:
    """An axis: its label, fixed ends (else the data's, with a 5 % margin), log scale (decade ticks),
    and how ticks are placed and written (else round numbers, written with the decimals they need)."""

    label: str = ""
    low: float | None = None
    high: float | None = None
    log: bool = False
    ticks: Callable[[float, float], list[float]] | None = None
    tick_format: Callable[[float], str] | None = None


@dataclass(frozen=True)
class Line:
    """A series: a line through (x, y), broken where y is NaN, with a dot per point if ``markers``; with
    ``steps``, a histogram's outline, ``x`` then holding the bin edges (one more than ``y``)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str
    markers: bool = False
    steps: bool = False
    dash: str = ""


@dataclass(frozen=True)
class Rule:
    """A reference line across the plot: vertical at x = ``value`` (``vertical``) or horizontal at
    y = ``value``; in the legend when it has a label."""

    value: float
    color: str
    vertical: bool = False
    label: str = ""
    dash: str = "2,3"


@dataclass(frozen=True)
class Bars:
    """One bar per category, side by side with the other series' bars."""

    label: str
    values: Sequence[float]
    color: str


@dataclass(frozen=True)
class _Scale:
    """Data to pixels, clamped to the plot (a log axis draws zeros on its bottom edge)."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        low, high = (math.log10(self.low), math.log10(self.high)) if self.log else (self.low, self.high)
        if self.log:
            value = math.log10(value) if value > 0 else -math.inf
        share = min(max((value - low) / (high - low), 0.0), 1.0)
        return self.start + share * (self.end - self.start)


def num(value: float) -> str:
    """A coordinate: one decimal, the fixed format that makes the bytes reproducible."""
    return f"{value:.1f}"


def _decimals(value: float) -> int:
    return next((d for d in range(10) if abs(round(value, d) - value) < 1e-9 * max(1.0, abs(value))), 10)


def nice_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round ticks inside [low, high]: multiples of 1, 2, 2.5 or 5 times a power of ten, about ``target``."""
    raw = (high - low) / target
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    digits = _decimals(step)
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    return [round(k * step, digits) + 0.0 for k in range(first, last + 1)]


def decade_ticks(low: float, high: float) -> list[float]:
    return [10.0**k for k in range(math.ceil(math.log10(low) - 1e-9), math.floor(math.log10(high) + 1e-9) + 1)]


def decade_label(value: float) -> str:
    """10 to a power, the power as superscript digits: 10⁻³."""
    power = round(math.log10(value))
    return {0: "1", 1: "10"}.get(power, "10" + str(power).translate(SUPERSCRIPTS))


def day_ticks(low: float, high: float) -> list[float]:
    """Days (counted from 1970-01-01) every 1, 2, 7, 14 or 28 days, at most 7 of them, weeks from Mondays."""
    span = high - low
    step = next((s for s in (1, 2, 7, 14, 28) if span / s <= 7), 28 * math.ceil(span / 196))
    first = math.ceil(low - 1e-9)
    first += (4 - first) % step  # 1970-01-05 (day 4) was a Monday
    return [float(d) for d in range(first, math.floor(high + 1e-9) + 1, step)]


def day_label(value: float) -> str:
    day = EPOCH + timedelta(days=round(value))
    return f"{MONTHS[day.month - 1]} {day.day:02d}"


def percent_label(decimals: int) -> Callable[[float], str]:
    return lambda value: f"{value * 100:.{decimals}f}%"


def _plain_labels(ticks: Sequence[float]) -> list[str]:
    digits = max((_decimals(t) for t in ticks), default=0)
    return [f"{t:.{digits}f}" for t in ticks]


def _limits(axis: Axis, values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v) and (v > 0 or not axis.log)]
    if axis.log:
        low = axis.low or (10.0 ** math.floor(math.log10(min(finite))) if finite else 0.1)
        high = axis.high or (10.0 ** math.ceil(math.log10(max(finite))) if finite else 1.0)
        return low, high if high > low else low * 10
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    margin = 0.05 * (high - low)
    return (low - margin if axis.low is None else axis.low), (high + margin if axis.high is None else axis.high)


def _tick_labels(axis: Axis, low: float, high: float) -> tuple[list[float], list[str]]:
    ticks = axis.ticks(low, high) if axis.ticks else decade_ticks(low, high) if axis.log else nice_ticks(low, high)
    if axis.tick_format:
        return ticks, [axis.tick_format(t) for t in ticks]
    return ticks, [decade_label(t) for t in ticks] if axis.log else _plain_labels(ticks)


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{num(x)}" y="{num(y)}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


@dataclass(frozen=True)
class _Entry:
    label: str
    color: str
    dash: str = ""
    marker: bool = False
    box: bool = False


def _legend(entries: Sequence[_Entry], left: float, right: float, top: float) -> tuple[str, float]:
    """The legend in rows from the plot's left edge; its markup and the height it takes."""
    parts, x, y = [], left, top + ROW / 2
    for entry in entries:
        width = 26 + CHAR * len(entry.label)
        if x > left and x + width > right:
            x, y = left, y + ROW
        dash = f' stroke-dasharray="{entry.dash}"' if entry.dash else ""
        if entry.box:
            sample = f'<rect x="{num(x)}" y="{num(y - 5)}" width="18" height="10" fill="{entry.color}"/>'
        else:
            sample = f'<line x1="{num(x)}" y1="{num(y)}" x2="{num(x + 18)}" y2="{num(y)}" stroke-width="1.5"{dash}/>'
            if entry.marker:
                sample += f'<circle cx="{num(x + 9)}" cy="{num(y)}" r="2.5" fill="{entry.color}"/>'
        label = _text(x + 22, y, entry.label, "start", ' dy="0.32em"')
        parts.append(f'<g class="entry" stroke="{entry.color}">{sample}<g stroke="none">{label}</g></g>')
        x += width + 12
    height = (y + ROW / 2 - top) if entries else 0.0
    return f'<g class="legend">{"".join(parts)}</g>', height


def _frame(
    title: str, size: tuple[float, float], entries: Sequence[_Entry], y_labels: Sequence[str], x: Axis, y: Axis
) -> tuple[float, float, float, float, str]:
    width, height = size
    left = 10 + (16 if y.label else 0) + CHAR * max((len(t) for t in y_labels), default=1) + 6
    right = width - 12
    legend, legend_height = _legend(entries, left, right, 26)
    top = 26 + legend_height + (8 if entries else 0)
    bottom = height - 6 - 16 - (16 if x.label else 0)
    head = _text((left + right) / 2, 16, title, extra=' class="title" font-size="13" font-weight="600"')
    return left, top, right, bottom, head + legend


def _axes(
    box: tuple[float, float, float, float],
    x: tuple[Axis, list[float], list[str], _Scale | None],
    y: tuple[Axis, list[float], list[str], _Scale],
) -> str:
    """The plot's box, ticks and their labels, and the axis labels (x ticks placed by ``x``'s scale,
    or at the pixels given when it has none: the bar chart's category centres)."""
    left, top, right, bottom = box
    x_axis, x_ticks, x_labels, x_scale = x
    y_axis, y_ticks, y_labels, y_scale = y
    lines = [f'<rect x="{num(left)}" y="{num(top)}" width="{num(right - left)}" height="{num(bottom - top)}"/>']
    texts = []
    for tick, label in zip(x_ticks, x_labels, strict=True):
        at = x_scale(tick) if x_scale else tick
        lines.append(f'<line x1="{num(at)}" y1="{num(bottom)}" x2="{num(at)}" y2="{num(bottom + 4)}"/>')
        texts.append(_text(at, bottom + 15, label))
    for tick, label in zip(y_ticks, y_labels, strict=True):
        at = y_scale(tick)
        lines.append(f'<line x1="{num(left - 4)}" y1="{num(at)}" x2="{num(left)}" y2="{num(at)}"/>')
        texts.append(_text(left - 6, at, label, "end", ' dy="0.32em"'))
    if x_axis.label:
        texts.append(_text((left + right) / 2, bottom + 31, x_axis.label, extra=' class="x-label"'))
    if y_axis.label:
        middle = (top + bottom) / 2
        turn = f' class="y-label" transform="rotate(-90 12 {num(middle)})" dy="0.32em"'
        texts.append(_text(12, middle, y_axis.label, extra=turn))
    return f'<g class="axes"><g fill="none" stroke="#333">{"".join(lines)}</g><g class="ticks">{"".join(texts)}</g></g>'


def _svg(title: str, size: tuple[float, float], body: str) -> str:
    width, height = size
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{num(width)}" height="{num(height)}" '
        f'viewBox="0 0 {num(width)} {num(height)}" font-family="system-ui, sans-serif" font-size="11" '
        f'fill="#222"><title>{escape(title)}</title>{body}</svg>'
    )


def _path(line: Line, x: _Scale, y: _Scale) -> tuple[str, int]:
    """A series' path data and how many points it draws."""
    if line.steps:
        base = y.start
        d = [f"M{num(x(line.x[0]))},{num(base)}"]
        for i, value in enumerate(line.y):
            d.append(f"V{num(y(value))}H{num(x(line.x[i + 1]))}")
        return "".join(d) + f"V{num(base)}", len(line.y)
    d, pen, drawn = [], "M", 0
    for xv, yv in zip(line.x, line.y, strict=True):
        if not math.isfinite(yv):
            pen = "M"
            continue
        d.append(f"{pen}{num(x(xv))},{num(y(yv))}")
        pen, drawn = "L", drawn + 1
    return "".join(d), drawn


def _series(line: Line, x: _Scale, y: _Scale) -> str:
    d, drawn = _path(line, x, y)
    dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
    dots = ""
    if line.markers:
        dots = "".join(
            f'<circle cx="{num(x(a))}" cy="{num(y(b))}" r="2.5"/>'
            for a, b in zip(line.x, line.y, strict=True)
            if math.isfinite(b)
        )
        dots = f'<g fill="{line.color}" stroke="none">{dots}</g>'
    return (
        f'<g class="series" data-label="{escape(line.label)}" data-points="{drawn}">'
        f'<path d="{d}" fill="none" stroke="{line.color}" stroke-width="1.5"{dash}/>{dots}</g>'
    )


def line_chart(
    title: str,
    lines: Sequence[Line],
    x: Axis,
    y: Axis,
    rules: Sequence[Rule] = (),
    size: tuple[float, float] = (480, 270),
) -> str:
    """Lines (and histogram outlines) over shared axes, with reference lines, as one ``<svg>``."""
    x_low, x_high = _limits(x, [v for line in lines for v in line.x] + [r.value for r in rules if r.vertical])
    y_low, y_high = _limits(y, [v for line in lines for v in line.y] + [r.value for r in rules if not r.vertical])
    x_ticks, x_labels = _tick_labels(x, x_low, x_high)
    y_ticks, y_labels = _tick_labels(y, y_low, y_high)
    entries = [_Entry(line.label, line.color, line.dash, line.markers) for line in lines if line.label]
    entries += [_Entry(rule.label, rule.color, rule.dash) for rule in rules if rule.label]
    left, top, right, bottom, head = _frame(title, size, entries, y_labels, x, y)
    x_scale = _Scale(x_low, x_high, left, right, x.log)
    y_scale = _Scale(y_low, y_high, bottom, top, y.log)
    body = [head, _axes((left, top, right, bottom), (x, x_ticks, x_labels, x_scale), (y, y_ticks, y_labels, y_scale))]
    body += [_series(line, x_scale, y_scale) for line in lines]
    for rule in rules:
        at = x_scale(rule.value) if rule.vertical else y_scale(rule.value)
        ends = (at, top, at, bottom) if rule.vertical else (left, at, right, at)
        coords = " ".join(f'{k}="{num(v)}"' for k, v in zip(("x1", "y1", "x2", "y2"), ends, strict=True))
        body.append(f'<line class="rule" {coords} stroke="{rule.color}" stroke-dasharray="{rule.dash}"/>')
    return _svg(title, size, "".join(body))


def bar_chart(
    title: str, categories: Sequence[str], bars: Sequence[Bars], y: Axis, size: tuple[float, float] = (368, 240)
) -> str:
    """Grouped bars: per category, one bar per series side by side, from zero."""
    y_low, y_high = _limits(Axis(low=0.0, high=y.high), [v for b in bars for v in b.values])
    y_ticks, y_labels = _tick_labels(y, y_low, y_high)
    entries = [_Entry(b.label, b.color, box=True) for b in bars]
    left, top, right, bottom, head = _frame(title, size, entries, y_labels, Axis(), y)
    y_scale = _Scale(y_low, y_high, bottom, top)
    band = (right - left) / max(len(categories), 1)
    centres = [left + band * (i + 0.5) for i in range(len(categories))]
    x_axis = (Axis(), centres, list(categories), None)
    body = [head, _axes((left, top, right, bottom), x_axis, (y, y_ticks, y_labels, y_scale))]
    width = 0.8 * band / max(len(bars), 1)
    for k, series in enumerate(bars):
        rects = "".join(
            f'<rect x="{num(centre - 0.4 * band + k * width)}" y="{num(y_scale(v))}" width="{num(width)}" '
            f'height="{num(bottom - y_scale(v))}"/>'
            for centre, v in zip(centres, series.values, strict=True)
        )
        body.append(
            f'<g class="series" data-label="{escape(series.label)}" data-points="{len(series.values)}" '
            f'fill="{series.color}">{rects}</g>'
        )
    return _svg(title, size, "".join(body))

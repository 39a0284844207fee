"""Charts as inline SVG, drawn here so the report needs no script or network to show them
and prints as it looks. Every mark carries a <title> with its exact numbers (a tooltip)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
# Drop reasons in a funnel bar: no green (kept is green) and no two neighbours alike.
DROP_COLORS = (
    "#e15759", "#f28e2b", "#4e79a7", "#edc948", "#b07aa1", "#9c755f", "#ff9da7",
    "#76b7b2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728", "#9467bd", "#8c564b",
)  # fmt: skip
KEPT_COLOR = "#59a14f"
WIDTH, HEIGHT = 460, 240
LEFT, BOTTOM, TOP, RIGHT = 44, 38, 12, 10


def _svg(width: int, height: int, body: str, label: str, kind: str) -> str:
    return (
        f'<svg class="chart" data-chart="{kind}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{body}</svg>"
    )


def _nice_step(value: float, ticks: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten, at least 1 for counts) so that `ticks`
    steps reach value."""
    raw = max(value, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        if raw <= step * power:
            return step * power
    return 10 * power


def _axis_top(value: float, integer: bool) -> tuple[float, float]:
    """(top of the axis, step between ticks) for data reaching value."""
    step = _nice_step(value)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    return step * max(1, math.ceil(value / step)), step


def _bin_label(edges: Sequence[float], i: int, fmt: Callable[[float], str]) -> str:
    if i == len(edges) - 1:
        return f"{fmt(edges[i])}+" if edges[i] != 1.0 else fmt(edges[i])
    return f"{fmt(edges[i])}–{fmt(edges[i + 1])}"


def _y_axis(top: float, step: float, plot_h: float, share: bool) -> str:
    parts = []
    for k in range(round(top / step) + 1):
        value = k * step
        y = TOP + plot_h - plot_h * value / top
        text = f"{value:.0%}" if share else f"{value:,.0f}"
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{text}</text>'
        )
    return "".join(parts)


def histogram_chart(
    hist: dict[str, Any], label: str, x_label: str, fmt: Callable[[float], str] = "{:g}".format
) -> str:
    """Bars of a histogram (see analysis/histogram.py for its bins)."""
    edges, counts = hist["edges"], hist["counts"]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top, step = _axis_top(max(counts, default=0), integer=True)
    bar_w = plot_w / max(1, len(counts))
    parts = [_y_axis(top, step, plot_h, share=False)]
    every = max(1, math.ceil(len(edges) / 8))
    for i, count in enumerate(counts):
        h = plot_h * count / top
        x = LEFT + i * bar_w
        share = count / hist["total"] if hist["total"] else 0.0
        tip = f"{_bin_label(edges, i, fmt)} {x_label}: {count} ({share:.1%})"
        parts.append(
            f'<rect class="bar" x="{x + 0.5:.1f}" y="{TOP + plot_h - h:.1f}" '
            f'width="{max(0.5, bar_w - 1):.1f}" height="{h:.1f}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{TOP + plot_h + 13}" '
                f'text-anchor="middle">{escape(fmt(edges[i]))}</text>'
            )
    parts.append(
        f'<text class="axis-label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    if not hist["total"]:
        parts.append(_empty(LEFT + plot_w / 2, TOP + plot_h / 2))
    return _svg(WIDTH, HEIGHT, "".join(parts), label, "histogram")


def _empty(x: float, y: float) -> str:
    """What a chart with nothing to show says."""
    return f'<text class="empty" x="{x:.1f}" y="{y:.1f}" text-anchor="middle">none yet</text>'


def overlay_chart(
    series: Sequence[tuple[str, dict[str, Any]]], label: str, x_label: str,
    fmt: Callable[[float], str] = "{:g}".format,
) -> str:  # fmt: skip
    """Several runs' histograms of the same bins as lines of shares (for --compare); a run
    with no values is left out (its legend entry says so)."""
    series = [(name, hist) for name, hist in series if hist["total"]]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    if not series:
        return _svg(WIDTH, HEIGHT, _empty(WIDTH / 2, HEIGHT / 2), label, "overlay")
    shares = [[c / h["total"] if h["total"] else 0.0 for c in h["counts"]] for _, h in series]
    top, step = _axis_top(max((max(s, default=0) for s in shares), default=0), integer=False)
    edges = series[0][1]["edges"]
    step_w = plot_w / max(1, len(edges))
    parts = [_y_axis(top, step, plot_h, share=True)]
    for k, ((name, _), values) in enumerate(zip(series, shares, strict=True)):
        points = " ".join(
            f"{LEFT + (i + 0.5) * step_w:.1f},{TOP + plot_h - plot_h * v / top:.1f}"
            for i, v in enumerate(values)
        )
        color = PALETTE[k % len(PALETTE)]
        parts.append(
            f'<polyline class="series" fill="none" stroke="{color}" stroke-width="2" '
            f'points="{points}"><title>{escape(name)}</title></polyline>'
        )
    every = max(1, math.ceil(len(edges) / 8))
    parts += [
        f'<text class="tick" x="{LEFT + i * step_w:.1f}" y="{TOP + plot_h + 13}" '
        f'text-anchor="middle">{escape(fmt(edges[i]))}</text>'
        for i in range(0, len(edges), every)
    ]
    parts.append(
        f'<text class="axis-label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">{escape(x_label)} (share of each run)</text>'
    )
    return _svg(WIDTH, HEIGHT, "".join(parts), label, "overlay")


def legend(names: Sequence[str]) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[k % len(PALETTE)]}"></span>'
        f"{escape(name)}</li>"
        for k, name in enumerate(names)
    )
    return f'<ul class="legend">{items}</ul>'


def _arc(cx: float, cy: float, r0: float, r1: float, a0: float, a1: float) -> str:
    """An annular sector from angle a0 to a1 (radians, clockwise from 12 o'clock)."""
    if a1 - a0 >= 2 * math.pi - 1e-9:
        a1 = a0 + 2 * math.pi - 1e-6
    large = 1 if a1 - a0 > math.pi else 0

    def point(r: float, a: float) -> str:
        return f"{cx + r * math.sin(a):.2f},{cy - r * math.cos(a):.2f}"

    return (
        f"M{point(r1, a0)} A{r1},{r1} 0 {large} 1 {point(r1, a1)} "
        f"L{point(r0, a1)} A{r0},{r0} 0 {large} 0 {point(r0, a0)} Z"
    )


def _label(cx: float, cy: float, r: float, a0: float, a1: float, text: str, size: int) -> str:
    """A label at the middle of a sector, turned along the radius (upright on both sides)."""
    mid = (a0 + a1) / 2
    x, y = cx + r * math.sin(mid), cy - r * math.cos(mid)
    degrees = math.degrees(mid) - 90
    anchor = "middle"
    if degrees > 90:
        degrees -= 180
    return (
        f'<text class="arc-label" x="{x:.1f}" y="{y:.1f}" font-size="{size}" '
        f'text-anchor="{anchor}" dominant-baseline="middle" '
        f'transform="rotate({degrees:.1f} {x:.1f} {y:.1f})">{escape(text)}</text>'
    )


def sunburst(top: Sequence[dict[str, Any]], label: str, size: int = 480) -> str:
    """The paper's Figure 2: top verbs (inner ring) and their top direct-object nouns (outer
    ring), each arc sized by its count among the top verbs' instructions."""
    c = size / 2
    r_hole, r_verb, r_noun = size * 0.12, size * 0.3, size * 0.49
    total = sum(v["count"] for v in top) or 1
    parts, angle = [], 0.0
    for k, verb in enumerate(top):
        span = 2 * math.pi * verb["count"] / total
        color = PALETTE[k % len(PALETTE)]
        tip = f"{verb['verb']}: {verb['count']} instructions"
        path = _arc(c, c, r_hole, r_verb, angle, angle + span)
        parts.append(
            f'<path class="arc verb" fill="{color}" d="{path}"><title>{escape(tip)}</title></path>'
        )
        if span > 0.12:
            parts.append(_label(c, c, (r_hole + r_verb) / 2, angle, angle + span, verb["verb"], 11))
        parts += _nouns(c, r_verb, r_noun, angle, span, verb, color)
        angle += span
    return _svg(size, size, "".join(parts), label, "sunburst")


def _nouns(
    c: float, r0: float, r1: float, start: float, span: float, verb: dict[str, Any], color: str
) -> list[str]:
    parts, angle = [], start
    for noun in verb["nouns"]:
        width = span * noun["count"] / verb["count"]
        tip = f"{verb['verb']} {noun['noun']}: {noun['count']} instructions"
        parts.append(
            f'<path class="arc noun" fill="{color}" fill-opacity="0.55" '
            f'd="{_arc(c, c, r0, r1, angle, angle + width)}"><title>{escape(tip)}</title></path>'
        )
        if width > 0.07:
            parts.append(_label(c, c, (r0 + r1) / 2, angle, angle + width, noun["noun"], 9))
        angle += width
    return parts


def step_colors(reasons: Sequence[str]) -> list[str]:
    """Colours of a funnel step's segments: kept first, then each reason in order."""
    return [KEPT_COLOR, *(DROP_COLORS[k % len(DROP_COLORS)] for k in range(len(reasons)))]


def swatch(color: str) -> str:
    return f'<span class="swatch" style="background:{color}"></span>'


def stacked_bar(kept: int, dropped: Sequence[tuple[str, int]], label: str) -> str:
    """One funnel step: kept, then each drop reason, as shares of one bar."""
    width, height = 600, 22
    total = kept + sum(n for _, n in dropped)
    if not total:
        body = f'<rect class="segment" width="{width}" height="{height}" fill="#eef0f4"/>'
        return _svg(width, height, body + _empty(width / 2, 15), label, "funnel")
    segments = [("kept", kept), *dropped]
    colors = step_colors([name for name, _ in dropped])
    parts, x = [], 0.0
    for (name, n), color in zip(segments, colors, strict=True):
        w = width * n / total
        tip = f"{name}: {n} ({n / total:.1%})"
        parts.append(
            f'<rect class="segment" x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" '
            f'fill="{color}"><title>{escape(tip)}</title></rect>'
        )
        x += w
    return _svg(width, height, "".join(parts), label, "funnel")

"""The requests-per-second chart as inline SVG: the credential's sends against its limit, 429s and retries.

Input is ``tasks.timeline.read`` output (per-second tallies). Seconds are grouped into buckets so the
chart has at most ``MAX_BUCKETS`` points; each point is sends in the bucket divided by its length.
"""

from __future__ import annotations

import math
from html import escape

MAX_BUCKETS = 120
WIDTH, HEIGHT = 860, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 14, 58  # margins; the band for 429s/retries sits in the bottom margin


def _bucketed(seconds: dict[int, int], start: int, size: int, count: int) -> list[int]:
    out = [0] * count
    for second, n in seconds.items():
        index = (second - start) // size
        if 0 <= index < count:
            out[index] += n
    return out


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def render(total: dict[str, dict[int, int]], limit_per_s: float, start: float, end: float, *,
           own: dict[str, dict[int, int]] | None = None, title: str = "") -> str:
    """SVG of sends per second over [start, end] (epoch seconds). ``own``: this job's share, drawn as a
    second line when other jobs of the credential also sent."""
    start_s, end_s = int(start), max(int(end), int(start) + 1)
    span = end_s - start_s + 1
    size = max(1, math.ceil(span / MAX_BUCKETS))
    count = math.ceil(span / size)
    sent = _bucketed(total.get("sent", {}), start_s, size, count)
    rates = [n / size for n in sent]
    limited = _bucketed(total.get("429", {}), start_s, size, count)
    retries = _bucketed(total.get("retry", {}), start_s, size, count)
    own_rates = [n / size for n in _bucketed(own.get("sent", {}), start_s, size, count)] if own else None
    y_max = _nice_ceiling(max([limit_per_s * 1.2, *rates, 1.0]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: float) -> float:
        return LEFT + (i / max(count - 1, 1)) * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - (v / y_max) * plot_h

    parts = [f'<svg id="rate-chart" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" data-points="{count}" data-sent="{sum(sent)}" '
             f'data-max-rate="{max(rates, default=0):.2f}" data-limit="{limit_per_s:.2f}" '
             f'data-429="{sum(limited)}" data-retries="{sum(retries)}" data-bucket-s="{size}">',
             f"<title>{escape(title or 'requests per second')}</title>"]
    for tick in range(5):  # horizontal grid with labels
        value = y_max * tick / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
                     f'<text class="axis" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:g}</text>')
    shown = set()
    for tick in range(5):  # time labels, time since start; a short chart does not repeat a label
        i = round((count - 1) * tick / 4)
        label = _clock(i * size)
        if label not in shown:
            shown.add(label)
            parts.append(f'<text class="axis" x="{x(i):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
                         f'{label}</text>')
    parts.append(f'<line id="limit-line" class="limit" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(limit_per_s):.1f}" '
                 f'y2="{y(limit_per_s):.1f}"/><text class="limit-label" x="{WIDTH - RIGHT}" '
                 f'y="{y(limit_per_s) - 5:.1f}" text-anchor="end">limit {limit_per_s:.1f}/s</text>')
    if own_rates is not None:
        parts.append(_line("own-line", "own", own_rates, x, y))
    parts.append(_line("sent-line", "sent", rates, x, y))
    band = HEIGHT - 22  # 429s (red) and retries (amber) as ticks in a band under the axis
    bar_w = max(plot_w / count - 1, 1.5)
    for i, (n429, nretry) in enumerate(zip(limited, retries, strict=True)):
        if nretry:
            parts.append(f'<rect class="retry" x="{x(i) - bar_w / 2:.1f}" y="{band - min(nretry, 8) * 1.5:.1f}" '
                         f'width="{bar_w:.1f}" height="{min(nretry, 8) * 1.5:.1f}">'
                         f"<title>{nretry} retries</title></rect>")
        if n429:
            parts.append(f'<rect class="r429" x="{x(i) - bar_w / 2:.1f}" y="{band:.1f}" width="{bar_w:.1f}" '
                         f'height="{min(n429, 8) * 1.5 + 3:.1f}"><title>{n429} × 429</title></rect>')
    parts.append(f'<text class="axis" x="{LEFT}" y="{HEIGHT - 2}">retries {sum(retries)} · 429s {sum(limited)} · '
                 f'{size} s per point</text></svg>')
    return "".join(parts)


def _line(element_id: str, css: str, values: list[float], x, y) -> str:  # noqa: ANN001
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    return f'<polyline id="{element_id}" class="{css}" fill="none" points="{points}"/>'


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"

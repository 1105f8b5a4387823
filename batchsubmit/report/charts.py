"""The report's pictures, each a pure function from extracted data to one inline SVG string."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import batchsubmit.report.svg as svg
from batchsubmit.report.data import (
    COMPLETED,
    CREATED,
    NOT_STARTED,
    RUNNING,
    STOPPED,
    SUBMIT_FAILED,
    TRAIN_FAILED,
    UNKNOWN,
    Grid,
    Histogram,
    PointView,
    Timeline,
)
from batchsubmit.summary import format_duration

__all__ = [
    "STATE_COLORS",
    "distinct_labels",
    "duration_color",
    "duration_legend",
    "duration_range",
    "duration_ticks",
    "facet_maps",
    "heatmap",
    "latency_chart",
    "timeline_chart",
]

WIDTH = 960.0

STATE_COLORS = {
    COMPLETED: "#2f9e5f",
    TRAIN_FAILED: "#d1453b",
    STOPPED: "#9b59b6",
    RUNNING: "#3a7bd5",
    CREATED: "#9fd3b4",
    SUBMIT_FAILED: "#f08c2e",
    UNKNOWN: "#8d949c",
    NOT_STARTED: "#dfe3e8",
}
SERIES_COLORS = {"first": "#3a7bd5", "retries": "#f0b429", "failures": "#d1453b"}
_VIRIDIS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")
NO_DURATION = "#dfe3e8"
MAX_TOOLTIPS = 10_000  # cells of a heat map given a tooltip; past it the page grows too large
MAX_FACETS = 12  # one map per combination of the labels past rows and columns, up to this many


def timeline_chart(data: Timeline) -> str:
    """Requests per second per bucket (first attempts, retries stacked), and below them, on a
    lane of their own, the points that failed per bucket: a failure is an outcome, not a send.

    Each series is one ``<g class="series-NAME">`` (first, retries, failures).
    """
    left, right, top, bottom = 64.0, 16.0, 16.0, 52.0
    lane_h, lane_gap = 40.0, 20.0
    height = 312.0
    plot_w = WIDTH - left - right
    plot_h = height - top - bottom - lane_h - lane_gap
    n = len(data.first)
    per_second = [
        (a / data.bucket_s, b / data.bucket_s)
        for a, b in zip(data.first, data.retries, strict=True)
    ]
    y_top, y_ticks = svg.rounded(max((a + b for a, b in per_second), default=0.0), 4)
    y = svg.Scale(0.0, y_top, top + plot_h, top)
    x_top, x_ticks = svg.rounded(data.bucket_s * n, 8)
    x = svg.Scale(0.0, x_top, left, left + plot_w)
    width = x(data.bucket_s) - x(0.0)
    gap = 1.0 if width >= 4 else 0.0
    series: dict[str, list[str]] = {"first": [], "retries": [], "failures": []}
    for i, (first, retries) in enumerate(per_second):
        x0 = x(i * data.bucket_s) + gap / 2
        if first > 0:
            series["first"].append(
                svg.bar(x0, y(first), width - gap, y(0) - y(first), fill=SERIES_COLORS["first"])
            )
        if retries > 0:
            series["retries"].append(
                svg.bar(x0, y(first + retries), width - gap, y(first) - y(first + retries),
                        fill=SERIES_COLORS["retries"])
            )  # fmt: skip
    lane_top = top + plot_h + lane_gap
    f, series["failures"] = _failure_lane(data, x, (lane_top + lane_h, lane_top), width, gap)
    body = [
        svg.axis_left(y, left, y_ticks, label="per second", grid_to=left + plot_w),
        svg.line(left, top + plot_h, left + plot_w, top + plot_h, class_="axis"),
        svg.axis_left(f, left, [f.d0, f.d1], grid_to=left + plot_w),
        svg.text(left - 24, lane_top + lane_h / 2 + 4, "failed", anchor="end", class_="label"),
    ]
    body += [svg.element("g", "".join(b), class_=f"series-{name}") for name, b in series.items()]
    for number, begin in enumerate(data.run_starts, start=2):
        body.append(svg.line(x(begin), top, x(begin), lane_top + lane_h, class_="marker"))
        body.append(svg.text(x(begin) + 4, top + 12, f"run {number}", class_="tick"))
    body.append(
        svg.axis_bottom(
            x, lane_top + lane_h, x_ticks, fmt=format_duration,
            label=f"time since the first request (buckets of {format_duration(data.bucket_s)})",
        )
    )  # fmt: skip
    return svg.svg(
        WIDTH, height, body, label="submission timeline: requests per second, failed points"
    )


def _failure_lane(
    data: Timeline, x: svg.Scale, lane: tuple[float, float], width: float, gap: float
) -> tuple[svg.Scale, list[str]]:
    """The failed points per bucket as bars in the lane from ``lane`` (bottom, top pixels), its
    count axis rounded up to a whole number: the count scale, and the bars."""
    f_top, _ = svg.rounded(float(max(data.failures, default=0)), 1, whole=True)
    f = svg.Scale(0.0, f_top, *lane)
    bars = []
    for i, failed in enumerate(data.failures):
        if failed:
            start = i * data.bucket_s
            bars.append(
                svg.element(
                    "rect",
                    svg.title(
                        f"{failed} failed point{'s' if failed != 1 else ''} at "
                        f"{format_duration(start)}-{format_duration(start + data.bucket_s)}"
                    ),
                    x=x(start) + gap / 2, y=f(failed), width=max(0.0, width - gap),
                    height=max(0.0, f(0) - f(failed)), fill=SERIES_COLORS["failures"],
                )
            )  # fmt: skip
    return f, bars


def latency_chart(data: Histogram) -> str:
    """A histogram of the create calls' latency, with p50, p95 and p99 marked."""
    left, right, top, bottom = 64.0, 24.0, 48.0, 52.0
    height = 260.0
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    y_top, y_ticks = svg.rounded(float(max(data.counts)), 4, whole=True)
    y = svg.Scale(0.0, y_top, top + plot_h, top)
    x = svg.Scale(data.edges[0], data.edges[-1], left, left + plot_w)
    body = [svg.axis_left(y, left, y_ticks, label="points", grid_to=left + plot_w)]
    for i, count in enumerate(data.counts):
        if count:
            x0, x1 = x(data.edges[i]), x(data.edges[i + 1])
            gap = 1.0 if x1 - x0 >= 4 else 0.0
            body.append(
                svg.element(
                    "rect",
                    svg.title(
                        f"{svg.fmt_number(data.edges[i])}-{svg.fmt_number(data.edges[i + 1])} ms: "
                        f"{count} points"
                    ),
                    x=x0 + gap / 2, y=y(count), width=max(0.0, x1 - x0 - gap),
                    height=max(0.0, y(0) - y(count)), fill=SERIES_COLORS["first"],
                )
            )  # fmt: skip
    placed: list[float] = []  # label positions so far: a close one goes a row higher
    for name, value in (("p50", data.p50), ("p95", data.p95), ("p99", data.p99)):
        px = x(value)
        row = sum(1 for other in placed if abs(other - px) < 26)
        placed.append(px)
        body.append(svg.line(px, top - 2 - 13 * row, px, top + plot_h, class_="marker"))
        body.append(
            svg.element(
                "text", svg.esc(name) + svg.title(f"{name}: {svg.fmt_number(value)} ms"),
                x=px, y=top - 5 - 13 * row, text_anchor="middle", class_="tick",
            )
        )  # fmt: skip
    x_ticks = svg.ticks(data.edges[0], data.edges[-1], 8)
    body.append(svg.axis_bottom(x, top + plot_h, x_ticks, label="latency of the create call (ms)"))
    return svg.svg(WIDTH, height, body, label="latency histogram of the succeeded create calls")


# --- the heat maps -------------------------------------------------------------------------------


def _mix(a: str, b: str, t: float) -> str:
    ca = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb, strict=True))


def duration_color(value: float, low: float, high: float) -> str:
    """A colour on a viridis-like ramp for ``value`` in [low, high]."""
    t = 0.5 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    spot = t * (len(_VIRIDIS) - 1)
    i = min(len(_VIRIDIS) - 2, int(spot))
    return _mix(_VIRIDIS[i], _VIRIDIS[i + 1], spot - i)


def _short(value: str, limit: int = 14) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _tooltip(p: PointView) -> str:
    params = ", ".join(f"{label}={value}" for label, value in p.parameter) or "no parameters known"
    parts = [f"#{p.index} {p.key}", params, p.state]
    if p.status_name:
        parts.append(p.status_name)
    if p.duration_ms is not None:
        parts.append(f"ran {format_duration(p.duration_ms / 1000)}")
    if p.version_id is not None:
        parts.append(f"version {p.version_id}")
    if p.training_job_id is not None:
        parts.append(f"training job {p.job_name or ''} {p.training_job_id}".replace("  ", " "))
    if p.error_code:
        parts.append(p.error_code)
    if p.attempts > 1:
        parts.append(f"{p.attempts} attempts")
    return " | ".join(parts)


def _common_prefix(values: Sequence[str]) -> str:
    """The characters every value starts with."""
    first, last = min(values), max(values)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def distinct_labels(values: Sequence[str], limit: int = 14) -> tuple[list[str], str]:
    """Tick labels for ``values`` and a note of what they all share ("" when nothing was cut).

    Only when some value is longer than ``limit``: the prefix and suffix common to all values
    are cut off (``dataset-v1-long``, ``dataset-v2-long`` -> ``1``, ``2`` with the note
    ``dataset-v…-long``), then anything still too long is shortened with an ellipsis.
    """
    if len(values) > 1 and any(len(v) > limit for v in values):
        prefix = _common_prefix(values)
        suffix = _common_prefix([v[len(prefix) :][::-1] for v in values])[::-1]
        if prefix or suffix:
            middles = [v[len(prefix) : len(v) - len(suffix)] for v in values]
            if all(middles):
                return [_short(m, limit) for m in middles], f"{prefix}…{suffix}"
    return [_short(v, limit) for v in values], ""


def _tick(x: float, y: float, shown: str, full: str, **attrs: object) -> str:
    """A tick label, its full value in a tooltip."""
    return svg.element(
        "text", svg.esc(shown) + svg.title(full), x=float(x), y=float(y), class_="tick", **attrs
    )


def facet_maps(grid: Grid, fill: Callable[[PointView], str], *, label: str) -> list[str]:
    """The heat maps of a grid: one per facet (each titled with its combination, the same rows
    and columns) up to MAX_FACETS of them; else one, each cell split in a stripe per facet."""
    if not grid.facets or len(grid.facets) > MAX_FACETS:
        return [heatmap(grid, fill, label=label)]
    return [
        heatmap(grid.facet(i), fill, label=f"{label}, {name}", title=name)
        for i, name in enumerate(grid.facets)
    ]


def heatmap(
    grid: Grid, fill: Callable[[PointView], str], *, label: str, title: str | None = None
) -> str:
    """One rectangle per point over rows x columns, under ``title`` if given; when the grid has
    facets, each cell holds a stripe per facet, in the facets' order (empty where none is)."""
    cols, rows = max(1, len(grid.cols)), max(1, len(grid.rows))
    col_text, col_common = distinct_labels(grid.cols) if grid.col_label else ([], "")
    row_text, row_common = distinct_labels(grid.rows) if grid.row_label else ([], "")
    longest_row = max((len(r) for r in row_text), default=0)
    left = 24.0 + min(120.0, 7.0 * longest_row) + (20.0 if grid.row_label else 0.0)
    widest = max(56.0, min(240.0, 6.0 * len(grid.facets)))  # room for a cell's stripes
    cw = max(3.0, min(widest, (WIDTH - left - 16.0) / cols))
    ch = max(3.0, min(cw, 36.0))
    longest_col = max((len(c) for c in col_text), default=1)
    rotate = cw < 7.0 * longest_col + 4
    head = 18.0 if title else 0.0
    top = head + 34.0 + (min(100.0, 6.5 * longest_col) if rotate else 14.0)
    width = left + cw * cols + 16.0
    height = top + ch * rows + 12.0
    gap = 1.0 if min(cw, ch) >= 8 else 0.0
    if grid.facets and cw >= 24:
        gap = 4.0  # cells of stripes: a wider gap tells two cells from two stripes
    body: list[str] = []
    if title:
        body.append(svg.text(4, 14, title, class_="label facet"))
        width = max(width, 7.0 * len(title) + 12.0)
    if grid.col_label:
        heading = grid.col_label + (f" ({col_common})" if col_common else "")
        body.append(svg.text(left, head + 14, heading, class_="label"))
    elif grid.cells:
        body.append(svg.text(left, head + 14, "points in index order", class_="label"))
    if grid.row_label:
        middle = top + ch * rows / 2
        heading = grid.row_label + (f" ({row_common})" if row_common else "")
        body.append(
            svg.text(12, middle, heading, anchor="middle", class_="label",
                     transform=f"rotate(-90 12 {middle:.1f})")
        )  # fmt: skip
    step = max(1, math.ceil((13.0 if rotate else 7.0 * longest_col + 6) / cw))
    cols_shown = grid.cols if grid.col_label else ()
    for i, (shown, full) in enumerate(zip(col_text, cols_shown, strict=True)):
        if i % step == 0:
            cx, cy = left + cw * (i + 0.5), top - 6
            if rotate:
                body.append(
                    _tick(cx + 4, cy, shown, full, text_anchor="start",
                          transform=f"rotate(-90 {cx + 4:.1f} {cy:.1f})")
                )  # fmt: skip
            else:
                body.append(_tick(cx, cy, shown, full, text_anchor="middle"))
    step = max(1, math.ceil(12.0 / ch))
    rows_shown = grid.rows if grid.row_label else ()
    for i, (shown, full) in enumerate(zip(row_text, rows_shown, strict=True)):
        if i % step == 0:
            body.append(_tick(left - 6, top + ch * (i + 0.5) + 4, shown, full, text_anchor="end"))
    _cells(body, grid, fill, left, top, cw, ch, gap)
    return svg.svg(width, height, body, label=label)


def _cells(
    body: list[str],
    grid: Grid,
    fill: Callable[[PointView], str],
    left: float,
    top: float,
    cw: float,
    ch: float,
    gap: float,
) -> None:
    """A rectangle per point; with facets, a fixed stripe per facet (so stripes line up across
    cells), else the points of a cell (repeated in the spec) share it side by side."""
    cells = grid.cells
    tooltips = len(cells) <= MAX_TOOLTIPS
    i = 0
    while i < len(cells):  # the points of one cell are consecutive
        row, col = cells[i][0], cells[i][1]
        j = i
        while j < len(cells) and cells[j][0] == row and cells[j][1] == col:
            j += 1
        slots = len(grid.facets) if grid.facets else j - i
        share = (cw - gap) / slots
        for k in range(i, j):
            p = cells[k][2]
            slot = grid.facet_of[k] if grid.facets else k - i
            body.append(
                svg.cell(
                    left + cw * col + gap / 2 + share * slot, top + ch * row + gap / 2,
                    share, ch - gap, fill(p), _tooltip(p) if tooltips else None, class_="point",
                )
            )  # fmt: skip
        i = j


def duration_range(durations: Sequence[float]) -> tuple[float, float]:
    """The (low, high) of durations (ms) for the colour ramp; (low, low) when both ends read the
    same to :func:`format_duration`, so cells that the legend calls equal are coloured alike."""
    low, high = min(durations), max(durations)
    same = format_duration(low / 1000) == format_duration(high / 1000)
    return (low, low) if same else (low, high)


def duration_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """(position 0..1 on the ramp, text) of the legend's labels: both ends and the middle, each
    only if it reads differently from the others; one label when the range is flat."""
    out: list[tuple[float, str]] = []
    for at in (0.0, 1.0, 0.5):
        text = format_duration((low + (high - low) * at) / 1000)
        if all(text != shown for _, shown in out):
            out.append((at, text))
    return sorted(out)


def duration_legend(low: float, high: float) -> str:
    """A colour ramp from ``low`` to ``high`` (ms) with distinct labels; when every duration
    reads the same, one swatch and that one value."""
    ticks = duration_ticks(low, high)
    if len(ticks) == 1:
        text = f"{ticks[0][1]}: every point with a known duration ran this long"
        body = [
            svg.bar(10, 4, 14, 14, fill=duration_color(low, low, high)),
            svg.text(30, 15, text, class_="tick"),
        ]
        return svg.svg(40.0 + 6.0 * len(text), 24.0, body, label="training duration colour scale")
    width, height, steps = 320.0, 40.0, 32
    body = [
        svg.bar(10 + i * (300 / steps), 4, 300 / steps + 0.5, 14,
                fill=duration_color(low + (high - low) * i / (steps - 1), low, high))
        for i in range(steps)
    ]  # fmt: skip
    anchors = {0.0: "start", 0.5: "middle", 1.0: "end"}
    for at, text in ticks:
        body.append(svg.text(10 + 300 * at, 34, text, anchor=anchors[at], class_="tick"))
    return svg.svg(width, height, body, label="training duration colour scale")

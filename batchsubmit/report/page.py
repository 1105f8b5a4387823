"""The report page: one self-contained HTML document (inline CSS and SVG; no script, no fetch)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import batchsubmit.report.charts as charts
from batchsubmit import __version__
from batchsubmit.report.data import (
    COMPLETED,
    STATE_NOTES,
    STATE_NOTES_V2,
    STATES,
    STOPPED,
    Grid,
    PointView,
    ReportData,
)
from batchsubmit.report.svg import esc
from batchsubmit.summary import format_duration, next_steps

__all__ = ["render_html"]

MAX_TABLE_ROWS = 200

CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9dee4; --card: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 8px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p { margin: 6px 0; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.meta, .note, figcaption { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px;
         margin: 12px 0; }
.card { background: var(--card); border-radius: 8px; padding: 10px 12px; }
.card .value { font-size: 22px; font-weight: 600; }
.card .name { color: var(--muted); font-size: 12px; text-transform: uppercase;
              letter-spacing: .04em; }
.card.bad .value { color: #c0392b; }
.card.good .value { color: #23824c; }
figure { margin: 8px 0 0; overflow-x: auto; }
svg { display: block; max-width: none; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; fill: var(--ink); }
svg .tick { fill: var(--muted); }
svg .label { font-weight: 600; }
svg .axis { stroke: #7b8794; stroke-width: 1; }
svg .grid { stroke: #eef1f4; stroke-width: 1; }
svg .marker { stroke: #52606d; stroke-width: 1; stroke-dasharray: 4 3; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 6px 0; padding: 0;
          list-style: none; }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { font-weight: 600; background: var(--card); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
time { white-space: nowrap; }
.facets { display: flex; flex-wrap: wrap; gap: 8px 24px; }
svg .facet { font-size: 12px; }
"""


def _moment(ts: str | None) -> datetime | None:
    if ts is None:
        return None
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _when(ts: str | None, *, since: str | None = None) -> str:
    """A ledger timestamp as people read it, ``2026-12-01 19:32:05 UTC`` (only the time when it
    falls on the day of ``since``), in a ``<time>`` that keeps the ISO form for a tooltip."""
    when = _moment(ts)
    if ts is None or when is None:
        return esc(ts or "?")
    before = _moment(since)
    same_day = before is not None and before.date() == when.date()
    shown = when.strftime("%H:%M:%S UTC" if same_day else "%Y-%m-%d %H:%M:%S UTC")
    return f'<time datetime="{esc(ts)}" title="{esc(ts)}">{esc(shown)}</time>'


def _card(name: str, value: object, tone: str = "") -> str:
    tone = f" {tone}" if tone else ""
    return (
        f'<div class="card{tone}"><div class="value">{esc(value)}</div>'
        f'<div class="name">{esc(name)}</div></div>'
    )


def _legend(items: Iterable[tuple[str, str, str]]) -> str:
    """``<ul>`` of (colour, label, note) entries."""
    entries = "".join(
        f'<li><span class="swatch" style="background:{esc(color)}"></span>{esc(label)}'
        + (f' <span class="note">({esc(note)})</span>' if note else "")
        + "</li>"
        for color, label, note in items
    )
    return f'<ul class="legend">{entries}</ul>'


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], numeric: set[int]) -> str:
    def cls(i: int) -> str:
        return ' class="num"' if i in numeric else ""

    header = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{esc(v)}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _headline(data: ReportData) -> str:
    s = data.summary
    rate = "unknown" if s.achieved_rate is None else f"{s.achieved_rate:.1f}/s"
    cards = [
        _card("points", s.total),
        _card("succeeded", s.succeeded, "good" if s.succeeded else ""),
        _card("failed", s.failed, "bad" if s.failed else ""),
        _card("outcome unknown", s.pending, "bad" if s.pending else ""),
        _card("not started", s.not_started),
        _card("retries", s.retries),
        _card("found on the server", s.reconciled),
        _card("throttled (429)", "unknown" if data.throttled is None else data.throttled),
        _card("achieved rate", rate),
        _card("time taken", format_duration(s.elapsed_s)),
    ]
    if s.statuses:
        v2 = data.settings.api == "v2"
        completed = data.states.get(COMPLETED, 0) if v2 else s.statuses.get("COMPLETED", 0)
        cards.append(_card("trainings completed", completed, "good" if completed else ""))
        ended_badly = data.states.get("training failed", 0)
        cards.append(_card("trainings failed", ended_badly, "bad" if ended_badly else ""))
        if data.states.get(STOPPED):
            cards.append(_card("trainings stopped", data.states[STOPPED], "bad"))
        running = data.states.get("running", 0)
        if running:
            cards.append(_card("still running", running))
    steps = "".join(f"<li>{esc(step)}</li>" for step in next_steps(s))
    return (
        '<section id="headline"><h2>Headline numbers</h2>'
        f'<div class="cards">{"".join(cards)}</div>'
        + (f"<ul>{steps}</ul>" if steps else "")
        + "</section>"
    )


def _timeline(data: ReportData) -> str:
    t = data.timeline
    if not any(t.first) and not any(t.retries) and not any(t.failures):
        return (
            '<section id="timeline"><h2>Submission timeline</h2>'
            '<p class="note">No request is recorded in this ledger.</p></section>'
        )
    throttled = (
        "" if data.throttled is None
        else f". The gateway answered 429 (throttled) {data.throttled} times"
    )  # fmt: skip
    caption = (
        f"Requests sent per second (peak {t.peak_rate:.1f}/s): first attempts, and retries after "
        f"a throttle, a 5xx or a timeout, stacked; below them, on their own row, the points that "
        f"failed, counted where their failure was recorded{throttled}. Runs are laid end to end; "
        f"a dashed line marks where a resumed run begins."
    )
    legend = _legend(
        [
            (charts.SERIES_COLORS["first"], "first attempts", f"{sum(t.first)}"),
            (charts.SERIES_COLORS["retries"], "retries (attempt > 1)", f"{sum(t.retries)}"),
            (
                charts.SERIES_COLORS["failures"], "failed points",
                f"{sum(t.failures)}, the row below, in points per bucket",
            ),
        ]
    )  # fmt: skip
    return (
        '<section id="timeline"><h2>Submission timeline</h2>'
        f"<p>{esc(caption)}</p>{legend}"
        f"<figure>{charts.timeline_chart(t)}</figure></section>"
    )


def _latency(data: ReportData) -> str:
    h = data.latency
    if h is None:
        return (
            '<section id="latency"><h2>Latency</h2>'
            '<p class="note">No succeeded point has a latency recorded.</p></section>'
        )
    caption = (
        f"Latency of the create call for the {h.n} succeeded points: median {h.p50:.0f} ms, "
        f"p95 {h.p95:.0f} ms, p99 {h.p99:.0f} ms, slowest {h.max:.0f} ms."
    )
    return (
        f'<section id="latency"><h2>Latency</h2><p>{esc(caption)}</p>'
        f"<figure>{charts.latency_chart(h)}</figure></section>"
    )


def _grid(data: ReportData) -> str:
    g = data.grid
    if not g.cells and not g.unplaced:
        return (
            '<section id="grid"><h2>Outcome and status per point</h2>'
            '<p class="note">No point is recorded in this ledger.</p></section>'
        )
    notes = STATE_NOTES_V2 if data.settings.api == "v2" else STATE_NOTES
    legend = _legend(
        (charts.STATE_COLORS[s], f"{s}: {data.states[s]}", notes[s])
        for s in STATES
        if data.states.get(s)
    )
    hover = (
        f"Hover a {'stripe' if len(g.facets) > charts.MAX_FACETS else 'cell'} for its "
        "parameters, version and status."
        if len(g.cells) <= charts.MAX_TOOLTIPS
        else f"(No tooltips past {charts.MAX_TOOLTIPS} points.)"
    )
    parts = [
        '<section id="grid"><h2>Outcome and status per point</h2>',
        f"<p>{esc(_layout(g))} {esc(hover)}</p>",
        legend,
        _maps(g, _state_fill, "outcome and status per point"),
    ]
    if g.unplaced:
        parts.append(
            f'<p class="note">{_points(len(g.unplaced))} not on the grid: the ledger records no '
            "parameters for a point whose create call failed or whose outcome is unknown. "
            "Pass the sweep spec (<code>--spec SPEC</code>) to place them.</p>"
        )
    parts += [_durations(g), "</section>"]
    return "".join(parts)


def _layout(g: Grid) -> str:
    """What the heat maps' rows, columns, cells (and facets) are, in a sentence."""
    if g.row_label and g.col_label:
        layout = f"rows: {g.row_label}, columns: {g.col_label}"
    elif g.col_label:
        layout = f"columns: {g.col_label}"
    else:
        layout = "no swept parameter varies: points in index order"
    striped = len(g.facets) > charts.MAX_FACETS
    text = f"One {'stripe' if striped else 'cell'} per point ({len(g.cells)} placed; {layout})."
    if not g.facets:
        return text
    also = ", ".join(g.other_labels)
    one = len(g.other_labels) == 1
    each = "value" if one else "combination of their values"
    text += f" {also} also {'varies' if one else 'vary'}: "
    if not striped:
        return text + (
            f"one map per {each} ({len(g.facets)} maps, each titled with its {also}), "
            "with the same rows and columns."
        )
    return text + (
        f"each cell holds up to {len(g.facets)} points, a stripe per {each}, always in the same "
        "place (their order is under the map)."
    )


def _maps(g: Grid, fill: Callable[[PointView], str], label: str) -> str:
    """The heat maps of a grid, one figure each (one per facet), or one map with its stripes'
    order said under it when there are too many facets."""
    pictures = charts.facet_maps(g, fill, label=label)
    if len(pictures) > 1:
        figures = "".join(f"<figure>{picture}</figure>" for picture in pictures)
        return f'<div class="facets">{figures}</div>'
    caption = ""
    if g.facets:
        shown = [*g.facets[:6], *(("…", g.facets[-1]) if len(g.facets) > 7 else g.facets[6:])]
        caption = (
            f"<figcaption>Each cell, left to right: {esc('; '.join(shown))} "
            f"({len(g.facets)} stripes).</figcaption>"
        )
    return f"<figure>{pictures[0]}{caption}</figure>"


def _durations(g: Grid) -> str:
    """The training-duration heat maps and their colour scale ("" when no duration is known)."""
    durations = [p.duration_ms for _, _, p in g.cells if p.duration_ms is not None]
    if not durations:
        return ""
    low, high = charts.duration_range(durations)

    def fill(p: PointView) -> str:
        if p.duration_ms is None:
            return charts.NO_DURATION
        return charts.duration_color(p.duration_ms, low, high)

    return (
        "<h3>Training duration</h3>"
        "<p>How long each version ran, as last seen by <code>batchsubmit watch</code> "
        "(grey: no duration known).</p>"
        f"<figure>{charts.duration_legend(low, high)}</figure>"
        + _maps(g, fill, "training duration per point")
    )


def _points(n: int) -> str:
    return "1 point is" if n == 1 else f"{n} points are"


def _state_fill(p: PointView) -> str:
    return charts.STATE_COLORS[p.state]


def _failures(data: ReportData) -> str:
    if not data.failures:
        body = '<p class="note">No point failed.</p>'
    else:
        body = _table(("error code", "points", "example message"), data.failures, {1})
    return f'<section id="failures"><h2>Failures by error code</h2>{body}</section>'


def _training_failures(data: ReportData) -> str:
    v2 = data.settings.api == "v2"
    rows = [
        (
            p.index, p.key, p.training_job_id if v2 else p.version_id, p.status_name,
            format_duration(None if p.duration_ms is None else p.duration_ms / 1000),
            ", ".join(f"{label}={value}" for label, value in p.parameter),
        )
        for p in data.training_failures[:MAX_TABLE_ROWS]
    ]  # fmt: skip
    if not rows:
        watched = "" if data.last_status_ts else " (none was watched: run batchsubmit watch)"
        return (
            '<section id="training"><h2>Trainings that did not complete</h2>'
            f'<p class="note">None{esc(watched)}.</p></section>'
        )
    more = len(data.training_failures) - len(rows)
    note = f'<p class="note">... and {more} more.</p>' if more > 0 else ""
    head = ("training job", "phase") if v2 else ("version", "status")
    table = _table(("#", "key", *head, "ran", "parameters"), rows, {0} if v2 else {0, 2})
    return f'<section id="training"><h2>Trainings that did not complete</h2>{table}{note}</section>'


def render_html(data: ReportData, *, generated_at: str) -> str:
    """The whole report page."""
    s = data.summary
    settings = data.settings
    jobs = settings.job_ids
    target = (
        f"v2 training jobs (workspace {esc(settings.workspace_id or '0')})"
        if settings.api == "v2"
        else f"job{'s' if len(jobs) > 1 else ''} {esc(', '.join(str(j) for j in jobs) or '?')}"
    )
    facts = [
        f"ledger <code>{esc(data.path or '?')}</code>",
        f"endpoint <code>{esc(settings.endpoint or '?')}</code>",
        target,
        f"{s.runs} run{'s' if s.runs != 1 else ''}",
        f"from {_when(s.started_at)} to {_when(s.finished_at, since=s.started_at)}",
    ]
    if data.last_status_ts:
        facts.append(f"statuses as of {_when(data.last_status_ts, since=s.finished_at)}")
    title = f"Sweep {s.sweep or '?'}"
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)} - batchsubmit report</title><style>{CSS}</style></head>",
            "<body><main>",
            f'<header><h1>{esc(title)}</h1><p class="meta">{" · ".join(facts)}</p></header>',
            _headline(data),
            _timeline(data),
            _latency(data),
            _grid(data),
            _failures(data),
            _training_failures(data),
            f"<footer>batchsubmit {esc(__version__)} report, generated {_when(generated_at)}."
            "</footer></main></body></html>\n",
        ]
    )

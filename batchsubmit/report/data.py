"""What a report shows, taken out of a ledger by pure functions (no HTML here).

:func:`extract` streams the ledger's lines once: the fold (:func:`batchsubmit.ledger.fold`) gives
the outcomes and the statuses, and a tap on the same lines keeps what the fold forgets, the time
of every ``submitted`` and ``failed`` line, for the submission timeline. Then:

- :func:`timeline` buckets the sends (first attempts and retries) and failures per second, the
  runs laid end to end without the gaps between them;
- :func:`histogram` bins the latencies of the successes;
- :func:`points` classifies every point (completed, training failed, running, created, submit
  failed, outcome unknown, not started) and :func:`grid` lays them out over the two swept
  parameters that vary (rows x columns); when more labels vary, each combination of their
  values is a *facet*, named, and a cell holds one point per facet.

A failed point's record carries no parameters: pass the spec's points to place it on the grid.

A v2 ledger's points are training jobs (``training_job_id``, ``job_name``), their statuses
phases: Completed is completed, Failed and Abnormal training failed, Terminated *stopped* (a
state v1 points never take: v1 counts KILLED as failed), any other phase running
(:func:`batchsubmit.phases.verdict`).
"""

from __future__ import annotations

import json
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from batchsubmit import phases
from batchsubmit.ledger import LedgerState, RunSettings, fold
from batchsubmit.summary import Summary, summarize

__all__ = [
    "STATES",
    "Grid",
    "Histogram",
    "PointView",
    "ReportData",
    "Timeline",
    "extract",
    "grid",
    "histogram",
    "nice_step",
    "points",
    "timeline",
]

Pairs = tuple[tuple[str, str], ...]

# The states a point can be in, in legend order.
COMPLETED, TRAIN_FAILED, RUNNING, CREATED = "completed", "training failed", "running", "created"
SUBMIT_FAILED, UNKNOWN, NOT_STARTED = "submit failed", "outcome unknown", "not started"
STOPPED = "stopped"  # v2 only: Terminated
STATES = (
    COMPLETED, TRAIN_FAILED, STOPPED, RUNNING, CREATED, SUBMIT_FAILED, UNKNOWN, NOT_STARTED,
)
STATE_NOTES_V2 = {
    COMPLETED: "training job created, phase Completed",
    TRAIN_FAILED: "training job created, phase Failed or Abnormal",
    STOPPED: "training job created, phase Terminated (stopped)",
    RUNNING: "training job created, last seen Creating, Pending, Running... (watch again)",
    CREATED: "training job created, never watched",
    SUBMIT_FAILED: "the create call failed",
    UNKNOWN: "sent, outcome unknown (the next run reconciles it)",
    NOT_STARTED: "in the spec, never sent",
}
STATE_NOTES = {
    STOPPED: STATE_NOTES_V2[STOPPED],
    COMPLETED: "version created, training COMPLETED",
    TRAIN_FAILED: "version created, training ended FAILED, KILLED, LOST...",
    RUNNING: "version created, last seen INIT, RUNNING... (watch again)",
    CREATED: "version created, never watched",
    SUBMIT_FAILED: "the create call failed",
    UNKNOWN: "sent, outcome unknown (the next run reconciles it)",
    NOT_STARTED: "in the spec, never sent",
}


@dataclass(frozen=True, slots=True)
class PointView:
    """One point as the report shows it."""

    key: str
    index: int
    parameter: Pairs  # (label, value) pairs; empty when the ledger does not say
    state: str  # one of STATES
    status_name: str | None = None  # last training status seen
    duration_ms: float | None = None  # training duration, from the last status seen
    version_id: int | None = None
    error_code: str | None = None  # why the create call failed
    attempts: int = 0
    job_id: int | None = None  # from the key's "<job_id>:" prefix, in a sweep of many jobs
    training_job_id: str | None = None  # v2
    job_name: str | None = None  # v2

    def labels(self) -> dict[str, str]:
        """Its parameters, and ``job`` when the sweep has many jobs: what the grid lays out."""
        out = dict(self.parameter)
        if self.job_id is not None:
            out["job"] = str(self.job_id)
        return out


@dataclass(frozen=True)
class Timeline:
    """Requests per bucket over the runs laid end to end (gaps between runs left out)."""

    bucket_s: float
    first: tuple[int, ...]  # first attempts sent per bucket
    retries: tuple[int, ...]  # attempts > 1 sent per bucket (after a throttle, 5xx, timeout)
    failures: tuple[int, ...]  # failed outcomes per bucket
    run_starts: tuple[float, ...]  # seconds on the axis where each run after the first begins

    @property
    def seconds(self) -> float:
        return self.bucket_s * len(self.first)

    @property
    def peak_rate(self) -> float:
        """Highest requests/s of a bucket."""
        sends = (a + b for a, b in zip(self.first, self.retries, strict=True))
        return max(sends, default=0) / self.bucket_s


@dataclass(frozen=True)
class Histogram:
    """Latencies of the successes, binned."""

    edges: tuple[float, ...]  # len(counts) + 1 bin edges, in ms
    counts: tuple[int, ...]
    n: int
    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True)
class Grid:
    """Points over the swept parameters: rows x columns; a cell may hold several points."""

    row_label: str | None  # None: one row
    col_label: str | None  # None: no parameter varies; points laid out by index
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    cells: tuple[tuple[int, int, PointView], ...]  # (row, col, point), points of a cell together
    other_labels: tuple[str, ...]  # further labels that vary (their points share a cell)
    unplaced: tuple[PointView, ...]  # points whose parameters the ledger does not give
    # One name per combination of the other labels' values ("optimizer=adam"), in order; () when
    # no other label varies. facet_of[i] is the combination of cells[i]: a cell holds at most
    # one point per combination (more only when the spec repeats a point).
    facets: tuple[str, ...] = ()
    facet_of: tuple[int, ...] = ()

    def facet(self, number: int) -> Grid:
        """The same rows and columns, with only the points of combination ``number``."""
        kept = [c for c, f in zip(self.cells, self.facet_of, strict=True) if f == number]
        return replace(self, cells=tuple(kept), facets=(), facet_of=())


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows."""

    path: str | None
    summary: Summary
    settings: RunSettings
    throttled: int | None  # 429 answers counted by the runs' run_finished lines
    requests: int | None
    timeline: Timeline
    latency: Histogram | None
    grid: Grid
    states: Mapping[str, int]  # state -> points, in STATES order, zeros left out
    training_failures: tuple[PointView, ...]
    last_status_ts: str | None
    spec_points: bool  # the spec's points were given (failed and unstarted ones are placed)
    failures: tuple[tuple[str, int, str], ...] = field(default=())  # code, points, example


# --- the timeline --------------------------------------------------------------------------------


def _epoch(ts: object) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


_TAPPED = (b'"submitted"', b'"failed"', b'"run_started"')


class _Tap:
    """Keeps the times the fold forgets: every send (first or retry) and failure, per run."""

    def __init__(self) -> None:
        self.runs: list[tuple[array[float], array[float], array[float]]] = []

    def lines(self, lines: Iterable[bytes | str]) -> Iterator[bytes | str]:
        for line in lines:
            self.take(line)
            yield line

    def take(self, line: bytes | str) -> None:
        raw = line.encode() if isinstance(line, str) else line
        if not any(word in raw for word in _TAPPED):  # most lines: skip the second decode
            return
        try:
            record = json.loads(raw)
        except ValueError:
            return  # torn or blank: the fold reports (or raises about) it
        if not isinstance(record, dict):
            return
        event = record.get("event")
        if event == "run_started" or (event in ("submitted", "failed") and not self.runs):
            self.runs.append((array("d"), array("d"), array("d")))
        if event not in ("submitted", "failed"):
            return
        when = _epoch(record.get("ts"))
        if when is None:
            return
        first, retries, failures = self.runs[-1]
        if event == "failed":
            failures.append(when)
        elif isinstance(record.get("attempt"), int) and record["attempt"] > 1:
            retries.append(when)
        else:
            first.append(when)


_NICE = (1.0, 2.0, 2.5, 5.0, 10.0)


def nice_step(raw: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at least ``raw`` (``raw`` > 0)."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in _NICE if m * power >= raw * (1 - 1e-12))


def timeline(
    runs: Sequence[tuple[Sequence[float], Sequence[float], Sequence[float]]], *, bars: int = 120
) -> Timeline:
    """Bucket the sends and failures of each run (epoch seconds) into at most ``bars`` buckets.

    Each run starts where the previous one ended (its first event at its start), so the days
    between a run and its resume take no room.
    """
    spans: list[tuple[float, float]] = []
    for first, retries, failures in runs:
        times = [*first, *retries, *failures]
        if times:
            spans.append((min(times), max(times)))
        else:
            spans.append((0.0, 0.0))
    total = sum(end - start for start, end in spans)
    bucket = max(0.5, nice_step(total / bars)) if total > 0 else 1.0  # finer: bursts, not rates
    n = max(1, math.floor(total / bucket + 1e-9) + 1)
    counts = [[0] * n for _ in range(3)]
    offset = 0.0
    starts: list[float] = []
    for number, ((start, end), series) in enumerate(zip(spans, runs, strict=True)):
        if number > 0 and any(len(times) for times in series):
            starts.append(offset)
        for kind, run_times in enumerate(series):
            for when in run_times:
                counts[kind][min(n - 1, int((offset + when - start) / bucket))] += 1
        offset += end - start
    return Timeline(
        bucket_s=bucket, first=tuple(counts[0]), retries=tuple(counts[1]),
        failures=tuple(counts[2]), run_starts=tuple(starts),
    )  # fmt: skip


# --- the latency histogram -----------------------------------------------------------------------


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank quantile of sorted values."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def histogram(values: Iterable[float], *, bins: int = 30) -> Histogram | None:
    """Bin ``values`` (ms) into at most ``bins`` bins of a round width from 0 (None: no values)."""
    ordered = sorted(v for v in values if math.isfinite(v) and v >= 0)
    if not ordered:
        return None
    top = ordered[-1]
    width = nice_step(top / bins) if top > 0 else 1.0
    n = max(1, math.floor(top / width) + 1)
    counts = [0] * n
    for v in ordered:
        counts[min(n - 1, int(v / width))] += 1
    return Histogram(
        edges=tuple(i * width for i in range(n + 1)), counts=tuple(counts), n=len(ordered),
        p50=_quantile(ordered, 0.5), p95=_quantile(ordered, 0.95), p99=_quantile(ordered, 0.99),
        max=top,
    )  # fmt: skip


# --- the points and the grid ---------------------------------------------------------------------


def _pairs(parameter: object) -> Pairs:
    if not isinstance(parameter, list):
        return ()
    return tuple(
        (str(p.get("label", "")), str(p.get("value", ""))) for p in parameter if isinstance(p, dict)
    )


_STATE_OF = {"succeeded": COMPLETED, "failed": TRAIN_FAILED, "stopped": STOPPED,
             "active": RUNNING}  # fmt: skip


def _training_state(status: int | str) -> str:
    """A v1 code or a v2 phase as a state (one this version does not know: still running)."""
    return _STATE_OF[phases.verdict(status)]


_JOB_KEY = re.compile(r"(\d+):(.+)")


def _split_key(key: str) -> tuple[int | None, str]:
    """``"11:9f3a..."`` -> (11, ``"9f3a..."``): a sweep of many jobs prefixes keys with the job."""
    match = _JOB_KEY.fullmatch(key)
    return (int(match[1]), match[2]) if match else (None, key)


def _job_ids(state: LedgerState) -> list[int]:
    return list(state.settings.job_ids) if state.settings is not None else []


def points(
    state: LedgerState, spec_points: Iterable[tuple[str, int, Pairs]] | None = None
) -> list[PointView]:
    """Every point of the ledger (and of the spec, if given: key, index, parameter), by index.

    The spec's keys are matched without the ``<job_id>:`` prefix a sweep of many jobs adds; its
    points the ledger never saw are NOT_STARTED (once per job of the last run).
    """
    known: dict[str, tuple[int, Pairs]] = {}
    if spec_points is not None:
        known = {key: (index, parameter) for key, index, parameter in spec_points}
    out: list[PointView] = []
    for key in state.outcomes.keys() | state.pending.keys():
        record = state.pending.get(key) or state.outcomes[key]
        job_id, bare = _split_key(key)
        index, parameter = known.get(bare, (record["index"], ()))
        attempts = state.attempts.get(key, 0)
        if key in state.pending:
            out.append(PointView(key, index, parameter, UNKNOWN, attempts=attempts, job_id=job_id))
        elif record["event"] == "failed":
            code = record.get("error_code") or (
                f"HTTP {record['http_status']}" if record.get("http_status") else "transport"
            )
            out.append(
                PointView(
                    key, index, parameter, SUBMIT_FAILED, error_code=code, attempts=attempts,
                    job_id=job_id,
                )
            )  # fmt: skip
        else:
            entry = state.training_status(key)
            status: int | str | None = None if entry is None else entry.status
            if entry is not None and status is None and "training_job_id" in record:
                status = entry.status_name  # v2: the phase
            view = PointView(
                key, index, _pairs(record["parameter"]) or parameter,
                CREATED if status is None else _training_state(status),
                None if entry is None else entry.status_name,
                None if entry is None else entry.duration_ms,
                record.get("version_id"), attempts=attempts, job_id=job_id,
                training_job_id=record.get("training_job_id"), job_name=record.get("job_name"),
            )  # fmt: skip
            out.append(view)
    seen = state.outcomes.keys() | state.pending.keys()
    jobs = _job_ids(state)
    prefixes: list[tuple[int | None, str]] = (
        [(job, f"{job}:") for job in jobs] if len(jobs) > 1 else [(None, "")]
    )
    out.extend(
        PointView(prefix + key, index, parameter, NOT_STARTED, job_id=job)
        for key, (index, parameter) in known.items()
        for job, prefix in prefixes
        if prefix + key not in seen
    )
    out.sort(key=lambda p: (p.index, p.key))
    return out


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _natural(value: str) -> tuple[tuple[int, float, str], ...]:
    """Sort key: runs of digits compare as numbers (``v2`` before ``v10``)."""
    return tuple(
        (0, float(part), "") if part.isdigit() else (1, 0.0, part)
        for part in re.split(r"(\d+)", value)
        if part
    )


def _ordered(values: Iterable[str]) -> tuple[str, ...]:
    """Distinct values: numerically if all are numbers, else in natural order (``v2`` < ``v10``).

    (Not the order points came in: a failed point has no parameters, so first appearances skip.)
    """
    distinct = list(dict.fromkeys(values))
    numbers = [_as_number(v) for v in distinct]
    if all(n is not None for n in numbers):
        pairs = sorted(zip(numbers, distinct, strict=True), key=lambda p: p[0] or 0.0)
        return tuple(v for _, v in pairs)
    return tuple(sorted(distinct, key=_natural))


def grid(views: Sequence[PointView]) -> Grid:
    """Lay the points out over the labels that vary: the first two are rows and columns.

    ``job`` counts as a label in a sweep of many jobs. With one varying label, one row; with
    none, every point in index order, wrapped in rows. A point missing a varying label (a failed
    point's record carries no parameters: give the spec) is left unplaced.
    """
    lookup = [p.labels() for p in views]
    values: dict[str, list[str]] = {}
    for labels in lookup:
        for label, value in labels.items():
            values.setdefault(label, []).append(value)
    varying = [label for label, seen in values.items() if len(set(seen)) > 1]
    if not varying:  # nothing varies: a block of cells in index order
        width = max(1, math.ceil(math.sqrt(len(views))))
        block = tuple((i // width, i % width, p) for i, p in enumerate(views))
        rows = tuple(str(r) for r in range(math.ceil(len(views) / width)))
        return Grid(None, None, rows, tuple(str(c) for c in range(width)), block, (), ())
    pairs = [(d, p) for d, p in zip(lookup, views, strict=True) if all(v in d for v in varying)]
    unplaced = tuple(
        p for d, p in zip(lookup, views, strict=True) if any(v not in d for v in varying)
    )
    col_label = varying[1] if len(varying) > 1 else varying[0]
    row_label = varying[0] if len(varying) > 1 else None
    cols = _ordered(d[col_label] for d, _ in pairs)
    rows = _ordered(d[row_label] for d, _ in pairs) if row_label else ("",)
    col_at = {v: i for i, v in enumerate(cols)}
    row_at = {v: i for i, v in enumerate(rows)}
    others = tuple(varying[2:])
    names, facet_at = _facets([d for d, _ in pairs], others)
    placed = sorted(
        (
            (
                row_at[d[row_label]] if row_label else 0, col_at[d[col_label]],
                facet_at[tuple(d[label] for label in others)], p,
            )
            for d, p in pairs
        ),
        key=lambda c: (c[0], c[1], c[2], c[3].index, c[3].key),
    )  # fmt: skip
    return Grid(
        row_label, col_label, rows, cols, tuple((r, c, p) for r, c, _, p in placed), others,
        unplaced, names, tuple(f for _, _, f, _ in placed) if others else (),
    )  # fmt: skip


def _facets(
    placed: Sequence[Mapping[str, str]], others: tuple[str, ...]
) -> tuple[tuple[str, ...], dict[tuple[str, ...], int]]:
    """The combinations of the ``others`` labels' values that occur, each label's values in
    :func:`_ordered` order: their names (``"optimizer=adam, wd=0.1"``) and numbers."""
    if not others:
        return (), {(): 0}
    rank = [{v: i for i, v in enumerate(_ordered(d[label] for d in placed))} for label in others]
    combos = sorted(
        {tuple(d[label] for label in others) for d in placed},
        key=lambda combo: tuple(r[v] for r, v in zip(rank, combo, strict=True)),
    )
    names = tuple(
        ", ".join(f"{label}={value}" for label, value in zip(others, combo, strict=True))
        for combo in combos
    )
    return names, {combo: i for i, combo in enumerate(combos)}


# --- all of it -----------------------------------------------------------------------------------


def extract(
    lines: Iterable[bytes | str],
    *,
    path: str | None = None,
    spec_points: Iterable[tuple[str, int, Pairs]] | None = None,
) -> ReportData:
    """Read a ledger's lines once into everything the report shows.

    Raises LedgerError (with the line) for a damaged ledger, as :func:`fold` does.
    """
    tap = _Tap()
    state = fold(tap.lines(lines), path=path)
    summary = summarize(state)
    views = points(state, spec_points)
    throttled = requests = None
    for span in state.spans:
        counts = span.finished["counts"] if span.finished else {}
        if isinstance(counts.get("throttled"), int):
            throttled = (throttled or 0) + counts["throttled"]
        if isinstance(counts.get("requests"), int):
            requests = (requests or 0) + counts["requests"]
    latencies = (
        float(r["latency_ms"])
        for k, r in state.outcomes.items()
        if r["event"] == "succeeded" and r["latency_ms"] is not None and k not in state.pending
    )
    tally = Counter(p.state for p in views)
    return ReportData(
        path=path,
        summary=summary,
        settings=state.settings or RunSettings(),
        throttled=throttled,
        requests=requests,
        timeline=timeline(tap.runs),
        latency=histogram(latencies),
        grid=grid(views),
        states={s: tally[s] for s in STATES if tally[s]},
        training_failures=tuple(p for p in views if p.state in (TRAIN_FAILED, STOPPED)),
        last_status_ts=state.last_status_ts,
        spec_points=spec_points is not None,
        failures=tuple(
            (code, n, summary.failure_examples.get(code, ""))
            for code, n in summary.failures_by_code.items()
        ),
    )

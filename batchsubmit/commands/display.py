"""What people at a terminal see: the run's progress, a ledger's summary, the watch's board.

The one place (with the command modules) that draws with rich; the core hands it data
(:class:`~batchsubmit.engine.EngineStats`, :class:`~batchsubmit.summary.Summary`,
:class:`~batchsubmit.watch.Board`). Imported only by commands that run, never at registration.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from time import monotonic
from typing import Any

import structlog
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from batchsubmit.engine import EngineStats
from batchsubmit.phases import verdict_of_name
from batchsubmit.summary import Summary, format_duration, next_steps
from batchsubmit.watch import NOT_LISTED, UNSEEN, Board, log_round

__all__ = ["BoardView", "ProgressView", "render_board", "render_summary"]

log = structlog.get_logger("batchsubmit.run")


# --- a run's progress ----------------------------------------------------------------------------


def _fields(s: EngineStats, elapsed: float) -> dict[str, Any]:
    """The bar's numbers, the summary's quantities: totals of this run, achieved points/s."""
    outcomes = s.succeeded + s.failed
    return {
        "ok": s.succeeded,
        "failed": s.failed,
        "retries": s.retries,
        "throttled": s.throttled,
        "rate": f"{outcomes / elapsed:.1f}" if elapsed > 0 and outcomes else "-",
    }


class ProgressView:
    """A live bar on a terminal, else a ``batchsubmit.run.progress`` event every ``interval``
    seconds; nothing when quiet. ``update`` takes each stats snapshot the run hands out;
    ``started`` (``time.monotonic``) is when the run began, if before the view was made."""

    def __init__(
        self, console: Console, *, quiet: bool = False, interval: float = 5.0,
        started: float | None = None,
    ) -> None:
        self._console = console
        self._quiet = quiet
        self._interval = interval
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started = monotonic() if started is None else started
        self._logged = self._started

    @contextlib.contextmanager
    def shown(self) -> Iterator[ProgressView]:
        """Draw while the block runs (the bar stays on screen afterwards)."""
        if self._quiet or not self._console.is_terminal:
            yield self
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/] "
                "[yellow]{task.fields[retries]} retries[/] {task.fields[throttled]} throttled "
                "[cyan]{task.fields[rate]} points/s[/]"
            ),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        with self._progress:
            yield self

    def update(self, s: EngineStats) -> None:
        if self._quiet:
            return
        now = monotonic()
        fields = _fields(s, s.sending_s)  # the summary's rate counts from the first send too
        progress = self._progress
        if progress is None:
            if now - self._logged >= self._interval:
                self._logged = now
                log.info(
                    "batchsubmit.run.progress", done=s.done, total=s.total,
                    elapsed_s=round(now - self._started, 1), **fields,
                )
            return
        if self._task is None:
            self._task = progress.add_task("submitting", total=s.total, **fields)
        progress.update(self._task, completed=s.done, total=s.total, **fields)


# --- a ledger's summary --------------------------------------------------------------------------


def _last_run(summary: Summary) -> str:
    if summary.runs == 0:
        return "none recorded"
    if summary.interrupted is None:
        return "no run_finished line: still running, or killed"
    if summary.halted:
        return "halted (too many failures)"
    return "interrupted" if summary.interrupted else "finished"


def render_summary(summary: Summary, console: Console) -> None:
    """Print the counts, the failures grouped by error code, the pace, and what to do next."""
    table = Table(title=f"sweep {summary.sweep or '?'}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="dim")
    reconciled = f"{summary.reconciled} found on the server" if summary.reconciled else ""
    rate = "unknown" if summary.achieved_rate is None else f"{summary.achieved_rate:.1f} points/s"
    rows: list[tuple[str, str, str]] = [
        ("points", str(summary.total), ""),
        ("succeeded", str(summary.succeeded), reconciled),
        ("failed", str(summary.failed), ""),
        ("outcome unknown", str(summary.pending), "reconciled by the next run"),
        ("not started", str(summary.not_started), ""),
        ("retries", str(summary.retries), ""),
        ("throttled", str(summary.throttled), "requests answered \"slow down\""),
        ("stopped", str(summary.stopped), "by `batchsubmit stop`"),
        ("deleted", str(summary.deleted), "by `batchsubmit delete`"),
        ("achieved rate", rate, "outcomes/s, first submit to last outcome"),
        ("time taken", format_duration(summary.elapsed_s), f"{summary.runs} run(s)"),
        ("last run", _last_run(summary), ""),
    ]
    always = {"points", "succeeded", "achieved rate", "time taken", "last run"}
    rows = [row for row in rows if row[0] in always or row[1] != "0"]  # no rows of zeros
    for label, value, note in rows:
        table.add_row(label, value, note)
    if summary.statuses:  # Text, not markup: the names come from the ledger
        seen = ", ".join(f"{n} {name}" for name, n in summary.statuses.items())
        table.add_row("training", Text(seen), "last status seen by `batchsubmit watch`")
    console.print(table)
    if summary.failures_by_code:
        failures = Table(title="failures by error code", title_justify="left")
        failures.add_column("code")
        failures.add_column("points", justify="right")
        failures.add_column("example message", overflow="fold")
        for code, count in summary.failures_by_code.items():
            # Text, not markup: messages come from the server and may contain [brackets]
            failures.add_row(Text(code), str(count), Text(summary.failure_examples.get(code, "")))
        console.print(failures)
    for step in next_steps(summary):
        console.print(Text(step))


# --- the watch's board ---------------------------------------------------------------------------

def _style(name: str) -> str:
    """Green for COMPLETED (v2: Completed), red for any other end, yellow while it runs."""
    if name in ("COMPLETED", "Completed"):
        return "green"
    if name == UNSEEN:
        return "dim"
    failed = name == NOT_LISTED or verdict_of_name(name) in ("failed", "stopped")
    return "red" if failed else "yellow"


def _ran(ms: float | None) -> str:
    return "-" if ms is None else format_duration(ms / 1000)


def render_board(board: Board, *, polls: int, sweep: str | None = None) -> RenderableType:
    """The live view: counts by status, the slowest running versions and the failed ones."""
    v2 = board.api == "v2"
    heading = Text(f"watching {len(board)} {board.noun} of sweep {sweep or '?'} (poll {polls})")
    status, version = ("phase", "training job") if v2 else ("status", "version")
    counts = Table(title=f"by {status}", title_justify="left")
    counts.add_column(status)
    counts.add_column(board.noun, justify="right")
    for name, n in board.counts().most_common():
        counts.add_row(Text(name, style=_style(name)), str(n))
    parts: list[RenderableType] = [heading, counts]
    slow = board.slowest()
    if slow:
        table = Table(title="slowest running", title_justify="left")
        for column in ("key", version, status, "running for"):
            table.add_column(column)
        for t in slow:
            table.add_row(Text(t.key), str(t.version_id), Text(t.label()), _ran(t.duration_ms))
        parts.append(table)
    failed = board.failed()
    if failed:
        table = Table(title=f"ended without completing ({len(failed)})", title_justify="left")
        for column in ("key", version, status, "ran for"):
            table.add_column(column)
        for t in failed[:10]:
            table.add_row(
                Text(t.key), str(t.version_id), Text(t.label(), style="red"), _ran(t.duration_ms)
            )
        if len(failed) > 10:
            table.add_row(Text(f"... and {len(failed) - 10} more", style="dim"), "", "", "")
        parts.append(table)
    return Group(*parts)


class BoardView:
    """The watch's rounds: a live board on a terminal, else a ``batchsubmit.watch.progress``
    event per round."""

    def __init__(self, console: Console | None, sweep: str | None = None) -> None:
        self._console = console
        self._sweep = sweep
        self._live: Live | None = None

    @contextlib.contextmanager
    def shown(self) -> Iterator[BoardView]:
        console = self._console
        if console is None or not console.is_terminal:
            yield self
            return
        with Live(console=console, auto_refresh=False, transient=False) as live:
            self._live = live
            yield self

    def update(self, board: Board, polls: int, elapsed: float) -> None:
        if self._live is not None:
            self._live.update(render_board(board, polls=polls, sweep=self._sweep), refresh=True)
        else:
            log_round(board, polls, elapsed)

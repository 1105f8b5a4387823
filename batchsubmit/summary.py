"""What a ledger adds up to: counts, failures by error code, pace, and the table that shows them.

:func:`summarize` is pure (a :class:`~batchsubmit.ledger.LedgerState` in, a frozen
:class:`Summary` out); :func:`render_summary` draws it on a rich console. Both the end of
``batchsubmit run`` and ``batchsubmit status`` use them.

Counts are per point and add up to ``total``: a point whose last ``submitted`` line has no outcome
after it counts as *pending* (its outcome is unknown: the next run reconciles it), whatever an
earlier outcome said. ``statuses`` counts the succeeded points by the last training status
``batchsubmit watch`` recorded for their version (points never watched are not in it).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from batchsubmit.ledger import LedgerState, RunSpan

__all__ = ["Summary", "failure_code", "next_steps", "render_summary", "summarize"]


@dataclass(frozen=True)
class Summary:
    """The state of a sweep as its ledger records it."""

    sweep: str | None
    total: int  # points in the sweep, from the last run_started (0: no run recorded)
    succeeded: int
    failed: int
    pending: int  # sent, outcome unknown: the next run reconciles them with the server
    not_started: int  # total - succeeded - failed - pending, at least 0
    reconciled: int  # successes found on the server rather than answered by the create call
    retries: int  # sum of (attempts - 1) over the points with an outcome
    failures_by_code: dict[str, int]  # error code (or "HTTP <status>", "transport") -> points
    failure_examples: dict[str, str]  # error code -> one error message with that code
    started_at: str | None  # ts of the first line
    finished_at: str | None  # ts of the last line
    elapsed_s: float | None  # time the runs took, the gaps between runs left out
    achieved_rate: float | None  # outcomes per second, from each run's first submit to last outcome
    interrupted: bool | None  # per the last run's run_finished; None: it has none (running, killed)
    runs: int
    torn_line: bool  # a line torn by a crash was ignored
    # status name -> succeeded points whose version was last seen in it (by `batchsubmit watch`)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every point succeeded: nothing failed, unknown or not started."""
        return self.runs > 0 and self.failed == self.pending == self.not_started == 0

    def as_dict(self) -> dict[str, Any]:
        """The fields (and ``complete``) as plain JSON types, for ``status --json``."""
        return {**dataclasses.asdict(self), "complete": self.complete}


def failure_code(record: dict[str, Any]) -> str:
    """How a failure is grouped: its error code, else ``HTTP <status>``, else ``transport``."""
    if record.get("error_code"):
        return str(record["error_code"])
    if record.get("http_status") is not None:
        return f"HTTP {record['http_status']}"
    return "transport"


def _parse(ts: str | None) -> datetime | None:
    if ts is None:
        return None
    try:
        return datetime.fromisoformat(ts)
    except ValueError:
        return None


def _seconds(start: str | None, end: str | None) -> float | None:
    a, b = _parse(start), _parse(end)
    if a is None or b is None or (a.tzinfo is None) != (b.tzinfo is None):
        return None
    return (b - a).total_seconds()


def _elapsed(spans: list[RunSpan]) -> float | None:
    durations = [_seconds(span.first_ts, span.last_ts) for span in spans]
    if not durations or any(d is None for d in durations):
        return None
    return sum(d for d in durations if d is not None)


def _rate(spans: list[RunSpan]) -> float | None:
    outcomes, seconds = 0, 0.0
    for span in spans:
        if span.outcomes_since_first_submit:
            duration = _seconds(span.first_submitted_ts, span.last_outcome_ts)
            if duration is None:
                return None
            outcomes += span.outcomes_since_first_submit
            seconds += duration
    return outcomes / seconds if seconds > 0 else None


def summarize(state: LedgerState) -> Summary:
    """Add up a folded ledger."""
    succeeded = failed = reconciled = retries = 0
    codes: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for key, record in state.outcomes.items():
        if key in state.pending:
            continue
        retries += max(0, record["attempts"] - 1)
        if record["event"] == "succeeded":
            succeeded += 1
            reconciled += bool(record["reconciled"])
            entry = state.statuses.get(key)
            if entry is not None and entry.version_id == record["version_id"]:
                statuses[entry.status_name] += 1
        else:
            failed += 1
            code = failure_code(record)
            codes[code] += 1
            examples.setdefault(code, record["error_message"])
    total = state.total or 0
    pending = len(state.pending)
    last = state.last_run
    return Summary(
        sweep=state.sweep,
        total=total,
        succeeded=succeeded,
        failed=failed,
        pending=pending,
        not_started=max(0, total - succeeded - failed - pending),
        reconciled=reconciled,
        retries=retries,
        failures_by_code=dict(codes.most_common()),
        failure_examples={code: examples[code] for code, _ in codes.most_common()},
        started_at=state.first_ts,
        finished_at=state.last_ts,
        elapsed_s=_elapsed(state.spans),
        achieved_rate=_rate(state.spans),
        interrupted=None if last is None or last.finished is None else last.finished["interrupted"],
        runs=len(state.runs),
        torn_line=state.torn_line,
        statuses=dict(statuses.most_common()),
    )


def format_duration(seconds: float | None) -> str:
    """A duration as people read it: 4.2 s, 3 min 5 s, 2 h 10 min."""
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)} min {secs:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def _last_run(summary: Summary) -> str:
    if summary.runs == 0:
        return "none recorded"
    if summary.interrupted is None:
        return "no run_finished line: still running, or killed"
    return "interrupted" if summary.interrupted else "finished"


def next_steps(summary: Summary) -> list[str]:
    """What to do about what the summary shows, one sentence each."""
    steps = []
    if summary.runs == 0:
        steps.append("No run is recorded in this ledger yet.")
    if summary.pending:
        steps.append(
            f"{summary.pending} sent point(s) have no recorded outcome: re-run the same command; "
            "it looks for them on the server before sending anything again."
        )
    if summary.failed:
        steps.append(
            f"{summary.failed} point(s) failed: re-run with --retry-failed to send them again "
            "once the cause above is fixed."
        )
    if summary.not_started:
        steps.append(f"{summary.not_started} point(s) not started: re-run the same command.")
    if summary.torn_line:
        steps.append("A line torn by a crash was ignored (nothing was sent for it).")
    if summary.complete:
        steps.append("Every point succeeded.")
    return steps


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
        ("achieved rate", rate, "outcomes/s, first submit to last outcome"),
        ("time taken", format_duration(summary.elapsed_s), f"{summary.runs} run(s)"),
        ("last run", _last_run(summary), ""),
    ]
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

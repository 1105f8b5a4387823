"""What a ledger adds up to: counts, failures by error code, pace, and what to do next.

:func:`summarize` is pure (a :class:`~batchsubmit.ledger.LedgerState` in, a frozen
:class:`Summary` out); the command line draws it (``commands/display.py``). Both the end of
``batchsubmit run`` and ``batchsubmit status`` use them.

Counts are per point and add up to ``total``: a point whose last ``submitted`` line has no outcome
after it counts as *pending* (its outcome is unknown: the next run reconciles it), whatever an
earlier outcome said. ``statuses`` counts the succeeded points by the last training status
``batchsubmit watch`` recorded for their version (points never watched are not in it): for a v2
ledger, by the last phase of their training job (``Completed``, ``Running``...).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batchsubmit.ledger import LedgerState, RunSpan, object_id
from batchsubmit.phases import verdict_of_name

__all__ = ["Summary", "failure_code", "format_duration", "next_steps", "summarize"]


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
    halted: str | None = None  # why the last run's failure-rate guard stopped it (run_finished)
    throttled: int = 0  # requests answered "slow down", over every run that recorded its counts
    stopped: int = 0  # succeeded points whose current version `batchsubmit stop` stopped
    deleted: int = 0  # ... and whose current version `batchsubmit delete` deleted

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
            if entry is not None and entry.version_id == object_id(record):
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
        halted=None if last is None or last.finished is None else last.finished.get("halted"),
        runs=len(state.runs),
        torn_line=state.torn_line,
        throttled=sum(
            int(span.finished["counts"].get("throttled") or 0)
            for span in state.spans if span.finished is not None
        ),
        stopped=sum(state.was_stopped(key) for key in state.stopped),
        deleted=sum(state.was_deleted(key) for key in state.deleted),
        statuses=dict(statuses.most_common()),
    )


def format_duration(seconds: float | None, *, estimate: bool = False) -> str:
    """A duration as people read it: ``4.2s``, ``1m 4s``, ``2h 1m 0s`` (None: ``unknown``).

    The one formatter of durations (summaries, the watch's board, the report, ``expand``'s
    estimate). An ``estimate`` is rounded up to whole seconds: ``about 2s``, never ``about 0s``."""
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    if estimate:
        seconds = float(math.ceil(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s" if estimate else f"{seconds:.1f}s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s"


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
    if summary.halted:
        steps.append(f"The last run halted: {summary.halted}.")
    if summary.complete:
        steps.append(_complete(summary))
    return steps


def _complete(summary: Summary) -> str:
    """The verdict of a sweep whose every point succeeded: of the submission, and of the
    trainings when ``batchsubmit watch`` recorded how they went."""
    if not summary.statuses:
        return "Every point succeeded."
    ended_well = sum(
        n for name, n in summary.statuses.items() if verdict_of_name(name) == "succeeded"
    )
    ended = sum(n for name, n in summary.statuses.items() if verdict_of_name(name) != "active")
    watched = sum(summary.statuses.values())
    parts = [f"{ended_well} completed"]
    if ended - ended_well:
        parts.append(f"{ended - ended_well} ended without completing")
    if watched - ended:
        parts.append(f"{watched - ended} still running when last seen")
    if summary.succeeded - watched:
        parts.append(f"{summary.succeeded - watched} never watched")
    if ended_well == summary.succeeded:
        return f"Every point succeeded, and every training completed ({ended_well})."
    return (
        f"Every point was submitted; training: {', '.join(parts)} "
        "(`status --points --succeeded` lists them, `watch` follows them on)."
    )

"""``batchsubmit status LEDGER [--json]``: what a ledger says, without sending anything.

``status LEDGER --points [--failed|--pending|--succeeded] [--format table|json|csv|tsv]``: one
row per point (the core is :mod:`batchsubmit.points`), rendered here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batchsubmit.commands import ExitCode
from batchsubmit.errors import LedgerError, UsageError

if TYPE_CHECKING:  # imported when the command runs: registering stays light
    from rich.console import Console

    from batchsubmit.ledger import LedgerState
    from batchsubmit.points import PointRow

DESCRIPTION = """\
Summarise a sweep's ledger: the JSON Lines file `batchsubmit run` appends to (--ledger; by
default <sweep name>.ledger.jsonl in the directory it ran in). Nothing is sent anywhere, and it is
safe to run while a run is still writing the ledger.

Counts are per point and add up to the sweep's size: succeeded (some found on the server by
reconciliation), failed (by its last outcome), outcome unknown (sent, but the answer was never
recorded: the next `run` looks for the version on the server before sending again), and not
started. Failures are grouped by the service's error code, "HTTP <status>" when the answer had no
code, "transport" when there was no answer. The achieved rate counts outcomes per second from a
run's first request to its last outcome; time taken leaves out the gaps between runs.

--points lists the points instead, one row each, by index: every point the ledger has a line
for (points never sent are not listed). Columns: index, key, one column per parameter (named by
its label; a label that is also the name of a fixed column is written param.<label>), outcome
(succeeded, failed, or pending: sent, outcome unknown), version_id (succeeded points), status
(the last training status `batchsubmit watch` recorded; empty if never watched), error_code
(failed points: the service's code, "HTTP <status>" or "transport", as grouped above) and
attempts. Parameters come from each point's last outcome line: a point sent but never answered
has none, nor has a failure recorded by a batchsubmit older than the `parameter` field.
--failed, --pending and --succeeded keep only those points and add up: --failed --pending is
every point still to do. --format table (the default) draws a table, leaving out version_id,
status and error_code when no row has one; json prints one object per line (JSON Lines: index,
key, parameters {label: value}, outcome, version_id, status, error_code, attempts; null when
empty); csv and tsv print a header row, then a row per point (empty cells when empty), quoted as
CSV quotes when a value holds the delimiter, a quote or a line break.

A v2 ledger (target.api: v2) has training_job_id and job_name in place of version_id, and phase
(the last phase `batchsubmit watch` recorded: Completed, Running...) in place of status, in the
table, the JSON Lines and the CSV/TSV header alike; its summary counts trainings by phase.
"""

EPILOG = """\
exit codes: 0 every point succeeded; 1 some failed, have no outcome, or were not started;
            2 the ledger is missing or damaged (the message names the line)

examples:
  batchsubmit status lr-sweep.ledger.jsonl
  batchsubmit status lr-sweep.ledger.jsonl --json | jq '.failures_by_code'
  batchsubmit status lr-sweep.ledger.jsonl >/dev/null || batchsubmit run lr-sweep.yaml
  batchsubmit status lr-sweep.ledger.jsonl --points --failed
  batchsubmit status lr-sweep.ledger.jsonl --points --format csv > points.csv
  batchsubmit status lr-sweep.ledger.jsonl --points --failed --format json | jq -r .key
"""

FORMATS = ("table", "json", "csv", "tsv")


def register(subparsers: Any) -> None:
    """Add the ``status`` subcommand to the CLI."""
    parser = subparsers.add_parser(
        "status",
        help="summarise a ledger: counts, failures by error code, achieved rate, time taken",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("ledger", metavar="LEDGER", help="the ledger file a run wrote")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object instead of tables: sweep, total, succeeded, "
        "failed, pending (outcome unknown), not_started, reconciled, retries, failures_by_code, "
        "failure_examples, started_at, finished_at, elapsed_s, achieved_rate, interrupted, runs, "
        "torn_line, statuses (training status name -> points, from `batchsubmit watch`), "
        "halted (why the last run stopped itself, or null), throttled, stopped, deleted, "
        "complete",
    )
    points = parser.add_argument_group("one row per point")
    points.add_argument(
        "--points",
        action="store_true",
        help="list the points instead of the summary: index, key, each parameter, outcome, "
        "version_id, status, error_code, attempts (the exit code is the summary's)",
    )
    for outcome, what in (
        ("failed", "failed for good"),
        ("pending", "sent, with no outcome recorded"),
        ("succeeded", "whose version exists"),
    ):
        points.add_argument(
            f"--{outcome}",
            action="append_const",
            const=outcome,
            dest="outcomes",
            help=f"with --points: the points {what} (the filters add up)",
        )
    points.add_argument(
        "--format",
        choices=FORMATS,
        help="with --points: table (the default), json (JSON Lines), csv or tsv (a header row)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the ledger's summary (or its points); 0 when every point succeeded, else 1."""
    from rich.console import Console  # imported when run: registering stays light

    from batchsubmit.commands.display import render_summary
    from batchsubmit.ledger import read_ledger
    from batchsubmit.summary import summarize

    _check_flags(args)
    path: str = args.ledger
    if not os.path.lexists(path):
        raise LedgerError(
            "no such ledger; `batchsubmit run` writes one (--ledger PATH, by default "
            "<sweep name>.ledger.jsonl in the directory it ran in)",
            path=path,
        )
    state = read_ledger(path)
    summary = summarize(state)
    if args.points:
        print_points(state, args.outcomes, args.format or "table")
    elif args.json:
        print(json.dumps(summary.as_dict()))
    else:
        render_summary(summary, Console())
    return ExitCode.OK if summary.complete else ExitCode.FAILED


def _check_flags(args: argparse.Namespace) -> None:
    """--failed/--pending/--succeeded and --format go with --points, --json without it."""
    if args.points and args.json:
        raise UsageError("--json prints the summary; for the points as JSON Lines use "
                         "--points --format json")
    flag = f"--{args.outcomes[0]}" if args.outcomes else "--format" if args.format else None
    if flag and not args.points:
        raise UsageError(f"{flag} goes with --points (one row per point): add --points")


def print_points(state: LedgerState, outcomes: list[str] | None, form: str) -> None:
    """The points of the ledger (those with ``outcomes``; None: all) on stdout, as ``form``."""
    from batchsubmit.points import point_rows

    rows = point_rows(state, set(outcomes) if outcomes else None)
    try:
        if form == "table":
            from rich.console import Console

            render_points(rows, Console(), sweep=state.sweep, outcomes=outcomes)
        elif form == "json":
            write = sys.stdout.write
            for row in rows:
                write(json.dumps(row.as_dict()) + "\n")
        else:
            _write_delimited(rows, "," if form == "csv" else "\t")
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has seen enough
        from batchsubmit.commands import silence_stdout

        silence_stdout()


def _write_delimited(rows: list[PointRow], delimiter: str) -> None:
    """A header row, then a row per point; empty cells for None and for absent parameters."""
    import csv

    from batchsubmit.points import fields_of, parameter_columns, parameter_labels

    api = _api(rows)
    fields = fields_of(api)
    labels = parameter_labels(rows)
    columns = parameter_columns(labels, api)
    writer = csv.writer(sys.stdout, delimiter=delimiter, lineterminator="\n")
    writer.writerow([*fields[:2], *columns.values(), *fields[2:]])  # the parameters after key
    for row in rows:
        values = dict(row.parameters)
        ids = (
            (_cell(row.training_job_id), _cell(row.job_name)) if api == "v2"
            else (_cell(row.version_id),)
        )  # fmt: skip
        writer.writerow([
            row.index, row.key, *(values.get(label, "") for label in labels), row.outcome,
            *ids, _cell(row.status), _cell(row.error_code), row.attempts,
        ])  # fmt: skip


def _api(rows: list[PointRow]) -> str:
    """The rows' API (all rows of a ledger share it; no rows: v1's columns)."""
    return rows[0].api if rows else "v1"


def _cell(value: object) -> object:
    return "" if value is None else value


_OUTCOME_STYLE = {"succeeded": "green", "failed": "red", "pending": "yellow"}


def render_points(
    rows: list[PointRow], console: Console, *, sweep: str | None, outcomes: list[str] | None
) -> None:
    """The rows as a rich table: one column per parameter label, values as Text (not markup);
    version_id, status and error_code are left out when no row has one."""
    from rich.table import Table
    from rich.text import Text

    from batchsubmit.points import parameter_columns, parameter_labels

    labels = parameter_labels(rows)
    api = _api(rows)
    which = " or ".join(outcomes) if outcomes else "all"
    table = Table(title=Text(f"points of sweep {sweep or '?'} ({which}): {len(rows)}"),
                  title_justify="left")
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("key", style="cyan", no_wrap=True, min_width=16)
    for name in parameter_columns(labels, api).values():
        table.add_column(Text(name))
    table.add_column("outcome", no_wrap=True, min_width=9)
    optional = [
        (name, getter) for name, getter in (_OPTIONAL_V2 if api == "v2" else _OPTIONAL)
        if any(getter(row) is not None for row in rows)
    ]  # fmt: skip
    for name, _ in optional:
        table.add_column(name, justify="right" if name == "version_id" else "left")
    table.add_column("attempts", justify="right", no_wrap=True)
    for row in rows:
        values = dict(row.parameters)
        table.add_row(
            str(row.index), Text(row.key), *(Text(values.get(label, "")) for label in labels),
            Text(row.outcome, style=_OUTCOME_STYLE.get(row.outcome, "")),
            *(Text(_text(getter(row))) for _, getter in optional), str(row.attempts),
        )  # fmt: skip
    console.print(table)


def _text(value: object) -> str:
    return "" if value is None else str(value)


_OPTIONAL: tuple[tuple[str, Callable[[PointRow], object]], ...] = (
    ("version_id", lambda row: row.version_id),
    ("status", lambda row: row.status),
    ("error_code", lambda row: row.error_code),
)
_OPTIONAL_V2: tuple[tuple[str, Callable[[PointRow], object]], ...] = (
    ("training_job_id", lambda row: row.training_job_id),
    ("job_name", lambda row: row.job_name),
    ("phase", lambda row: row.status),
    ("error_code", lambda row: row.error_code),
)

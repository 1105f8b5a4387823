"""``batchsubmit status LEDGER [--json]``: what a ledger says, without sending anything."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from batchsubmit.commands import ExitCode
from batchsubmit.errors import LedgerError

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
"""

EPILOG = """\
exit codes: 0 every point succeeded; 1 some failed, have no outcome, or were not started;
            2 the ledger is missing or damaged (the message names the line)

examples:
  batchsubmit status lr-sweep.ledger.jsonl
  batchsubmit status lr-sweep.ledger.jsonl --json | jq '.failures_by_code'
  batchsubmit status lr-sweep.ledger.jsonl >/dev/null || batchsubmit run lr-sweep.yaml
"""


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
        "torn_line, statuses (training status name -> points, from `batchsubmit watch`), complete",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the ledger's summary; 0 when every point succeeded, else 1."""
    from rich.console import Console  # imported when run: registering stays light

    from batchsubmit.commands.display import render_summary
    from batchsubmit.ledger import read_ledger
    from batchsubmit.summary import summarize

    path: str = args.ledger
    if not os.path.lexists(path):
        raise LedgerError(
            "no such ledger; `batchsubmit run` writes one (--ledger PATH, by default "
            "<sweep name>.ledger.jsonl in the directory it ran in)",
            path=path,
        )
    summary = summarize(read_ledger(path))
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        render_summary(summary, Console())
    return ExitCode.OK if summary.complete else ExitCode.FAILED

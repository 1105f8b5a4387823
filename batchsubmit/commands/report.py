"""``batchsubmit report LEDGER -o report.html``: one self-contained HTML page about a sweep."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from batchsubmit.commands import ExitCode

DESCRIPTION = """\
Write one HTML file about a sweep, for people who would rather look than read: the headline
numbers, the submission timeline (requests per second, retries, and the failed points on a row
of their own), the latency histogram of the create calls, every point's outcome and training
status laid out over the grid (a heat map over the first two swept parameters that vary, one map
per value of any further ones, and the same of the training durations), failures grouped by
error code, and the trainings that did not complete. Times are shown in UTC.

The file is self-contained (inline CSS and SVG, no script, nothing fetched): mail it, attach it,
open it in any browser. Nothing is sent anywhere. Training statuses come from `batchsubmit watch`.
Like the ledger, it is written readable by its owner only (mode 0600): it names the endpoint,
the job and every point; chmod it to share it.
"""

EPILOG = """\
The ledger records no parameters for a point whose create call failed: pass --spec with the
sweep's spec to place those points on the grid too (and to show the points never started).

exit codes: 0 written; 2 the ledger or spec is missing or damaged, or the output is not writable

examples:
  batchsubmit report lr-sweep.ledger.jsonl -o lr-sweep.html
  batchsubmit report lr-sweep.ledger.jsonl --spec sweeps/lr-sweep.yaml -o lr-sweep.html
"""


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand to the CLI."""
    parser = subparsers.add_parser(
        "report", help="write a self-contained HTML report of a ledger (charts, heat map)",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("ledger", metavar="LEDGER", type=Path, help="the ledger a run wrote")
    parser.add_argument(
        "-o", "--output", metavar="FILE", type=Path,
        help="the HTML file to write (default: LEDGER with .html in place of .jsonl)",
    )  # fmt: skip
    parser.add_argument(
        "--spec", metavar="SPEC", type=Path,
        help="the sweep's spec, to place failed and unstarted points on the grid",
    )  # fmt: skip
    parser.set_defaults(func=run)


def default_output(ledger: Path) -> Path:
    """``x.ledger.jsonl`` -> ``x.ledger.html``."""
    return ledger.with_suffix(".html") if ledger.suffix == ".jsonl" else Path(f"{ledger}.html")


def run(args: argparse.Namespace) -> int:
    """Write the report; BatchSubmitError (exit 2 in cli.main) when the ledger is unusable."""
    from batchsubmit.errors import UsageError
    from batchsubmit.report import write_report

    output: Path = args.output or default_output(args.ledger)
    try:
        data = write_report(args.ledger, output, spec=args.spec)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {output}: {exc.strerror or exc}") from None
    s = data.summary
    print(
        f"wrote {output}: {s.total} points, {s.succeeded} succeeded, {s.failed} failed",
        file=sys.stderr,
    )
    return ExitCode.OK

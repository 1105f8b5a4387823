"""``batchsubmit run``: send a sweep, exactly once, resumable.

Registering the parser imports only the standard library; :func:`run` imports the runner (and
with it aiohttp, pydantic, rich) when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Create one training-job version per point of SPEC, concurrently, within a requests-per-second
rate, recording every step in an append-only ledger (JSON Lines).

Re-running the same command resumes: points that succeeded are skipped, points whose outcome is
unknown (a crash, a timeout) are looked up on the server before anything is re-sent, and failed
points are re-sent only with --retry-failed. Nothing is sent if any point of the spec is invalid.

Credentials (not needed for `--endpoint emulator`): HUAWEICLOUD_SDK_AK + HUAWEICLOUD_SDK_SK
(AK/SK signing), else MODELARTS_TOKEN. The project id comes from the spec, --project-id, or
HUAWEICLOUD_SDK_PROJECT_ID. Secrets are never printed or written.
"""

EPILOG = """\
examples:
  batchsubmit run sweeps/quickstart.yaml                  # the embedded emulator
  batchsubmit run sweep.yaml --rate 2 --concurrency 4     # gentle on a real project
  batchsubmit run sweep.yaml --retry-failed               # resume, re-sending failures too
  batchsubmit status quickstart.ledger.jsonl              # what a ledger says

exit codes: 0 every point succeeded, 1 some failed (or were left pending), 2 spec, usage or
credential error (nothing sent), 130 interrupted (re-run to resume)
"""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="submit a sweep (resumable, exactly once)", description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", metavar="SPEC", type=Path, help="sweep spec (.yaml, .json, .toml)")
    target = parser.add_argument_group("target (override the spec's `target`)")
    target.add_argument("--endpoint", metavar="URL|emulator",
                        help="https://modelarts.<region>.myhuaweicloud.com, or `emulator`")
    target.add_argument("--project-id", metavar="ID", help="the project id")
    target.add_argument("--job-id", metavar="N", type=int, help="the training job to version")
    sub = parser.add_argument_group("submission (override the spec's `submit`)")
    sub.add_argument("--rate", metavar="R", type=float,
                     help="ceiling in requests/s; lowered automatically on throttling (default 5)")
    sub.add_argument("--concurrency", metavar="N", type=int,
                     help="requests in flight at once (default 8, at most 1000)")
    sub.add_argument("--max-attempts", metavar="N", type=int,
                     help="attempts per point in this run (default 6)")
    sub.add_argument("--timeout", metavar="SECONDS", type=float, default=30.0,
                     help="read timeout per request; past it the outcome is unknown and the "
                          "point is reconciled before any retry (default 30)")
    sub.add_argument("--settle", metavar="SECONDS", type=float, default=2.0,
                     help="how long the version list may lag creation (default 2)")
    sub.add_argument("--retry-failed", action="store_true",
                     help="re-send points that failed in an earlier run")
    sub.add_argument("--watch", action="store_true",
                     help="after submitting, follow the created versions until each one ends "
                          "(as `batchsubmit watch`); the exit code then says how they ended")
    sub.add_argument("--watch-interval", metavar="SECONDS", type=float, default=10.0,
                     help="with --watch: seconds between listings (default 10)")
    out = parser.add_argument_group("output")
    out.add_argument("--ledger", metavar="PATH", type=Path,
                     help="the ledger (default: <name>.ledger.jsonl in the current directory)")
    out.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    out.add_argument("--log-format", choices=("console", "json"), default="console",
                     help="format of log events on stderr (default console)")
    out.add_argument("--log-file", metavar="PATH", help="write log events to PATH (mode 0600)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Send the sweep; the exit code says how its points ended (see EPILOG)."""
    import anyio

    from batchsubmit.logs import logging_for_command
    from batchsubmit.runner import EXIT_INTERRUPTED, RunOptions, run_sweep

    options = RunOptions(
        spec=args.spec, endpoint=args.endpoint, project_id=args.project_id, job_id=args.job_id,
        ledger=args.ledger, rate=args.rate, concurrency=args.concurrency,
        max_attempts=args.max_attempts, timeout=args.timeout, retry_failed=args.retry_failed,
        settle=args.settle, quiet=args.quiet, watch=args.watch,
        watch_interval=args.watch_interval,
    )
    level = logging.WARNING if args.quiet else logging.INFO
    try:
        with logging_for_command(fmt=args.log_format, level=level, log_file=args.log_file):
            result = anyio.run(run_sweep, options, backend="asyncio")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if result.message:
        print(f"batchsubmit: {result.message}", file=sys.stderr)
    return result.exit_code

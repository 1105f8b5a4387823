"""``batchsubmit watch LEDGER``: follow the versions a run created until each one stops."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchsubmit import bounds
from batchsubmit.commands import ExitCode
from batchsubmit.commands.signals import cancel_on_signal

if TYPE_CHECKING:  # imported when the command runs: registering the parser stays light

    from batchsubmit.commands.ledger_server import LedgerServer
    from batchsubmit.watch import WatchResult

#: batchsubmit.watch.DEFAULT_INTERVAL (a test checks they agree), written out here so that
#: registering the parser does not import the watch loop (anyio, rich, pydantic).
DEFAULT_INTERVAL = 10.0

DESCRIPTION = """\
Follow the training versions a sweep created (every succeeded point of LEDGER) until each one
reaches a terminal status: COMPLETED, or FAILED, KILLED, LOST and the like.

Once per interval it lists each job's versions (one paged list call per job, within --rate; never
one call per version) and appends a line {"event": "status", "key", "version_id", "status",
"status_name", "duration_ms", "ts"} to the ledger whenever a version's status changes. Stopping
and starting again is safe: it resumes from the statuses the ledger already holds. On a terminal
it shows a live table (counts by status, the slowest running, the failed ones); otherwise it logs
one line per interval.

The endpoint, project and jobs are those of the ledger's last run; credentials as for `run`
(HUAWEICLOUD_SDK_AK + HUAWEICLOUD_SDK_SK, else MODELARTS_TOKEN). A run against the embedded
emulator (`--endpoint emulator`) can be watched only while its state file LEDGER.emulator.json
exists: watch then serves it again from that file.

A v2 ledger (target.api: v2) is followed the same way: once per interval one search of its
training jobs, filtered by the longest common prefix of their names (never one detail call per
job), and a line {"event": "status", "key", "training_job_id", "status_name", "duration_ms",
"ts"} whenever a job's phase changes (status_name is the phase). Completed is the only success;
Failed, Abnormal and Terminated end it otherwise; Creating, Pending, Running, Terminating and
any phase batchsubmit does not know (logged) are still active.
"""

EPILOG = """\
exit codes: 0 every version COMPLETED; 1 some ended FAILED, KILLED, LOST (or another status that
            is not a success) or are no longer listed; 2 ledger, usage or credential error;
            130 interrupted (run it again to resume)

examples:
  batchsubmit watch lr-sweep.ledger.jsonl
  batchsubmit watch lr-sweep.ledger.jsonl --interval 60 --rate 1
  batchsubmit watch lr-sweep.ledger.jsonl && batchsubmit report lr-sweep.ledger.jsonl
"""


def register(subparsers: Any) -> None:
    """Add the ``watch`` subcommand to the CLI."""
    parser = subparsers.add_parser(
        "watch", help="follow the created versions until each one completes or fails",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("ledger", metavar="LEDGER", type=Path, help="the ledger a run wrote")
    parser.add_argument(
        "--interval", metavar="S", type=bounds.INTERVAL.parser(), default=DEFAULT_INTERVAL,
        help=f"seconds between two rounds of listings (default {DEFAULT_INTERVAL:g})",
    )  # fmt: skip
    parser.add_argument(
        "--endpoint", metavar="URL",
        help="list from this endpoint instead of the one the run used (e.g. a restarted emulator)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", metavar="R", type=bounds.RATE.parser(),
        help="ceiling in requests/s (default: the run's rate, else 5); lowered on throttling",
    )  # fmt: skip
    parser.add_argument(
        "--quiet", action="store_true",
        help="no live table; log warnings and errors only (as `run --quiet`)",
    )  # fmt: skip
    parser.add_argument(
        "--log-format", choices=("console", "json"), default="console",
        help="format of log events on stderr (default console)",
    )  # fmt: skip
    parser.add_argument("--log-file", metavar="PATH", help="write log events to PATH (mode 0600)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Watch until every version stops; the exit code says how they ended."""
    import anyio

    from batchsubmit.logs import logging_for_command

    level = logging.WARNING if args.quiet else logging.INFO
    try:
        with logging_for_command(fmt=args.log_format, level=level, log_file=args.log_file):
            plan = _plan(args, os.environ)
            result = anyio.run(_watch, plan, args.quiet, backend="asyncio")
    except KeyboardInterrupt:
        result = None
    if result is None:
        print(f"batchsubmit: {INTERRUPTED}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    if result.message:
        print(f"batchsubmit: {result.message}", file=sys.stderr)
    return ExitCode.OK if result.ok else ExitCode.FAILED


INTERRUPTED = "interrupted: the statuses seen so far are in the ledger; run watch again to resume"


@dataclass(frozen=True)
class _Plan:
    """What the ledger and the flags resolve to, checked before anything is started."""

    server: LedgerServer
    job_ids: tuple[int, ...]
    interval: float


def _plan(args: argparse.Namespace, env: Mapping[str, str]) -> _Plan:
    from batchsubmit.commands.ledger_server import ledger_server
    from batchsubmit.watch import job_ids_of

    def jobs(server: LedgerServer) -> tuple[int, ...]:  # a v2 ledger's search needs none
        v2 = server.state.settings is not None and server.state.settings.api == "v2"
        return () if v2 else job_ids_of(server.state)

    server = ledger_server(
        args.ledger, endpoint=args.endpoint, rate=args.rate, env=env,
        no_state="there is no server to list the versions from. Use `batchsubmit run SPEC "
        "--watch` to watch while the run's emulator still serves, or run against `batchsubmit "
        "emulator --state-file PATH` and pass its URL to watch with --endpoint",
    )
    return _Plan(server=server, job_ids=jobs(server), interval=args.interval)


async def _watch(plan: _Plan, quiet: bool = False) -> WatchResult | None:
    """The watch, drawn on stderr; None when interrupted."""
    import anyio
    from rich.console import Console

    from batchsubmit.commands.display import BoardView
    from batchsubmit.limiter import AdaptiveRateLimiter
    from batchsubmit.watch import watch_ledger

    result: WatchResult | None = None
    server = plan.server
    async with server.client() as client:
        console = None if quiet else Console(stderr=True)
        view = BoardView(console, sweep=server.state.sweep)
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_on_signal, tg.cancel_scope)
            with view.shown():
                result = await watch_ledger(
                    server.ledger, client=client, job_ids=plan.job_ids, interval=plan.interval,
                    limiter=AdaptiveRateLimiter(server.rate), on_round=view.update,
                )  # fmt: skip
            tg.cancel_scope.cancel()
    return result



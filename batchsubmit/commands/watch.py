"""``batchsubmit watch LEDGER``: follow the versions a run created until each one stops."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchsubmit import bounds
from batchsubmit.commands import ExitCode
from batchsubmit.errors import UsageError

if TYPE_CHECKING:  # imported when the command runs: registering the parser stays light
    import anyio

    from batchsubmit.auth import Credentials
    from batchsubmit.watch import WatchResult

DEFAULT_RATE = 5.0
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

    ledger: Path
    endpoint: str  # a URL, or "emulator" (then state_file is set)
    project_id: str
    job_ids: tuple[int, ...]
    rate: float
    interval: float
    timeout: float
    credentials: Credentials
    state_file: Path | None


def _plan(args: argparse.Namespace, env: Mapping[str, str]) -> _Plan:
    from batchsubmit.auth import NoCredentials, credentials_for
    from batchsubmit.ledger import read_ledger
    from batchsubmit.watch import job_ids_of

    path: Path = args.ledger
    if not os.path.lexists(path):
        raise UsageError(
            f"{path}: no such ledger; `batchsubmit run` writes one (--ledger PATH, by default "
            "<sweep name>.ledger.jsonl in the directory it ran in)"
        )
    state = read_ledger(path)
    if not state.runs:
        raise UsageError(f"{path}: no run recorded in this ledger: nothing to watch")
    settings = state.settings
    assert settings is not None  # a run is recorded
    project_id = settings.project_id or env.get("HUAWEICLOUD_SDK_PROJECT_ID")
    if not project_id:
        raise UsageError(f"{path}: its last run records no project id (settings.project_id)")
    endpoint = args.endpoint or settings.endpoint
    if not endpoint:
        raise UsageError(f"{path}: its last run records no endpoint: pass --endpoint URL")
    state_file = None
    if endpoint == "emulator":
        state_file = Path(str(path) + ".emulator.json")
        if not state_file.exists():
            raise UsageError(
                "this ledger's run used the embedded emulator (--endpoint emulator), which "
                f"ended with the run's process and left no state file ({state_file}): there is "
                "no server to list the versions from. Use `batchsubmit run SPEC --watch` to "
                "watch while the run's emulator still serves, or run against `batchsubmit "
                "emulator --state-file PATH` and pass its URL to watch with --endpoint"
            )
        credentials: Credentials = NoCredentials(project_id=project_id)
    else:
        credentials = credentials_for(endpoint, env, project_id=project_id)
    return _Plan(
        ledger=path, endpoint=endpoint, project_id=project_id, job_ids=job_ids_of(state),
        rate=float(args.rate or settings.rate or DEFAULT_RATE), interval=args.interval,
        timeout=settings.timeout or 30.0, credentials=credentials,
        state_file=state_file,
    )  # fmt: skip


async def _watch(plan: _Plan, quiet: bool = False) -> WatchResult | None:
    """The watch, drawn on stderr; None when interrupted."""
    import anyio
    from rich.console import Console

    from batchsubmit.client import ModelArtsClient  # aiohttp loads only for commands that send
    from batchsubmit.commands.display import BoardView
    from batchsubmit.ledger import read_ledger
    from batchsubmit.limiter import AdaptiveRateLimiter
    from batchsubmit.watch import watch_ledger

    result: WatchResult | None = None
    async with contextlib.AsyncExitStack() as stack:
        url = plan.endpoint
        if plan.state_file is not None:
            url = await _serve_emulator(stack, plan.project_id, plan.state_file)
        client = await stack.enter_async_context(
            ModelArtsClient(url, plan.credentials, read_timeout=plan.timeout)
        )
        console = None if quiet else Console(stderr=True)
        view = BoardView(console, sweep=read_ledger(plan.ledger, slim=True).sweep)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_on_signal, tg.cancel_scope)
            with view.shown():
                result = await watch_ledger(
                    plan.ledger, client=client, job_ids=plan.job_ids, interval=plan.interval,
                    limiter=AdaptiveRateLimiter(plan.rate), on_round=view.update,
                )  # fmt: skip
            tg.cancel_scope.cancel()
    return result


async def _serve_emulator(stack: contextlib.AsyncExitStack, project_id: str, state: Path) -> str:
    """Serve the embedded-emulator run's state file again, as that run did (same project id)."""
    from batchsubmit.emulator import EmulatorConfig, run_emulator

    try:
        config = EmulatorConfig(project_id=project_id, state_file=state)
        emulator = await stack.enter_async_context(run_emulator(config))
    except ValueError as exc:  # a damaged state file
        raise UsageError(f"cannot serve the run's emulator state again: {exc}") from None
    return emulator.url


async def _on_signal(scope: anyio.CancelScope) -> None:
    """Ctrl-C or SIGTERM: stop now (a batch of lines being written is finished first)."""
    import anyio

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return

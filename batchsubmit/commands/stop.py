"""``batchsubmit stop LEDGER [--keys K,...] [--yes]``: stop the versions a ledger created that
still run; ``batchsubmit delete LEDGER --yes`` (:mod:`batchsubmit.commands.delete`) deletes them.
Both are a dry run without ``--yes``. The core is :mod:`batchsubmit.stopping`.

Registering the parsers imports only the standard library.
"""

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
    from rich.console import Console

    from batchsubmit.commands.ledger_server import LedgerServer
    from batchsubmit.stopping import Action, Candidate, StopResult


_COMMON = """\
Only versions this ledger created are touched: the version of each point whose last outcome is
`succeeded` (with --keys, of those points only); never another version of the job. Points whose
outcome is unknown (a killed run) are left alone: run the sweep again to reconcile them first.

Without --yes it is a dry run: each job's versions are listed once (nothing else is sent) and
a table shows what would be {done} (key, version_id, status); exit 0. With --yes each call is
sent within --rate (lowered on throttling), a few at once, and the ledger gets a line
{{"event": "{done}", "key", "version_id", "job_id", "ts"}} for each one the server accepted. A
re-run skips the versions recorded {done}, so it is safe to stop (Ctrl-C, a kill) and run again:
it goes on with the rest. A call the server refuses is not recorded; it is reported (exit 1).

The endpoint, project and jobs are those of the ledger's last run; credentials as for `run`
(HUAWEICLOUD_SDK_AK + HUAWEICLOUD_SDK_SK, else MODELARTS_TOKEN; none for a loopback endpoint).
A run against the embedded emulator can be reached only while its state file
LEDGER.emulator.json exists: it is served again from that file.

A v2 ledger (target.api: v2): its training jobs are found by one search (by the sweep's name
prefix), the tables show training_job_id and the phase, and the lines carry "training_job_id"
in place of "version_id" and "job_id".
"""

STOP_DESCRIPTION = """\
Stop the training versions a sweep created that are still running (POST .../versions/{id}/stop):
a sweep started by mistake stops burning money. Versions the listing shows in a terminal status
(COMPLETED, FAILED, KILLED, ...) are left alone; a version not listed yet (the list may lag its
creation) is stopped too. v2 training jobs are terminated (POST .../training-jobs/{id}/actions)
unless listed Completed, Failed, Terminated or Abnormal; a job that ended meanwhile (409
ModelArts.2796) is reported as such, not as a refusal.

""" + _COMMON.format(done="stopped")

DELETE_DESCRIPTION = """\
Delete the training versions a sweep created (DELETE .../versions/{id}), in whatever status they
are (the service may refuse to delete a running one: `batchsubmit stop` it first). A version the
listing does not show is skipped: it is gone already, or too new to be listed (run it again in a
minute). `batchsubmit watch` then reports deleted versions as NOT_LISTED. v2 training jobs are
deleted with DELETE .../training-jobs/{id}; one already gone (400 ModelArts.2775) is reported as
such, not as a refusal.

""" + _COMMON.format(done="deleted")

EXIT_CODES = """\
exit codes: 0 every one {done} (or nothing left to do, or a dry run); 1 some could not be {done}
            (refused, or not listed in any of the ledger's jobs); 2 ledger, usage or credential
            error; 3 the service could not be reached; 130 interrupted (run it again to resume)
"""

STOP_EPILOG = EXIT_CODES.format(done="stopped") + """
examples:
  batchsubmit stop lr-sweep.ledger.jsonl                      # what would be stopped
  batchsubmit stop lr-sweep.ledger.jsonl --yes                # stop them
  batchsubmit stop lr-sweep.ledger.jsonl --keys 3f2a9c1e0b7d4a65,9e01c4d2b3a5f678 --yes
"""

DELETE_EPILOG = EXIT_CODES.format(done="deleted") + """
examples:
  batchsubmit delete lr-sweep.ledger.jsonl                    # what would be deleted
  batchsubmit stop lr-sweep.ledger.jsonl --yes && batchsubmit delete lr-sweep.ledger.jsonl --yes
"""


def register(subparsers: Any) -> None:
    """Add the ``stop`` subcommand to the CLI."""
    add_parser(subparsers, "stop")


def add_parser(subparsers: Any, action: str) -> None:
    """The parser of ``stop`` or ``delete``: the same flags, the same function."""
    stop = action == "stop"
    parser = subparsers.add_parser(
        action, formatter_class=argparse.RawDescriptionHelpFormatter,
        help=("stop the versions a ledger created that still run" if stop
              else "delete the versions a ledger created"),
        description=STOP_DESCRIPTION if stop else DELETE_DESCRIPTION,
        epilog=STOP_EPILOG if stop else DELETE_EPILOG,
    )  # fmt: skip
    parser.add_argument("ledger", metavar="LEDGER", type=Path, help="the ledger a run wrote")
    parser.add_argument(
        "--keys", metavar="K,...",
        help=f"{action} only the versions of these points (keys separated by commas)",
    )  # fmt: skip
    parser.add_argument(
        "--yes", action="store_true",
        help=f"{action} them (without it: a dry run that shows what would be done)",
    )  # fmt: skip
    parser.add_argument(
        "--endpoint", metavar="URL",
        help="use this endpoint instead of the one the run used (e.g. a restarted emulator)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", metavar="R", type=bounds.RATE.parser(),
        help="ceiling in requests/s (default: the run's rate, else 5); lowered on throttling",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no table, no summary")
    parser.add_argument(
        "--log-format", choices=("console", "json"), default="console",
        help="format of log events on stderr (default console)",
    )  # fmt: skip
    parser.add_argument("--log-file", metavar="PATH", help="write log events to PATH (mode 0600)")
    parser.set_defaults(func=run, action=action)


def run(args: argparse.Namespace) -> int:
    """Stop (delete) the ledger's versions, or show what would be; the exit code says how."""
    import anyio
    from rich.console import Console

    from batchsubmit.logs import logging_for_command
    from batchsubmit.stopping import parse_keys

    level = logging.WARNING if args.quiet else logging.INFO
    try:
        with logging_for_command(fmt=args.log_format, level=level, log_file=args.log_file):
            resolved = _resolve(args, os.environ, parse_keys(args.keys))
            result = anyio.run(_stop, resolved, backend="asyncio")
    except KeyboardInterrupt:
        result = None
    if result is None:
        print(f"batchsubmit: {_interrupted(args.action)}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    if not args.quiet:
        render_result(result, Console(), Console(stderr=True))
    elif not result.ok:
        print(f"batchsubmit: {summary_line(result)}", file=sys.stderr)
    return ExitCode.OK if result.ok else ExitCode.FAILED


def _interrupted(action: str) -> str:
    past = "stopped" if action == "stop" else "deleted"
    return f"interrupted: every version {past} so far is in the ledger; run it again to go on"


@dataclass(frozen=True)
class _Resolved:
    """What the ledger and the flags resolve to, checked before anything is sent."""

    action: Action
    keys: tuple[str, ...] | None
    yes: bool
    server: LedgerServer
    name_prefix: str = ""  # v2: the search filter that finds the ledger's training jobs


def _resolve(
    args: argparse.Namespace, env: Mapping[str, str], keys: tuple[str, ...] | None
) -> _Resolved:
    """The ledger's last run's endpoint, project and settings, the flags over them."""
    from batchsubmit.commands.ledger_server import ledger_server

    server = ledger_server(
        args.ledger, endpoint=args.endpoint, rate=args.rate, env=env, slim=True,
        no_state="no version of it runs any more",
    )
    prefix = ""
    settings = server.state.settings
    if settings is not None and settings.api == "v2":  # the search filters on the names' prefix
        from batchsubmit.watch import name_prefix

        prefix = name_prefix(server.state)
    return _Resolved(action=args.action, keys=keys, yes=args.yes, server=server,
                     name_prefix=prefix)  # fmt: skip


async def _stop(resolved: _Resolved) -> StopResult | None:
    """The stop (delete) itself; None when interrupted."""
    import anyio

    from batchsubmit.limiter import AdaptiveRateLimiter
    from batchsubmit.stopping import stop_ledger
    from batchsubmit.target import Target
    from batchsubmit.v1 import V1Target
    from batchsubmit.v2 import V2Target

    result: StopResult | None = None
    server = resolved.server
    settings = server.state.settings
    async with server.client() as client, anyio.create_task_group() as tg:
        tg.start_soon(cancel_on_signal, tg.cancel_scope)
        target: Target = V1Target(client)
        if settings is not None and settings.api == "v2":
            target = V2Target(client, name_prefix=resolved.name_prefix,
                              workspace_id=settings.workspace_id)  # fmt: skip
        result = await stop_ledger(
            server.ledger, action=resolved.action, lister=client, target=target,
            limiter=AdaptiveRateLimiter(server.rate), keys=resolved.keys, yes=resolved.yes,
        )  # fmt: skip
        tg.cancel_scope.cancel()
    return result




# --- what is shown -------------------------------------------------------------------------------


def render_result(result: StopResult, out: Console, err: Console) -> None:
    """A dry run's table of what would be done (stdout); after --yes, what was done (stderr)."""
    from rich.table import Table
    from rich.text import Text

    plan, outcome = result.plan, result.outcome
    past = "stopped" if plan.action == "stop" else "deleted"
    id_column = "training_job_id" if plan.api == "v2" else "version_id"
    if outcome is None:
        table = Table(title=f"would be {past} ({len(plan.todo)})", title_justify="left")
        for column in ("key", id_column, "phase" if plan.api == "v2" else "status"):
            table.add_column(column)
        for c in plan.todo:
            table.add_row(Text(c.key), str(c.version_id), Text(c.label()))
        out.print(table)
    elif outcome.refused:
        table = Table(title=f"not {past} ({len(outcome.refused)})", title_justify="left")
        for column in ("key", id_column, "why"):
            table.add_column(column)
        for c, why in outcome.refused:  # Text, not markup: messages come from the server
            table.add_row(Text(c.key), str(c.version_id), Text(why, overflow="fold"))
        err.print(table)
    err.print(Text(summary_line(result)))


def summary_line(result: StopResult) -> str:
    """One sentence of what was (or would be) done and what was left alone, and why."""
    plan, outcome = result.plan, result.outcome
    past = "stopped" if plan.action == "stop" else "deleted"
    n = _n if plan.api == "v1" else _jobs
    if outcome is None:
        head = f"dry run: {n(len(plan.todo))} would be {past}; pass --yes to {plan.action} them"
    elif not plan.todo:
        head = f"nothing left to {plan.action}"
    else:
        head = f"{n(len(outcome.done))} {past}"
        if outcome.ended:
            head += (
                f", {len(outcome.ended)} could not be terminated any more (ModelArts.2796: "
                "ended, or terminating already)"
            )
        if outcome.gone:
            head += f", {len(outcome.gone)} were gone already (ModelArts.2775)"
        if outcome.refused:
            head += f", {len(outcome.refused)} refused (run it again to retry them)"
    parts = [head]
    if plan.ended:
        parts.append(f"{len(plan.ended)} had ended already (left alone)")
    if plan.gone:
        parts.append(
            f"{len(plan.gone)} not listed (gone already, or too new: run it again in a minute)"
        )
    if plan.unaddressable:
        parts.append(f"{len(plan.unaddressable)} not listed in any of the ledger's jobs: "
                     f"{_keys(plan.unaddressable)}")  # fmt: skip
    if plan.done_before:
        parts.append(f"{plan.done_before} recorded stopped or deleted before (skipped)")
    if plan.pending:
        parts.append(f"{plan.pending} points have an unknown outcome, so no known version: "
                     "run the sweep again to reconcile them, then this again")  # fmt: skip
    return "; ".join(parts)


def _n(count: int) -> str:
    return "1 version" if count == 1 else f"{count} versions"


def _jobs(count: int) -> str:
    return "1 training job" if count == 1 else f"{count} training jobs"


def _keys(candidates: tuple[Candidate, ...]) -> str:
    shown = ", ".join(c.key for c in candidates[:5])
    return shown + (f" and {len(candidates) - 5} more" if len(candidates) > 5 else "")

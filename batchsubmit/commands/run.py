"""``batchsubmit run``: send a sweep, exactly once, resumable.

Registering the parser imports only the standard library; :func:`run` imports the runner (and
with it aiohttp and pydantic) when the command runs, and rich once there is something to draw
(after the first request).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any

from batchsubmit import bounds, commands
from batchsubmit.commands import ExitCode
from batchsubmit.request import RunRequest

if TYPE_CHECKING:  # imported when the command runs: registering the parser stays light
    from rich.console import Console

    from batchsubmit.auth import Credentials
    from batchsubmit.commands.display import ProgressView
    from batchsubmit.engine import EngineStats
    from batchsubmit.runner import RunOutcome, Session, Start, SweepRun
    from batchsubmit.summary import Summary
    from batchsubmit.watch import WatchResult

DESCRIPTION = """\
Create one training-job version per point of SPEC (target.api v2: one training job per point,
named by its metadata.name), concurrently, within a requests-per-second rate, recording every
step in an append-only ledger (JSON Lines).

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
credential error (nothing sent), 3 the service could not be reached (nothing sent), 130
interrupted (re-run to resume)
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
    target.add_argument("--job-id", metavar="N", type=bounds.JOB_ID.parser(),
                        help="the training job to version")
    sub = parser.add_argument_group("submission (override the spec's `submit`)")
    sub.add_argument("--rate", metavar="R", type=bounds.RATE.parser(),
                     help="ceiling in requests/s; lowered automatically on throttling (default 5)")
    sub.add_argument("--concurrency", metavar="N", type=bounds.CONCURRENCY.parser(),
                     help="requests in flight at once (default 8, at most 1000)")
    sub.add_argument("--max-attempts", metavar="N", type=bounds.MAX_ATTEMPTS.parser(),
                     help="attempts per point in this run (default 6)")
    sub.add_argument("--timeout", metavar="SECONDS", type=bounds.TIMEOUT.parser(), default=30.0,
                     help="read timeout per request; past it the outcome is unknown and the "
                          "point is reconciled before any retry (default 30)")
    sub.add_argument("--settle", metavar="SECONDS", type=bounds.SETTLE.parser(), default=2.0,
                     help="how long the version list may lag creation (default 2)")
    sub.add_argument("--retry-failed", action="store_true",
                     help="re-send points that failed in an earlier run")
    sub.add_argument("--watch", action="store_true",
                     help="after submitting, follow the created versions until each one ends "
                          "(as `batchsubmit watch`); the exit code then says how they ended")
    sub.add_argument("--watch-interval", metavar="SECONDS", type=bounds.INTERVAL.parser(),
                     default=10.0,
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
    _start_up_gc.pause()
    try:
        return _run(args)
    finally:
        _start_up_gc.end()


class _StartUpGC:
    """The garbage collector, paused while ``run`` imports what it needs before sending.

    Those imports (aiohttp, pydantic and the models it builds, the sweep's schema, PyYAML)
    allocate ~100,000 objects and free almost none: collecting while they are made costs
    ~0.08 s of a 2-core machine and collects nothing. :meth:`resume` then freezes them
    (``gc.freeze``: collections skip them; else the first ones after resuming would go through
    them all, ~0.04 s) and collects as usual (a sweep's points are many); :meth:`end` unfreezes
    them for an in-process caller. Nothing happens when the caller paused the collector."""

    def __init__(self) -> None:
        self._paused = self._frozen = False

    def pause(self) -> None:
        if gc.isenabled():
            gc.disable()
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            gc.freeze()
            self._paused, self._frozen = False, True
            gc.enable()

    def end(self) -> None:
        if self._paused:  # stopped before its imports were done
            self._paused = False
            gc.enable()
        if self._frozen:
            self._frozen = False
            gc.unfreeze()


_start_up_gc = _StartUpGC()


def _run(args: argparse.Namespace) -> int:
    import anyio

    from batchsubmit.commands.tls import ca_store_deferred, load_deferred_ca_store
    from batchsubmit.logs import logging_for_command

    with ca_store_deferred():  # its SSL contexts load their CA store if the run needs TLS
        import aiohttp  # noqa: F401

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
        return ExitCode.INTERRUPTED
    finally:
        if not commands.PROCESS_ENDS_WITH_COMMAND:
            load_deferred_ca_store()  # aiohttp's contexts whole again, for an in-process caller
    if result.message:
        print(f"batchsubmit: {result.message}", file=sys.stderr)
    return result.exit_code


@dataclass(frozen=True, kw_only=True)
class RunOptions(RunRequest):
    """What the command line asked for: the run's request, the spec's path and what a terminal
    shows (None means "the spec's value, else the default")."""

    spec: Path
    quiet: bool = False
    watch: bool = False  # then follow the created versions until each one ends
    watch_interval: float = 10.0


@dataclass(frozen=True)
class RunResult:
    """How the command ends: its exit code, the ledger's summary, and a last word."""

    exit_code: ExitCode
    summary: Summary | None
    message: str | None = None


async def run_sweep(
    options: RunOptions,
    *,
    env: Mapping[str, str] | None = None,
    console: Console | None = None,
    credentials: Credentials | None = None,
) -> RunResult:
    """``batchsubmit run``: the core's run (``runner.SweepRun``) with what a terminal needs
    around it: Ctrl-C and SIGTERM handling, the progress bar, the summary, ``--watch``, and the
    verdict as an exit code."""
    import anyio

    from batchsubmit.commands.tls import load_deferred_ca_store, may_use_tls
    from batchsubmit.errors import AuthError
    from batchsubmit.ledger import read_ledger
    from batchsubmit.runner import SweepRun
    from batchsubmit.sweep import load_spec

    terminal = _terminal(console)
    progress = None if options.quiet else _Progress(terminal)
    watched: list[WatchResult] = []
    spec = load_spec(options.spec)
    _start_up_gc.resume()  # the imports are done (PyYAML's with the spec); now the points
    sweep_run = SweepRun(
        spec, options, env=os.environ if env is None else env,
        credentials=credentials, on_progress=progress.update if progress else None,
        on_start=lambda start: _warn_drift(start, sweep_run.plan.ledger, terminal),
    )
    if may_use_tls(sweep_run.plan.settings.endpoint):
        load_deferred_ca_store()  # before the first connection (see commands/tls.py)
    after = partial(_watch, options, terminal, watched) if options.watch else None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_on_signals, sweep_run)
        try:
            with progress or contextlib.nullcontext():
                outcome = await sweep_run.execute(after)
        except AuthError as exc:  # refused at the start-of-run listing: nothing was sent
            return RunResult(ExitCode.USAGE, None, f"run stopped: {exc}\n  {exc.hint}")
        finally:
            tg.cancel_scope.cancel()
    from batchsubmit.summary import summarize

    summary = summarize(read_ledger(sweep_run.plan.ledger, slim=True))
    if not options.quiet:
        from batchsubmit.commands.display import render_summary

        render_summary(summary, terminal())
    verdict = _verdict(outcome, summary)
    if watched and verdict.exit_code == ExitCode.OK:
        result = watched[0]
        return RunResult(ExitCode.OK if result.ok else ExitCode.FAILED, summary, result.message)
    return verdict


def _terminal(console: Console | None) -> Callable[[], Console]:
    """``console``, else one on stderr made when first asked for (rich is imported then)."""

    @functools.cache
    def terminal() -> Console:
        if console is not None:
            return console
        from rich.console import Console

        return Console(stderr=True)

    return terminal


class _Progress:
    """The run's progress view, made at the first stats snapshot (the start listing answered),
    so rich is imported after the first request; shown until the block ends. Quiet, a run has
    none: nothing is drawn before it ends (rich is imported for a drift warning or the watch)."""

    def __init__(self, terminal: Callable[[], Console]) -> None:
        self._terminal = terminal
        self._started = monotonic()
        self._view: ProgressView | None = None
        self._shown = contextlib.ExitStack()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._shown.__exit__(*exc_info)

    def update(self, stats: EngineStats) -> None:
        if self._view is None:
            from batchsubmit.commands.display import ProgressView

            self._view = ProgressView(self._terminal(), started=self._started)
            self._shown.enter_context(self._view.shown())
        self._view.update(stats)


def _warn_drift(start: Start, ledger: Path, terminal: Callable[[], Console]) -> None:
    if start.drift is not None:
        added, removed = start.drift
        terminal().print(
            f"[yellow]the spec changed since {ledger} was written: {added} points "
            f"added, {removed} removed; going on with the current spec[/]"
        )


async def _watch(
    options: RunOptions, terminal: Callable[[], Console], box: list[WatchResult],
    session: Session, outcome: RunOutcome,
) -> None:
    """``--watch``: follow the versions through the run's own client, limiter and ledger."""
    from batchsubmit.commands.display import BoardView
    from batchsubmit.watch import watch_ledger

    view = BoardView(None if options.quiet else terminal(), sweep=session.plan.spec.name)
    with view.shown():
        box.append(await watch_ledger(
            outcome.ledger, client=session.client, job_ids=outcome.settings.job_ids,
            limiter=session.limiter, interval=options.watch_interval, on_round=view.update,
            writer=session.ledger,
        ))


def _verdict(outcome: RunOutcome | None, summary: Summary) -> RunResult:
    from batchsubmit.errors import AuthError

    if outcome is None:
        return RunResult(ExitCode.INTERRUPTED, summary, INTERRUPTED)
    if outcome.abort_error is not None:
        error = outcome.abort_error
        hint = f"\n  {error.hint}" if isinstance(error, AuthError) else ""
        return RunResult(ExitCode.USAGE, summary, f"run stopped: {error}{hint}")
    if outcome.interrupted:
        return RunResult(ExitCode.INTERRUPTED, summary, INTERRUPTED)
    if outcome.halt_reason:
        return RunResult(ExitCode.FAILED, summary, outcome.halt_reason)
    if summary.failed or summary.pending or summary.not_started:
        return RunResult(ExitCode.FAILED, summary, None)
    return RunResult(ExitCode.OK, summary, None)


INTERRUPTED = "interrupted: re-run the same command to resume"


async def _on_signals(sweep_run: SweepRun) -> None:
    """First Ctrl-C or SIGTERM: stop taking points, requests in flight get the grace. A second
    one: exit now (every line written so far is durable)."""
    import anyio
    import structlog

    log = structlog.get_logger("batchsubmit.run")
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if sweep_run.interrupted:
                os._exit(ExitCode.INTERRUPTED)
            sweep_run.interrupt()
            log.warning("batchsubmit.run.interrupted", grace_s=sweep_run.plan.request.grace)

"""One run of a sweep, from spec file to summary: the I/O shell around the engine.

Order matters, and each step can stop the run before anything is sent: load and preflight the
whole spec, resolve the target and credentials, read the ledger, then reconcile with the server
(one listing) before the first create.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from time import monotonic

import anyio
import structlog
from rich.console import Console

from batchsubmit import ledger as records
from batchsubmit.auth import Credentials, NoCredentials, credentials_from_env
from batchsubmit.client import MAX_PER_PAGE, ModelArtsClient
from batchsubmit.engine import Engine, EngineStats
from batchsubmit.errors import AuthError, BatchSubmitError, ThrottledError, UsageError
from batchsubmit.ledger import LedgerState, LedgerWriter, read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.models import Version
from batchsubmit.progress import watch_progress
from batchsubmit.reconcile import Reconciler
from batchsubmit.retry import Backoff
from batchsubmit.summary import Summary, render_summary, summarize
from batchsubmit.sweep import Point, SweepSpec, iter_points, load_spec, preflight

__all__ = ["RunOptions", "RunResult", "run_sweep"]

log = structlog.get_logger("batchsubmit.run")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_RATE = 5.0
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class RunOptions:
    """What the command line asked for; None means "the spec's value, else the default"."""

    spec: Path
    endpoint: str | None = None
    project_id: str | None = None
    job_id: int | None = None
    ledger: Path | None = None
    rate: float | None = None
    concurrency: int | None = None
    max_attempts: int | None = None
    timeout: float = 30.0
    connect_timeout: float = 5.0
    retry_failed: bool = False
    settle: float = 2.0
    grace: float = 10.0  # Ctrl-C: how long requests in flight may take to finish
    quiet: bool = False


@dataclass(frozen=True)
class Settings:
    """The resolved settings of a run, as written to the ledger (no secrets here)."""

    endpoint: str
    project_id: str
    job_id: int
    rate: float
    concurrency: int
    max_attempts: int
    timeout: float
    retry_failed: bool
    settle: float


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    summary: Summary | None
    message: str | None = None


def resolve(spec: SweepSpec, options: RunOptions, env: Mapping[str, str]) -> Settings:
    """Flags override the spec's ``target``/``submit``; the spec overrides the defaults."""
    endpoint = options.endpoint or spec.target.endpoint
    project_id = (
        options.project_id or spec.target.project_id or env.get("HUAWEICLOUD_SDK_PROJECT_ID")
    )
    job_id = options.job_id or spec.target.job_id
    if not project_id:
        raise UsageError(
            "no project id: set target.project_id in the spec, pass --project-id, "
            "or set HUAWEICLOUD_SDK_PROJECT_ID"
        )
    if not job_id:
        raise UsageError("no training job: set target.job_id in the spec, or pass --job-id")
    rate = options.rate or spec.submit.rate or DEFAULT_RATE
    concurrency = options.concurrency or spec.submit.concurrency or DEFAULT_CONCURRENCY
    attempts = options.max_attempts or spec.submit.max_attempts or DEFAULT_MAX_ATTEMPTS
    for name, value in (("--rate", rate), ("--concurrency", concurrency),
                        ("--max-attempts", attempts), ("--timeout", options.timeout)):
        if value <= 0:
            raise UsageError(f"{name} must be positive, got {value}")
    return Settings(
        endpoint=endpoint, project_id=project_id, job_id=job_id, rate=rate,
        concurrency=concurrency, max_attempts=attempts, timeout=options.timeout,
        retry_failed=options.retry_failed, settle=options.settle,
    )


def default_ledger(spec: SweepSpec) -> Path:
    return Path(f"{spec.name}.ledger.jsonl")


def work_items(
    spec: SweepSpec, state: LedgerState, *, retry_failed: bool, skipped: list[int]
) -> Iterator[tuple[Point, int]]:
    """The points this run must send, with their attempts so far; counts the others."""
    for point in iter_points(spec, validate=False):  # preflight validated every body already
        outcome = state.outcomes.get(point.key)
        if point.key not in state.pending and outcome is not None and (
            outcome["event"] == "succeeded" or not retry_failed
        ):
            skipped[0] += 1
            continue
        yield point, state.attempts.get(point.key, 0)


def spec_drift(spec: SweepSpec, state: LedgerState) -> tuple[int, int]:
    """(added, removed): points of the spec the ledger never saw, and ledger points it lost."""
    keys = {point.key for point in iter_points(spec, validate=False)}
    known = state.outcomes.keys() | state.pending.keys()
    return len(keys - known), len(known - keys)


def _pending_age(state: LedgerState, now: datetime) -> float | None:
    """Seconds since the newest intent without an outcome was written (None: there is none)."""
    newest = max((r["ts"] for r in state.pending.values()), default=None)
    if newest is None:
        return None
    written = datetime.fromisoformat(newest.replace("Z", "+00:00"))
    return max(0.0, (now - written).total_seconds())


@contextlib.asynccontextmanager
async def _endpoint(
    settings: Settings, spec: SweepSpec, ledger_path: Path, env: Mapping[str, str]
) -> AsyncIterator[tuple[str, Credentials]]:
    """The base URL and credentials: the embedded emulator, or the real service."""
    if settings.endpoint != "emulator":
        yield settings.endpoint, credentials_from_env(env, project_id=settings.project_id)
        return
    from batchsubmit.emulator import EmulatorConfig, run_emulator

    first = next(iter_points(spec, validate=False), None)
    base_version = first.body["config"]["pre_version_id"] if first else 1
    # Its state lives beside the ledger, so a re-run resumes against the same "server".
    config = EmulatorConfig(
        project_id=settings.project_id,
        jobs={settings.job_id: base_version},
        state_file=Path(str(ledger_path) + ".emulator.json"),
    )
    async with run_emulator(config) as emulator:
        log.info("batchsubmit.run.emulator_started", url=emulator.url)
        yield emulator.url, NoCredentials(project_id=settings.project_id)


async def run_sweep(
    options: RunOptions,
    *,
    env: Mapping[str, str] | None = None,
    console: Console | None = None,
    credentials: Credentials | None = None,
) -> RunResult:
    """Run (or resume) a sweep; returns the exit code and the ledger's summary."""
    env = os.environ if env is None else env
    console = console or Console(stderr=True)
    spec = load_spec(options.spec)
    settings = resolve(spec, options, env)
    total = preflight(spec)  # every body valid before anything is sent
    ledger_path = options.ledger or default_ledger(spec)
    state = read_ledger(ledger_path)
    if state.spec_sha256 and state.spec_sha256 != spec.sha256:
        added, removed = spec_drift(spec, state)
        console.print(
            f"[yellow]the spec changed since {ledger_path} was written: {added} points added, "
            f"{removed} removed; going on with the current spec[/]"
        )
    async with contextlib.AsyncExitStack() as stack:
        if credentials is None:
            url, creds = await stack.enter_async_context(
                _endpoint(settings, spec, ledger_path, env)
            )
        else:
            url, creds = settings.endpoint, credentials
        ledger = await stack.enter_async_context(
            LedgerWriter(ledger_path, expected_sweep=spec.name)
        )
        client = await stack.enter_async_context(
            ModelArtsClient(
                url, creds, concurrency=settings.concurrency,
                connect_timeout=options.connect_timeout, read_timeout=settings.timeout,
            )
        )
        await ledger.write(
            records.run_started(
                sweep=spec.name, spec_sha256=spec.sha256, total=total, settings=asdict(settings)
            )
        )
        engine = await _submit(spec, settings, options, state, ledger, client, console, total)
        s = engine.stats
        await ledger.write(
            records.run_finished(
                counts={"succeeded": s.succeeded, "failed": s.failed, "skipped": s.skipped,
                        "reconciled": s.reconciled, "unresolved": s.unresolved,
                        "requests": s.requests, "throttled": s.throttled},
                interrupted=engine.interrupted,
            )
        )
    summary = summarize(read_ledger(ledger_path))
    if not options.quiet:
        render_summary(summary, console)
    return _verdict(engine, summary)


def _verdict(engine: Engine, summary: Summary) -> RunResult:
    if engine.abort_error is not None:
        error = engine.abort_error
        hint = f"\n  {error.hint}" if isinstance(error, AuthError) else ""
        return RunResult(EXIT_USAGE, summary, f"run stopped: {error}{hint}")
    if engine.interrupted:
        return RunResult(
            EXIT_INTERRUPTED, summary, "interrupted: re-run the same command to resume"
        )
    if engine.halt_reason:
        return RunResult(EXIT_FAILED, summary, engine.halt_reason)
    if summary.failed or summary.pending or summary.not_started:
        return RunResult(EXIT_FAILED, summary, None)
    return RunResult(EXIT_OK, summary, None)


async def _submit(
    spec: SweepSpec,
    settings: Settings,
    options: RunOptions,
    state: LedgerState,
    ledger: LedgerWriter,
    client: ModelArtsClient,
    console: Console,
    total: int,
) -> Engine:
    limiter = AdaptiveRateLimiter(settings.rate)

    async def list_all() -> list[Version]:
        versions: list[Version] = []
        page = 1
        while True:
            sent_at = await limiter.acquire()
            try:
                listing = await client.list_versions_page(
                    settings.job_id, page=page, per_page=MAX_PER_PAGE
                )
            except ThrottledError as exc:
                limiter.on_throttled(exc, sent_at=sent_at)
                raise
            limiter.on_success()
            versions.extend(listing.versions)
            if len(listing.versions) < MAX_PER_PAGE:
                return versions
            page += 1

    reconciler = Reconciler(list_all, settle=settings.settle, max_attempts=settings.max_attempts,
                            backoff=Backoff())
    engine = Engine(
        api=client, ledger=ledger, limiter=limiter, reconciler=reconciler,
        job_id=settings.job_id, concurrency=settings.concurrency,
        max_attempts=settings.max_attempts,
    )
    skipped = [0]
    items = work_items(spec, state, retry_failed=settings.retry_failed, skipped=skipped)
    engine.set_total(total)
    # Intents without outcomes may have created versions the list doesn't show yet: wait out
    # the settle interval since the newest of them before the one listing that decides.
    age = _pending_age(state, datetime.now(UTC))
    wait = 0.0 if age is None else max(0.0, settings.settle - age)
    log.info("batchsubmit.run.started", sweep=spec.name, total=total,
             pending=len(state.pending), settled=len(state.outcomes))
    async with anyio.create_task_group() as tg:
        tg.start_soon(_on_signals, engine, options.grace, tg.cancel_scope)
        tg.start_soon(
            lambda: watch_progress(lambda: _with_skipped(engine, skipped), console,
                                   quiet=options.quiet)
        )
        try:
            on_server = await reconciler.listing(not_before=monotonic() + wait)
        except BatchSubmitError as exc:
            engine.abort_error = exc
        else:
            await engine.run(items, on_server=on_server)
        tg.cancel_scope.cancel()
    engine.count_skipped(skipped[0])
    return engine


def _with_skipped(engine: Engine, skipped: list[int]) -> EngineStats:
    stats = engine.stats
    return replace(stats, skipped=stats.skipped + skipped[0])


async def _on_signals(engine: Engine, grace: float, scope: anyio.CancelScope) -> None:
    """First Ctrl-C: stop taking points, give requests in flight ``grace`` s. Second: exit now."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if engine.stopping and engine.interrupted:
                os._exit(EXIT_INTERRUPTED)  # every line written so far is durable
            engine.interrupt()
            log.warning("batchsubmit.run.interrupted", grace_s=grace)
            scope.deadline = min(scope.deadline, anyio.current_time() + grace)

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
from functools import partial
from pathlib import Path
from time import monotonic
from typing import Any

import anyio
import structlog
from rich.console import Console

from batchsubmit import ledger as records
from batchsubmit.auth import ENV_PROJECT_ID, Credentials, NoCredentials, credentials_from_env
from batchsubmit.client import ModelArtsClient
from batchsubmit.engine import Engine, EngineStats, Item
from batchsubmit.errors import AuthError, SpecError, UsageError
from batchsubmit.ledger import LedgerState, LedgerWriter, read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.models import Version
from batchsubmit.progress import watch_progress
from batchsubmit.reconcile import Listing, Reconciler
from batchsubmit.retry import Backoff
from batchsubmit.summary import Summary, render_summary, summarize
from batchsubmit.sweep import (
    Point,
    SweepSpec,
    bind,
    count_points,
    iter_points,
    load_spec,
    preflight,
    rebase,
)
from batchsubmit.sweep.expand import MAX_POINTS
from batchsubmit.sweep.schema import MAX_CONCURRENCY
from batchsubmit.watch import WatchResult, watch_ledger

__all__ = ["RunOptions", "RunResult", "run_sweep"]

log = structlog.get_logger("batchsubmit.run")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_RATE = 5.0
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 6
MIN_RATE = 0.01  # one request every 100 s; below that a run never ends in practice


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
    watch: bool = False  # then follow the created versions until each one ends
    watch_interval: float = 10.0


@dataclass(frozen=True)
class Settings:
    """The resolved settings of a run, as written to the ledger (no secrets here)."""

    endpoint: str
    project_id: str
    job_id: int  # the first of job_ids (scripts reading one job's ledger rely on it)
    job_ids: tuple[int, ...]
    rate: float
    concurrency: int
    max_attempts: int
    timeout: float
    retry_failed: bool
    settle: float
    bases: dict[int, int] | None = None  # job -> version its base came from (from_version)


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    summary: Summary | None
    message: str | None = None


@dataclass(frozen=True)
class JobSweep:
    """The sweep bound to one job: its own base, and a key prefix when there are many jobs."""

    job_id: int
    spec: SweepSpec
    prefix: str
    total: int

    def points(self) -> Iterator[Point]:
        for point in iter_points(self.spec, validate=False):  # preflight validated them all
            yield replace(point, key=self.prefix + point.key) if self.prefix else point


def project_id_for(spec: SweepSpec, flag: str | None, env: Mapping[str, str]) -> str:
    """``--project-id``, else the spec's ``target.project_id``, else the environment's."""
    project_id = flag or spec.target.project_id or env.get(ENV_PROJECT_ID)
    if not project_id:
        raise UsageError(
            "no project id: set target.project_id in the spec, pass --project-id, "
            f"or set {ENV_PROJECT_ID}"
        )
    return project_id


def resolve(spec: SweepSpec, options: RunOptions, env: Mapping[str, str]) -> Settings:
    """Flags override the spec's ``target``/``submit``; the spec overrides the defaults."""
    endpoint = options.endpoint or spec.target.endpoint
    project_id = project_id_for(spec, options.project_id, env)
    job_ids = (options.job_id,) if options.job_id else tuple(spec.target.job_ids)
    if not job_ids:
        raise UsageError(
            "no training job: set target.job_id (or target.job_ids) in the spec, "
            "or pass --job-id"
        )
    rate = options.rate or spec.submit.rate or DEFAULT_RATE
    concurrency = options.concurrency or spec.submit.concurrency or DEFAULT_CONCURRENCY
    attempts = options.max_attempts or spec.submit.max_attempts or DEFAULT_MAX_ATTEMPTS
    for name, value, least in (("--rate", rate, MIN_RATE), ("--concurrency", concurrency, 1),
                               ("--max-attempts", attempts, 1),
                               ("--timeout", options.timeout, 0.001)):
        if value < least:
            raise UsageError(f"{name} must be at least {least}, got {value}")
    if concurrency > MAX_CONCURRENCY:
        raise UsageError(
            f"--concurrency must be at most {MAX_CONCURRENCY:,}, got {concurrency:,}: the engine "
            "keeps a few points open per request slot, and no job takes that many at once"
        )
    return Settings(
        endpoint=endpoint, project_id=project_id, job_id=job_ids[0], job_ids=job_ids,
        rate=rate, concurrency=concurrency, max_attempts=attempts, timeout=options.timeout,
        retry_failed=options.retry_failed, settle=options.settle,
    )


def default_ledger(spec: SweepSpec) -> Path:
    return Path(f"{spec.name}.ledger.jsonl")


def bind_jobs(spec: SweepSpec, job_ids: tuple[int, ...]) -> list[JobSweep]:
    """The spec bound to each job and preflighted (no base from the server needed)."""
    return [_job(bind(spec, job), job, len(job_ids)) for job in job_ids]


def _job(bound: SweepSpec, job_id: int, jobs: int) -> JobSweep:
    points = count_points(bound)
    if points > MAX_POINTS:  # a grid may be bigger than anything worth sending
        raise SpecError(
            f"the sweep has {points:,} points, more than the {MAX_POINTS:,} a run may send: "
            "split it, or narrow the grid", path=str(bound.path),
        )
    total = preflight(bound)  # every body valid before anything is sent
    return JobSweep(job_id, bound, f"{job_id}:" if jobs > 1 else "", total)


def work_items(
    jobs: list[JobSweep], state: LedgerState, *, retry_failed: bool, skipped: list[int]
) -> Iterator[Item]:
    """The points this run must send, with their attempts so far; counts the others."""
    for job in jobs:
        for point in job.points():
            outcome = state.outcomes.get(point.key)
            if point.key not in state.pending and outcome is not None and (
                outcome["event"] == "succeeded" or not retry_failed
            ):
                skipped[0] += 1
                continue
            yield job.job_id, point, state.attempts.get(point.key, 0)


def spec_drift(jobs: list[JobSweep], state: LedgerState) -> tuple[int, int]:
    """(added, removed): points of the spec the ledger never saw, and ledger points it lost."""
    keys = {point.key for job in jobs for point in job.points()}
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

    first = next(iter_points(bind(spec, settings.job_id), validate=False), None)
    base_version = first.body["config"].get("pre_version_id", 1) if first else 1
    # Its state lives beside the ledger, so a re-run resumes against the same "server".
    config = EmulatorConfig(
        project_id=settings.project_id,
        jobs={job: base_version + n for n, job in enumerate(settings.job_ids)},
        state_file=Path(str(ledger_path) + ".emulator.json"),
    )
    async with run_emulator(config) as emulator:
        log.info("batchsubmit.run.emulator_started", url=emulator.url)
        yield emulator.url, NoCredentials(project_id=settings.project_id)


async def rebase_jobs(
    spec: SweepSpec, settings: Settings, client: ModelArtsClient,
    listings: Mapping[int, Listing],
    earlier: Mapping[int, int] | None,
) -> tuple[list[JobSweep], dict[int, int]]:
    """Each job's sweep on top of its ``from_version`` (resolved once: a resume reuses it)."""
    jobs: list[JobSweep] = []
    bases: dict[int, int] = {}
    for job_id in settings.job_ids:
        if earlier and job_id in earlier:
            version_id = earlier[job_id]
        else:
            version_id = _base_id(spec, job_id, listings[job_id])
        bases[job_id] = version_id
        detail = await client.get_version(job_id, version_id)
        jobs.append(
            _job(rebase(spec, job_id, detail.model_dump()), job_id, len(settings.job_ids))
        )
    return jobs, bases


def _base_id(spec: SweepSpec, job_id: int, listing: Listing | None) -> int:
    """The version ``base.from_version`` names for this job (``latest``: the newest listed)."""
    if spec.from_version == "latest":
        latest = listing.latest_version_id if listing is not None else None
        if latest is None:
            raise UsageError(f"job {job_id} has no version to take as `latest`")
        return latest
    return int(spec.from_version)  # type: ignore[arg-type]


async def fetch_base(
    spec: SweepSpec, job_id: int, *, endpoint: str, credentials: Credentials, rate: float
) -> dict[str, Any]:
    """The version detail a run would build this job's versions on: reads only, within
    ``rate`` (what ``expand --endpoint`` shows)."""
    limiter = AdaptiveRateLimiter(rate)
    async with ModelArtsClient(endpoint, credentials, read_limiter=limiter) as client:
        listing = None
        if spec.from_version == "latest":
            listing = Listing.build(monotonic(), await _all_versions(client, job_id))
        detail = await client.get_version(job_id, _base_id(spec, job_id, listing))
    return detail.model_dump()


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
    jobs = [] if spec.from_version is not None else bind_jobs(spec, settings.job_ids)
    ledger_path = options.ledger or default_ledger(spec)
    engine, watched = await _run(
        spec, settings, jobs, options, ledger_path, env, console, credentials
    )
    summary = summarize(read_ledger(ledger_path, slim=True))
    if not options.quiet:
        render_summary(summary, console)
    verdict = _verdict(engine, summary)
    if watched is not None and verdict.exit_code == EXIT_OK:
        return RunResult(watched.exit_code, summary, watched.message)
    return verdict


async def _run(
    spec: SweepSpec, settings: Settings, jobs: list[JobSweep], options: RunOptions,
    ledger_path: Path, env: Mapping[str, str], console: Console,
    credentials: Credentials | None,
) -> tuple[Engine, WatchResult | None]:
    state = read_ledger(ledger_path, slim=True)
    async with contextlib.AsyncExitStack() as stack:
        # Opened first: a ledger that is another sweep's, or cannot be written, stops the run
        # before any request (the writer checks the sweep and takes the file lock).
        ledger = await stack.enter_async_context(
            LedgerWriter(ledger_path, expected_sweep=spec.name)
        )
        if credentials is None:
            url, creds = await stack.enter_async_context(
                _endpoint(settings, spec, ledger_path, env)
            )
        else:
            url, creds = settings.endpoint, credentials
        limiter = AdaptiveRateLimiter(settings.rate)  # one rate for every request of the run
        client = await stack.enter_async_context(
            ModelArtsClient(
                url, creds, concurrency=settings.concurrency, read_limiter=limiter,
                connect_timeout=options.connect_timeout, read_timeout=settings.timeout,
            )
        )
        reconcilers = {
            job: Reconciler(partial(_all_versions, client, job), settle=settings.settle,
                            max_attempts=settings.max_attempts, backoff=Backoff())
            for job in settings.job_ids
        }
        engine = Engine(
            api=client, ledger=_NoLedger(), limiter=limiter, reconcilers=reconcilers,
            concurrency=settings.concurrency, max_attempts=settings.max_attempts,
        )
        # Intents without outcomes may have created versions the list doesn't show yet: wait
        # out the settle interval since the newest of them before the listing that decides.
        age = _pending_age(state, datetime.now(UTC))
        not_before = monotonic() + (0.0 if age is None else max(0.0, settings.settle - age))
        try:
            listings = {
                job: await reconciler.listing(not_before=not_before)
                for job, reconciler in reconcilers.items()
            }
            if spec.from_version is not None:
                earlier = state.runs[-1]["settings"].get("bases") if state.runs else None
                earlier = {int(k): v for k, v in earlier.items()} if earlier else None
                jobs, bases = await rebase_jobs(spec, settings, client, listings, earlier)
                settings = replace(settings, bases=bases)
        except AuthError as exc:
            engine.abort_error = exc
            return engine, None
        total = sum(job.total for job in jobs)
        if state.spec_sha256 and state.spec_sha256 != spec.sha256:
            added, removed = spec_drift(jobs, state)
            console.print(
                f"[yellow]the spec changed since {ledger_path} was written: {added} points "
                f"added, {removed} removed; going on with the current spec[/]"
            )
        engine.use_ledger(ledger)
        await ledger.write(
            records.run_started(
                sweep=spec.name, spec_sha256=spec.sha256, total=total, settings=asdict(settings)
            )
        )
        skipped = [0]
        items = work_items(jobs, state, retry_failed=settings.retry_failed, skipped=skipped)
        del state  # the fold of a big ledger is large: keep only what the items need
        engine.set_total(total)
        log.info("batchsubmit.run.started", sweep=spec.name, total=total,
                 jobs=len(settings.job_ids))
        async with anyio.create_task_group() as tg:
            tg.start_soon(_on_signals, engine, options.grace, tg.cancel_scope)
            tg.start_soon(
                lambda: watch_progress(lambda: _with_skipped(engine, skipped), console,
                                       quiet=options.quiet)
            )
            await engine.run(items, on_server=listings)
            tg.cancel_scope.cancel()
        engine.count_skipped(skipped[0])
        s = engine.stats
        await ledger.write(
            records.run_finished(
                counts={"succeeded": s.succeeded, "failed": s.failed, "skipped": s.skipped,
                        "reconciled": s.reconciled, "unresolved": s.unresolved,
                        "requests": s.requests, "throttled": s.throttled},
                interrupted=engine.interrupted,
            )
        )
        watched = None
        if options.watch and not (engine.stopping or engine.abort_error):
            watched = await watch_ledger(
                ledger_path, client=client, job_ids=settings.job_ids, limiter=limiter,
                interval=options.watch_interval, console=None if options.quiet else console,
                writer=ledger,
            )
    return engine, watched


async def _all_versions(client: ModelArtsClient, job_id: int) -> list[Version]:
    return [version async for version in client.list_versions(job_id)]


class _NoLedger:
    """Stands in until the ledger is open; nothing may be submitted before that."""

    async def write(self, record: dict[str, Any]) -> None:
        raise RuntimeError("the ledger is not open yet")


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

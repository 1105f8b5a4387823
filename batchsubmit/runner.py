"""One run of a sweep, in named phases; the core that the command line and the Python API share.

Each phase is a function, and each can stop the run before anything is sent::

    plan_run(spec, request, env)      -> RunPlan     settings resolved, every point preflighted
    open_run(plan, env, credentials)  -> Session     the ledger (locked), the endpoint (or the
                                                     embedded emulator), client, limiter and
                                                     reconcilers; nothing sent yet
    reconcile_start(session)          -> Start       one listing per job, begun a settle interval
                                                     after the newest pending intent; bases of a
                                                     from_version spec fetched and rebased
    submit_points(session, start)     -> RunOutcome  the engine between run_started and
                                                     run_finished

:class:`SweepRun` strings them together and can be interrupted (Ctrl-C, a cancelled task): no
new point is taken, requests in flight get ``grace`` seconds, and every outcome is written. The
core returns data: no terminal output, no signal handlers, no exit codes (``commands/run.py``
and ``api.py`` do those).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from time import monotonic
from typing import Any

import anyio

from batchsubmit import bounds
from batchsubmit import ledger as records
from batchsubmit.auth import ENV_PROJECT_ID, Credentials, NoCredentials, credentials_for
from batchsubmit.client import ModelArtsClient
from batchsubmit.engine import Engine, EngineStats, Item
from batchsubmit.errors import BatchSubmitError, UsageError
from batchsubmit.events import get_logger
from batchsubmit.ledger import LedgerState, LedgerWriter, read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.reconcile import Reconciler
from batchsubmit.request import RunRequest
from batchsubmit.retry import Backoff
from batchsubmit.sweep import (
    Point,
    SweepSpec,
    bind,
    iter_points,
    preflight,
    rebase,
)
from batchsubmit.sweep.expand import sendable_points
from batchsubmit.sweep.v2body import V2Body
from batchsubmit.target import PointListing, Target
from batchsubmit.v1 import V1Target

__all__ = [
    "RunOutcome",
    "RunPlan",
    "RunRequest",
    "Session",
    "Settings",
    "Start",
    "SweepRun",
    "open_run",
    "plan_run",
    "reconcile_start",
    "submit_points",
]

log = get_logger("batchsubmit.run")

DEFAULT_RATE = 5.0
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 6
ProgressCallback = Callable[[EngineStats], None]


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
    api: str = "v1"  # "v2": a training job per point; job_id 0 and no job_ids then
    workspace_id: str | None = None  # v2: the workspace the jobs are created in

    @property
    def scopes(self) -> tuple[int, ...]:
        """What the engine keys listings by: the v1 jobs, or 0 for v2's one project."""
        return self.job_ids or (0,)


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


@dataclass(frozen=True)
class RunPlan:
    """Phase 1: the run decided, every point checked; ``jobs`` is empty for a from_version
    spec until its bases are fetched (phase 3)."""

    spec: SweepSpec
    request: RunRequest
    settings: Settings
    jobs: tuple[JobSweep, ...]
    ledger: Path


@dataclass
class Session:
    """Phase 2: what a run holds open. ``state`` is the ledger as it was before this run."""

    plan: RunPlan
    state: LedgerState
    ledger: LedgerWriter
    client: ModelArtsClient
    target: Target
    limiter: AdaptiveRateLimiter
    reconcilers: dict[int, Reconciler]


@dataclass(frozen=True)
class Start:
    """Phase 3: each job's listing at the start of the run, and the jobs and settings it runs."""

    jobs: tuple[JobSweep, ...]
    settings: Settings
    listings: dict[int, PointListing]
    drift: tuple[int, int] | None = None  # (added, removed) when the spec changed since


@dataclass(frozen=True)
class RunOutcome:
    """Phase 4's result: how the run ended, as data."""

    ledger: Path
    settings: Settings
    stats: EngineStats
    abort_error: BatchSubmitError | None = None  # credentials refused, ledger unwritable, ...
    halt_reason: str | None = None  # the failure-rate guard stopped the run
    interrupted: bool = False
    drift: tuple[int, int] | None = None
    jobs: tuple[JobSweep, ...] = ()  # what the run covered (rebased, for a from_version spec)


def project_id_for(spec: SweepSpec, flag: str | None, env: Mapping[str, str]) -> str:
    """``--project-id``, else the spec's ``target.project_id``, else the environment's."""
    project_id = flag or spec.target.project_id or env.get(ENV_PROJECT_ID)
    if not project_id:
        raise UsageError(
            "no project id: set target.project_id in the spec, pass --project-id, "
            f"or set {ENV_PROJECT_ID}"
        )
    return project_id


def resolve(spec: SweepSpec, options: RunRequest, env: Mapping[str, str]) -> Settings:
    """Flags override the spec's ``target``/``submit``; the spec overrides the defaults."""
    endpoint = options.endpoint or spec.target.endpoint
    project_id = project_id_for(spec, options.project_id, env)
    api = spec.target.api
    if options.job_id is not None:
        bounds.JOB_ID.check(options.job_id)
        if api == "v2":
            raise UsageError(
                "--job-id names a v1 training job, but this spec is api: v2 (a training job "
                "per point, in no existing job): drop --job-id"
            )
    job_ids = (options.job_id,) if options.job_id is not None else tuple(spec.target.job_ids)
    if not job_ids and api == "v1":
        raise UsageError(
            "no training job: set target.job_id (or target.job_ids) in the spec, "
            "or pass --job-id"
        )
    rate = _first(options.rate, spec.submit.rate, DEFAULT_RATE)
    concurrency = int(_first(options.concurrency, spec.submit.concurrency, DEFAULT_CONCURRENCY))
    attempts = int(_first(options.max_attempts, spec.submit.max_attempts, DEFAULT_MAX_ATTEMPTS))
    for bound, value in (
        (bounds.RATE, rate), (bounds.CONCURRENCY, concurrency), (bounds.MAX_ATTEMPTS, attempts),
        (bounds.TIMEOUT, options.timeout), (bounds.CONNECT_TIMEOUT, options.connect_timeout),
        (bounds.SETTLE, options.settle), (bounds.GRACE, options.grace),
    ):
        bound.check(value)
    return Settings(
        endpoint=endpoint, project_id=project_id, job_id=job_ids[0] if job_ids else 0,
        job_ids=job_ids, rate=rate, concurrency=concurrency, max_attempts=attempts,
        timeout=options.timeout, retry_failed=options.retry_failed, settle=options.settle,
        api=api, workspace_id=spec.target.workspace_id,
    )


def _first(*values: float | None) -> float:
    """The first value given (a flag, else the spec's, else the default): 0 is a value too."""
    return next(v for v in values if v is not None)


def default_ledger(spec: SweepSpec) -> Path:
    return Path(f"{spec.name}.ledger.jsonl")


def bind_jobs(spec: SweepSpec, job_ids: tuple[int, ...]) -> list[JobSweep]:
    """The spec bound to each job and preflighted (no base from the server needed); a v2 spec
    (no job ids) is one sweep of the project."""
    if not job_ids:
        return [_job(spec, 0, 1)]
    return [_job(bind(spec, job), job, len(job_ids)) for job in job_ids]


def _job(bound: SweepSpec, job_id: int, jobs: int) -> JobSweep:
    sendable_points(bound)  # refused before preflight could run for ever
    total = preflight(bound)  # every body valid before anything is sent
    return JobSweep(job_id, bound, f"{job_id}:" if jobs > 1 else "", total)


def work_items(
    jobs: Iterable[JobSweep], state: LedgerState, *, retry_failed: bool, skipped: list[int]
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


def spec_drift(jobs: Iterable[JobSweep], state: LedgerState) -> tuple[int, int]:
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
    plan: RunPlan, env: Mapping[str, str], credentials: Credentials | None
) -> AsyncIterator[tuple[str, Credentials]]:
    """The base URL and credentials: the embedded emulator, or the service (or any URL) with
    the credentials given, else those of the environment."""
    settings = plan.settings
    if settings.endpoint != "emulator":
        if credentials is None:
            credentials = credentials_for(settings.endpoint, env, project_id=settings.project_id)
        yield settings.endpoint, credentials
        return
    from batchsubmit.emulator import EmulatorConfig, run_emulator

    base_version = 1
    if settings.job_ids:
        first = next(iter_points(bind(plan.spec, settings.job_id), validate=False), None)
        base_version = first.body["config"].get("pre_version_id", 1) if first else 1
    # Its state lives beside the ledger, so a re-run resumes against the same "server".
    config = EmulatorConfig(
        project_id=settings.project_id,
        jobs={job: base_version + n for n, job in enumerate(settings.job_ids)},
        state_file=Path(str(plan.ledger) + ".emulator.json"),
    )
    async with run_emulator(config) as emulator:
        log.info("batchsubmit.run.emulator_started", url=emulator.url)
        yield emulator.url, NoCredentials(project_id=settings.project_id)


async def rebase_jobs(
    spec: SweepSpec, settings: Settings, client: ModelArtsClient,
    listings: Mapping[int, PointListing],
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


def _base_id(spec: SweepSpec, job_id: int, listing: PointListing | None) -> int:
    """The version ``base.from_version`` names for this job (``latest``: the newest listed)."""
    if spec.from_version == "latest":
        latest = listing.latest_id if listing is not None else None
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
            listing = await V1Target(client).listing(job_id, monotonic())
        detail = await client.get_version(job_id, _base_id(spec, job_id, listing))
    return detail.model_dump()


# --- phase 1: plan -------------------------------------------------------------------------------


def plan_run(spec: SweepSpec, request: RunRequest, env: Mapping[str, str]) -> RunPlan:
    """The settings resolved and every point checked; SpecError/UsageError if it cannot run."""
    settings = resolve(spec, request, env)
    jobs = () if spec.from_version is not None else tuple(bind_jobs(spec, settings.job_ids))
    return RunPlan(spec, request, settings, jobs, request.ledger or default_ledger(spec))


# --- phase 2: open -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_run(
    plan: RunPlan, env: Mapping[str, str], credentials: Credentials | None = None
) -> AsyncIterator[Session]:
    """The ledger, then the endpoint and the client; all closed when the block ends.

    The ledger is opened first: one that is another sweep's, or cannot be written, stops the run
    before any request (the writer checks the sweep and takes the file lock)."""
    settings, request = plan.settings, plan.request
    state = read_ledger(plan.ledger, slim=True)
    async with contextlib.AsyncExitStack() as stack:
        ledger = await stack.enter_async_context(
            LedgerWriter(plan.ledger, expected_sweep=plan.spec.name, keep_empty=False)
        )
        url, creds = await stack.enter_async_context(_endpoint(plan, env, credentials))
        limiter = AdaptiveRateLimiter(settings.rate)  # one rate for every request of the run
        client = await stack.enter_async_context(
            ModelArtsClient(
                url, creds, concurrency=settings.concurrency, read_limiter=limiter,
                connect_timeout=request.connect_timeout, read_timeout=settings.timeout,
            )
        )
        target = _target(plan, client)
        reconcilers = {
            job: Reconciler(partial(target.listing, job), settle=settings.settle,
                            max_attempts=settings.max_attempts, backoff=Backoff())
            for job in settings.scopes
        }
        yield Session(plan, state, ledger, client, target, limiter, reconcilers)


def _target(plan: RunPlan, client: ModelArtsClient) -> Target:
    """The API the spec names, through ``client``."""
    body = plan.spec.plan.body
    if isinstance(body, V2Body):
        from batchsubmit.v2 import V2Target

        return V2Target(
            client, name_prefix=body.name_prefix, workspace_id=plan.settings.workspace_id
        )
    return V1Target(client)


# --- phase 3: reconcile --------------------------------------------------------------------------


async def reconcile_start(session: Session) -> Start:
    """Each job's listing, and the jobs rebased on their bases when the spec asks for it.

    Intents without outcomes may have created versions the list does not show yet: the listing
    that decides begins a settle interval after the newest of them."""
    plan, state = session.plan, session.state
    settings = plan.settings
    age = _pending_age(state, datetime.now(UTC))
    not_before = monotonic() + (0.0 if age is None else max(0.0, settings.settle - age))
    listings = {
        job: await reconciler.listing(not_before=not_before)
        for job, reconciler in session.reconcilers.items()
    }
    jobs = list(plan.jobs)
    if plan.spec.from_version is not None:
        earlier = state.settings.bases if state.settings is not None else None
        jobs, bases = await rebase_jobs(plan.spec, settings, session.client, listings, earlier)
        settings = replace(settings, bases=bases)
    drift = None
    if state.spec_sha256 and state.spec_sha256 != plan.spec.sha256:
        drift = spec_drift(jobs, state)
    return Start(tuple(jobs), settings, listings, drift)


# --- phase 4: submit -----------------------------------------------------------------------------


async def submit_points(
    session: Session,
    start: Start,
    *,
    on_progress: ProgressCallback | None = None,
    progress_interval: float = 0.5,
    engine_ready: Callable[[Engine], None] | None = None,
    stop_scope: anyio.CancelScope | None = None,
) -> RunOutcome:
    """The engine over every point still to send, between a run_started and a run_finished line.

    ``on_progress`` is called with a frozen stats snapshot every ``progress_interval`` seconds
    and once at the end; ``engine_ready`` hands the engine to whoever may interrupt it, and
    ``stop_scope`` (its deadline: the grace of an interrupt) bounds the engine alone, so the
    run_finished line is written however the sending ended."""
    plan, settings = session.plan, start.settings
    total = sum(job.total for job in start.jobs)
    engine = Engine(
        api=session.target, ledger=session.ledger, limiter=session.limiter,
        reconcilers=session.reconcilers, concurrency=settings.concurrency,
        max_attempts=settings.max_attempts,
    )
    engine.set_total(total)
    if engine_ready is not None:
        engine_ready(engine)
    await session.ledger.write(
        records.run_started(
            sweep=plan.spec.name, spec_sha256=plan.spec.sha256, total=total,
            settings=asdict(settings),
        )
    )
    skipped = [0]
    items = work_items(start.jobs, session.state, retry_failed=settings.retry_failed,
                       skipped=skipped)
    session.state = LedgerState(path=session.state.path)  # a big fold: the items hold what's needed
    log.info("batchsubmit.run.started", sweep=plan.spec.name, total=total, api=settings.api,
             jobs=len(settings.job_ids))

    def stats() -> EngineStats:
        return replace(engine.stats, skipped=engine.stats.skipped + skipped[0])

    try:
        with stop_scope or anyio.CancelScope():
            async with anyio.create_task_group() as tg:
                if on_progress is not None:
                    tg.start_soon(_report_progress, stats, on_progress, progress_interval)
                await engine.run(items, on_server=start.listings)
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):  # written however the run ended
            engine.count_skipped(skipped[0])
            await _finish(session.ledger, engine)
    if on_progress is not None:
        on_progress(engine.stats)
    return RunOutcome(
        ledger=plan.ledger, settings=settings, stats=engine.stats,
        abort_error=engine.abort_error, halt_reason=engine.halt_reason,
        interrupted=engine.interrupted, drift=start.drift, jobs=start.jobs,
    )


async def _report_progress(
    stats: Callable[[], EngineStats], on_progress: ProgressCallback, interval: float
) -> None:
    while True:
        on_progress(stats())
        await anyio.sleep(interval)


async def _finish(ledger: LedgerWriter, engine: Engine) -> None:
    s = engine.stats
    await ledger.write(
        records.run_finished(
            counts={"succeeded": s.succeeded, "failed": s.failed, "skipped": s.skipped,
                    "reconciled": s.reconciled, "unresolved": s.unresolved,
                    "requests": s.requests, "throttled": s.throttled},
            interrupted=engine.interrupted, halted=engine.halt_reason,
        )
    )


# --- the phases together -------------------------------------------------------------------------

AfterSubmit = Callable[[Session, RunOutcome], Awaitable[None]]


class SweepRun:
    """One run of ``spec``: plan, open, reconcile, submit; interruptible from another task.

    :meth:`interrupt` (Ctrl-C, a cancelled caller) stops taking points; requests in flight get
    ``grace`` seconds to finish and be written; an interrupt before the first create stops at
    once. ``after`` runs while the session is still open (``run --watch`` follows the versions
    through the same client and ledger)."""

    def __init__(
        self,
        spec: SweepSpec,
        request: RunRequest,
        *,
        env: Mapping[str, str],
        credentials: Credentials | None = None,
        on_progress: ProgressCallback | None = None,
        progress_interval: float = 0.5,
        on_start: Callable[[Start], None] | None = None,
    ) -> None:
        self.plan = plan_run(spec, request, env)
        self._on_start = on_start
        self._env = env
        self._credentials = credentials
        self._on_progress = on_progress
        self._progress_interval = progress_interval
        self._scope: anyio.CancelScope | None = None
        self._engine: Engine | None = None
        self.interrupted = False

    def __repr__(self) -> str:
        return f"<SweepRun {self.plan.spec.name!r} interrupted={self.interrupted} {self._engine!r}>"

    def interrupt(self) -> None:
        """Stop: while sending, no new point and requests in flight finish within the grace;
        before it (the listings) or after it (``after``: the watch), at once."""
        self.interrupted = True
        engine, scope = self._engine, self._scope
        if engine is not None:
            engine.interrupt()
            if scope is not None:
                scope.deadline = min(scope.deadline, anyio.current_time() + self.plan.request.grace)
        elif scope is not None:
            scope.cancel()

    async def execute(self, after: AfterSubmit | None = None) -> RunOutcome | None:
        """Run it; None when interrupted before anything was submitted."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self.interrupted:
                scope.cancel()
            async with open_run(self.plan, self._env, self._credentials) as session:
                start = await reconcile_start(session)
                if self.interrupted:
                    return None
                if self._on_start is not None:
                    self._on_start(start)
                self._scope = anyio.CancelScope()
                outcome = await submit_points(
                    session, start, on_progress=self._on_progress,
                    progress_interval=self._progress_interval, engine_ready=self._ready,
                    stop_scope=self._scope,
                )
                self._engine = None  # sent: an interrupt from now on stops at once
                if after is not None and not (outcome.interrupted or outcome.abort_error
                                              or outcome.halt_reason or self.interrupted):
                    with anyio.CancelScope() as following:
                        self._scope = following
                        await after(session, outcome)
                    if following.cancelled_caught:
                        outcome = replace(outcome, interrupted=True)
                return outcome
        return None

    def _ready(self, engine: Engine) -> None:
        self._engine = engine
        if self.interrupted:
            engine.interrupt()


"""The Python API: submit a sweep from a script, a notebook or a test, and get results as data.

::

    import batchsubmit as bs

    spec = bs.load_spec("sweep.yaml")
    result = await bs.submit(spec, endpoint="emulator", ledger="lr.ledger.jsonl", rate=40)
    for key, point in result.succeeded.items():
        print(point.parameters, point.version_id)
    result.raise_for_failures()

Errors are raised from the one error tree (:class:`~batchsubmit.errors.SpecError`,
:class:`~batchsubmit.errors.UsageError`, :class:`~batchsubmit.errors.AuthError`, ...), never
returned as exit codes. The library installs no signal handler, prints nothing and configures no
logging. Cancelling the awaiting task stops the run as Ctrl-C stops the command line: no new
point is sent, requests in flight get ``grace`` seconds to finish and every outcome is written
to the ledger; then the cancellation goes on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from batchsubmit.auth import Credentials
from batchsubmit.engine import EngineStats
from batchsubmit.errors import BatchSubmitError
from batchsubmit.ledger import LedgerState
from batchsubmit.ledger import read_ledger as fold_ledger
from batchsubmit.request import RunRequest
from batchsubmit.runner import RunOutcome, SweepRun
from batchsubmit.sweep import SweepSpec, load_spec

__all__ = [
    "FailedPointsError",
    "PointFailure",
    "PointResult",
    "SubmitResult",
    "read_ledger",
    "submit",
    "submit_sync",
]


@dataclass(frozen=True, slots=True)
class PointResult:
    """A point whose version (v1) or training job (v2) exists: created by this run or an
    earlier one, or found on the server (``reconciled``) after an unknown outcome or a lost
    ledger. A v1 point has ``version_id`` and ``version_name`` (``training_job_id`` and
    ``job_name`` None); a v2 point the other way round (and ``job_id`` None)."""

    key: str
    index: int
    job_id: int | None
    parameters: dict[str, str]  # the parameter list sent, label -> value
    version_id: int | None
    version_name: str | None
    attempts: int
    reconciled: bool
    training_job_id: str | None = None  # v2: the server's metadata.id
    job_name: str | None = None  # v2: metadata.name, the point's identity on the server


@dataclass(frozen=True, slots=True)
class PointFailure:
    """A point the server refused (or that failed every attempt): nothing was created for it."""

    key: str
    index: int | None
    job_id: int | None
    parameters: dict[str, str]
    error_code: str | None
    error_message: str | None
    http_status: int | None


class FailedPointsError(BatchSubmitError):
    """:meth:`SubmitResult.raise_for_failures`: some points failed or their outcome is unknown."""

    def __init__(self, result: SubmitResult) -> None:
        parts = []
        if result.failed:
            failed = result.failed.values()
            codes = sorted({f.error_code or f"HTTP {f.http_status}" for f in failed})
            parts.append(f"{len(result.failed)} failed ({', '.join(codes)})")
        if result.unresolved:
            parts.append(f"{len(result.unresolved)} with an unknown outcome (run again)")
        if result.not_started:
            parts.append(f"{len(result.not_started)} not started")
        super().__init__(f"{result.ledger}: " + "; ".join(parts))
        self.result = result


@dataclass(frozen=True)
class SubmitResult:
    """Every point of a sweep by key, as its ledger records it."""

    succeeded: dict[str, PointResult]
    failed: dict[str, PointFailure]
    unresolved: tuple[str, ...]  # outcome unknown: the next run reconciles them with the server
    ledger: Path
    not_started: tuple[str, ...] = ()  # never sent (the run was halted or interrupted first)
    halted: str | None = None  # why the failure-rate guard stopped the run, if it did
    interrupted: bool = False
    stats: EngineStats | None = field(default=None, repr=False)  # this run's counters

    @property
    def complete(self) -> bool:
        """Every point succeeded."""
        return not (self.failed or self.unresolved or self.not_started)

    def raise_for_failures(self) -> None:
        """Raise :class:`FailedPointsError` unless every point succeeded."""
        if not self.complete:
            raise FailedPointsError(self)


async def submit(
    spec: SweepSpec | str | os.PathLike[str],
    *,
    endpoint: str | None = None,
    ledger: str | os.PathLike[str] | None = None,
    rate: float | None = None,
    concurrency: int | None = None,
    max_attempts: int | None = None,
    credentials: Credentials | None = None,
    on_progress: Callable[[EngineStats], None] | None = None,
    project_id: str | None = None,
    job_id: int | None = None,
    read_timeout: float = 30.0,
    settle: float = 2.0,
    retry_failed: bool = False,
    grace: float = 10.0,
    env: Mapping[str, str] | None = None,
) -> SubmitResult:
    """Create every point's version exactly once (resuming from ``ledger``); the results.

    Arguments left None take the spec's ``target``/``submit`` values, then the defaults, as the
    command line's flags do; ``credentials`` None reads them from ``env`` (default: the process
    environment) unless ``endpoint`` is ``"emulator"``. ``on_progress`` is called with a frozen
    :class:`~batchsubmit.engine.EngineStats` snapshot about twice a second, in the event loop.
    ``read_timeout`` bounds each request's wait for its answer (past it the outcome is unknown
    and the point is reconciled before any resend).
    Raises SpecError/UsageError before anything is sent, AuthError when credentials are refused
    (the run stops after the first refusal), LedgerError when the ledger cannot be written."""
    if not isinstance(spec, SweepSpec):
        spec = load_spec(Path(spec))
    request = RunRequest(
        endpoint=endpoint, project_id=project_id, job_id=job_id,
        ledger=None if ledger is None else Path(ledger), rate=rate, concurrency=concurrency,
        max_attempts=max_attempts, timeout=read_timeout, retry_failed=retry_failed, settle=settle,
        grace=grace,
    )
    run = SweepRun(spec, request, env=os.environ if env is None else env,
                   credentials=credentials, on_progress=on_progress)
    outcome = await _execute(run)
    if outcome is None:  # only an interrupt ends a run before it submits: the caller's cancel
        raise RuntimeError("the run was interrupted before it started")  # pragma: no cover
    if outcome.abort_error is not None:
        raise outcome.abort_error
    return _results(fold_ledger(outcome.ledger), outcome.ledger, spec, outcome)


def submit_sync(spec: SweepSpec | str | os.PathLike[str], **kwargs: Any) -> SubmitResult:
    """:func:`submit` on an event loop of its own, from any thread (same arguments).

    Called in a thread whose event loop is running (a notebook cell), it runs in a helper
    thread; a Ctrl-C there reaches this thread only. Prefer ``await submit(...)`` in a loop."""
    call = partial(submit, spec, **kwargs)
    try:
        anyio.get_current_task()
    except RuntimeError:  # no loop running in this thread (the usual case)
        return anyio.run(call, backend="asyncio")
    box: list[SubmitResult] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            box.append(anyio.run(call, backend="asyncio"))
        except BaseException as exc:  # handed to the caller's thread below
            errors.append(exc)

    thread = threading.Thread(target=worker, name="batchsubmit-submit", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


def read_ledger(path: str | os.PathLike[str]) -> SubmitResult:
    """The results a ledger on disk records (the same as :func:`submit` returned for it).

    Parameters come from the ledger's own lines, so points that never got an outcome are listed
    as unresolved (sent, outcome unknown) only; points never sent are not known without the
    spec. A missing file is an empty result."""
    where = Path(path)
    return _results(fold_ledger(where), where, None, None)


# --- the shell around the run ------------------------------------------------------------------


async def _execute(run: SweepRun) -> RunOutcome | None:
    """``run.execute()``, with a cancellation of the caller turned into ``run.interrupt()``: the
    run itself is shielded, so it can finish its requests in flight and write their outcomes;
    the cancellation is delivered once it has."""
    box: list[RunOutcome | None] = []
    errors: list[BatchSubmitError] = []
    finished = False

    async def guarded() -> None:
        nonlocal finished
        try:
            with anyio.CancelScope(shield=True):
                box.append(await run.execute())
        except BatchSubmitError as exc:  # raised as itself, not inside an ExceptionGroup
            errors.append(exc)
        finally:
            finished = True
            tg.cancel_scope.cancel()

    async def on_cancel() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            if not finished:
                run.interrupt()

    async with anyio.create_task_group() as tg:
        tg.start_soon(on_cancel)
        tg.start_soon(guarded)
    if errors:
        raise errors[0]
    return box[0]


def _job_of(key: str, default: int | None) -> int | None:
    head, sep, _ = key.partition(":")
    return int(head) if sep and head.isdigit() else default


def _pairs(parameter: object) -> dict[str, str]:
    if not isinstance(parameter, list):
        return {}
    return {
        str(p.get("label", "")): str(p.get("value", "")) for p in parameter if isinstance(p, dict)
    }


def _results(
    state: LedgerState, ledger: Path, spec: SweepSpec | None, outcome: RunOutcome | None
) -> SubmitResult:
    settings = state.settings
    default_job = settings.job_id if settings is not None else None
    known: dict[str, tuple[int, dict[str, str], int | None]] = {}
    if outcome is not None and spec is not None:
        known = _spec_points(spec, outcome)
    succeeded: dict[str, PointResult] = {}
    failed: dict[str, PointFailure] = {}
    for key, record in state.outcomes.items():
        if key in state.pending:
            continue
        index, parameters, job_id = known.get(
            key, (record.get("index"), _pairs(record.get("parameter")), _job_of(key, default_job))
        )
        if record["event"] == "succeeded":
            v2 = "training_job_id" in record
            succeeded[key] = PointResult(
                key=key, index=int(index or 0), job_id=None if v2 else job_id,
                parameters=parameters, version_id=None if v2 else record["version_id"],
                version_name=None if v2 else record.get("version_name") or "",
                attempts=record.get("attempts", 0), reconciled=bool(record.get("reconciled")),
                training_job_id=record.get("training_job_id"), job_name=record.get("job_name"),
            )
        else:
            failed[key] = PointFailure(
                key=key, index=index, job_id=job_id, parameters=parameters,
                error_code=record.get("error_code"), error_message=record.get("error_message"),
                http_status=record.get("http_status"),
            )
    unresolved = tuple(sorted(state.pending))
    seen = succeeded.keys() | failed.keys() | state.pending.keys()
    not_started = tuple(key for key in known if key not in seen)
    return SubmitResult(
        succeeded=succeeded, failed=failed, unresolved=unresolved, ledger=ledger,
        not_started=not_started,
        halted=outcome.halt_reason if outcome is not None else None,
        interrupted=outcome.interrupted if outcome is not None else False,
        stats=outcome.stats if outcome is not None else None,
    )


def _spec_points(
    spec: SweepSpec, outcome: RunOutcome
) -> dict[str, tuple[int, dict[str, str], int | None]]:
    """key -> (index, parameters, job) for every point the run covered."""
    from batchsubmit.runner import bind_jobs  # the spec as the run bound it (rebased: below)

    if spec.from_version is not None:
        return {}  # the bases came from the server: the ledger's lines say what was sent
    jobs = bind_jobs(spec, outcome.settings.job_ids)
    return {
        point.key: (point.index, dict(point.parameter), job.job_id)
        for job in jobs for point in job.points()
    }

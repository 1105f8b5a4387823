"""Stopping or deleting the versions a ledger created: the core of ``batchsubmit stop`` and
``batchsubmit delete`` (issue 13).

Only versions this ledger created are ever touched: the current version of each succeeded point
(its ``succeeded`` line's ``version_id``), optionally only those of some keys. The pure core,
:func:`plan`, sorts them, given one complete listing of each of the ledger's jobs:

- done before: a ``stopped`` (``deleted``) line names the version: skipped, so a re-run after a
  crash, a kill or Ctrl-C goes on where the last one ended, with no second call for those;
- stop: listed in a terminal status (COMPLETED, FAILED, KILLED...: :class:`JobStatus`): it
  costs nothing any more, so it is left alone (no call, no line). Listed in any other status,
  or not listed (a list may lag creation): stopped;
- delete: listed (in any status): deleted. Not listed: gone already (deleted by hand, or by a
  delete whose answer was lost) or too new to be listed: skipped, and reported as such;
- not listed in a ledger of several jobs: its job is unknown, so it cannot be addressed:
  reported as not done.

Points whose outcome is unknown (``pending``: sent, no answer recorded) may have a version the
ledger does not know; it is never guessed at (a version found by its train_url alone could be
someone else's). :class:`Plan` counts them; ``batchsubmit run`` again reconciles them first.

:func:`carry_out` is the thin async shell: a few calls at once, each within the shared
:class:`AdaptiveRateLimiter` (a throttle is waited out and asked again; a failure with no
usable answer is tried again, with backoff, up to ``attempts`` times: stopping or deleting twice
does no harm), and one ``stopped`` / ``deleted`` line, made durable, per call the server
accepted. A refusal (the server answered no: the version ended meanwhile, is gone, may not be
deleted while it runs...) is not recorded, only reported: the command exits 1, and a re-run
lists again and leaves alone what has ended by then. Credentials refused stop everything.

A v2 ledger (``settings.api: v2``) is sorted the same way from one search of its training jobs
(:func:`batchsubmit.watch.list_v2`: by the sweep's name prefix, phases in place of statuses,
under the one job :data:`~batchsubmit.watch.V2_LISTING`); stop terminates a job, delete deletes
it, through a :class:`~batchsubmit.v2.V2Target`, and the lines carry ``training_job_id``. A
terminate answered 409 ``ModelArts.2796`` (NotAllowedToTerminate: the job ended meanwhile) and a
delete answered 400 ``ModelArts.2775`` (TrainingJobNotFound: gone already) are no refusals:
reported as ``Done.ended`` / ``Done.gone``, not recorded, and the command still succeeds. A 409
``ModelArts.2878`` (the status changed during the call) is tried again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

import anyio

from batchsubmit import ledger as records
from batchsubmit import phases
from batchsubmit.errors import BatchSubmitError, Disposition, ThrottledError, UsageError
from batchsubmit.events import get_logger
from batchsubmit.ledger import LedgerState, LedgerWriter, object_id, read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.retry import Backoff
from batchsubmit.target import Target
from batchsubmit.v2 import V2Target
from batchsubmit.watch import (
    NOT_LISTED,
    V2_LISTING,
    ListOne,
    Observation,
    VersionLister,
    job_ids_of,
    list_job,
    list_v2,
)

__all__ = [
    "Action",
    "Candidate",
    "Done",
    "Plan",
    "StopResult",
    "carry_out",
    "chosen_keys",
    "open_keys",
    "parse_keys",
    "plan",
    "stop_ledger",
]

log = get_logger("batchsubmit.stop")

Action = Literal["stop", "delete"]
ATTEMPTS = 4  # calls per version in one run when no usable answer comes back
MAX_THROTTLES = 8  # throttled answers to one call before it is given up for this run
CONCURRENCY = 4  # calls in flight at once
PAST: Mapping[Action, str] = {"stop": "stopped", "delete": "deleted"}
# v2 answers that mean the call has nothing left to do: the job ended, or is gone already
ALREADY: Mapping[Action, str] = {"stop": "ModelArts.2796", "delete": "ModelArts.2775"}
STATUS_CHANGED = "ModelArts.2878"  # v2: the job's status changed during the call; try again


# --- the pure core -------------------------------------------------------------------------------


class Candidate(NamedTuple):
    """One of the ledger's versions, and what the listing says of it."""

    key: str
    version_id: int | str  # v2: the training job's id
    job_id: int | None  # the job whose listing shows it, else the ledger's only job; None: unknown
    status: int | str | None  # as listed (v2: the phase); None: not in the listing

    def label(self) -> str:
        """The status name (v2: the phase) as listed, or NOT_LISTED."""
        return NOT_LISTED if self.status is None else phases.name_of(self.status)


@dataclass(frozen=True)
class Plan:
    """What stop (or delete) would do with the ledger's versions, and what it leaves alone."""

    action: Action
    todo: tuple[Candidate, ...] = ()  # to stop (delete) now
    ended: tuple[Candidate, ...] = ()  # stop: listed in a terminal status, left alone
    gone: tuple[Candidate, ...] = ()  # delete: not listed (gone already, or too new), skipped
    unaddressable: tuple[Candidate, ...] = ()  # not listed, and its job is not known
    done_before: int = 0  # versions the ledger records as stopped (or deleted) already
    pending: int = 0  # points with an unknown outcome: a version may exist, never guessed at
    api: str = "v1"  # "v2": the candidates are training jobs


def parse_keys(text: str | None) -> tuple[str, ...] | None:
    """``--keys a,b,,c`` as ("a", "b", "c"), in order, without repeats; None when not given."""
    if text is None:
        return None
    keys = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    if not keys:
        raise UsageError("--keys names no key: give point keys separated by commas")
    return keys


def chosen_keys(state: LedgerState, keys: Sequence[str] | None) -> list[str]:
    """The keys of the succeeded points (their versions), sorted; with ``keys``, those only.

    A key that is not a succeeded point of the ledger is a UsageError naming why."""
    succeeded = state.succeeded_keys()
    if keys is None:
        return sorted(succeeded)
    wrong = []
    for key in keys:
        if key in succeeded:
            continue
        why = (
            "its outcome is unknown (run the sweep again to reconcile it)"
            if key in state.pending
            else "its point failed: it has no version" if key in state.outcomes
            else "not a point of this ledger"
        )  # fmt: skip
        wrong.append(f"{key} ({why})")
    if wrong:
        raise UsageError(
            f"--keys: {'; '.join(wrong)}; `batchsubmit status LEDGER --points --succeeded` "
            "lists the keys that have a version"
        )
    return list(keys)


def open_keys(state: LedgerState, action: Action, keys: Sequence[str] | None = None) -> list[str]:
    """:func:`chosen_keys` less those whose version the ledger records as stopped (for stop)
    or deleted (for both: a deleted version has nothing left to stop)."""
    done = state.was_stopped if action == "stop" else state.was_deleted
    return [k for k in chosen_keys(state, keys) if not (done(k) or state.was_deleted(k))]


def plan(
    state: LedgerState,
    action: Action,
    listings: Mapping[int, Mapping[int | str, int | str]],
    *,
    job_ids: Sequence[int],
    keys: Sequence[str] | None = None,
    api: str = "v1",
) -> Plan:
    """Sort the ledger's versions (see the module docstring); ``listings``: job -> version ->
    status, one complete listing of every job in ``job_ids``."""
    where = {v: (job, status) for job, listed in listings.items() for v, status in listed.items()}
    only_job = job_ids[0] if len(job_ids) == 1 else None
    todo, ended, gone, unaddressable = [], [], [], []
    still = open_keys(state, action, keys)
    for key in still:
        version_id = object_id(state.outcomes[key])
        job, status = where.get(version_id, (only_job, None))
        candidate = Candidate(key, version_id, job, status)
        if status is not None and action == "stop" and phases.is_terminal(status):
            ended.append(candidate)
        elif status is None and action == "delete":
            gone.append(candidate)
        elif job is None:
            unaddressable.append(candidate)
        else:
            todo.append(candidate)
    return Plan(
        action, tuple(todo), tuple(ended), tuple(gone), tuple(unaddressable),
        len(chosen_keys(state, keys)) - len(still), len(state.pending), api,
    )  # fmt: skip


# --- the shell -----------------------------------------------------------------------------------


@dataclass
class Done:
    """What carrying out a plan did: the versions done now, and those refused (with why)."""

    done: list[Candidate] = field(default_factory=list)
    refused: list[tuple[Candidate, str]] = field(default_factory=list)
    ended: list[Candidate] = field(default_factory=list)  # v2 stop: it had ended (2796)
    gone: list[Candidate] = field(default_factory=list)  # v2 delete: it was gone already (2775)


@dataclass(frozen=True)
class StopResult:
    """How a stop (delete) ended: the plan, and what was done (None: a dry run)."""

    plan: Plan
    outcome: Done | None

    @property
    def ok(self) -> bool:
        """Nothing left undone that should have been: every call accepted, every version found."""
        if self.outcome is None:
            return True
        return not self.outcome.refused and not self.plan.unaddressable


class _Already:
    """_Caller._call's answer when a v2 reply said there was nothing left to do."""


_ALREADY: Final = _Already()


@dataclass
class _Caller:
    """Stops (deletes) one version after another within the limiter; records each accepted."""

    action: Action
    target: Target
    writer: LedgerWriter
    limiter: AdaptiveRateLimiter
    attempts: int
    backoff: Backoff
    sleep: Callable[[float], Awaitable[None]]
    api: str = "v1"
    outcome: Done = field(default_factory=Done)

    async def one(self, c: Candidate) -> None:
        assert c.job_id is not None  # the plan leaves unaddressable versions out
        v2 = self.api == "v2"
        job_id = None if v2 else c.job_id  # a v2 job belongs to no v1 job
        why = await self._call(c.job_id, c.version_id)
        fields: dict[str, object] = (
            {"key": c.key, "training_job_id": c.version_id} if v2
            else {"key": c.key, "version_id": c.version_id, "job_id": c.job_id}
        )  # fmt: skip
        if why is _ALREADY:
            already = self.outcome.ended if self.action == "stop" else self.outcome.gone
            log.info(f"batchsubmit.{self.action}.already",
                     **fields, why="ended" if self.action == "stop" else "gone")  # fmt: skip
            already.append(c)
            return
        if isinstance(why, str):
            log.warning(f"batchsubmit.{self.action}.refused", **fields, error=why)
            self.outcome.refused.append((c, why))
            return
        build = records.stopped if self.action == "stop" else records.deleted
        await self.writer.write(build(key=c.key, version_id=c.version_id, job_id=job_id))
        log.info(f"batchsubmit.{self.action}.{PAST[self.action]}", **fields)
        self.outcome.done.append(c)

    async def _call(self, job_id: int, version_id: int | str) -> str | _Already | None:
        """None once the server accepted; _ALREADY when a v2 answer says there was nothing
        left to do; else why not. Credentials refused: raised."""
        call = self.target.stop if self.action == "stop" else self.target.delete
        tries = throttles = 0
        while True:
            sent_at = await self.limiter.acquire()
            try:
                await call(job_id, version_id)
            except ThrottledError as exc:
                self.limiter.on_throttled(exc, sent_at=sent_at)  # it pauses every caller
                throttles += 1
                if throttles >= MAX_THROTTLES:
                    return f"throttled {throttles} times in a row: {exc}"
                continue
            except BatchSubmitError as exc:
                if exc.disposition is Disposition.ABORT:
                    raise
                if self.api == "v2" and exc.error_code == ALREADY[self.action]:
                    self.limiter.on_success()  # an answer, and not a slow-down
                    return _ALREADY
                tries += 1
                again = exc.disposition in (Disposition.RETRY, Disposition.RECONCILE) or (
                    self.api == "v2" and exc.error_code == STATUS_CHANGED
                )
                if not again or tries >= self.attempts:
                    return str(exc)
                await self.sleep(self.backoff.delay(tries, exc))
                continue
            self.limiter.on_success()
            return None


async def carry_out(
    plan: Plan,
    target: Target,
    writer: LedgerWriter,
    limiter: AdaptiveRateLimiter,
    *,
    concurrency: int = CONCURRENCY,
    attempts: int = ATTEMPTS,
    backoff: Backoff | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> Done:
    """Stop (delete) every version of ``plan.todo``, ``concurrency`` at once, within ``limiter``;
    a ``stopped`` (``deleted``) line per version the server accepted, written through
    ``writer``."""
    caller = _Caller(
        plan.action, target, writer, limiter, attempts, backoff or Backoff(), sleep, plan.api
    )
    todo = iter(plan.todo)  # shared by the workers: each version is taken once

    async def worker() -> None:
        for candidate in todo:
            await caller.one(candidate)

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, min(concurrency, len(plan.todo)))):
            tg.start_soon(worker)
    return caller.outcome


async def _listings(
    list_one: ListOne,
    jobs: Iterable[int],
    *,
    attempts: int,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[None]],
) -> dict[int, dict[int | str, int | str]]:
    """One complete listing per job (job -> version -> status); transient failures retried."""
    out: dict[int, dict[int | str, int | str]] = {}
    for job_id in jobs:
        for attempt in range(1, attempts + 1):
            try:
                listed = await list_one(job_id)
            except BatchSubmitError as exc:
                transient = exc.disposition in (Disposition.RETRY, Disposition.RECONCILE)
                if not transient or attempt == attempts:
                    raise
                log.warning("batchsubmit.stop.list_failed", job_id=job_id, error=str(exc),
                            attempt=attempt)  # fmt: skip
                await sleep(backoff.delay(attempt, exc))
                continue
            out[job_id] = {vid: seen.status for vid, seen in listed.items()}
            break
    return out


def _lister(
    state: LedgerState,
    lister: VersionLister,
    target: Target,
    limiter: AdaptiveRateLimiter,
    action: Action,
    keys: Sequence[str] | None,
) -> tuple[tuple[int, ...], ListOne]:
    """The jobs to list and how to list one: each v1 job's versions, or a v2 ledger's one
    search (through ``target``, a V2Target), keeping only the ledger's open objects."""
    wanted = {object_id(state.outcomes[k]) for k in open_keys(state, action, keys)}
    if state.settings is not None and state.settings.api == "v2":
        if not isinstance(target, V2Target):
            raise TypeError(f"a v2 ledger's jobs are stopped through a V2Target, not {target!r}")
        v2 = target

        def search(job_id: int) -> Awaitable[dict[int | str, Observation]]:
            return list_v2(v2, limiter, wanted=wanted)

        return (V2_LISTING,), search
    jobs = job_ids_of(state)

    def listing(job_id: int) -> Awaitable[dict[int | str, Observation]]:
        return list_job(lister, job_id, limiter, wanted=wanted)

    return jobs, listing


async def stop_ledger(
    ledger_path: str | os.PathLike[str],
    *,
    action: Action,
    lister: VersionLister,
    target: Target,
    limiter: AdaptiveRateLimiter,
    keys: Sequence[str] | None = None,
    yes: bool = False,
    attempts: int = ATTEMPTS,
    concurrency: int = CONCURRENCY,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> StopResult:
    """Stop (delete) the ledger's versions: list each job once, plan, and with ``yes`` do it.

    Without ``yes`` (a dry run) nothing is written and only listings are sent. With it the
    ledger is locked (LedgerError while a run writes it) before it is read. Raises
    BatchSubmitError (UsageError, LedgerError, AuthError, ...) when it cannot go on."""
    async with contextlib.AsyncExitStack() as stack:
        writer = (
            await stack.enter_async_context(LedgerWriter(ledger_path, keep_empty=False))
            if yes else None
        )  # fmt: skip
        state = read_ledger(ledger_path, slim=True)
        if not state.runs:
            raise UsageError(
                f"{os.fspath(ledger_path)}: no run recorded in this ledger, so it created no "
                f"version to {action}"
            )
        api = state.settings.api if state.settings is not None else "v1"
        jobs, list_one = _lister(state, lister, target, limiter, action, keys)
        backoff = Backoff()
        listings = (
            await _listings(list_one, jobs, attempts=attempts, backoff=backoff, sleep=sleep)
            if open_keys(state, action, keys) else {}
        )  # fmt: skip
        the_plan = plan(state, action, listings, job_ids=jobs, keys=keys, api=api)
        log.info(
            f"batchsubmit.{action}.planned", todo=len(the_plan.todo), ended=len(the_plan.ended),
            gone=len(the_plan.gone), unaddressable=len(the_plan.unaddressable),
            done_before=the_plan.done_before, pending=the_plan.pending, dry_run=not yes,
        )  # fmt: skip
        if writer is None:
            return StopResult(the_plan, None)
        done = await carry_out(
            the_plan, target, writer, limiter, concurrency=concurrency, attempts=attempts,
            backoff=backoff, sleep=sleep,
        )  # fmt: skip
    return StopResult(the_plan, done)

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
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import anyio

from batchsubmit import ledger as records
from batchsubmit.errors import BatchSubmitError, Disposition, ThrottledError, UsageError
from batchsubmit.events import get_logger
from batchsubmit.ledger import LedgerState, LedgerWriter, read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.models import JobStatus
from batchsubmit.retry import Backoff
from batchsubmit.target import Target
from batchsubmit.watch import NOT_LISTED, VersionLister, job_ids_of, list_job

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


# --- the pure core -------------------------------------------------------------------------------


class Candidate(NamedTuple):
    """One of the ledger's versions, and what the listing says of it."""

    key: str
    version_id: int
    job_id: int | None  # the job whose listing shows it, else the ledger's only job; None: unknown
    status: int | None  # as listed; None: not in the listing

    def label(self) -> str:
        """The status name as listed, or NOT_LISTED."""
        return NOT_LISTED if self.status is None else JobStatus.name_of(self.status)


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
    listings: Mapping[int, Mapping[int, int]],
    *,
    job_ids: Sequence[int],
    keys: Sequence[str] | None = None,
) -> Plan:
    """Sort the ledger's versions (see the module docstring); ``listings``: job -> version ->
    status, one complete listing of every job in ``job_ids``."""
    where = {v: (job, status) for job, listed in listings.items() for v, status in listed.items()}
    only_job = job_ids[0] if len(job_ids) == 1 else None
    todo, ended, gone, unaddressable = [], [], [], []
    still = open_keys(state, action, keys)
    for key in still:
        version_id: int = state.outcomes[key]["version_id"]
        job, status = where.get(version_id, (only_job, None))
        candidate = Candidate(key, version_id, job, status)
        if status is not None and action == "stop" and JobStatus.is_terminal_code(status):
            ended.append(candidate)
        elif status is None and action == "delete":
            gone.append(candidate)
        elif job is None:
            unaddressable.append(candidate)
        else:
            todo.append(candidate)
    return Plan(
        action, tuple(todo), tuple(ended), tuple(gone), tuple(unaddressable),
        len(chosen_keys(state, keys)) - len(still), len(state.pending),
    )  # fmt: skip


# --- the shell -----------------------------------------------------------------------------------


@dataclass
class Done:
    """What carrying out a plan did: the versions done now, and those refused (with why)."""

    done: list[Candidate] = field(default_factory=list)
    refused: list[tuple[Candidate, str]] = field(default_factory=list)


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
    outcome: Done = field(default_factory=Done)

    async def one(self, c: Candidate) -> None:
        assert c.job_id is not None  # the plan leaves unaddressable versions out
        why = await self._call(c.job_id, c.version_id)
        fields = {"key": c.key, "version_id": c.version_id, "job_id": c.job_id}
        if why is not None:
            log.warning(f"batchsubmit.{self.action}.refused", **fields, error=why)
            self.outcome.refused.append((c, why))
            return
        build = records.stopped if self.action == "stop" else records.deleted
        await self.writer.write(build(key=c.key, version_id=c.version_id, job_id=c.job_id))
        log.info(f"batchsubmit.{self.action}.{PAST[self.action]}", **fields)
        self.outcome.done.append(c)

    async def _call(self, job_id: int, version_id: int) -> str | None:
        """None once the server accepted; else why not. Credentials refused: raised."""
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
                tries += 1
                again = exc.disposition in (Disposition.RETRY, Disposition.RECONCILE)
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
    caller = _Caller(plan.action, target, writer, limiter, attempts, backoff or Backoff(), sleep)
    todo = iter(plan.todo)  # shared by the workers: each version is taken once

    async def worker() -> None:
        for candidate in todo:
            await caller.one(candidate)

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, min(concurrency, len(plan.todo)))):
            tg.start_soon(worker)
    return caller.outcome


async def _listings(
    lister: VersionLister,
    jobs: Iterable[int],
    wanted: Mapping[int, object],
    limiter: AdaptiveRateLimiter,
    *,
    attempts: int,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[None]],
) -> dict[int, dict[int, int]]:
    """One complete listing per job (job -> version -> status); transient failures retried."""
    out: dict[int, dict[int, int]] = {}
    for job_id in jobs:
        for attempt in range(1, attempts + 1):
            try:
                listed = await list_job(lister, job_id, limiter, wanted=wanted)
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
        jobs = job_ids_of(state)
        wanted = {state.outcomes[k]["version_id"]: k for k in open_keys(state, action, keys)}
        backoff = Backoff()
        listings = (
            await _listings(lister, jobs, wanted, limiter, attempts=attempts, backoff=backoff,
                            sleep=sleep) if wanted else {}
        )  # fmt: skip
        the_plan = plan(state, action, listings, job_ids=jobs, keys=keys)
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

"""Following the versions (v1) or training jobs (v2) a sweep created until each one stops: the
core of ``batchsubmit watch``.

The pure core is :class:`Board`: the points to follow (every succeeded point's version, from the
ledger's fold), the status each was last seen in, and what one round of listings changes. It
returns the ``status`` records to append (a record only when a status *changes*), knows when
everything is finished, and gives the verdict (exit 0 all completed, 1 any other end).

:func:`watch_ledger` is the thin async shell: one paged list-versions per job per interval (never
a detail call per version), every page within the shared :class:`AdaptiveRateLimiter`, status
lines appended through :class:`LedgerWriter`, and a live table (or a log line per interval).
Time is injected (``clock``, ``sleep``), so tests step the emulator's clock instead of waiting.

A version missing from its job's listing for ``missing_polls`` rounds in a row, over at least
``missing_grace`` seconds (deleted, or never listed), is given up on as ``NOT_LISTED``, which
counts as a failure: a watch always ends.

A v2 ledger (``settings.api: v2``) is followed the same way, with one search per interval in
place of the jobs' listings: a complete walk (:meth:`V2Target.jobs`) of the jobs whose names
contain the sweep's name prefix (:func:`name_prefix`), never a detail call per job. Its board
holds phases (``Running``, ``Completed``...) where v1's holds status codes, under the one job
:data:`V2_LISTING`; what a phase means is :mod:`batchsubmit.phases`' (an unknown one is active,
and logged as ``batchsubmit.watch.unknown_phase``). Its ``status`` lines are
:func:`records.job_status`'s.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from time import monotonic
from typing import Any, NamedTuple, Protocol, TypeVar

import anyio

from batchsubmit import ledger as records
from batchsubmit import phases
from batchsubmit.client import ModelArtsClient
from batchsubmit.errors import BatchSubmitError, Disposition, ThrottledError, UsageError
from batchsubmit.events import get_logger
from batchsubmit.ledger import LedgerState, LedgerWriter, StatusEntry, object_id, read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.models import VersionList
from batchsubmit.models_v2 import JobSearchPage
from batchsubmit.paging import MAX_PER_PAGE, walk_versions
from batchsubmit.points import parameter_pairs
from batchsubmit.v2 import V2Target, walk_jobs

_T = TypeVar("_T")

__all__ = [
    "Board",
    "Observation",
    "Tracked",
    "VersionLister",
    "WatchResult",
    "is_success",
    "is_terminal",
    "job_ids_of",
    "list_job",
    "list_v2",
    "log_round",
    "name_prefix",
    "status_name",
    "watch_ledger",
]

log = get_logger("batchsubmit.watch")

PER_PAGE = MAX_PER_PAGE  # the API's largest page
DEFAULT_INTERVAL = 10.0
MISSING_POLLS = 3  # rounds a version may be absent from its job's listing (list lag, deletion)
MISSING_GRACE = 60.0  # ... and seconds, so that a short interval does not outrun the list's lag
MAX_LIST_FAILURES = 10  # rounds in a row a job's listing may fail before the watch gives up
MAX_THROTTLES = 8  # throttled answers to one page before that job waits for the next round
NOT_LISTED = "NOT_LISTED"  # given up: absent from the listings for missing_polls rounds
UNSEEN = "UNSEEN"  # not listed yet (lists may lag creation by a few seconds)
V2_LISTING = 0  # a v2 ledger's board: its one search stands where v1's jobs' listings do


# --- the pure core -------------------------------------------------------------------------------


status_name = phases.name_of  # v1 status codes and v2 phases alike
is_terminal = phases.is_terminal
is_success = phases.is_success


class Observation(NamedTuple):
    """What a listing says about one version (or v2 training job: its phase) now."""

    status: int | str
    duration_ms: int | None


@dataclass(slots=True)
class Tracked:
    """One point being followed: its version, and what was last seen of it."""

    key: str
    version_id: int | str  # v2: the training job's id
    status: int | str | None = None  # v2: the phase; None: not seen (nor recorded) yet
    duration_ms: float | None = None
    job_id: int | None = None  # learnt from the listing it shows up in
    missed: int = 0  # rounds in a row its job's listing did not show it
    first_miss: float | None = None  # when the first of those rounds was (the board's clock)
    gone: bool = False  # given up on: not listed for long enough
    index: int | None = None  # the point's, from its succeeded record (None: not known)
    parameter: tuple[tuple[str, str], ...] = ()  # the point's (label, value) pairs, in order

    def label(self) -> str:
        """The status name, or NOT_LISTED (given up), or UNSEEN (not listed yet)."""
        if self.gone:
            return NOT_LISTED
        return UNSEEN if self.status is None else status_name(self.status)

    def finished(self) -> bool:
        """Terminal, or given up on."""
        return self.gone or (self.status is not None and is_terminal(self.status))

    def ok(self) -> bool:
        """Ended well."""
        return not self.gone and self.status is not None and is_success(self.status)


def job_ids_of(state: LedgerState) -> tuple[int, ...]:
    """The jobs the ledger's last run versioned (``settings.job_ids``, else ``settings.job_id``)."""
    jobs = state.settings.job_ids if state.settings is not None else ()
    if not jobs:
        raise UsageError(
            f"{state.path or 'the ledger'}: its last run_started names no job "
            "(settings.job_id / settings.job_ids); is it a ledger written by `batchsubmit run`?"
        )
    return jobs


class Board:
    """The points followed and their last known status; pure (no I/O; time is passed in).

    A version is given up on (NOT_LISTED) once it missed ``missing_polls`` rounds in a row and,
    when rounds carry a time, ``missing_grace`` seconds passed since the first of them: a short
    interval must not give up on a version that a lagging list does not show yet.
    """

    def __init__(
        self,
        tracked: Iterable[Tracked],
        *,
        missing_polls: int = MISSING_POLLS,
        missing_grace: float = MISSING_GRACE,
        api: str = "v1",
    ) -> None:
        if missing_polls < 1:
            raise ValueError(f"missing_polls must be >= 1, got {missing_polls}")
        self.missing_polls = missing_polls
        self.missing_grace = missing_grace
        self.tracked: dict[int | str, Tracked] = {t.version_id: t for t in tracked}
        self.api = api  # "v2": training jobs and their phases

    @property
    def noun(self) -> str:
        """What it follows, for people: ``versions`` or ``training jobs``."""
        return "training jobs" if self.api == "v2" else "versions"

    @classmethod
    def from_state(cls, state: LedgerState, **kwargs: Any) -> Board:
        """Every succeeded point's version, starting from the status the ledger last recorded."""
        tracked = []
        pairs: dict[tuple[str, str], tuple[str, str]] = {}  # one tuple per distinct pair
        for key in sorted(state.succeeded_keys()):
            outcome = state.outcomes[key]
            entry = state.training_status(key)
            point = Tracked(key, object_id(outcome), index=outcome.get("index"),
                            parameter=parameter_pairs(outcome.get("parameter"), pairs))
            if entry is not None:  # a v2 entry has no status code: its name is the phase
                point.status = entry.status if entry.status is not None else entry.status_name
                point.duration_ms = entry.duration_ms
            tracked.append(point)
        api = state.settings.api if state.settings is not None else "v1"
        return cls(tracked, **{"api": api, **kwargs})

    def __len__(self) -> int:
        return len(self.tracked)

    def __repr__(self) -> str:
        return f"<Board {len(self.tracked)} versions {dict(self.counts())}>"

    def unfinished(self) -> Iterator[Tracked]:
        """The versions still to follow."""
        return (t for t in self.tracked.values() if not t.finished())

    @property
    def done(self) -> bool:
        """Every version is terminal (or given up on)."""
        return next(self.unfinished(), None) is None

    def jobs_to_poll(self, job_ids: Sequence[int]) -> list[int]:
        """The jobs whose listing can still tell something: those holding an unfinished version.

        A version whose job is not known yet (never listed) may be in any of them.
        """
        wanted: set[int] = set()
        for t in self.unfinished():
            if t.job_id is None:
                return list(job_ids)
            wanted.add(t.job_id)
        return [job for job in job_ids if job in wanted]

    def observe(
        self,
        listings: Mapping[int, Mapping[int | str, Observation]],
        *,
        job_ids: Sequence[int],
        ts: str | None = None,
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """Take in one round of listings (job -> version_id -> what it shows), complete ones only.

        Returns the ``status`` records to append: one per version whose status changed (or was
        seen for the first time). A version its job's listing does not show (or, with its job not
        known yet, that no listing shows while every job was listed) misses one round. ``now``
        (seconds, any clock) times the misses; None: rounds alone decide.
        """
        changed: list[dict[str, Any]] = []
        seen: set[int | str] = set()
        for job_id, listing in listings.items():
            for version_id, observed in listing.items():
                tracked = self.tracked.get(version_id)
                if tracked is None:
                    continue
                seen.add(version_id)
                tracked.job_id = job_id
                tracked.missed, tracked.first_miss, tracked.gone = 0, None, False
                if tracked.status == observed.status and tracked.finished():
                    continue  # ended: its duration is the one recorded with its last status
                tracked.duration_ms = observed.duration_ms
                if tracked.status != observed.status:
                    tracked.status = observed.status
                    changed.append(_status_record(tracked, observed, ts))
        every_job = all(job in listings for job in job_ids)
        for tracked in self.unfinished():
            if tracked.version_id in seen:
                continue
            if tracked.job_id in listings or (tracked.job_id is None and every_job):
                self._missed(tracked, now)
        return changed

    def _missed(self, tracked: Tracked, now: float | None) -> None:
        tracked.missed += 1
        if tracked.first_miss is None:
            tracked.first_miss = now
        waited = True if now is None or tracked.first_miss is None else (
            now - tracked.first_miss >= self.missing_grace
        )  # fmt: skip
        tracked.gone = tracked.missed >= self.missing_polls and waited

    def counts(self) -> Counter[str]:
        """Versions per status name (NOT_LISTED, UNSEEN included), most first."""
        return Counter(t.label() for t in self.tracked.values())

    def slowest(self, n: int = 5) -> list[Tracked]:
        """The ``n`` unfinished versions that have run longest."""
        running = (t for t in self.unfinished() if t.status is not None)
        return sorted(running, key=lambda t: -(t.duration_ms or 0))[:n]

    def failed(self) -> list[Tracked]:
        """Versions that ended other than COMPLETED (FAILED, KILLED, LOST... or NOT_LISTED)."""
        return [t for t in self.tracked.values() if t.finished() and not t.ok()]

    def all_ok(self) -> bool:
        """Every version COMPLETED (False when any ended otherwise or is not finished)."""
        return all(t.ok() for t in self.tracked.values())

    def final(self) -> dict[str, StatusEntry]:
        """Key -> the last status seen of its version (versions never seen are left out)."""
        return {
            t.key: StatusEntry(
                t.version_id, t.status if isinstance(t.status, int) else None,
                status_name(t.status), t.duration_ms,
            )
            for t in self.tracked.values()
            if t.status is not None
        }


def _status_record(tracked: Tracked, observed: Observation, ts: str | None) -> dict[str, Any]:
    """The ``status`` line of a change: v1's (a status code) or v2's (a phase)."""
    if isinstance(observed.status, str):
        assert isinstance(tracked.version_id, str)  # a v2 board tracks training job ids
        return records.job_status(
            key=tracked.key, training_job_id=tracked.version_id, phase=observed.status,
            duration_ms=observed.duration_ms, index=tracked.index, parameter=tracked.parameter,
            ts=ts,
        )  # fmt: skip
    assert isinstance(tracked.version_id, int)
    return records.status(
        key=tracked.key, version_id=tracked.version_id, status=observed.status,
        status_name=status_name(observed.status), duration_ms=observed.duration_ms,
        index=tracked.index, parameter=tracked.parameter, ts=ts,
    )  # fmt: skip


def name_prefix(state: LedgerState) -> str:
    """The longest common prefix of the ledger's v2 job names (its succeeded points'): the
    search filter that finds them all. Too short costs only pages ("" searches every job)."""
    names: list[str] = [
        record["job_name"] for record in state.outcomes.values()
        if record["event"] == "succeeded" and isinstance(record.get("job_name"), str)
    ]  # fmt: skip
    if not names:
        return ""
    first, last = min(names), max(names)  # the prefix of these two is everyone's
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


# --- the shell -----------------------------------------------------------------------------------


class VersionLister(Protocol):
    """What the watch needs of a client: one page of a job's versions."""

    async def list_versions_page(
        self, job_id: int, *, page: int = 1, per_page: int = PER_PAGE
    ) -> VersionList: ...


@dataclass(frozen=True)
class WatchResult:
    """How a watch ended: the exit code, and the last status seen of every followed version."""

    ok: bool  # every followed version COMPLETED
    statuses: dict[str, StatusEntry]  # key -> last status seen (versions never listed left out)
    counts: dict[str, int]  # status name (NOT_LISTED, UNSEEN included) -> versions
    polls: int  # rounds of listings made
    message: str | None = None


async def list_job(
    client: VersionLister,
    job_id: int,
    limiter: AdaptiveRateLimiter,
    *,
    wanted: Container[int | str] | None = None,
) -> dict[int | str, Observation]:
    """One complete listing of a job, page by page, each page within the limiter.

    Only the versions in ``wanted`` are kept (all when None). A throttled page is asked again
    after the limiter's pause, up to MAX_THROTTLES times; other errors propagate.
    """
    out: dict[int | str, Observation] = {}

    def fetch(page: int, per_page: int) -> Awaitable[VersionList]:
        return _page(client, job_id, page, per_page, limiter)

    async for version in walk_versions(fetch, per_page=PER_PAGE, what=f"job {job_id}'s versions"):
        if wanted is None or version.version_id in wanted:
            out[version.version_id] = Observation(version.status, version.duration)
    return out


async def list_v2(
    target: V2Target, limiter: AdaptiveRateLimiter, *, wanted: Container[int | str] | None = None
) -> dict[int | str, Observation]:
    """One complete search of a v2 sweep's jobs (training job id -> its phase), each page within
    the limiter (as a v1 listing's); only the jobs in ``wanted`` are kept (all when None). A
    throttled page is asked again after the limiter's pause, up to MAX_THROTTLES times; other
    errors propagate."""

    def fetch(offset: int) -> Awaitable[JobSearchPage]:
        return _paced(partial(target.page, offset), limiter)

    jobs = await walk_jobs(fetch, what=f"jobs named like {target.name_prefix!r}")
    return {
        job.id: Observation(job.phase or "Unknown", job.status.duration)
        for job in jobs
        if wanted is None or job.id in wanted
    }


def _page(
    client: VersionLister, job_id: int, page: int, per_page: int, limiter: AdaptiveRateLimiter
) -> Awaitable[VersionList]:
    return _paced(partial(client.list_versions_page, job_id, page=page, per_page=per_page),
                  limiter)


async def _paced(read: Callable[[], Awaitable[_T]], limiter: AdaptiveRateLimiter) -> _T:
    """One read within the limiter; a throttled one asked again after its pause, up to
    MAX_THROTTLES times."""
    throttled = 0
    while True:
        sent_at = await limiter.acquire()
        try:
            listing = await read()
        except ThrottledError as exc:
            limiter.on_throttled(exc, sent_at=sent_at)  # it pauses every caller as asked
            throttled += 1
            if throttled >= MAX_THROTTLES:
                raise
            continue
        limiter.on_success()
        return listing


ListOne = Callable[[int], Awaitable[dict[int | str, Observation]]]  # job -> its listing


class _Poller:
    """One round of listings: the jobs in parallel, errors sorted into transient and fatal."""

    def __init__(self, list_one: ListOne, board: Board) -> None:
        self.list_one, self.board = list_one, board
        self.failures: Counter[int] = Counter()  # job -> listings failed in a row

    async def round(self, jobs: Sequence[int]) -> dict[int, dict[int | str, Observation]]:
        listings: dict[int, dict[int | str, Observation]] = {}
        fatal: list[BatchSubmitError] = []
        slots = anyio.CapacityLimiter(4)

        async def one(job_id: int) -> None:
            async with slots:
                try:
                    listings[job_id] = await self.list_one(job_id)
                except BatchSubmitError as exc:
                    self.failures[job_id] += 1
                    transient = exc.disposition in (Disposition.RETRY, Disposition.RECONCILE)
                    log.warning(
                        "batchsubmit.watch.list_failed", job_id=job_id, error=str(exc),
                        error_code=exc.error_code, request_id=getattr(exc, "request_id", None),
                        in_a_row=self.failures[job_id], will_retry=transient,
                    )  # fmt: skip
                    if not transient or self.failures[job_id] >= MAX_LIST_FAILURES:
                        fatal.append(exc)
                else:
                    self.failures.pop(job_id, None)

        async with anyio.create_task_group() as tg:
            for job_id in jobs:
                tg.start_soon(one, job_id)
        if fatal:
            raise fatal[0]
        return listings


async def watch_ledger(
    ledger_path: str | os.PathLike[str],
    *,
    client: VersionLister,
    job_ids: Sequence[int] | None = None,
    interval: float = DEFAULT_INTERVAL,
    limiter: AdaptiveRateLimiter,
    on_round: Callable[[Board, int, float], None] | None = None,
    clock: Callable[[], float] = monotonic,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    missing_polls: int = MISSING_POLLS,
    missing_grace: float = MISSING_GRACE,
    writer: LedgerWriter | None = None,
) -> WatchResult:
    """Follow every succeeded point's version of the ledger until each one stops.

    Appends a ``status`` line whenever a status changes, through ``writer`` when the caller
    holds the ledger open (``run --watch``), else through a writer of its own. ``job_ids``
    defaults to the ledger's last run's. ``on_round(board, polls, elapsed)`` is called after each
    round of listings (the command line draws the board), else :func:`log_round`. Raises
    BatchSubmitError (LedgerError, UsageError, AuthError...) when it cannot go on;
    ``WatchResult.ok`` says how the trainings ended.
    """
    if interval <= 0:
        raise UsageError(f"--interval must be positive, got {interval}")
    state = read_ledger(ledger_path)
    if not state.runs:
        raise UsageError(
            f"{os.fspath(ledger_path)}: no run recorded in this ledger; `batchsubmit run` writes "
            "one, and `watch` follows the versions it created"
        )
    board = Board.from_state(state, missing_polls=missing_polls, missing_grace=missing_grace)
    jobs, list_one = _lister(state, client, limiter, board, job_ids)
    unwatched = (state.total or 0) - len(board)
    log.info(
        "batchsubmit.watch.started", sweep=state.sweep, versions=len(board), jobs=len(jobs),
        unfinished=sum(1 for _ in board.unfinished()), without_version=max(0, unwatched),
        interval_s=interval, api=board.api,
    )  # fmt: skip
    sweep = state.sweep
    del state  # the fold may be large: only the board is needed from here on
    polls = 0
    if not board.done:
        async with contextlib.AsyncExitStack() as stack:
            if writer is None:
                writer = await stack.enter_async_context(
                    LedgerWriter(ledger_path, expected_sweep=sweep)
                )
            rounds = _Rounds(_Poller(list_one, board), writer, jobs, clock,
                             on_round or log_round)
            polls = await rounds.until_done(interval, sleep)
    return _result(board, polls, unwatched)


def _lister(
    state: LedgerState,
    client: VersionLister,
    limiter: AdaptiveRateLimiter,
    board: Board,
    job_ids: Sequence[int] | None,
) -> tuple[tuple[int, ...], ListOne]:
    """The jobs a round lists, and how one is listed: each v1 job's versions, or for a v2
    ledger the one search of its jobs by name prefix (a ModelArtsClient's)."""
    settings = state.settings
    if settings is not None and settings.api == "v2":
        if not isinstance(client, ModelArtsClient):
            raise TypeError(f"watching v2 training jobs needs a ModelArtsClient, not {client!r}")
        prefix = name_prefix(state)
        target = V2Target(client, name_prefix=prefix, workspace_id=settings.workspace_id)
        log.info("batchsubmit.watch.v2_search", name_prefix=prefix,
                 workspace_id=settings.workspace_id)  # fmt: skip

        def search(job_id: int) -> Awaitable[dict[int | str, Observation]]:
            return list_v2(target, limiter, wanted=board.tracked)

        return (V2_LISTING,), search
    jobs = tuple(job_ids) if job_ids else job_ids_of(state)

    def listing(job_id: int) -> Awaitable[dict[int | str, Observation]]:
        return list_job(client, job_id, limiter, wanted=board.tracked)

    return jobs, listing


@dataclass
class _Rounds:
    """The watch's loop: a round of listings per interval until every version has ended."""

    poller: _Poller
    writer: LedgerWriter
    jobs: tuple[int, ...]
    clock: Callable[[], float]
    on_round: Callable[[Board, int, float], None]

    async def until_done(self, interval: float, sleep: Callable[[float], Awaitable[None]]) -> int:
        """The rounds made."""
        board, clock = self.poller.board, self.clock
        started = clock()
        polls = 0
        while True:
            listings = await self.poller.round(board.jobs_to_poll(self.jobs))
            polls += 1
            changed = board.observe(listings, job_ids=self.jobs, now=clock())
            if changed:
                await self.writer.write_many(changed)
                for record in changed:
                    log.debug(
                        "batchsubmit.watch.status_changed", key=record["key"],
                        version_id=object_id(record), status=record["status_name"],
                    )  # fmt: skip
                    if "training_job_id" in record and not phases.is_known_phase(
                        record["status_name"]
                    ):
                        log.warning(
                            "batchsubmit.watch.unknown_phase", key=record["key"],
                            training_job_id=record["training_job_id"],
                            phase=record["status_name"], treated_as="active",
                        )  # fmt: skip
            self.on_round(board, polls, clock() - started)
            if board.done:
                return polls
            await sleep(_until_next(started, clock(), interval))


def _until_next(started: float, now: float, interval: float) -> float:
    """Seconds to the next tick ``started + k * interval`` after ``now`` (missed ticks skipped)."""
    ticks = math.floor((now - started) / interval) + 1
    return max(0.0, started + ticks * interval - now)


def log_round(board: Board, polls: int, elapsed: float) -> None:
    """The ``batchsubmit.watch.progress`` event of one round (when nobody draws the board)."""
    counts = board.counts()
    log.info(
        "batchsubmit.watch.progress", poll=polls, elapsed_s=round(elapsed, 1),
        versions=len(board), unfinished=sum(1 for _ in board.unfinished()),
        counts=dict(counts.most_common()),
    )  # fmt: skip


def _result(board: Board, polls: int, unwatched: int) -> WatchResult:
    counts = board.counts()
    ok = board.all_ok()
    failed = board.failed()
    parts = [f"{n} {name}" for name, n in counts.most_common()]
    summary = ", ".join(parts) if parts else "nothing to watch"
    message = f"{len(board)} {board.noun}: {summary}" if len(board) else summary
    if failed:
        message += f"; {len(failed)} ended without completing"
    if unwatched > 0:
        some = "1 point has" if unwatched == 1 else f"{unwatched} points have"
        what = "training job" if board.api == "v2" else "version"
        message += f"; {some} no {what} (failed, unknown or not started)"
    log.info(
        "batchsubmit.watch.finished", ok=ok, polls=polls, counts=dict(counts),
        failed=len(failed),
    )  # fmt: skip
    return WatchResult(ok, board.final(), dict(counts.most_common()), polls, message)

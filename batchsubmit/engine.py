"""The submission pool: create every point's version once, within the limits, recording each step.

One anyio task group: a crew of a few workers per request slot pulls points from the lazy
expansion, so memory stays flat however long the sweep. Every create goes through the shared
adaptive limiter. For each attempt the ``submitted`` intent is durable in the ledger *before* the
request leaves; what follows an error is decided by the error's ``disposition``:

- RETRY: nothing happened on the server; back off (full jitter, Retry-After as a floor), resend.
- RECONCILE: the version may exist; look for it in a shared listing before any resend.
- FAIL: the server refused this point; record it and go on.
- ABORT: nothing can succeed (credentials, ledger); stop taking points at once.

The very first point is sent alone, so wrong credentials cost one refused request, not one per
worker (five refusals in a row lock an AK for five minutes).
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from time import monotonic, time
from typing import Any, Protocol

import anyio

from batchsubmit import ledger as records
from batchsubmit.errors import (
    APIError,
    BatchSubmitError,
    Disposition,
    IdentityConflictError,
    NameTakenError,
    NotSentError,
    QuotaExceededError,
    ThrottledError,
)
from batchsubmit.events import get_logger
from batchsubmit.limiter import AdaptiveRateLimiter, Turn
from batchsubmit.reconcile import Reconciler
from batchsubmit.retry import Backoff, FailureWindow
from batchsubmit.sweep import Point
from batchsubmit.target import Created, PointListing, Target

__all__ = ["Engine", "EngineStats", "Item", "RecordSink"]

_POINTS_PER_SLOT = 8
Item = tuple[int, Point, int]  # (job_id, point, attempts made in earlier runs)

log = get_logger("batchsubmit.engine")


class RecordSink(Protocol):
    async def write(self, record: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A frozen snapshot for progress displays: what the pool is doing right now."""

    total: int = 0
    skipped: int = 0  # settled by an earlier run
    succeeded: int = 0
    failed: int = 0
    reconciled: int = 0  # of succeeded: found on the server rather than created now
    unresolved: int = 0  # outcome still unknown (left pending for the next run)
    in_flight: int = 0
    retrying: int = 0  # points waiting for their next attempt
    retries: int = 0  # requests of this run that were a point's second (or later) attempt
    sending_s: float = 0.0  # seconds since this run's first request (0 before it)
    requests: int = 0
    throttled: int = 0
    rate: float = 0.0

    @property
    def done(self) -> int:
        return self.skipped + self.succeeded + self.failed + self.unresolved


class _Counters:
    """Live counters, bumped on the hot path; :class:`EngineStats` is their frozen snapshot."""

    __slots__ = ("failed", "in_flight", "reconciled", "requests", "retries", "retrying", "skipped",
                 "succeeded", "total", "unresolved")

    def __init__(self) -> None:
        self.total = self.skipped = self.succeeded = self.failed = self.reconciled = 0
        self.unresolved = self.in_flight = self.retrying = self.requests = self.retries = 0

    def snapshot(self, *, throttled: int, rate: float, sending_s: float) -> EngineStats:
        return EngineStats(
            **{name: getattr(self, name) for name in self.__slots__},
            throttled=throttled, rate=rate, sending_s=sending_s,
        )


class Engine:
    """Submits points; see the module docstring. One engine per run."""

    def __init__(
        self,
        *,
        api: Target,
        ledger: RecordSink,
        limiter: AdaptiveRateLimiter,
        reconcilers: Mapping[int, Reconciler],
        concurrency: int = 8,
        max_attempts: int = 6,
        backoff: Backoff | None = None,
        failure_window: FailureWindow | None = None,
        clock: Callable[[], float] = monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._api = api
        self._ledger = ledger
        self._limiter = limiter
        self._reconcilers = reconcilers
        self._concurrency = max(1, concurrency)
        self._slots = anyio.Semaphore(self._concurrency, fast_acquire=True)  # in flight
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff or Backoff()
        self._window = failure_window or FailureWindow()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._counters = _Counters()
        self._stop = anyio.Event()
        self.abort_error: BatchSubmitError | None = None
        self.halt_reason: str | None = None
        self.interrupted = False
        self._on_server: Mapping[int, PointListing] = {}
        self._first_send: float | None = None

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<Engine done={s.done}/{s.total} in_flight={s.in_flight} retrying={s.retrying} "
            f"stopping={self._stop.is_set()} {self._limiter!r}>"
        )

    @property
    def stats(self) -> EngineStats:
        first = self._first_send
        return self._counters.snapshot(
            throttled=self._limiter.throttles, rate=self._limiter.rate,
            sending_s=0.0 if first is None else self._clock() - first,
        )

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def set_total(self, total: int) -> None:
        self._counters.total = total

    def count_skipped(self, n: int = 1) -> None:
        self._counters.skipped += n

    def interrupt(self) -> None:
        """Stop taking new points (Ctrl-C); requests in flight finish and are recorded."""
        self.interrupted = True
        self._stop.set()

    # -- the pool ---------------------------------------------------------------------------

    async def run(
        self, items: Iterable[Item], *, on_server: Mapping[int, PointListing] | None = None
    ) -> None:
        """Submit ``(job_id, point, attempts_so_far)`` items; returns when done or stopped.

        ``on_server`` holds each job's listing taken at the start of the run: a point already
        there (a crash before its outcome was written, a lost ledger) is adopted, not re-sent.
        """
        self._on_server = on_server or {}
        iterator = iter(items)
        first = next(iterator, None)
        if first is None:
            return
        await self.submit(*first)  # alone: a canary for the credentials
        if self._stop.is_set():
            return
        # A fixed crew of workers pulls points from one iterator, a few workers per request
        # slot: a point waiting out a backoff or a reconciliation holds no slot (the slots guard
        # the create call alone), and no more points than workers are open, so memory stays
        # flat. A crew rather than a task per point: spawning one costs as much as the rest of
        # the engine's work on it.
        workers = self._concurrency * _POINTS_PER_SLOT
        if self._counters.total:  # no more workers than points
            workers = min(workers, self._counters.total)
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(self._work, iterator)

    async def _work(self, items: Iterator[Item]) -> None:
        while not self._stop.is_set():  # checked before taking a point: none is taken in vain
            item = next(items, None)  # shared: each item goes to one worker
            if item is None:
                return
            await self.submit(*item)

    # -- one point --------------------------------------------------------------------------

    async def _intend(self, point: Point, attempts: int, turn: Turn) -> None:
        """Make the attempt's ``submitted`` intent durable, stamped with its turn.

        A re-run waits the settle interval after an intent's time before concluding that a
        pending point's version does not exist, so that time must not precede the send: it is
        the turn (rounded up to the ms), and the request leaves at the turn. The limiter gives
        the turn a lead for this write, so its fsync's jitter falls before the turn rather than
        between the turn and the send, where it would space two sends closer than the rate
        allows; a Retry-After pause was waited out before it. Only an intent durable after its
        turn (its write outlasted the lead, which then grows) precedes its send, by that much.
        """
        when = time() + (turn.at - self._clock())
        ts = records.timestamp_ms(math.ceil(when * 1000))
        await self._ledger.write(
            records.submitted(key=point.key, index=point.index, attempt=attempts,
                              train_url=point.train_url, ts=ts)
        )

    async def submit(self, job_id: int, point: Point, attempts: int = 0) -> None:
        """Create one point's version, attempting up to ``max_attempts`` times in this run."""
        if await self._settled_at_start(job_id, point, attempts):
            return
        # Whether an earlier attempt may have created the point's object: any intent of an
        # earlier run (its outcome was never learnt, or it is being retried), and in this run an
        # attempt whose outcome is unknown; not a throttled, unsent or refused one.
        may_exist = attempts > 0
        for attempt_in_run in range(1, self._max_attempts + 1):
            if self._stop.is_set():
                return
            attempts += 1
            async with self._slots:
                # A stop may have come while this point waited for its slot or its turn: after
                # an abort (a refused credential) not one of the requests queued behind may go.
                if self._stop.is_set():
                    return
                # Paced first, then the intent, written just before the turn (see _intend)
                turn = await self._limiter.reserve()
                if self._first_send is None:
                    self._first_send = turn.at
                if self._stop.is_set():
                    return
                await self._intend(point, attempts, turn)
                sent_at = await self._limiter.depart(turn)
                counters = self._counters
                counters.in_flight += 1
                counters.requests += 1
                counters.retries += attempt_in_run > 1
                try:
                    reply = await self._api.create(job_id, point)
                except BatchSubmitError as exc:
                    error: BatchSubmitError = exc
                    reply = None
                finally:
                    counters.in_flight -= 1
            if reply is not None:
                self._limiter.on_success()
                self._window.record(False)
                await self._succeed(
                    point, attempts, reply,
                    reconciled=False, latency_ms=(self._clock() - sent_at) * 1000,
                )
                return
            if not await self._handle(
                job_id, point, error, attempts, sent_at, attempt_in_run, may_exist=may_exist
            ):
                return
            may_exist = may_exist or error.disposition is Disposition.RECONCILE
        raise AssertionError("unreachable: the last attempt always settles the point")

    async def _settled_at_start(self, job_id: int, point: Point, attempts: int) -> bool:
        """Adopt the point's object if the run's start listing shows it (a crash before its
        outcome was written, a lost ledger), or fail it if another holds its identity."""
        listing = self._on_server.get(job_id)
        if listing is None:
            return False
        try:
            found = listing.find(point)
        except IdentityConflictError as conflict:
            await self._conflict(job_id, point, conflict, attempts)
            return True
        if found is None:
            return False
        await self._succeed(point, attempts, found, reconciled=True, latency_ms=None)
        return True

    async def _handle(
        self, job_id: int, point: Point, error: BatchSubmitError, attempts: int, sent_at: float,
        attempt_in_run: int, *, may_exist: bool = False,
    ) -> bool:
        """Settle the point after a failed attempt, or return True to attempt again."""
        disposition = error.disposition
        fields = {"key": point.key, "job_id": job_id, "attempt": attempts, "error": str(error)}
        if error.error_code is not None:
            fields["error_code"] = error.error_code
        if isinstance(error, NameTakenError):  # an answer about the point, not a failed request
            self._limiter.on_success()
            await self._name_taken(job_id, point, error, attempts, may_exist=may_exist)
            return False
        self._account(error, sent_at)
        if isinstance(error, QuotaExceededError):
            # Refused before anything was made, and so would the rest be until jobs end: stop. The
            # intent stays pending (cheaply reconciled), so the next run sends the point.
            self._counters.unresolved += 1
            if self.halt_reason is None:
                self.halt_reason = (
                    f"a quota of the service is used up ({error}): stopped sending; run again "
                    "once jobs have finished (or the quota was raised) to send the rest"
                )
                log.error("batchsubmit.run.halted", reason=self.halt_reason, **fields)
            self._stop.set()
            return False
        if disposition is Disposition.ABORT:
            # No outcome is written: the intent stays pending, and the next run reconciles it.
            log.error("batchsubmit.submit.aborted", **fields)
            self.abort_error = self.abort_error or error
            self._stop.set()
            return False
        if disposition is Disposition.FAIL:
            log.warning("batchsubmit.submit.refused", **fields)
            await self._fail(point, error, attempts)
            return False
        if disposition is Disposition.RECONCILE:
            log.info("batchsubmit.submit.outcome_unknown", **fields)
            if await self._reconcile(job_id, point, attempts):
                return False
        if attempt_in_run >= self._max_attempts:
            log.warning("batchsubmit.submit.gave_up", **fields)
            await self._fail(point, error, attempts)
            return False
        if self._stop.is_set():
            return False  # halting or interrupted: the intent stays pending for the next run
        delay = self._backoff.delay(attempt_in_run, error, random=self._rng.random)
        # A throttle is expected pacing, shown as a count on the progress bar: debug, not info.
        report = log.debug if isinstance(error, ThrottledError) else log.info
        report("batchsubmit.submit.retry_scheduled", wait=round(delay, 3), **fields)
        self._counters.retrying += 1
        try:
            await self._sleep(delay)
        finally:
            self._counters.retrying -= 1
        return True

    def _account(self, error: BatchSubmitError, sent_at: float) -> None:
        """What a failed attempt says about the rate, and about the failure-rate guard."""
        if isinstance(error, ThrottledError):
            self._limiter.on_throttled(error, sent_at=sent_at)
            return
        if isinstance(error, NotSentError):  # never reached the server: says nothing
            return
        self._limiter.on_success()  # an answer, even a no, says the rate is fine
        self._window.record(True)
        if self._window.tripped and self.halt_reason is None:
            self.halt_reason = (
                f"more than {self._window.threshold:.0%} of the last {self._window.size} "
                "requests failed: halting rather than burning the quota"
            )
            log.error("batchsubmit.run.halted", reason=self.halt_reason)
            self._stop.set()

    async def _name_taken(
        self, job_id: int, point: Point, error: NameTakenError, attempts: int, *,
        may_exist: bool,
    ) -> None:
        """The server holds an object of the point's unique name. After an earlier attempt of
        ours that may have created it (``may_exist``), that attempt landed: adopt the object
        found by name, or, while the listing does not show it yet, leave the point pending
        (never resend). Otherwise (a first send, or earlier attempts that were throttled,
        never sent or refused) it is someone else's: fail the point as an identity conflict."""
        if not may_exist:
            await self._conflict(job_id, point, IdentityConflictError(
                f"the name of this point's object is taken on the server ({error}), and no "
                "earlier attempt of this ledger can have created it (none was sent, or each was "
                "throttled, refused or never left): it is not this point's, so it is not "
                "adopted; rename the point's object or remove the other one (if this ledger "
                "was lost, run again with --retry-failed once the server lists that object: "
                "one with the point's own content is adopted then)"
            ), attempts)
            return
        log.info("batchsubmit.submit.name_taken", key=point.key, job_id=job_id, attempt=attempts)
        if await self._reconcile(job_id, point, attempts):
            return
        log.warning("batchsubmit.submit.unreconciled", key=point.key,
                    error="the name is taken but its object is not listed yet: left pending")
        self._counters.unresolved += 1

    async def _reconcile(self, job_id: int, point: Point, attempts: int) -> bool:
        """Look for the point's version after an unknown outcome; True once the point is
        settled (found, a conflict, or left pending), False when it is surely absent."""
        try:
            found = await self._reconcilers[job_id].find(
                point, doubt_at=self._clock()
            )
        except IdentityConflictError as conflict:
            await self._conflict(job_id, point, conflict, attempts)
            return True
        except BatchSubmitError as exc:  # an incomplete listing proves nothing: left pending
            log.error("batchsubmit.submit.unreconciled", key=point.key, error=str(exc))
            self._counters.unresolved += 1
            if exc.disposition is Disposition.ABORT:
                self.abort_error = self.abort_error or exc
                self._stop.set()
            return True
        if found is None:
            return False
        await self._succeed(
            point, attempts, found,
            reconciled=True, latency_ms=None,
        )
        return True

    async def _succeed(
        self, point: Point, attempts: int, created: Created,
        *, reconciled: bool, latency_ms: float | None,
    ) -> None:
        await self._ledger.write(
            records.succeeded(
                key=point.key, index=point.index, **created.ledger_fields(),  # type: ignore[arg-type]
                parameter=point.parameter,
                train_url=point.train_url, attempts=attempts, reconciled=reconciled,
                latency_ms=None if latency_ms is None else round(latency_ms, 1),
            )
        )
        self._counters.succeeded += 1
        self._counters.reconciled += reconciled

    async def _conflict(
        self, job_id: int, point: Point, conflict: IdentityConflictError, attempts: int
    ) -> None:
        log.error("batchsubmit.submit.identity_conflict", key=point.key, job_id=job_id,
                  error_code=conflict.error_code, error=str(conflict))
        await self._fail(point, conflict, attempts)

    async def _fail(self, point: Point, error: BatchSubmitError, attempts: int) -> None:
        api = error if isinstance(error, APIError) else None
        await self._ledger.write(
            records.failed(
                key=point.key, index=point.index, error_code=error.error_code,
                error_message=str(error) if api is None else api.error_message,
                http_status=None if api is None else api.http_status,
                request_id=None if api is None else api.request_id,
                attempts=attempts, parameter=point.parameter,
            )
        )
        self._counters.failed += 1


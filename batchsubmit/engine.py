"""The submission pool: create every point's version once, within the limits, recording each step.

One anyio task group: a producer feeds points through a bounded stream to ``concurrency``
workers, so memory stays flat however long the sweep. Every create goes through the shared
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

import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from time import monotonic
from typing import Any, Protocol

import anyio
import structlog
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from batchsubmit import ledger as records
from batchsubmit.errors import (
    APIError,
    BatchSubmitError,
    Disposition,
    ThrottledError,
)
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.models import CreateVersionResponse
from batchsubmit.reconcile import Listing, Reconciler, identity
from batchsubmit.retry import Backoff, FailureWindow
from batchsubmit.sweep import Point

__all__ = ["Engine", "EngineStats", "RecordSink", "VersionCreator"]

log = structlog.get_logger("batchsubmit.engine")


class VersionCreator(Protocol):
    async def create_version(
        self, job_id: int, body: Mapping[str, Any]
    ) -> CreateVersionResponse: ...


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
    requests: int = 0
    throttled: int = 0
    rate: float = 0.0

    @property
    def done(self) -> int:
        return self.skipped + self.succeeded + self.failed + self.unresolved


@dataclass
class _Counters:
    stats: EngineStats = field(default_factory=EngineStats)

    def bump(self, **deltas: int) -> None:
        s = self.stats
        self.stats = replace(s, **{k: getattr(s, k) + v for k, v in deltas.items()})


class Engine:
    """Submits points; see the module docstring. One engine per run."""

    def __init__(
        self,
        *,
        api: VersionCreator,
        ledger: RecordSink,
        limiter: AdaptiveRateLimiter,
        reconciler: Reconciler,
        job_id: int,
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
        self._reconciler = reconciler
        self._job_id = job_id
        self._concurrency = max(1, concurrency)
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
        self._on_server: Listing | None = None

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<Engine done={s.done}/{s.total} in_flight={s.in_flight} retrying={s.retrying} "
            f"stopping={self._stop.is_set()} {self._limiter!r}>"
        )

    @property
    def stats(self) -> EngineStats:
        return replace(
            self._counters.stats, throttled=self._limiter.throttles, rate=self._limiter.rate
        )

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def set_total(self, total: int, skipped: int = 0) -> None:
        self._counters.stats = replace(self._counters.stats, total=total, skipped=skipped)

    def count_skipped(self, n: int = 1) -> None:
        self._counters.bump(skipped=n)

    def interrupt(self) -> None:
        """Stop taking new points (Ctrl-C); requests in flight finish and are recorded."""
        self.interrupted = True
        self._stop.set()

    # -- the pool ---------------------------------------------------------------------------

    async def run(
        self, points: Iterable[tuple[Point, int]], *, on_server: Listing | None = None
    ) -> None:
        """Submit ``(point, attempts_so_far)`` pairs; returns when all are done or the run stops.

        ``on_server`` is the listing taken at the start of the run: a point already there (a
        crash before its outcome was written, a lost ledger) is adopted, not sent again.
        """
        self._on_server = on_server
        iterator = iter(points)
        first = next(iterator, None)
        if first is None:
            return
        await self.submit(*first)  # alone: a canary for the credentials
        if self._stop.is_set():
            return
        send: ObjectSendStream[tuple[Point, int]]
        receive: ObjectReceiveStream[tuple[Point, int]]
        send, receive = anyio.create_memory_object_stream(max_buffer_size=self._concurrency)
        async with anyio.create_task_group() as tg:
            for _ in range(self._concurrency):
                tg.start_soon(self._work, receive.clone())
            receive.close()
            async with send:
                for item in iterator:
                    if self._stop.is_set():
                        break
                    await send.send(item)
                    await anyio.lowlevel.checkpoint()

    async def _work(self, receive: ObjectReceiveStream[tuple[Point, int]]) -> None:
        async with receive:
            async for point, attempts in receive:
                if self._stop.is_set():
                    continue  # drain without sending
                await self.submit(point, attempts)

    # -- one point --------------------------------------------------------------------------

    async def submit(self, point: Point, attempts: int = 0) -> None:
        """Create one point's version, attempting up to ``max_attempts`` times in this run."""
        if self._on_server is not None:
            found = self._on_server.find(identity(point.train_url, point.parameter))
            if found is not None:
                await self._succeed(
                    point, attempts, found.version_id, found.version_name,
                    reconciled=True, latency_ms=None,
                )
                return
        for attempt_in_run in range(1, self._max_attempts + 1):
            if self._stop.is_set():
                return
            attempts += 1
            await self._ledger.write(
                records.submitted(
                    key=point.key, index=point.index, attempt=attempts, train_url=point.train_url
                )
            )
            sent_at = await self._limiter.acquire()
            self._counters.bump(in_flight=1, requests=1)
            try:
                reply = await self._api.create_version(self._job_id, point.body)
            except BatchSubmitError as exc:
                error: BatchSubmitError = exc
            else:
                self._counters.bump(in_flight=-1)
                self._limiter.on_success()
                self._window.record(False)
                await self._succeed(
                    point, attempts, reply.version_id, reply.version_name,
                    reconciled=False, latency_ms=(self._clock() - sent_at) * 1000,
                )
                return
            self._counters.bump(in_flight=-1)
            if not await self._handle(point, error, attempts, sent_at, attempt_in_run):
                return
        raise AssertionError("unreachable: the last attempt always settles the point")

    async def _handle(
        self, point: Point, error: BatchSubmitError, attempts: int, sent_at: float,
        attempt_in_run: int,
    ) -> bool:
        """Settle the point after a failed attempt, or return True to attempt again."""
        disposition = error.disposition
        fields = {"key": point.key, "index": point.index, "attempt": attempts,
                  "error_code": error.error_code, "error": str(error)}
        if isinstance(error, ThrottledError):
            self._limiter.on_throttled(error, sent_at=sent_at)
        else:
            self._limiter.on_success()  # an answer, even a no, says the rate is fine
            self._window.record(True)
            if self._window.tripped and self.halt_reason is None:
                self.halt_reason = (
                    f"more than {self._window.threshold:.0%} of the last {self._window.size} "
                    "requests failed: halting rather than burning the quota"
                )
                log.error("batchsubmit.run.halted", reason=self.halt_reason)
                self._stop.set()
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
            try:
                found = await self._reconciler.find(
                    identity(point.train_url, point.parameter), doubt_at=self._clock()
                )
            except BatchSubmitError as exc:
                log.error("batchsubmit.submit.unreconciled", key=point.key, error=str(exc))
                self._counters.bump(unresolved=1)
                if exc.disposition is Disposition.ABORT:
                    self.abort_error = self.abort_error or exc
                    self._stop.set()
                return False
            if found is not None:
                await self._succeed(
                    point, attempts, found.version_id, found.version_name,
                    reconciled=True, latency_ms=None,
                )
                return False
        if attempt_in_run >= self._max_attempts:
            log.warning("batchsubmit.submit.gave_up", **fields)
            await self._fail(point, error, attempts)
            return False
        if self._stop.is_set():
            return False  # halting or interrupted: the intent stays pending for the next run
        delay = self._backoff.delay(attempt_in_run, error, random=self._rng.random)
        log.info("batchsubmit.submit.retry_scheduled", wait=round(delay, 3), **fields)
        self._counters.bump(retrying=1)
        try:
            await self._sleep(delay)
        finally:
            self._counters.bump(retrying=-1)
        return True

    async def _succeed(
        self, point: Point, attempts: int, version_id: int, version_name: str,
        *, reconciled: bool, latency_ms: float | None,
    ) -> None:
        await self._ledger.write(
            records.succeeded(
                key=point.key, index=point.index, version_id=version_id,
                version_name=version_name, parameter=point.parameter,
                train_url=point.train_url, attempts=attempts, reconciled=reconciled,
                latency_ms=None if latency_ms is None else round(latency_ms, 1),
            )
        )
        self._counters.bump(succeeded=1, reconciled=int(reconciled))
        log.debug(
            "batchsubmit.submit.accepted", key=point.key, version_id=version_id,
            reconciled=reconciled,
        )

    async def _fail(self, point: Point, error: BatchSubmitError, attempts: int) -> None:
        api = error if isinstance(error, APIError) else None
        await self._ledger.write(
            records.failed(
                key=point.key, index=point.index, error_code=error.error_code,
                error_message=str(error) if api is None else api.error_message,
                http_status=None if api is None else api.http_status,
                request_id=None if api is None else api.request_id,
                attempts=attempts,
            )
        )
        self._counters.bump(failed=1)


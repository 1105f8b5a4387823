"""Reconciliation: before re-sending a create whose outcome is unknown, look for its object.

How a point is recognised is the target's (:class:`~batchsubmit.target.PointListing`; for v1 a
normalised train_url confirmed by its parameters, :mod:`batchsubmit.v1`). Listings are complete
walks or errors, never partial, so "absent" is never concluded from a listing that missed pages.

Listings are shared: every point that needs a look at the server waits for one
listing that *started after* its own doubt arose (an older listing could have missed its version),
so a burst of timeouts costs one paged listing, not one per point. The list may lag creation, so
"not there" is only concluded after a second listing one settle interval later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import monotonic

import anyio

from batchsubmit.errors import BatchSubmitError, Disposition, ThrottledError
from batchsubmit.events import get_logger
from batchsubmit.retry import Backoff
from batchsubmit.sweep import Point
from batchsubmit.target import Created, PointListing

__all__ = ["ListPoints", "Reconciler"]

log = get_logger("batchsubmit.reconcile")

ListPoints = Callable[[float], Awaitable[PointListing]]  # started_at -> a complete listing


class Reconciler:
    """Shares job listings between every point that needs one."""

    def __init__(
        self,
        list_points: ListPoints,
        *,
        settle: float = 2.0,
        max_attempts: int = 6,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._list_points = list_points
        self.settle = settle
        self._max_attempts = max_attempts
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._sleep = sleep
        self._latest: PointListing | None = None
        self._in_flight: anyio.Event | None = None
        self._in_flight_started = 0.0
        self._failure: BatchSubmitError | None = None
        self.listings = 0

    def __repr__(self) -> str:
        busy = "listing" if self._in_flight else "idle"
        return f"<Reconciler {busy} listings={self.listings} settle={self.settle}s>"

    async def listing(self, *, not_before: float) -> PointListing:
        """A listing that started at or after ``not_before`` (clock time), shared when possible."""
        while True:
            if self._latest is not None and self._latest.started_at >= not_before:
                return self._latest
            if self._in_flight is not None:
                event = self._in_flight
                await event.wait()
                if self._failure is not None and self._in_flight_started >= not_before:
                    raise self._failure
                continue
            now = self._clock()
            if now < not_before:
                await self._sleep(not_before - now)
                continue
            await self._refresh()

    async def find(self, point: Point, *, doubt_at: float) -> Created | None:
        """What a point created, if it exists, doubting since ``doubt_at`` (clock time).

        Looks once in a listing begun after the doubt arose and, if absent, once more a settle
        interval later, since new objects may show in the list only after a lag. Raises
        IdentityConflictError (from the listing) when another object holds the point's identity.
        """
        found = (await self.listing(not_before=doubt_at)).find(point)
        if found is None and self.settle > 0:
            found = (await self.listing(not_before=doubt_at + self.settle)).find(point)
        return found

    async def _refresh(self) -> None:
        event = self._in_flight = anyio.Event()
        started = self._in_flight_started = self._clock()
        self._failure = None
        try:
            self._latest = await self._list_with_retries(started)
        except BatchSubmitError as exc:
            self._failure = exc
            raise
        else:
            self.listings += 1
            log.debug("batchsubmit.reconcile.listed", listings=self.listings)
        finally:
            self._in_flight = None
            event.set()

    async def _list_with_retries(self, started: float) -> PointListing:
        attempt = 1
        while True:
            try:
                return await self._list_points(started)
            except BatchSubmitError as exc:
                # A listing is a read: anything but a refusal of our credentials is worth retrying.
                if exc.disposition is Disposition.ABORT or attempt >= self._max_attempts:
                    raise
                delay = self._backoff.delay(attempt, exc)
                report = log.debug if isinstance(exc, ThrottledError) else log.info
                report(
                    "batchsubmit.reconcile.list_retry", attempt=attempt,
                    error_code=exc.error_code, error=str(exc), wait=round(delay, 3),
                )
                attempt += 1
                await self._sleep(delay)

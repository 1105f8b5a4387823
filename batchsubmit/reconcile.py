"""Reconciliation: before re-sending a create whose outcome is unknown, look for its version.

A point is identified on the server by its rendered ``train_url``, normalised, and confirmed by
its ``parameter`` list compared by value (:mod:`batchsubmit.identity`); a version on the point's
train_url that does not confirm it is an :class:`IdentityConflictError`. Listings are complete
walks (:mod:`batchsubmit.paging`) or errors, never partial.

Listings are shared: every point that needs a look at the server waits for one
listing that *started after* its own doubt arose (an older listing could have missed its version),
so a burst of timeouts costs one paged listing, not one per point. The list may lag creation, so
"not there" is only concluded after a second listing one settle interval later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import monotonic

import anyio
import structlog

from batchsubmit.errors import BatchSubmitError, Disposition, IdentityConflictError
from batchsubmit.identity import disagreements, normalise_train_url
from batchsubmit.models import Version
from batchsubmit.retry import Backoff

__all__ = ["Listing", "Reconciler", "identity"]

log = structlog.get_logger("batchsubmit.reconcile")

Identity = tuple[str, tuple[tuple[str, str], ...]]


def identity(train_url: str, parameter: Sequence[tuple[str, str]]) -> Identity:
    """The identity of a point (or a version) on the server."""
    return train_url, tuple(parameter)


@dataclass(frozen=True, slots=True)
class Listing:
    """Every version of the job at one moment, indexed by normalised train_url."""

    started_at: float
    by_train_url: dict[str, list[Version]]
    latest_version_id: int | None = None  # the newest version of the job, ours or not

    @classmethod
    def build(cls, started_at: float, versions: Sequence[Version]) -> Listing:
        index: dict[str, list[Version]] = {}
        for version in versions:
            if version.train_url is not None:
                index.setdefault(normalise_train_url(version.train_url), []).append(version)
        for found in index.values():
            found.sort(key=_age)
        latest = max(versions, key=_age, default=None)  # by time: the listing's order is no promise
        return cls(started_at, index, None if latest is None else latest.version_id)

    def find(self, who: Identity) -> Version | None:
        """The oldest version that is this point's, if any.

        Raises IdentityConflictError when versions hold the point's train_url but none of them
        has its parameters."""
        train_url, parameter = who
        found = self.by_train_url.get(normalise_train_url(train_url))
        if not found:
            return None
        differences = []
        for version in found:
            differs = disagreements(parameter, version.parameter_pairs)
            if not differs:
                return version
            differences.append(
                f"version {version.version_id} ({version.version_name or 'unnamed'}): "
                + "; ".join(differs)
            )
        raise IdentityConflictError(
            f"train_url {train_url!r} is already taken by a version with other parameters, "
            f"so it is not this point's and nothing was created for it: {' | '.join(differences)}"
            "; give the point a train_url of its own, or remove that version if it is a leftover"
        )


def _age(version: Version) -> tuple[int, int]:
    """Oldest first: by create time, then by id (U5: no listing order is documented)."""
    return version.create_time or 0, version.version_id


ListVersions = Callable[[], Awaitable[list[Version]]]


class Reconciler:
    """Shares job listings between every point that needs one."""

    def __init__(
        self,
        list_versions: ListVersions,
        *,
        settle: float = 2.0,
        max_attempts: int = 6,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._list_versions = list_versions
        self.settle = settle
        self._max_attempts = max_attempts
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._sleep = sleep
        self._latest: Listing | None = None
        self._in_flight: anyio.Event | None = None
        self._in_flight_started = 0.0
        self._failure: BatchSubmitError | None = None
        self.listings = 0

    def __repr__(self) -> str:
        busy = "listing" if self._in_flight else "idle"
        return f"<Reconciler {busy} listings={self.listings} settle={self.settle}s>"

    async def listing(self, *, not_before: float) -> Listing:
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

    async def find(self, who: Identity, *, doubt_at: float) -> Version | None:
        """The version a point created, if it exists, doubting since ``doubt_at`` (clock time).

        Looks once in a listing begun after the doubt arose and, if absent, once more a settle
        interval later, since new versions may show in the list only after a lag.
        """
        version = (await self.listing(not_before=doubt_at)).find(who)
        if version is None and self.settle > 0:
            version = (await self.listing(not_before=doubt_at + self.settle)).find(who)
        return version

    async def _refresh(self) -> None:
        event = self._in_flight = anyio.Event()
        started = self._in_flight_started = self._clock()
        self._failure = None
        try:
            versions = await self._list_with_retries()
        except BatchSubmitError as exc:
            self._failure = exc
            raise
        else:
            self._latest = Listing.build(started, versions)
            self.listings += 1
            log.debug("batchsubmit.reconcile.listed", versions=len(versions))
        finally:
            self._in_flight = None
            event.set()

    async def _list_with_retries(self) -> list[Version]:
        attempt = 1
        while True:
            try:
                return await self._list_versions()
            except BatchSubmitError as exc:
                # A listing is a read: anything but a refusal of our credentials is worth retrying.
                if exc.disposition is Disposition.ABORT or attempt >= self._max_attempts:
                    raise
                delay = self._backoff.delay(attempt, exc)
                log.info(
                    "batchsubmit.reconcile.list_retry", attempt=attempt,
                    error_code=exc.error_code, error=str(exc), wait=round(delay, 3),
                )
                attempt += 1
                await self._sleep(delay)

"""Three ways a gateway may count "N requests per period", one limiter per project.

Nobody knows how Huawei's API gateway counts (real-service-unknowns.md, G5), so the emulator
offers each plausible one and a client must reach the limit on all of them:

- :class:`TokenBucket`: ``rate`` tokens per second refill a bucket of ``capacity``; a burst of
  ``capacity`` is admitted at once, then one request per 1/rate seconds.
- :class:`FixedWindow`: at most ``limit`` requests in each aligned window ``[k*w, (k+1)*w)``; up
  to twice the limit can pass in a short span across a window boundary.
- :class:`SlidingWindow`: at most ``limit`` requests in any trailing window ``(t-w, t]``.

Each has ``try_acquire() -> None | seconds-to-wait`` and reads an injected clock, so tests step
time by hand: "10 requests/s with a burst of 5" is checked in microseconds, the same every run.
A clock that steps back never gives capacity back.

A policy may be shared with another client (``Policy.shared``, requests/s): the throttle replays
that client's requests, evenly spaced, into the limiter before each of ours, as a gateway that
counts per user or per API would see a colleague's script beside ours.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Limit(Protocol):
    """One project's admission rule."""

    def try_acquire(self) -> float | None:
        """None if a request is admitted now, else the seconds until one may be."""
        ...


class TokenBucket:
    """``rate`` tokens per second refill a bucket of ``capacity``; each request takes one."""

    def __init__(self, rate: float, capacity: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)  # a wall clock may step back: never refill < 0
        self._tokens = min(float(self.capacity), self._tokens + elapsed * self.rate)
        self._updated = now

    def try_acquire(self) -> float | None:
        """Take a token: None if admitted, else the seconds until one will be available."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate

    @property
    def level(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def __repr__(self) -> str:
        return (
            f"TokenBucket(rate={self.rate:g}/s, capacity={self.capacity}, level={self.level:.2f})"
        )


class FixedWindow:
    """At most ``limit`` requests in each window ``[k*window, (k+1)*window)`` of the clock."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._now = clock()
        self._index = math.floor(self._now / window)
        self._count = 0

    def try_acquire(self) -> float | None:
        """Count the request in the current window, or say how long until the next one."""
        self._now = max(self._now, self._clock())
        index = math.floor(self._now / self.window)
        if index > self._index:
            self._index, self._count = index, 0
        if self._count < self.limit:
            self._count += 1
            return None
        return max(0.0, (self._index + 1) * self.window - self._now)

    @property
    def used(self) -> int:
        """Requests admitted in the window that contains the last request."""
        return self._count

    def __repr__(self) -> str:
        return f"FixedWindow(limit={self.limit}/{self.window:g}s, used={self._count})"


class SlidingWindow:
    """At most ``limit`` requests in any trailing window ``(t - window, t]``."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._now = clock()
        self._admitted: deque[float] = deque()

    def _expire(self) -> None:
        self._now = max(self._now, self._clock())
        horizon = self._now - self.window
        while self._admitted and self._admitted[0] <= horizon:
            self._admitted.popleft()

    def try_acquire(self) -> float | None:
        """Admit if fewer than ``limit`` were admitted in the trailing window, else the wait."""
        self._expire()
        if len(self._admitted) < self.limit:
            self._admitted.append(self._now)
            return None
        return self._admitted[0] + self.window - self._now

    @property
    def used(self) -> int:
        """Requests admitted in the trailing window ending now."""
        self._expire()
        return len(self._admitted)

    def __repr__(self) -> str:
        return f"SlidingWindow(limit={self.limit}/{self.window:g}s, used={self.used})"


@dataclass(frozen=True, slots=True)
class Policy:
    """How the gateway counts: the kind, and the numbers each kind reads."""

    kind: str  # "bucket", "fixed-window" or "sliding-window"
    rate: float  # bucket: refill per second
    capacity: int  # bucket: size
    limit: int  # windows: requests per window
    window: float  # windows: seconds
    shared: float = 0.0  # another client's requests/s under the same policy

    def new_limit(self, clock: Callable[[], float]) -> Limit:
        """A fresh (full, empty-window) limiter of this policy."""
        if self.kind == "fixed-window":
            return FixedWindow(self.limit, self.window, clock)
        if self.kind == "sliding-window":
            return SlidingWindow(self.limit, self.window, clock)
        return TokenBucket(self.rate, self.capacity, clock)


class Throttle:
    """One limiter per project id, all of one policy; rebuilt when the policy changes."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._limits: dict[str, Limit] = {}
        self._policy: Policy | None = None
        self._others: dict[str, float] = {}  # project -> the other client's next request
        self._replaying: float | None = None  # the clock the limits read during a replay

    def configure(self, policy: Policy | None) -> None:
        """Apply a (new) policy; None turns throttling off. Limiters restart fresh on a change."""
        if policy != self._policy:
            self._policy = policy
            self._limits.clear()
            self._others.clear()

    def reset(self) -> None:
        """Forget all past requests (buckets full, windows empty)."""
        self._limits.clear()
        self._others.clear()

    def check(self, project_id: str) -> float | None:
        """None if the request may proceed, else the seconds to wait before a retry."""
        if self._policy is None:
            return None
        limit = self._limits.get(project_id)
        if limit is None:
            limit = self._limits[project_id] = self._policy.new_limit(self._limit_clock)
        if self._policy.shared > 0:
            self._replay_others(project_id, limit, self._policy)
        return limit.try_acquire()

    def _limit_clock(self) -> float:
        return self._clock() if self._replaying is None else self._replaying

    def _replay_others(self, project_id: str, limit: Limit, policy: Policy) -> None:
        """The other client's requests since the last check, evenly spaced at its rate, each
        taking its place under the policy first (a throttled one is not retried)."""
        now = self._clock()
        # after a long idle spell, only what still counts: a full bucket, an expired window
        at = max(self._others.get(project_id, now), now - max(2.0, policy.window))
        try:
            while at <= now:
                self._replaying = at
                limit.try_acquire()
                at += 1.0 / policy.shared
        finally:
            self._replaying = None
        self._others[project_id] = at

    def __repr__(self) -> str:
        return f"Throttle(policy={self._policy}, limits={self._limits})"

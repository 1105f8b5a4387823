"""An adaptive requests-per-second limiter shared by every request of a run.

The configured rate is a ceiling, not a promise: nobody knows the service's real limit, so the
limiter finds it. On a throttled answer the rate drops multiplicatively and every caller pauses for
the server's ``Retry-After``; on success it climbs back along a cubic curve toward the rate it was
throttled at, then past it toward the ceiling. This is the AWS SDKs' "adaptive" retry mode
(CUBIC, beta 0.7, scale 0.4) with one change from TCP: a throttle only cuts the rate once per
round trip, so the few requests already in flight when the first 429 arrives don't cut it again.

Time is injected (``clock`` and ``sleep``) so tests step a fake clock and never sleep.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import monotonic

import anyio

from batchsubmit.errors import ThrottledError

__all__ = ["AdaptiveRateLimiter", "LimiterStats"]

BETA = 0.7
SCALE = 0.4
ANNOUNCED_MARGIN = 0.95
_MEASURE_SENDS = 20  # the measured send rate spans this many recent sends


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A frozen view of the limiter, for progress displays and logs."""

    rate: float
    ceiling: float
    measured_rate: float
    throttles: int
    paused_for: float


class AdaptiveRateLimiter:
    """Token bucket whose fill rate adapts to throttling (see the module docstring)."""

    def __init__(
        self,
        ceiling: float,
        *,
        burst_seconds: float = 1.0,
        min_rate: float = 0.5,
        clock: Callable[[], float] = monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if ceiling <= 0:
            raise ValueError(f"rate must be > 0 requests/s, got {ceiling}")
        self.ceiling = float(ceiling)
        self._min_rate = min(min_rate, self.ceiling)
        self._burst_seconds = burst_seconds
        self._clock = clock
        self._sleep = sleep
        # FIFO: one waiter sleeps for the next token at a time; no checkpoint when uncontended
        self._lock = anyio.Lock(fast_acquire=True)
        now = clock()
        self._rate = self.ceiling
        # Start a little short of a full bucket: the gateway's is full too, and a margin of a
        # few tokens keeps send-time jitter from ever finding it empty.
        self._tokens = self._capacity * 0.8
        self._last_refill = now
        self._pause_until = now
        # CUBIC state
        self._throttled_ever = False
        self._last_max_rate = self.ceiling
        self._last_throttle = now
        self._window = 0.0
        self._sends: deque[float] = deque(maxlen=_MEASURE_SENDS)  # recent send times
        self.throttles = 0

    def __repr__(self) -> str:
        return (
            f"<AdaptiveRateLimiter rate={self._rate:.2f}/s ceiling={self.ceiling:g}/s "
            f"tokens={self._tokens:.2f} throttles={self.throttles} "
            f"waiting={self._lock.statistics().tasks_waiting}>"
        )

    @property
    def rate(self) -> float:
        """The rate currently allowed, in requests per second."""
        return self._rate

    @property
    def _capacity(self) -> float:
        return max(1.0, self._rate * self._burst_seconds)

    def stats(self) -> LimiterStats:
        return LimiterStats(
            rate=self._rate,
            ceiling=self.ceiling,
            measured_rate=self._measured(),
            throttles=self.throttles,
            paused_for=max(0.0, self._pause_until - self._clock()),
        )

    async def acquire(self) -> float:
        """Wait for permission to send one request; returns the send time on the clock."""
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._pause_until:
                    await self._sleep(self._pause_until - now)
                    continue
                self._refill(now)
                if self._tokens >= 1.0 - 1e-9:  # float dust must not leave us a token short
                    self._tokens = max(0.0, self._tokens - 1.0)
                    self._count_send(now)
                    return now
                await self._sleep(max((1.0 - self._tokens) / self._rate, 1e-6))

    def on_success(self) -> None:
        """An answer that was not a throttle: grow back toward the ceiling."""
        if not self._throttled_ever:
            return
        now = self._clock()
        cubic = SCALE * (now - self._last_throttle - self._window) ** 3 + self._last_max_rate
        cap = 2.0 * max(self._measured(), self._min_rate)
        self._set_rate(min(cubic, cap), now)

    def on_throttle(
        self, *, sent_at: float, retry_after: float | None = None,
        announced_limit: float | None = None,
    ) -> None:
        """A throttled answer to a request sent at ``sent_at``: cut the rate, honour Retry-After.

        ``announced_limit``, when the gateway names its policy, becomes the ceiling (less a
        margin, so send-time jitter never drains the gateway's bucket): no need to probe past it.
        """
        now = self._clock()
        if announced_limit and announced_limit * ANNOUNCED_MARGIN < self.ceiling:
            self.ceiling = announced_limit * ANNOUNCED_MARGIN
            self._min_rate = min(self._min_rate, self.ceiling)
        if retry_after:
            self._pause_until = max(self._pause_until, now + retry_after)
        self._refill(now)
        self._tokens = 0.0  # the gateway's bucket is empty: no burst into it
        # ...nor once the pause ends: tokens accrue from then on, not while everyone waits
        self._last_refill = max(now, self._pause_until)
        self.throttles += 1
        if self._throttled_ever and sent_at < self._last_throttle:
            return  # sent before the last cut: that cut already accounted for it
        measured = self._measured()
        base = min(measured, self._rate) if measured > 0 else self._rate
        self._throttled_ever = True
        self._last_max_rate = base
        self._window = ((base * (1 - BETA)) / SCALE) ** (1 / 3)
        self._last_throttle = now
        self._set_rate(base * BETA, now)

    def on_throttled(self, error: ThrottledError, *, sent_at: float) -> None:
        """:meth:`on_throttle` with what a ThrottledError carries."""
        self.on_throttle(
            sent_at=sent_at, retry_after=error.retry_after, announced_limit=error.announced_limit
        )

    def _set_rate(self, rate: float, now: float) -> None:
        self._refill(now)
        self._rate = max(self._min_rate, min(self.ceiling, rate))
        self._tokens = min(self._tokens, self._capacity)

    def _refill(self, now: float) -> None:
        elapsed = now - self._last_refill
        if elapsed > 0:
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._last_refill = now

    def _count_send(self, now: float) -> None:
        self._sends.append(now)

    def _measured(self) -> float:
        """Requests/s over the last few sends: what we really sent, whatever the rate allowed."""
        if len(self._sends) < 2:
            return 0.0
        span = self._sends[-1] - self._sends[0]
        return (len(self._sends) - 1) / span if span > 0 else float("inf")

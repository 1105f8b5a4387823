"""A token bucket per project, the way the API gateway throttles ("N requests per second").

The clock is a parameter so tests step time by hand: "10 requests/s with a burst of 5" is checked
in microseconds and gives the same answer every run.
"""

from __future__ import annotations

from collections.abc import Callable


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


class Throttle:
    """One bucket per project id, all with the same rate; rebuilt when the rate changes."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._setting: tuple[float, int] | None = None

    def configure(self, rate: float | None, capacity: int) -> None:
        """Apply a (new) limit; None turns throttling off. Buckets restart full on a change."""
        setting = None if rate is None else (rate, capacity)
        if setting != self._setting:
            self._setting = setting
            self._buckets.clear()

    def reset(self) -> None:
        """Refill every bucket (forget all past requests)."""
        self._buckets.clear()

    def check(self, project_id: str) -> float | None:
        """None if the request may proceed, else the seconds to wait before a retry."""
        if self._setting is None:
            return None
        bucket = self._buckets.get(project_id)
        if bucket is None:
            rate, capacity = self._setting
            bucket = self._buckets[project_id] = TokenBucket(rate, capacity, self._clock)
        return bucket.try_acquire()

    def __repr__(self) -> str:
        return f"Throttle(setting={self._setting}, buckets={self._buckets})"

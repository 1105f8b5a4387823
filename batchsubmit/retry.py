"""Retry arithmetic: how long to wait before the next attempt. Computed here, slept elsewhere."""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass

from batchsubmit.errors import BatchSubmitError, ThrottledError

__all__ = ["Backoff", "FailureWindow"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff: ``uniform(0, min(cap, base * 2 ** (attempt - 1)))``."""

    base: float = 0.2
    cap: float = 20.0

    def delay(
        self,
        attempt: int,
        error: BatchSubmitError | None = None,
        *,
        random: Callable[[], float] = _random.random,
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        A ``Retry-After`` from the server is a floor: we never come back earlier than asked.
        """
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        delay: float = random() * ceiling
        if isinstance(error, ThrottledError) and error.retry_after:
            delay = max(delay, error.retry_after)
        return delay


class FailureWindow:
    """The outcomes of the last ``size`` answers, to halt a run that mostly fails.

    Throttles are not counted: they are the service pacing us, which the limiter handles. Nor
    are requests that never left (a refused connection: the server restarting): they cost no
    quota, and backoff plus ``max_attempts`` bound them.
    """

    def __init__(self, size: int = 50, threshold: float = 0.5) -> None:
        self.size = size
        self.threshold = threshold
        self._window: list[bool] = []

    def record(self, failed: bool) -> None:
        self._window.append(failed)
        if len(self._window) > self.size:
            del self._window[0]

    @property
    def tripped(self) -> bool:
        """True once the window is full and more than ``threshold`` of it failed."""
        return (
            len(self._window) >= self.size
            and sum(self._window) > self.threshold * len(self._window)
        )

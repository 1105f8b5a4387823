"""Every numeric setting's bounds, in one place: the flags, the spec's ``submit`` keys and the
Python API check their values against the same table and say the same thing.

A value must be a finite number (not nan or inf), an integer where one is counted, and within
its range; the message names the flag (and the spec key) and what to write instead. Standard
library only: the command line's parsers use it while registering.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from batchsubmit.errors import UsageError

__all__ = [
    "CONCURRENCY",
    "CONNECT_TIMEOUT",
    "GRACE",
    "INTERVAL",
    "JOB_ID",
    "LIMIT",
    "MAX_ATTEMPTS",
    "RATE",
    "SETTLE",
    "TIMEOUT",
    "Bound",
]


@dataclass(frozen=True, slots=True)
class Bound:
    """The range of one numeric setting."""

    flag: str  # "--rate"
    low: float  # the least allowed value (inclusive)
    high: float  # the most allowed value (inclusive)
    integer: bool = False
    key: str | None = None  # the spec's key for it, e.g. "submit.rate"
    why: str = ""  # what the bounds protect, for the message

    def rule(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        return f"{kind} from {self.low:,g} to {self.high:,g}"

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not allowed, or None."""
        if (
            isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or (self.integer and value != int(value))
        ):
            return f"must be {self.rule()}, got {value!r}"
        note = f" ({self.why})" if self.why else ""
        if value < self.low:
            return f"must be at least {self.low:,g}, got {value:,g}{note}"
        if value > self.high:
            return f"must be at most {self.high:,g}, got {value:,g}{note}"
        return None

    def check(self, value: float) -> float:
        """``value``, or UsageError naming the flag (and the spec key)."""
        problem = self.problem(value)
        if problem is not None:
            where = self.flag + (f" (spec: {self.key})" if self.key else "")
            raise UsageError(f"{where} {problem}")
        return value

    def parser(self) -> Callable[[str], float]:
        """An argparse ``type=``: the text to a number, or argparse's usage error (exit 2)."""

        def parse(text: str) -> float:
            try:
                value: float = int(text) if self.integer else float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"must be {self.rule()}, got {text!r}"
                ) from None
            problem = self.problem(value)
            if problem is not None:
                raise argparse.ArgumentTypeError(problem)
            return value

        parse.__name__ = self.flag.lstrip("-")
        return parse


RATE = Bound("--rate", 0.01, 100_000.0, key="submit.rate",
             why="requests per second; one every 100 s at least")
CONCURRENCY = Bound("--concurrency", 1, 1000, integer=True, key="submit.concurrency",
                    why="requests in flight; the service throttles long before 1000")
MAX_ATTEMPTS = Bound("--max-attempts", 1, 1000, integer=True, key="submit.max_attempts")
TIMEOUT = Bound("--timeout", 0.001, 3600.0, why="seconds to wait for an answer")
CONNECT_TIMEOUT = Bound("--connect-timeout", 0.001, 3600.0)
SETTLE = Bound("--settle", 0.0, 3600.0, why="seconds the list may lag creation")
GRACE = Bound("--grace", 0.0, 3600.0, why="seconds requests in flight get on Ctrl-C")
INTERVAL = Bound("--interval", 0.01, 86_400.0, why="seconds between two rounds of listings")
JOB_ID = Bound("--job-id", 1, 2**63 - 1, integer=True)
LIMIT = Bound("--limit", 1, 10_000_000, integer=True)

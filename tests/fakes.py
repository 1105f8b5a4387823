"""Small test doubles shared by the test modules (the emulator is the big one)."""

from __future__ import annotations

import anyio.lowlevel


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.now += seconds
            self.slept += seconds
        await anyio.lowlevel.checkpoint()

"""Serve an :class:`Emulator` on a real socket for the length of an ``async with`` block."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from batchsubmit.emulator.app import Emulator
from batchsubmit.emulator.config import EmulatorConfig
from batchsubmit.events import get_logger

log = get_logger("batchsubmit.emulator")
SHUTDOWN_TIMEOUT = 2.0  # seconds granted to in-flight handlers once the listener is closed


@asynccontextmanager
async def run_emulator(
    config: EmulatorConfig | None = None, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[Emulator]:
    """Start an emulator on ``config.host:config.port`` (port 0 = a free one), stop it on exit.

    Stalled replies are dropped and the state file is saved before the block's exit returns.
    """
    emulator = Emulator(config, clock=clock)
    runner = web.AppRunner(
        emulator.app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, emulator.config.host, emulator.config.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        emulator.bind(f"http://{_url_host(host)}:{port}")
        log.info("batchsubmit.emulator.started", url=emulator.url)
        yield emulator
    finally:
        emulator.bind(None)
        await runner.cleanup()


def _url_host(host: str) -> str:
    """Bracket an IPv6 literal for use in a URL."""
    return f"[{host}]" if ":" in host else host

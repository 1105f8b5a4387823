"""Ctrl-C and SIGTERM for the commands that only read or act on a ledger (watch, stop, delete):
the command line's business, never the library's."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import anyio

__all__ = ["cancel_on_signal"]


async def cancel_on_signal(scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` at the first SIGINT or SIGTERM (a ledger line being written is finished
    first: the writer shields its batches)."""
    import anyio

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return

"""Progress for people watching a run: a rich bar on a terminal, else a periodic log event."""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any

import anyio
import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from batchsubmit.engine import EngineStats

__all__ = ["watch_progress"]

log = structlog.get_logger("batchsubmit.run")


def _fields(s: EngineStats) -> dict[str, Any]:
    return {
        "ok": s.succeeded,
        "failed": s.failed,
        "retrying": s.retrying,
        "throttled": s.throttled,
        "rate": f"{s.rate:.1f}/s",
    }


async def watch_progress(
    stats: Callable[[], EngineStats],
    console: Console,
    *,
    interval: float = 5.0,
    quiet: bool = False,
) -> None:
    """Show ``stats()`` until cancelled: a live bar on a terminal, else a periodic log event."""
    if quiet:
        await anyio.sleep_forever()
    if not console.is_terminal:
        started = monotonic()
        while True:
            await anyio.sleep(interval)
            s = stats()
            elapsed = monotonic() - started
            log.info(
                "batchsubmit.run.progress", done=s.done, total=s.total,
                elapsed_s=round(elapsed, 1), **_fields(s),
            )
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/] "
            "[yellow]{task.fields[retrying]} retrying[/] {task.fields[throttled]} throttled "
            "[cyan]{task.fields[rate]}[/]"
        ),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        s = stats()
        task: TaskID = progress.add_task("submitting", total=s.total, **_fields(s))
        try:
            while True:
                s = stats()
                progress.update(task, completed=s.done, total=s.total, **_fields(s))
                await anyio.sleep(0.2)
        finally:
            s = stats()
            progress.update(task, completed=s.done, total=s.total, **_fields(s))

"""The server a ledger's run used, reached again: for the commands that act on a ledger after
its run (``watch``, ``stop``, ``delete``). One owner for reading the run's endpoint, project,
rate and timeout, the flags over them, the credentials it needs, and the embedded emulator's
state file served again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batchsubmit.errors import UsageError

if TYPE_CHECKING:  # imported when a command runs: registering the parsers stays light
    from batchsubmit.auth import Credentials
    from batchsubmit.client import ModelArtsClient
    from batchsubmit.ledger import LedgerState

__all__ = ["LedgerServer", "ledger_server"]

@dataclass(frozen=True)
class LedgerServer:
    """Where and how to reach the server of a ledger's last run (the flags over it)."""

    ledger: Path
    state: LedgerState  # the ledger as read now (it records a run)
    endpoint: str  # a URL, or "emulator" (then state_file is set)
    project_id: str
    rate: float
    timeout: float
    credentials: Credentials
    state_file: Path | None

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[ModelArtsClient]:
        """A client of that server; the run's embedded emulator served again if it had one."""
        from batchsubmit.client import ModelArtsClient  # aiohttp: only for commands that send

        async with contextlib.AsyncExitStack() as stack:
            url = self.endpoint
            if self.state_file is not None:
                url = await _serve_emulator(stack, self.project_id, self.state_file)
            yield await stack.enter_async_context(
                ModelArtsClient(url, self.credentials, read_timeout=self.timeout)
            )


def ledger_server(
    path: Path, *, endpoint: str | None, rate: float | None, env: Mapping[str, str],
    no_state: str, slim: bool = False,
) -> LedgerServer:
    """Resolve the ledger's last run's server; UsageError naming what is missing. ``no_state``
    ends the message when the run's embedded emulator left no state file to serve again."""
    from batchsubmit.auth import NoCredentials, credentials_for
    from batchsubmit.ledger import read_ledger
    from batchsubmit.runner import DEFAULT_RATE  # the run's default, when it recorded none

    if not os.path.lexists(path):
        raise UsageError(
            f"{path}: no such ledger; `batchsubmit run` writes one (--ledger PATH, by default "
            "<sweep name>.ledger.jsonl in the directory it ran in)"
        )
    state = read_ledger(path, slim=slim)
    settings = state.settings
    if settings is None:
        raise UsageError(f"{path}: no run recorded in this ledger: it created no version")
    project_id = settings.project_id or env.get("HUAWEICLOUD_SDK_PROJECT_ID")
    if not project_id:
        raise UsageError(f"{path}: its last run records no project id (settings.project_id)")
    endpoint = endpoint or settings.endpoint
    if not endpoint:
        raise UsageError(f"{path}: its last run records no endpoint: pass --endpoint URL")
    state_file = None
    credentials: Credentials
    if endpoint == "emulator":
        state_file = Path(f"{path}.emulator.json")
        if not state_file.exists():
            raise UsageError(
                "this ledger's run used the embedded emulator (--endpoint emulator), which "
                f"ended with the run's process and left no state file ({state_file}): {no_state}"
            )
        credentials = NoCredentials(project_id=project_id)
    else:
        credentials = credentials_for(endpoint, env, project_id=project_id)
    return LedgerServer(
        ledger=path, state=state, endpoint=endpoint, project_id=project_id,
        rate=float(rate or settings.rate or DEFAULT_RATE), timeout=settings.timeout or 30.0,
        credentials=credentials, state_file=state_file,
    )  # fmt: skip


async def _serve_emulator(stack: contextlib.AsyncExitStack, project_id: str, state: Path) -> str:
    """Serve the embedded-emulator run's state file again, as that run did (same project id)."""
    from batchsubmit.emulator import EmulatorConfig, run_emulator

    try:
        config = EmulatorConfig(project_id=project_id, state_file=state)
        emulator = await stack.enter_async_context(run_emulator(config))
    except ValueError as exc:  # a damaged state file
        raise UsageError(f"cannot serve the run's emulator state again: {exc}") from None
    return emulator.url

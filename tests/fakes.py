"""Small test doubles and helpers shared by the test modules (the emulator is the big one)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio.lowlevel
import pytest
from anyio.from_thread import start_blocking_portal

from batchsubmit.cli import main
from batchsubmit.emulator import Emulator, EmulatorConfig, run_emulator

DROP = object()  # in a table of mutations: "remove this field"

# The create-version example of the contract (shared/spec/create-training-job-version.md).
EXAMPLE: dict[str, Any] = {
    "job_desc": "This is a ModelArts job",
    "config": {
        "worker_server_num": 1,
        "app_url": "/usr/app/",
        "boot_file_url": "/usr/app/boot.py",
        "parameter": [
            {"label": "learning_rate", "value": "0.01"},
            {"label": "batch_size", "value": "32"},
        ],
        "dataset_id": "38277e62-9e59-48f4-8d89-c8cf41622c24",
        "dataset_version_id": "2ff0d6ba-c480-45ae-be41-09a8369bfc90",
        "spec_id": 1,
        "engine_id": 1,
        "train_url": "/usr/train/",
        "log_url": "/usr/log/",
        "pre_version_id": 20,  # the emulator's seeded job 10 starts with version 20
    },
}


def body_with(
    changes: dict[str, Any] | None = None, base: dict[str, Any] = EXAMPLE
) -> dict[str, Any]:
    """A copy of ``base`` with dotted paths ("config.parameter.0.label") set, or removed by DROP."""
    body = copy.deepcopy(base)
    for path, value in (changes or {}).items():
        *parents, last = path.split(".")
        node: Any = body
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is DROP:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return body


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


@contextmanager
def emulator_in_thread(config: EmulatorConfig) -> Iterator[Emulator]:
    """A real emulator on its own event loop in a thread, so `main([...])` can run in this one."""
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(run_emulator(config)) as emulator,
    ):
        yield emulator


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


async def until_listed(emu: Emulator) -> None:
    """Wait out the list lag of the newest version (by the emulator's clock): a ledger lost right
    after a run is only recoverable once its last versions are listed (the README's assumption)."""
    newest = max(v["visible_at"] for v in emu.versions())
    await anyio.sleep(max(0.0, (newest - emu.now_ms()) / 1000 + 0.01))

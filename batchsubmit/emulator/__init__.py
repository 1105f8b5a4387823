"""A local emulator of the ModelArts v1 training-job API, for tests and trial runs.

It validates requests from the spec's own rules (independently of the client's models), checks
tokens or AK/SK signatures, throttles per project, and injects the faults a client must survive:
500s before creation, and *ambiguous* outcomes where the version is created but the reply is a
500, a reset connection or a stall. Ground truth (``Emulator.versions()``) lets a test check that
every point was created exactly once::

    async with run_emulator(EmulatorConfig(ambiguous_share=0.2, seed=7)) as emu:
        ...  # point a client at emu.url
        assert len(emu.versions(job_id=10)) == expected
"""

from typing import TYPE_CHECKING, Any

from batchsubmit.emulator.constants import DEFAULT_PROJECT_ID

if TYPE_CHECKING:
    from batchsubmit.emulator.app import Emulator
    from batchsubmit.emulator.config import RUNTIME_KNOBS, EmulatorConfig
    from batchsubmit.emulator.server import run_emulator


def __getattr__(name: str) -> Any:
    """Everything but constants loads on first use (pydantic, aiohttp.web): the CLI stays quick."""
    if name in ("EmulatorConfig", "RUNTIME_KNOBS"):
        from batchsubmit.emulator import config

        value = globals()[name] = getattr(config, name)
        return value
    if name == "Emulator":
        from batchsubmit.emulator.app import Emulator

        return Emulator
    if name == "run_emulator":
        from batchsubmit.emulator.server import run_emulator

        return run_emulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["DEFAULT_PROJECT_ID", "RUNTIME_KNOBS", "Emulator", "EmulatorConfig", "run_emulator"]

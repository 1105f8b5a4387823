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

from batchsubmit.emulator.app import Emulator
from batchsubmit.emulator.config import DEFAULT_PROJECT_ID, RUNTIME_KNOBS, EmulatorConfig
from batchsubmit.emulator.server import run_emulator

__all__ = ["DEFAULT_PROJECT_ID", "RUNTIME_KNOBS", "Emulator", "EmulatorConfig", "run_emulator"]

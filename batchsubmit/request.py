"""What a caller asks of one run: the request the command line, the Python API and the core
share. Standard library only, so the command line's parsers can build on it while registering.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunRequest"]


@dataclass(frozen=True)
class RunRequest:
    """What a caller asks of one run; None means "the spec's value, else the default"."""

    endpoint: str | None = None
    project_id: str | None = None
    job_id: int | None = None
    ledger: Path | None = None
    rate: float | None = None
    concurrency: int | None = None
    max_attempts: int | None = None
    timeout: float = 30.0
    connect_timeout: float = 5.0
    retry_failed: bool = False
    settle: float = 2.0
    grace: float = 10.0  # on interrupt: how long requests in flight may take to finish

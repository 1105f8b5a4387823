"""The settings a run recorded in its ``run_started`` line, read the one way everything reads them.

A ledger outlives the code that wrote it (and scripts may write one), so every field is read
tolerantly: a missing or ill-typed value is None (or empty), never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunSettings"]


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class RunSettings:
    """A run's recorded settings (``run_started.settings``), typed."""

    endpoint: str | None = None
    project_id: str | None = None
    job_ids: tuple[int, ...] = ()  # settings.job_ids, else (settings.job_id,); no repeats
    rate: float | None = None
    concurrency: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    settle: float | None = None
    bases: dict[int, int] | None = None  # job -> the version its base came from (from_version)
    api: str = "v1"  # "v2": a training job per point (no job ids)
    workspace_id: str | None = None  # v2
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def job_id(self) -> int | None:
        """The first job (the only one of most sweeps)."""
        return self.job_ids[0] if self.job_ids else None

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> RunSettings:
        raw = settings.get("job_ids")
        listed = raw if isinstance(raw, list | tuple) else [settings.get("job_id")]
        jobs = tuple(dict.fromkeys(j for j in (_int(v) for v in listed) if j is not None))
        bases_raw = settings.get("bases")
        bases = None
        if isinstance(bases_raw, Mapping):
            pairs = ((_int(k), _int(v)) for k, v in bases_raw.items())
            bases = {k: v for k, v in pairs if k is not None and v is not None}
        return cls(
            endpoint=_text(settings.get("endpoint")),
            project_id=_text(settings.get("project_id")),
            job_ids=jobs,
            rate=_float(settings.get("rate")),
            concurrency=_int(settings.get("concurrency")),
            max_attempts=_int(settings.get("max_attempts")),
            timeout=_float(settings.get("timeout")),
            settle=_float(settings.get("settle")),
            bases=bases,
            api="v2" if settings.get("api") == "v2" else "v1",
            workspace_id=_text(settings.get("workspace_id")),
            raw=dict(settings),
        )

"""batchsubmit: submit hyperparameter sweeps to ModelArts training jobs, fast and exactly once.

The Python API (scripts outside this repository depend on these names)::

    import batchsubmit as bs

    spec = bs.load_spec("sweep.yaml")            # or bs.SweepSpec.from_dict({...}, name="lr")
    result = await bs.submit(spec, endpoint="emulator", ledger="lr.ledger.jsonl", rate=40)
    result = bs.submit_sync(spec, ...)           # the same, on an event loop of its own
    result.succeeded, result.failed, result.unresolved, result.raise_for_failures()
    bs.read_ledger("lr.ledger.jsonl")            # the same results from a ledger on disk

    with bs.testing.Emulator(rate=40) as emu:    # the emulator as a test double
        ...

Errors come from one tree rooted in :class:`BatchSubmitError` (see ``batchsubmit.errors``).
Everything else is loaded on first use, so ``import batchsubmit`` (and the command line's
``--help``) stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from batchsubmit.errors import (
    APIError,
    AuthError,
    BatchSubmitError,
    IdentityConflictError,
    IncompleteListingError,
    LedgerError,
    NameTakenError,
    NotSentError,
    OutcomeUnknownError,
    QuotaExceededError,
    ServerError,
    SpecError,
    ThrottledError,
    TransportError,
    UsageError,
)

if TYPE_CHECKING:
    from batchsubmit import testing
    from batchsubmit.api import (
        FailedPointsError,
        PointFailure,
        PointResult,
        SubmitResult,
        read_ledger,
        submit,
        submit_sync,
    )
    from batchsubmit.auth import (
        AkSkCredentials,
        Credentials,
        NoCredentials,
        TokenCredentials,
        credentials_from_env,
    )
    from batchsubmit.engine import EngineStats
    from batchsubmit.sweep import SweepSpec, load_spec

__version__ = "0.1.0"

_LAZY = {
    "FailedPointsError": "batchsubmit.api",
    "PointFailure": "batchsubmit.api",
    "PointResult": "batchsubmit.api",
    "SubmitResult": "batchsubmit.api",
    "read_ledger": "batchsubmit.api",
    "submit": "batchsubmit.api",
    "submit_sync": "batchsubmit.api",
    "AkSkCredentials": "batchsubmit.auth",
    "Credentials": "batchsubmit.auth",
    "NoCredentials": "batchsubmit.auth",
    "TokenCredentials": "batchsubmit.auth",
    "credentials_from_env": "batchsubmit.auth",
    "EngineStats": "batchsubmit.engine",
    "SweepSpec": "batchsubmit.sweep",
    "load_spec": "batchsubmit.sweep",
}

__all__ = [
    "APIError",
    "AkSkCredentials",
    "AuthError",
    "BatchSubmitError",
    "Credentials",
    "EngineStats",
    "FailedPointsError",
    "IdentityConflictError",
    "IncompleteListingError",
    "LedgerError",
    "NameTakenError",
    "NoCredentials",
    "NotSentError",
    "OutcomeUnknownError",
    "PointFailure",
    "PointResult",
    "QuotaExceededError",
    "ServerError",
    "SpecError",
    "SubmitResult",
    "SweepSpec",
    "ThrottledError",
    "TokenCredentials",
    "TransportError",
    "UsageError",
    "__version__",
    "credentials_from_env",
    "load_spec",
    "read_ledger",
    "submit",
    "submit_sync",
    "testing",
]


def __getattr__(name: str) -> Any:
    """The heavy parts (aiohttp, pydantic) load when a script first touches them."""
    if name == "testing":
        return importlib.import_module("batchsubmit.testing")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batchsubmit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

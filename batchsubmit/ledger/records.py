"""Ledger records: the field contract, the builders, encoding and checking. Pure."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import NoneType
from typing import Any, Final, Literal

from pydantic import SecretBytes, SecretStr

#: The fields of each record, in the order they are written ("event" before, "ts" after).
RECORD_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "run_started": ("sweep", "spec_sha256", "total", "settings"),
    "submitted": ("key", "index", "attempt", "train_url"),
    "succeeded": (
        "key", "index", "version_id", "version_name", "parameter", "train_url", "attempts",
        "reconciled", "latency_ms",
    ),
    "failed": (
        "key", "index", "error_code", "error_message", "http_status", "request_id", "attempts",
    ),
    "run_finished": ("counts", "interrupted"),
    "status": ("key", "version_id", "status", "status_name", "duration_ms"),
    "stopped": ("key", "version_id", "job_id"),
    "deleted": ("key", "version_id", "job_id"),
}  # fmt: skip

#: The v2 API's variants (a training job per point): chosen by the ``training_job_id`` field,
#: which stands where v1 records have ``version_id``; every other field is v1's.
RECORD_FIELDS_V2: Final[Mapping[str, tuple[str, ...]]] = {
    "succeeded": (
        "key", "index", "training_job_id", "job_name", "parameter", "train_url", "attempts",
        "reconciled", "latency_ms",
    ),
    "status": ("key", "training_job_id", "status_name", "duration_ms"),  # status_name: the phase
    "stopped": ("key", "training_job_id"),
    "deleted": ("key", "training_job_id"),
}  # fmt: skip

#: Fields added later, written after the contract's own (before "ts"); a reader must not need
#: them, since older ledgers lack them.
RECORD_EXTRAS: Final[Mapping[str, tuple[str, ...]]] = {
    "failed": ("parameter",),  # the point's parameters, as succeeded records carry them
    "status": ("index", "parameter"),  # the point's index and parameters (null, [] if unknown)
    "run_finished": ("halted",),  # why the failure-rate guard stopped the run, else null
}

_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "sweep": (str,), "spec_sha256": (str,), "total": (int,), "settings": (dict,),
    "key": (str,), "index": (int,), "attempt": (int,), "train_url": (str,),
    "version_id": (int,), "version_name": (str,), "parameter": (list,), "attempts": (int,),
    "reconciled": (bool,), "latency_ms": (int, float, NoneType),
    "error_code": (str, NoneType), "error_message": (str,), "http_status": (int, NoneType),
    "request_id": (str, NoneType), "counts": (dict,), "interrupted": (bool,), "ts": (str,),
    "status": (int,), "status_name": (str,), "duration_ms": (int, float, NoneType),
    "job_id": (int,), "training_job_id": (str,), "job_name": (str,),
}  # fmt: skip

Outcome = Literal["succeeded", "failed", "pending"]


# --- records -------------------------------------------------------------------------------------


_second: tuple[int, str] = (-1, "")  # the current second, formatted once


def timestamp(when: datetime | None = None) -> str:
    """ISO-8601 UTC with milliseconds, as every record's ``ts``: ``2026-11-26T23:01:02.345Z``."""
    if when is not None:
        return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return timestamp_ms(int(time.time() * 1000))


def timestamp_ms(ms: int) -> str:
    """:func:`timestamp` of ``ms`` milliseconds since the epoch. Two per point, so the formatted
    second is reused (datetime's isoformat costs more than the rest of the record)."""
    global _second
    whole, frac = divmod(ms, 1000)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{frac:03d}Z"


def _record(event: str, ts: str | None, **fields: Any) -> dict[str, Any]:
    return {"event": event, **fields, "ts": timestamp() if ts is None else ts}


def run_started(
    *,
    sweep: str,
    spec_sha256: str,
    total: int,
    settings: Mapping[str, Any],
    ts: str | None = None,
) -> dict[str, Any]:
    """The first line of every run: which sweep, which spec, how many points, with what settings."""
    return _record(
        "run_started", ts, sweep=sweep, spec_sha256=spec_sha256, total=total,
        settings=dict(settings),
    )  # fmt: skip


def submitted(
    *, key: str, index: int, attempt: int, train_url: str, ts: str | None = None
) -> dict[str, Any]:
    """The intent: made durable before the create request is sent."""
    return _record("submitted", ts, key=key, index=index, attempt=attempt, train_url=train_url)


def succeeded(
    *,
    key: str,
    index: int,
    version_id: int | None = None,
    version_name: str | None = None,
    parameter: Sequence[tuple[str, str]],
    train_url: str,
    attempts: int,
    reconciled: bool,
    latency_ms: float | None,
    training_job_id: str | None = None,
    job_name: str | None = None,
    ts: str | None = None,
) -> dict[str, Any]:
    """The point's version (v1) or training job (v2: ``training_job_id``, ``job_name``) exists,
    created now or found on the server (``reconciled``)."""
    ids: dict[str, Any] = (
        {"version_id": version_id, "version_name": version_name} if training_job_id is None
        else {"training_job_id": training_job_id, "job_name": job_name}
    )  # fmt: skip
    return _record(
        "succeeded", ts, key=key, index=index, **ids,
        parameter=[{"label": label, "value": value} for label, value in parameter],
        train_url=train_url, attempts=attempts, reconciled=reconciled, latency_ms=latency_ms,
    )  # fmt: skip


def failed(
    *,
    key: str,
    index: int,
    error_code: str | None,
    error_message: str,
    http_status: int | None,
    request_id: str | None,
    attempts: int,
    parameter: Sequence[tuple[str, str]] = (),
    ts: str | None = None,
) -> dict[str, Any]:
    """The point failed for good (or ran out of attempts); ``http_status`` None: no answer."""
    return _record(
        "failed", ts, key=key, index=index, error_code=error_code, error_message=error_message,
        http_status=http_status, request_id=request_id, attempts=attempts,
        parameter=[{"label": label, "value": value} for label, value in parameter],
    )  # fmt: skip


def run_finished(
    *, counts: Mapping[str, int], interrupted: bool, halted: str | None = None,
    ts: str | None = None,
) -> dict[str, Any]:
    """The last line of a run that ended on its own terms (done, halted or Ctrl-C)."""
    return _record(
        "run_finished", ts, counts=dict(counts), interrupted=interrupted, halted=halted
    )


def status(
    *,
    key: str,
    version_id: int,
    status: int,
    status_name: str,
    duration_ms: float | None,
    index: int | None = None,
    parameter: Sequence[tuple[str, str]] = (),
    ts: str | None = None,
) -> dict[str, Any]:
    """The training status of a point's version changed (``batchsubmit watch`` saw it)."""
    return _record(
        "status", ts, key=key, version_id=version_id, status=status, status_name=status_name,
        duration_ms=duration_ms, index=index,
        parameter=[{"label": label, "value": value} for label, value in parameter],
    )  # fmt: skip


def job_status(
    *,
    key: str,
    training_job_id: str,
    phase: str,
    duration_ms: float | None,
    index: int | None = None,
    parameter: Sequence[tuple[str, str]] = (),
    ts: str | None = None,
) -> dict[str, Any]:
    """The phase of a point's v2 training job changed (``batchsubmit watch`` saw it):
    ``status_name`` is the phase (``Running``, ``Completed``, ...)."""
    return _record(
        "status", ts, key=key, training_job_id=training_job_id, status_name=phase,
        duration_ms=duration_ms, index=index,
        parameter=[{"label": label, "value": value} for label, value in parameter],
    )  # fmt: skip


def stopped(
    *, key: str, version_id: int | str, job_id: int | None, ts: str | None = None
) -> dict[str, Any]:
    """The server accepted the stop of a point's version (``batchsubmit stop --yes``); for v2
    (``job_id`` None) of its training job, whose id ``version_id`` is then."""
    return _acted("stopped", key, version_id, job_id, ts)


def deleted(
    *, key: str, version_id: int | str, job_id: int | None, ts: str | None = None
) -> dict[str, Any]:
    """The server accepted the deletion of a point's version (``batchsubmit delete --yes``),
    or of its v2 training job (``job_id`` None)."""
    return _acted("deleted", key, version_id, job_id, ts)


def _acted(
    event: str, key: str, id: int | str, job_id: int | None, ts: str | None
) -> dict[str, Any]:
    if job_id is None:
        return _record(event, ts, key=key, training_job_id=str(id))
    return _record(event, ts, key=key, version_id=id, job_id=job_id)


def _refuse(value: object) -> object:
    if isinstance(value, SecretStr | SecretBytes):
        raise TypeError("a secret must never reach the ledger: leave it out of the record")
    raise TypeError(f"cannot write a {type(value).__name__} to the ledger: use JSON types")


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_refuse)


def encode(record: Mapping[str, Any]) -> bytes:
    """One line of compact, ASCII-only JSON ending in ``\\n`` (no other line break can occur)."""
    return _ENCODER.encode(record).encode("ascii") + b"\n"


def check_record(record: object) -> dict[str, Any]:
    """The record if it has a known event and every field of it, with the right type.

    Raises ValueError naming what is wrong. Extra fields are allowed (newer writers may add some).
    """
    if not isinstance(record, dict):
        raise ValueError(f"a record is a JSON object, not {type(record).__name__}")
    event = record.get("event")
    schemas = _SCHEMA_V2 if "training_job_id" in record else _SCHEMA
    schema = schemas.get(event) if type(event) is str else None
    if schema is None:
        raise ValueError(f"unknown event {event!r}: expected one of {', '.join(RECORD_FIELDS)}")
    for name, exact in schema:
        try:
            value = record[name]
        except KeyError:
            raise ValueError(f"{event} record without {name!r}") from None
        if type(value) not in exact and not _loosely(value, _TYPES[name]):
            kinds = " or ".join("null" if t is NoneType else t.__name__ for t in _TYPES[name])
            raise ValueError(f"{event}.{name} is {value!r}; expected {kinds}")
    return record


def _loosely(value: object, allowed: tuple[type, ...]) -> bool:
    """Subclasses (an IntEnum, a str enum) pass too; but a bool is not an int here."""
    return isinstance(value, allowed) and (type(value) is not bool or bool in allowed)


# exact JSON types per field, the fast path for lines read back: (name, types) per event
_SCHEMA: Final[Mapping[str, tuple[tuple[str, frozenset[type]], ...]]] = {
    event: tuple((name, frozenset(_TYPES[name])) for name in (*names, "ts"))
    for event, names in RECORD_FIELDS.items()
}
_SCHEMA_V2: Final[Mapping[str, tuple[tuple[str, frozenset[type]], ...]]] = {
    **_SCHEMA,
    **{
        event: tuple((name, frozenset(_TYPES[name])) for name in (*names, "ts"))
        for event, names in RECORD_FIELDS_V2.items()
    },
}
_NAMES: Final[Mapping[str, str]] = {name: name for name in _TYPES}  # one copy of each field name

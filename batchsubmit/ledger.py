"""The results ledger: an append-only, crash-safe JSON Lines file, one record per line.

Scripts outside this repository read it, so the record shapes are a contract (issue 4)::

    {"event": "run_started", "sweep", "spec_sha256", "total", "settings", "ts"}
    {"event": "submitted", "key", "index", "attempt", "train_url", "ts"}  (durable before sending)
    {"event": "succeeded", "key", "index", "version_id", "version_name", "parameter", "train_url",
     "attempts", "reconciled", "latency_ms", "ts"}
    {"event": "failed", "key", "index", "error_code", "error_message", "http_status", "request_id",
     "attempts", "ts"}
    {"event": "run_finished", "counts", "interrupted", "ts"}
    {"event": "status", "key", "version_id", "status", "status_name", "duration_ms", "ts"}

A ``status`` line (issue 5) is written by ``batchsubmit watch`` when a created version's training
status changes; it belongs to no run, so it leaves the runs' spans and times alone.

The pure core builds records (:func:`run_started` ... :func:`run_finished`), encodes them
(:func:`encode`) and folds a ledger into a :class:`LedgerState` (:func:`fold`, :func:`read_ledger`).
:class:`LedgerWriter` is the thin async shell that appends lines durably, concurrent writers sharing
one ``write`` + ``fsync`` (group commit).

Crash safety: a batch of lines goes out in one ``os.write`` on an ``O_APPEND`` descriptor, and
``LedgerWriter.write`` returns only once it is fsynced. A crash can tear only the last line, which
no caller was ever told was written; the reader ignores a torn line with a warning, and the next
writer starts a fresh line after it (so a torn line may later sit mid-file: it is recognised by
being an unfinished JSON object).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import NoneType, TracebackType
from typing import Any, Final, Literal, NamedTuple, Self

import anyio
import anyio.to_thread
import structlog
from pydantic import SecretBytes, SecretStr

from batchsubmit.errors import LedgerError

__all__ = [
    "RECORD_FIELDS",
    "LedgerState",
    "LedgerWriter",
    "RunSpan",
    "StatusEntry",
    "check_record",
    "encode",
    "failed",
    "fold",
    "read_ledger",
    "run_finished",
    "run_started",
    "status",
    "submitted",
    "succeeded",
    "timestamp",
]

log = structlog.get_logger("batchsubmit.ledger")

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
}  # fmt: skip

_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "sweep": (str,), "spec_sha256": (str,), "total": (int,), "settings": (dict,),
    "key": (str,), "index": (int,), "attempt": (int,), "train_url": (str,),
    "version_id": (int,), "version_name": (str,), "parameter": (list,), "attempts": (int,),
    "reconciled": (bool,), "latency_ms": (int, float, NoneType),
    "error_code": (str, NoneType), "error_message": (str,), "http_status": (int, NoneType),
    "request_id": (str, NoneType), "counts": (dict,), "interrupted": (bool,), "ts": (str,),
    "status": (int,), "status_name": (str,), "duration_ms": (int, float, NoneType),
}  # fmt: skip

Outcome = Literal["succeeded", "failed", "pending"]


# --- records -------------------------------------------------------------------------------------


def timestamp(when: datetime | None = None) -> str:
    """ISO-8601 UTC with milliseconds, as every record's ``ts``: ``2026-11-26T23:01:02.345Z``."""
    when = datetime.now(UTC) if when is None else when.astimezone(UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    version_id: int,
    version_name: str,
    parameter: Sequence[tuple[str, str]],
    train_url: str,
    attempts: int,
    reconciled: bool,
    latency_ms: float | None,
    ts: str | None = None,
) -> dict[str, Any]:
    """The point's version exists (created now, or found on the server: ``reconciled``)."""
    return _record(
        "succeeded", ts, key=key, index=index, version_id=version_id, version_name=version_name,
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
    ts: str | None = None,
) -> dict[str, Any]:
    """The point failed for good (or ran out of attempts); ``http_status`` None: no answer."""
    return _record(
        "failed", ts, key=key, index=index, error_code=error_code, error_message=error_message,
        http_status=http_status, request_id=request_id, attempts=attempts,
    )  # fmt: skip


def run_finished(
    *, counts: Mapping[str, int], interrupted: bool, ts: str | None = None
) -> dict[str, Any]:
    """The last line of a run that ended on its own terms (done, halted or Ctrl-C)."""
    return _record("run_finished", ts, counts=dict(counts), interrupted=interrupted)


def status(
    *,
    key: str,
    version_id: int,
    status: int,
    status_name: str,
    duration_ms: float | None,
    ts: str | None = None,
) -> dict[str, Any]:
    """The training status of a point's version changed (``batchsubmit watch`` saw it)."""
    return _record(
        "status", ts, key=key, version_id=version_id, status=status, status_name=status_name,
        duration_ms=duration_ms,
    )  # fmt: skip


def _refuse(value: object) -> object:
    if isinstance(value, SecretStr | SecretBytes):
        raise TypeError("a secret must never reach the ledger: leave it out of the record")
    raise TypeError(f"cannot write a {type(value).__name__} to the ledger: use JSON types")


def encode(record: Mapping[str, Any]) -> bytes:
    """One line of compact, ASCII-only JSON ending in ``\\n`` (no other line break can occur)."""
    text = json.dumps(record, separators=(",", ":"), allow_nan=False, default=_refuse)
    return text.encode("ascii") + b"\n"


def check_record(record: object) -> dict[str, Any]:
    """The record if it has a known event and every field of it, with the right type.

    Raises ValueError naming what is wrong. Extra fields are allowed (newer writers may add some).
    """
    if not isinstance(record, dict):
        raise ValueError(f"a record is a JSON object, not {type(record).__name__}")
    event = record.get("event")
    schema = _SCHEMA.get(event) if type(event) is str else None
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
_NAMES: Final[Mapping[str, str]] = {name: name for name in _TYPES}  # one copy of each field name


# --- reading: the fold ---------------------------------------------------------------------------


@dataclass
class RunSpan:
    """The lines from one run_started to the next (lines before any run_started: no ``started``)."""

    started: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None  # its run_finished; None if it was killed or still runs
    first_ts: str | None = None
    last_ts: str | None = None
    first_submitted_ts: str | None = None
    last_outcome_ts: str | None = None
    submitted: int = 0  # submitted lines
    outcomes: int = 0  # outcome lines
    outcomes_since_first_submit: int = 0  # outcome lines from the first submitted line on


class StatusEntry(NamedTuple):
    """The latest ``status`` line of a key, kept small: a 100,000-point sweep holds 100,000."""

    version_id: int
    status: int
    status_name: str
    duration_ms: float | None


@dataclass
class LedgerState:
    """What a ledger says: the fold of its lines. Treat the records in it as read-only."""

    path: str | None = None
    sweep: str | None = None  # from the first run_started
    spec_sha256: str | None = None  # from the last run_started
    runs: list[dict[str, Any]] = field(default_factory=list)  # the run_started records
    spans: list[RunSpan] = field(default_factory=list)  # per run: its run_finished, times, counts
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> last outcome line
    # key -> its last submitted line, when no outcome line follows it: the outcome is unknown
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # key -> highest attempt seen
    statuses: dict[str, StatusEntry] = field(default_factory=dict)  # key -> its last status line
    last_status_ts: str | None = None  # ts of the last status line
    torn_line: bool = False  # a torn line (crash mid-write) was ignored
    lines: int = 0  # lines read
    first_ts: str | None = None
    last_ts: str | None = None

    @property
    def total(self) -> int | None:
        """Points in the sweep as of the last run_started (None: no run recorded)."""
        if not self.runs:
            return None
        total: int = self.runs[-1]["total"]
        return total

    @property
    def last_run(self) -> RunSpan | None:
        """The last run's span (None when no run_started was ever written)."""
        return next((s for s in reversed(self.spans) if s.started is not None), None)

    def status(self, key: str) -> Outcome | None:
        """``pending`` when an intent has no outcome after it, else the last outcome's event."""
        if key in self.pending:
            return "pending"
        outcome = self.outcomes.get(key)
        event: Outcome | None = None if outcome is None else outcome["event"]
        return event

    def succeeded_keys(self) -> set[str]:
        """Keys whose last outcome is a success and that were not sent again since."""
        return self._settled("succeeded")

    def failed_keys(self) -> set[str]:
        """Keys whose last outcome is a failure and that were not sent again since."""
        return self._settled("failed")

    def _settled(self, event: str) -> set[str]:
        return {k for k, r in self.outcomes.items() if r["event"] == event} - self.pending.keys()

    def training_status(self, key: str) -> StatusEntry | None:
        """The last status seen of the key's *current* version (None: not watched, or resent)."""
        entry = self.statuses.get(key)
        outcome = self.outcomes.get(key)
        if (
            entry is None
            or outcome is None
            or outcome["event"] != "succeeded"
            or outcome["version_id"] != entry.version_id
            or key in self.pending
        ):
            return None
        return entry


class _Folder:
    """Feeds lines into a LedgerState, one at a time (so a ledger of any length streams)."""

    def __init__(self, state: LedgerState, *, slim: bool = False) -> None:
        self.state = state
        self.slim = slim
        self.memo: dict[Any, Any] = {}  # shares the strings and parameter entries outcomes repeat

    def where(self) -> str:
        return self.state.path or "<ledger>"

    def line(self, raw: bytes | str, number: int, *, last: bool) -> None:
        state = self.state
        state.lines = number
        try:
            record = _DECODE(raw.decode() if isinstance(raw, bytes) else raw)
        except ValueError as exc:  # also UnicodeDecodeError
            if not raw.strip():
                return  # a blank line carries nothing
            complete = raw.endswith(b"\n") if isinstance(raw, bytes) else raw.endswith("\n")
            if (last and not complete) or _is_torn(raw):
                state.torn_line = True
                log.warning("batchsubmit.ledger.torn_line", path=state.path, line=number)
                return
            why = f"{exc.msg}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
            raise LedgerError(
                f"not a JSON line ({why}); only the last line may be torn by a crash: "
                "restore the file from a copy or move it aside",
                path=self.where(), line=number,
            ) from None  # fmt: skip
        try:
            check_record(record)
        except ValueError as exc:
            raise LedgerError(str(exc), path=self.where(), line=number) from None
        self.record(record, number)

    def record(self, record: dict[str, Any], number: int) -> None:
        state, event, ts = self.state, record["event"], record["ts"]
        if event == "status":  # no run's line: spans and first/last ts stay the runs'
            key, name = record["key"], record["status_name"]
            outcome = state.outcomes.get(key)
            if outcome is not None:
                key = outcome.get("key", key)  # share the string the outcome holds
            state.statuses[key] = StatusEntry(
                record["version_id"], record["status"], self.memo.setdefault(name, name),
                record["duration_ms"],
            )  # fmt: skip
            state.last_status_ts = ts
            return
        if event == "run_started":
            if state.sweep is None:
                state.sweep = record["sweep"]
            elif record["sweep"] != state.sweep:
                raise LedgerError(
                    f"another sweep's ledger: this run is of sweep {record['sweep']!r}, earlier "
                    f"runs in the file of sweep {state.sweep!r}; give each sweep its own --ledger",
                    path=self.where(), line=number,
                )  # fmt: skip
            state.spec_sha256 = record["spec_sha256"]
            state.runs.append(record)
            state.spans.append(RunSpan(started=record, first_ts=ts))
        span = state.spans[-1] if state.spans else None
        if span is None:
            span = RunSpan(first_ts=ts)
            state.spans.append(span)
        span.last_ts = ts
        state.last_ts = ts
        if state.first_ts is None:
            state.first_ts = ts
        if event == "submitted":
            key = record["key"]
            state.pending[key] = record
            self.attempt(key, record["attempt"])
            span.submitted += 1
            if span.first_submitted_ts is None:
                span.first_submitted_ts = ts
        elif event in ("succeeded", "failed"):
            key = record["key"]
            state.outcomes[key] = self.lean(record)
            state.pending.pop(key, None)
            self.attempt(key, record["attempts"])
            span.outcomes += 1
            span.last_outcome_ts = ts
            if span.first_submitted_ts is not None:
                span.outcomes_since_first_submit += 1
        elif event == "run_finished":
            span.finished = record

    def attempt(self, key: str, attempt: int) -> None:
        if attempt > self.state.attempts.get(key, 0):
            self.state.attempts[key] = attempt

    def lean(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with field names, repeated strings and parameter entries shared.

        A 100,000-point ledger otherwise holds ~250 MB of identical small dicts and strings.
        """
        memo = self.memo
        if self.slim:
            record = {name: record[name] for name in _SLIM_FIELDS if name in record}
        out = {_NAMES.get(name, name): value for name, value in record.items()}
        out["event"] = memo.setdefault(out["event"], out["event"])
        if out["event"] == "succeeded":
            if "parameter" not in out:
                return out  # slim
            out["parameter"] = [
                memo.setdefault((p["label"], p["value"]), p)
                if type(p) is dict and len(p) == 2 and p.keys() == _PAIR
                and type(p["label"]) is str and type(p["value"]) is str
                else p
                for p in out["parameter"]
            ]  # fmt: skip
        else:
            for name in ("error_code", "error_message"):
                if type(out[name]) is str:
                    out[name] = memo.setdefault(out[name], out[name])
        return out


_PAIR: Final = {"label": None, "value": None}.keys()
# What a slim fold keeps of an outcome: enough to resume and to summarise, a fraction of the size.
_SLIM_FIELDS: Final = (
    "event", "version_id", "attempts", "reconciled", "error_code", "error_message", "http_status",
)
_DECODE: Final = json.JSONDecoder().decode

_COMPLETIONS = ("", "0", ":0", '"":0', "rue", "ue", "e", "alse", "lse", "se", "ull", "ll", "l")


def _is_torn(raw: bytes | str) -> bool:
    """True if the line is an unfinished JSON object (NUL padding allowed): a crash mid-write.

    Sound by construction: true only if some completion of the line parses as an object.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\n").rstrip("\x00")
    if not text:
        return True  # nothing but NULs: a file system's zero-filled tail after a power loss
    if not text.startswith("{"):
        return False
    closers: list[str] = []
    in_string = escape = False
    hex_left = 0
    for ch in text:
        if in_string:
            if hex_left:
                hex_left -= 1
            elif escape:
                escape, hex_left = False, (4 if ch == "u" else 0)
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
        elif ch in "}]" and (not closers or closers.pop() != ch or not closers):
            return False  # mismatched, or the object ended and something follows
    if in_string:
        text += ("n" if escape else "0" * hex_left) + '"'
    tail = "".join(reversed(closers))
    for middle in _COMPLETIONS:
        try:
            if isinstance(json.loads(text + middle + tail), dict):
                return True
        except ValueError:
            continue
    return False


def fold(
    lines: Iterable[bytes | str], *, path: str | None = None, slim: bool = False
) -> LedgerState:
    """Fold ledger lines (with their ``\\n``, as a file yields them) into a :class:`LedgerState`.

    The last outcome line of a key wins; a key is pending when its last ``submitted`` line has no
    outcome line after it. A torn line is skipped with a ``batchsubmit.ledger.torn_line`` warning;
    any other bad line raises LedgerError with its line number, as does a second sweep's run.
    ``slim`` keeps only the outcome fields that resuming and summarising need (no parameter,
    train_url, latency or ts), for ledgers of a hundred thousand points.
    """
    state = LedgerState(path=path)
    folder = _Folder(state, slim=slim)
    iterator = iter(lines)
    line = next(iterator, None)
    number = 0
    while line is not None:
        following = next(iterator, None)
        number += 1
        folder.line(line, number, last=following is None)
        line = following
    return state


def read_ledger(path: str | os.PathLike[str], *, slim: bool = False) -> LedgerState:
    """Fold the ledger at ``path``, streaming; a missing file is an empty ledger."""
    where = os.fspath(path)
    try:
        with open(where, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):  # /dev/zero reads for ever
                raise LedgerError("not a regular file: give a file path for the ledger",
                                  path=where)
            return fold(file, path=where, slim=slim)
    except FileNotFoundError:
        return LedgerState(path=where)
    except OSError as exc:
        raise _os_error("read the ledger", exc, where) from exc


# --- writing: the group-commit writer ------------------------------------------------------------

_HINTS: Final[Mapping[int, str]] = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EACCES: "check the permissions of the file and its directory, or pass another --ledger",
    errno.EPERM: "check the permissions of the file and its directory, or pass another --ledger",
    errno.EROFS: "the file system is read-only: pass a --ledger on a writable one",
    errno.ENOENT: "the directory does not exist: create it, or pass another --ledger",
    errno.EISDIR: "that is a directory: pass a --ledger naming a file",
    errno.EIO: "the disk reported an I/O error",
}


def _reason(action: str, exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "?")
    hint = _HINTS.get(exc.errno or 0)
    return f"cannot {action}: {exc.strerror or exc} ({name})" + (f"; {hint}" if hint else "")


def _os_error(action: str, exc: OSError, path: str) -> LedgerError:
    return LedgerError(_reason(action, exc), path=path)


class _Batch:
    """Lines handed to ``write`` that will go out in one write + fsync."""

    __slots__ = ("chunks", "done", "finished")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.done = False  # the write + fsync was attempted (it failed if the writer is broken)
        self.finished = anyio.Event()  # set when done


class LedgerWriter:
    """Appends records durably: ``write`` returns once its line is written and fsynced.

    ``async with LedgerWriter(path, expected_sweep="lr-sweep") as ledger: await ledger.write(r)``

    Group commit: concurrent ``write`` calls that arrive while a batch is being synced form the
    next batch, which the first of them to wake writes with one ``os.write`` and one fsync in a
    worker thread, for all of them. The file is locked (``flock``) against a second writer, created
    with mode 0600, and refused if it belongs to another sweep. After any OSError the writer is
    broken for good: every waiter of that batch and every later ``write`` raise LedgerError.
    ``sync`` makes each batch durable (``os.fsync``); tests wrap it to hold a batch in flight.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        expected_sweep: str | None = None,
        sync: Callable[[int], None] = os.fsync,
    ) -> None:
        self.path = os.fspath(path)
        self.expected_sweep = expected_sweep
        self._sync = sync
        self._fd: int | None = None
        self._closed = False
        self._separator = b""  # b"\n" when the file ends with a torn line
        self._current = _Batch()
        self._in_flight: _Batch | None = None
        self._thread = anyio.CapacityLimiter(1)  # its own: never queued behind others' threads
        self._broken: str | None = None  # why the writer is broken: the reason every write gets
        self._cause: BaseException | None = None
        self.records_written = 0
        self.batches = 0
        self.fsyncs = 0

    # lifecycle

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> Self:
        """Open (or create) the ledger for appending; LedgerError if it cannot be used."""
        if self._fd is not None or self._closed:
            raise RuntimeError("a LedgerWriter is opened once: create a new one")
        with anyio.CancelScope(shield=True):  # an fd opened must be kept, to be closed
            self._fd = await anyio.to_thread.run_sync(self._open_file, limiter=self._thread)
        return self

    def _open_file(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            try:
                fd, created = os.open(self.path, flags | os.O_EXCL, 0o600), True
            except FileExistsError:
                fd, created = os.open(self.path, flags, 0o600), False
        except OSError as exc:
            raise _os_error("open the ledger for appending", exc, self.path) from exc
        try:
            self._prepare(fd, created)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _prepare(self, fd: int, created: bool) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LedgerError(
                "another batchsubmit process is writing this ledger; wait for it to finish "
                "(or stop it) before running the same sweep again",
                path=self.path,
            ) from None
        except OSError:  # a file system without locks (ENOLCK, EOPNOTSUPP): go on unlocked
            log.warning("batchsubmit.ledger.unlocked", path=self.path)
        try:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode):
                if info.st_mode & 0o077:
                    log.warning(
                        "batchsubmit.ledger.mode_too_wide",
                        path=self.path, mode=oct(stat.S_IMODE(info.st_mode)),
                        hint=f"chmod 600 {self.path}",
                    )  # fmt: skip
                if info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
                    self._separator = b"\n"
                    log.warning("batchsubmit.ledger.torn_line_closed", path=self.path)
                if info.st_size and self.expected_sweep is not None:
                    self._check_sweep(self.expected_sweep)
            if created:  # make the new directory entry durable too
                dir_fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise _os_error("prepare the ledger", exc, self.path) from exc

    def _check_sweep(self, expected: str) -> None:
        with open(self.path, "rb") as file:
            for line in file:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("event") == "run_started":
                    if record.get("sweep") != expected:
                        raise LedgerError(
                            f"another sweep's ledger: it records sweep {record.get('sweep')!r}, "
                            f"not {expected!r}; pass a --ledger of its own to each sweep",
                            path=self.path,
                        )
                    return

    async def aclose(self) -> None:
        """Write what is still buffered (lines whose writers were cancelled), then close.

        Raises LedgerError if that last write fails.
        """
        if self._closed:
            return
        try:
            with anyio.CancelScope(shield=True):
                while self._fd is not None and self._broken is None:
                    if self._in_flight is not None:
                        await self._in_flight.finished.wait()
                    elif self._current.chunks:
                        await self._flush()
                        if self._broken is not None:
                            raise self._error()
                    else:
                        break
        finally:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)  # releases the lock
                self._fd = None

    # writing

    async def write(self, record: Mapping[str, Any]) -> None:
        """Append one record; returns when its line is durable. LedgerError if it cannot be."""
        await self.write_many((record,))

    async def write_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append records in order, in one batch; returns when all are durable (one fsync).

        Every record is checked before any is queued, so a bad one writes none of them.
        """
        if self._fd is None:
            raise RuntimeError(
                "the ledger writer is closed" if self._closed else
                "the ledger writer is not open: use `async with LedgerWriter(path) as ledger:`"
            )  # fmt: skip
        if self._broken is not None:
            raise self._error()
        chunks = []
        expected = self.expected_sweep
        for raw in records:
            record = check_record(dict(raw))
            if record["event"] == "run_started":
                if expected is not None and record["sweep"] != expected:
                    raise LedgerError(
                        f"refusing to start a run of sweep {record['sweep']!r} in the ledger of "
                        f"sweep {expected!r}; pass a --ledger of its own to each sweep",
                        path=self.path,
                    )
                expected = record["sweep"]
            chunks.append(encode(record))
        if not chunks:
            return
        self.expected_sweep = expected
        batch = self._current
        batch.chunks.extend(chunks)
        while not batch.done:
            if self._broken is not None:
                raise self._error()
            if self._in_flight is None:
                await self._flush()  # my batch is the current one: write it, for all in it
            else:
                await self._in_flight.finished.wait()  # then see whether mine is next
        if self._broken is not None:
            raise self._error()

    async def _flush(self) -> None:
        batch, self._current = self._current, _Batch()
        self._in_flight = batch
        data = self._separator + b"".join(batch.chunks)
        try:
            with anyio.CancelScope(shield=True):  # a batch is written whole, whoever is cancelled
                await anyio.to_thread.run_sync(self._write_and_sync, data, limiter=self._thread)
            self._separator = b""
            self.records_written += len(batch.chunks)
        except BaseException as exc:  # the batch may be half-written: nothing more may follow it
            self._cause = exc
            self._broken = (
                _reason("append to the ledger", exc) if isinstance(exc, OSError)
                else f"cannot append to the ledger: {exc!r}"
            )  # fmt: skip
            log.error("batchsubmit.ledger.write_failed", path=self.path, error=self._broken)
            if not isinstance(exc, OSError):
                raise
        finally:
            self.batches += 1
            batch.done = True
            self._in_flight = None
            batch.finished.set()

    def _write_and_sync(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            if written <= 0:
                raise OSError(errno.EIO, "write wrote nothing")
            view = view[written:]
        self._sync(self._fd)
        self.fsyncs += 1

    def _error(self) -> LedgerError:
        assert self._broken is not None
        error = LedgerError(
            f"{self._broken}. The lines written before are safe: re-running the same command "
            "resumes from them",
            path=self.path,
        )
        error.__cause__ = self._cause
        return error

    @property
    def pending(self) -> int:
        """Records handed to ``write`` and not yet durable."""
        return len(self._current.chunks) + (len(self._in_flight.chunks) if self._in_flight else 0)

    def __repr__(self) -> str:
        state = (
            f"broken ({self._broken})" if self._broken is not None
            else "closed" if self._closed
            else "open" if self._fd is not None
            else "not open"
        )  # fmt: skip
        return (
            f"<LedgerWriter {self.path!r} {state} pending={self.pending} "
            f"written={self.records_written} batches={self.batches} fsyncs={self.fsyncs}>"
        )

"""Reading a ledger: the fold of its lines into a LedgerState, streaming. Pure but for the file."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from batchsubmit.errors import LedgerError
from batchsubmit.events import get_logger
from batchsubmit.ledger.records import _NAMES, Outcome, check_record
from batchsubmit.ledger.settings import RunSettings

log = get_logger("batchsubmit.ledger")


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

    version_id: int | str  # v2: the training job's id
    status: int | None  # v1's status code; None for v2 (its phase is ``status_name``)
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
    # key -> the version_id (v2: training_job_id) of its last stopped / deleted line
    stopped: dict[str, int | str] = field(default_factory=dict)
    deleted: dict[str, int | str] = field(default_factory=dict)
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
    def settings(self) -> RunSettings | None:
        """The last run's recorded settings, typed (None: no run recorded)."""
        return RunSettings.of(self.runs[-1]["settings"]) if self.runs else None

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

    def was_stopped(self, key: str) -> bool:
        """A ``stopped`` line names the key's *current* version (not one since re-sent)."""
        return self._current(key, self.stopped.get(key))

    def was_deleted(self, key: str) -> bool:
        """A ``deleted`` line names the key's *current* version (not one since re-sent)."""
        return self._current(key, self.deleted.get(key))

    def _current(self, key: str, version_id: int | str | None) -> bool:
        outcome = self.outcomes.get(key)
        return (
            version_id is not None and outcome is not None and outcome["event"] == "succeeded"
            and object_id(outcome) == version_id and key not in self.pending
        )  # fmt: skip

    def training_status(self, key: str) -> StatusEntry | None:
        """The last status seen of the key's *current* version (None: not watched, or resent)."""
        entry = self.statuses.get(key)
        outcome = self.outcomes.get(key)
        if (
            entry is None
            or outcome is None
            or outcome["event"] != "succeeded"
            or object_id(outcome) != entry.version_id
            or key in self.pending
        ):
            return None
        return entry


def object_id(record: Mapping[str, Any]) -> int | str:
    """The server's id of what a succeeded, status, stopped or deleted line is about: the v1
    ``version_id`` or the v2 ``training_job_id``."""
    found: int | str = record["version_id"] if "version_id" in record else record["training_job_id"]
    return found


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
            if number == 1 and self.looks_like_a_spec(raw):
                raise LedgerError(
                    "this is a sweep spec, not a ledger: give the ledger `batchsubmit run` wrote "
                    "for it (<sweep name>.ledger.jsonl by default, or its --ledger PATH)",
                    path=self.where(),
                ) from None
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

    def looks_like_a_spec(self, first: bytes | str) -> bool:
        """A first line that is no record, in a file named like a spec (.yaml, .json, ...)."""
        text = first.decode("utf-8", "replace") if isinstance(first, bytes) else first
        named = self.where().lower().endswith(_SPEC_SUFFIXES)
        return named and not text.lstrip().startswith('{"event"')

    def record(self, record: dict[str, Any], number: int) -> None:
        state, event, ts = self.state, record["event"], record["ts"]
        if event == "status":  # no run's line: spans and first/last ts stay the runs'
            key, name = record["key"], record["status_name"]
            outcome = state.outcomes.get(key)
            if outcome is not None:
                key = outcome.get("key", key)  # share the string the outcome holds
            state.statuses[key] = StatusEntry(
                object_id(record), record.get("status"), self.memo.setdefault(name, name),
                record["duration_ms"],
            )  # fmt: skip
            state.last_status_ts = ts
            return
        if event in ("stopped", "deleted"):  # no run's line either (batchsubmit stop / delete)
            acted = state.stopped if event == "stopped" else state.deleted
            acted[record["key"]] = object_id(record)
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
_SPEC_SUFFIXES: Final = (".yaml", ".yml", ".toml", ".json")  # a ledger is JSON Lines
# What a slim fold keeps of an outcome: enough to resume and to summarise, a fraction of the size.
_SLIM_FIELDS: Final = (
    "event", "version_id", "training_job_id", "job_name", "attempts", "reconciled", "error_code",
    "error_message", "http_status",
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


_HINTS: Final[Mapping[int, str]] = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EACCES: "check the permissions of the file and its directory, or use another ledger",
    errno.EPERM: "check the permissions of the file and its directory, or use another ledger",
    errno.EROFS: "the file system is read-only: use a ledger on a writable one",
    errno.ENOENT: "the directory does not exist: create it, or use another ledger",
    errno.EISDIR: "that is a directory: give a path naming a file (a *.ledger.jsonl)",
    errno.EIO: "the disk reported an I/O error",
}


def _reason(action: str, exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "?")
    hint = _HINTS.get(exc.errno or 0)
    return f"cannot {action}: {exc.strerror or exc} ({name})" + (f"; {hint}" if hint else "")


def _os_error(action: str, exc: OSError, path: str) -> LedgerError:
    return LedgerError(_reason(action, exc), path=path)

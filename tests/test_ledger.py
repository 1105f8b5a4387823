"""The ledger: record shapes (a contract with outside scripts), the fold, and the durable writer."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import threading
import tracemalloc
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from structlog.testing import capture_logs

from batchsubmit import ledger
from batchsubmit.errors import LedgerError
from batchsubmit.ledger import LedgerState, LedgerWriter, encode, fold, read_ledger

pytestmark = pytest.mark.anyio

TS = "2026-11-26T23:01:02.345Z"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def start(sweep: str = "lr-sweep", spec: str = "ab12", total: int = 4) -> dict[str, Any]:
    return ledger.run_started(sweep=sweep, spec_sha256=spec, total=total, settings={}, ts=TS)


def sent(key: str, attempt: int = 1, index: int = 0) -> dict[str, Any]:
    return ledger.submitted(
        key=key, index=index, attempt=attempt, train_url=f"obs://b/{key}/", ts=TS
    )


def ok(
    key: str, attempts: int = 1, version_id: int = 21, reconciled: bool = False
) -> dict[str, Any]:
    return ledger.succeeded(
        key=key, index=0, version_id=version_id, version_name=f"V{version_id:04d}",
        parameter=[("lr", "0.1")], train_url=f"obs://b/{key}/", attempts=attempts,
        reconciled=reconciled, latency_ms=51.5, ts=TS,
    )  # fmt: skip


def bad(key: str, attempts: int = 1, message: str = "no such flavor") -> dict[str, Any]:
    return ledger.failed(
        key=key, index=0, error_code="ModelArts.2763", error_message=message, http_status=400,
        request_id="r-1", attempts=attempts, ts=TS,
    )  # fmt: skip


def lines(*records: dict[str, Any]) -> list[bytes]:
    return [encode(r) for r in records]


# --- records -------------------------------------------------------------------------------------


def test_record_fields_are_the_published_contract() -> None:
    """The field names and order are exactly those issues 4, 5 and 13 promise to outside
    scripts."""
    assert dict(ledger.RECORD_FIELDS) == {
        "run_started": ("sweep", "spec_sha256", "total", "settings"),
        "submitted": ("key", "index", "attempt", "train_url"),
        "succeeded": (
            "key", "index", "version_id", "version_name", "parameter", "train_url", "attempts",
            "reconciled", "latency_ms",
        ),
        "failed": (
            "key", "index", "error_code", "error_message", "http_status", "request_id",
            "attempts",
        ),
        "run_finished": ("counts", "interrupted"),
        "status": ("key", "version_id", "status", "status_name", "duration_ms"),
        "stopped": ("key", "version_id", "job_id"),
        "deleted": ("key", "version_id", "job_id"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "record",
    [
        start(),
        sent("k"),
        ok("k"),
        bad("k"),
        ledger.run_finished(counts={"succeeded": 1}, interrupted=False, ts=TS),
        ledger.status(
            key="k", version_id=21, status=8, status_name="RUNNING", duration_ms=500, ts=TS
        ),
    ],
    ids=lambda r: r["event"],
)
def test_records_put_event_first_and_ts_last(record: dict[str, Any]) -> None:
    """Every builder writes "event", then the contract's fields in order, the fields added
    later, then "ts"."""
    event = record["event"]
    assert list(record) == [
        "event", *ledger.RECORD_FIELDS[event], *ledger.RECORD_EXTRAS.get(event, ()), "ts"
    ]
    assert ledger.check_record(record) is record


def test_timestamps_are_utc_with_milliseconds() -> None:
    """``ts`` is ISO-8601 in UTC with milliseconds and a Z, whatever the clock's zone."""
    local = datetime(2026, 11, 27, 7, 1, 2, 345678, tzinfo=timezone(timedelta(hours=8)))
    assert ledger.timestamp(local) == "2026-11-26T23:01:02.345Z"
    now = ledger.submitted(key="k", index=0, attempt=1, train_url="u")["ts"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
    written = datetime.fromisoformat(now.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - written).total_seconds()) < 2  # the clock, in UTC


def test_parameters_are_written_as_label_value_objects() -> None:
    """The (label, value) pairs become ``[{"label": ..., "value": ...}]``, in order."""
    record = ok("k")
    assert record["parameter"] == [{"label": "lr", "value": "0.1"}]


def test_encode_is_one_compact_ascii_line() -> None:
    """Any message text encodes to exactly one ASCII line ending in a newline, and decodes back."""
    record = bad("k", message="ligne\nsuivante \u2028 \x85 é 失败 [bold]")
    line = encode(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert line.isascii()
    assert line == json.dumps(record, separators=(",", ":")).encode() + b"\n"
    assert json.loads(line) == record
    assert len(io.StringIO(line.decode()).read().splitlines()) == 1


def test_encode_refuses_a_secret() -> None:
    """A SecretStr anywhere in a record is refused rather than written."""
    record = ledger.run_started(
        sweep="s", spec_sha256="x", total=1, settings={"sk": SecretStr("hunter2")}
    )
    with pytest.raises(TypeError, match="secret must never reach the ledger"):
        encode(record)


def test_encode_refuses_nan() -> None:
    """NaN is not JSON, so a NaN latency is refused rather than written as a bare token."""
    record = ok("k")
    record["latency_ms"] = float("nan")
    with pytest.raises(ValueError):
        encode(record)


# --- the fold ------------------------------------------------------------------------------------


def test_last_outcome_line_wins() -> None:
    """A key's last outcome line is its outcome, whatever came before."""
    state = fold(lines(start(), sent("a"), bad("a"), sent("a", 2), ok("a", 2), sent("b"), ok("b")))
    assert state.outcomes["a"]["event"] == "succeeded"
    assert state.outcomes["a"]["version_id"] == 21
    assert state.succeeded_keys() == {"a", "b"} and state.failed_keys() == set()
    assert state.pending == {}


def test_pending_is_a_submitted_line_with_no_outcome_after_it() -> None:
    """A key sent again after its outcome is pending (unknown), and no longer counts as failed."""
    state = fold(lines(start(), sent("a"), bad("a"), sent("a", 2), sent("b"), sent("c"), ok("c")))
    assert state.pending["a"]["attempt"] == 2
    assert set(state.pending) == {"a", "b"}
    assert state.outcomes["a"]["event"] == "failed"  # the raw last outcome is kept
    assert state.status("a") == "pending" and state.status("c") == "succeeded"
    assert state.status("zzz") is None
    assert state.failed_keys() == set()


def test_attempts_is_the_highest_attempt_seen() -> None:
    """``attempts`` keeps the highest attempt from submitted lines and outcome lines alike."""
    state = fold(lines(start(), sent("a", 3), sent("a", 1), bad("b", attempts=5)))
    assert state.attempts == {"a": 3, "b": 5}


def test_sweep_comes_from_the_first_run_and_spec_hash_from_the_last() -> None:
    """A resumed sweep keeps its name; the spec hash is the latest run's."""
    state = fold(lines(start(spec="old", total=4), sent("a"), start(spec="new", total=6)))
    assert (state.sweep, state.spec_sha256, state.total) == ("lr-sweep", "new", 6)
    assert [r["spec_sha256"] for r in state.runs] == ["old", "new"]


def test_another_sweeps_run_is_an_error_naming_the_line() -> None:
    """A run_started of a different sweep means two sweeps share a file: refuse, with the line."""
    with pytest.raises(LedgerError, match="another sweep's ledger") as info:
        fold(lines(start(), sent("a"), start(sweep="other")), path="x.jsonl")
    assert (info.value.path, info.value.line) == ("x.jsonl", 3)


def test_runs_are_paired_with_their_run_finished() -> None:
    """Each run's span holds its run_finished; a run killed before writing one has None."""
    done = ledger.run_finished(counts={}, interrupted=True, ts=TS)
    state = fold(lines(start(), sent("a"), done, start(), sent("b")))
    assert [s.finished for s in state.spans] == [done, None]
    assert state.last_run is state.spans[-1]


def seen(key: str, code: int, name: str, version_id: int = 21, ts: str = TS) -> dict[str, Any]:
    return ledger.status(
        key=key, version_id=version_id, status=code, status_name=name, duration_ms=7, ts=ts
    )


def test_fold_keeps_the_latest_status_per_key_as_a_small_tuple() -> None:
    """Each key keeps only its last status line, as a StatusEntry tuple sharing the key string."""
    state = fold(lines(start(), sent("a"), ok("a"), seen("a", 1, "INIT"), seen("a", 8, "RUNNING")))
    assert state.statuses == {"a": ledger.StatusEntry(21, 8, "RUNNING", 7)}
    assert type(state.statuses["a"]) is ledger.StatusEntry
    assert next(iter(state.statuses)) is state.outcomes["a"]["key"]
    assert state.training_status("a") == (21, 8, "RUNNING", 7)


def test_status_lines_leave_the_runs_spans_and_times_alone() -> None:
    """A status line belongs to no run: the last run's span, counts and last_ts are unchanged."""
    later = "2026-11-27T09:00:00.000Z"
    done = ledger.run_finished(counts={}, interrupted=False, ts=TS)
    state = fold(lines(start(), sent("a"), ok("a"), done, seen("a", 10, "COMPLETED", ts=later)))
    assert state.last_ts == TS and state.spans[-1].last_ts == TS
    assert state.spans[-1].outcomes == 1 and len(state.spans) == 1
    assert state.last_status_ts == later


def test_a_status_of_an_older_version_is_not_the_points_training_status() -> None:
    """Once a key has another version (or is sent again), the old status is not its status."""
    state = fold(lines(start(), sent("a"), ok("a"), seen("a", 10, "COMPLETED", version_id=99)))
    assert state.training_status("a") is None
    state = fold(lines(start(), sent("a"), ok("a"), seen("a", 10, "COMPLETED"), sent("a", 2)))
    assert state.training_status("a") is None


@pytest.mark.parametrize("tail", [b'{"event":"submitted","key":"b","ind', b"xx\x00garbage"])
def test_a_torn_last_line_is_ignored_with_a_warning(tail: bytes) -> None:
    """A last line without a newline that does not parse (a crash mid-write) is skipped, warned."""
    with capture_logs() as events:
        state = fold([*lines(start(), sent("a")), tail], path="x.jsonl")
    assert state.torn_line and set(state.pending) == {"a"}
    assert events == [
        {"event": "batchsubmit.ledger.torn_line", "log_level": "warning", "path": "x.jsonl",
         "line": 3},
    ]  # fmt: skip


def test_a_complete_last_line_without_newline_is_a_record() -> None:
    """Only an unparseable last line is torn: a whole record missing its newline counts."""
    state = fold([encode(start()), encode(sent("a")).rstrip(b"\n")])
    assert set(state.pending) == {"a"} and not state.torn_line


def test_a_torn_line_closed_by_a_later_run_is_skipped() -> None:
    """A torn line followed by the newline the next writer adds is still skipped, with a warning."""
    torn = encode(ok("b"))[:57] + b"\n"
    with capture_logs() as events:
        state = fold([*lines(start(), sent("a")), torn, *lines(start(), ok("a"))], path="x")
    assert state.torn_line and state.succeeded_keys() == {"a"}
    assert [(e["event"], e["line"]) for e in events] == [("batchsubmit.ledger.torn_line", 3)]


def test_a_zero_filled_tail_after_power_loss_is_a_torn_line() -> None:
    """NUL bytes where a line should be (a file system's lost tail) are treated as torn."""
    with capture_logs():
        state = fold([*lines(start()), b"\x00" * 40 + b"\n", *lines(sent("a"))])
    assert state.torn_line and set(state.pending) == {"a"}


def test_blank_lines_are_skipped() -> None:
    """An empty or blank line carries nothing and is not an error."""
    state = fold([*lines(start()), b"\n", b"   \n", *lines(sent("a"))])
    assert set(state.pending) == {"a"} and state.lines == 4


@pytest.mark.parametrize(
    "line",
    [b"not json at all\n", b'{"event":"submitted","key":"a"} trailing\n', b"\x01\x02\n"],
)
def test_a_garbage_line_in_the_middle_is_an_error_with_its_line_number(line: bytes) -> None:
    """Any other unparseable line is damage: LedgerError naming the file and the line."""
    with pytest.raises(LedgerError, match="not a JSON line") as info:
        fold([*lines(start(), sent("a")), line, *lines(ok("a"))], path="x.jsonl")
    assert (info.value.path, info.value.line) == ("x.jsonl", 3)
    assert str(info.value).startswith("x.jsonl:3: ")


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda r: r.pop(name)


def _set(name: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda r: r.__setitem__(name, value)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_set("event", "erased"), "unknown event 'erased'"),
        (_drop("event"), "unknown event None"),
        (_drop("attempts"), "succeeded record without 'attempts'"),
        (_drop("ts"), "succeeded record without 'ts'"),
        (_set("version_id", "21"), r"succeeded.version_id is '21'; expected int"),
        (_set("attempts", True), "succeeded.attempts is True; expected int"),
        (_set("reconciled", 1), "succeeded.reconciled is 1; expected bool"),
        (_set("latency_ms", "fast"), "expected int or float or null"),
    ],
)
def test_a_record_with_a_bad_event_or_field_is_an_error(
    damage: Callable[[dict[str, Any]], None], message: str
) -> None:
    """Unknown events, missing fields and wrongly typed fields are damage, with the line."""
    record = ok("a")
    damage(record)
    with pytest.raises(LedgerError, match=message) as info:
        fold([*lines(start()), json.dumps(record) + "\n"])
    assert info.value.line == 2


@pytest.mark.parametrize("line", [b"[1, 2]\n", b"42\n", b'"text"\n'])
def test_a_line_that_is_not_an_object_is_an_error(line: bytes) -> None:
    """A JSON value that is not an object is not a record."""
    with pytest.raises(LedgerError, match="a record is a JSON object") as info:
        fold([line, *lines(start())])
    assert info.value.line == 1


def test_text_lines_fold_like_bytes() -> None:
    """fold takes str lines as well as bytes (a caller's own reader, a test)."""
    state = fold([line.decode() for line in lines(start(), sent("a"), ok("a"))])
    assert state.succeeded_keys() == {"a"}


def test_reading_a_missing_ledger_gives_an_empty_state(tmp_path: Path) -> None:
    """No file yet is a ledger with nothing in it (the first run of a sweep)."""
    state = read_ledger(tmp_path / "new.jsonl")
    assert state == LedgerState(path=str(tmp_path / "new.jsonl"))


def test_reading_a_directory_is_a_ledger_error(tmp_path: Path) -> None:
    """A path that cannot be read raises LedgerError with the reason and a hint."""
    with pytest.raises(LedgerError, match=r"EISDIR.*naming a file"):
        read_ledger(tmp_path)


def test_reading_streams_the_file(tmp_path: Path) -> None:
    """A ledger is folded line by line: memory stays flat however long the file is."""
    path = tmp_path / "long.jsonl"
    url = "obs://bucket/" + "x" * 3000
    record = encode(ledger.submitted(key="a", index=0, attempt=1, train_url=url, ts=TS))
    outcome = encode(ok("a"))
    with path.open("wb") as file:
        file.write(encode(start()))
        for _ in range(2_000):
            file.write(record + outcome)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        state = read_ledger(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert state.lines == 4_001 and state.succeeded_keys() == {"a"}
    assert size > 6_000_000 and peak < size / 10


# --- the fold, by property -----------------------------------------------------------------------

_texts = st.text(st.characters(codec="utf-8"), max_size=12)
_ops = st.lists(
    st.tuples(
        st.sampled_from(["submitted", "succeeded", "failed"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(1, 5),
        _texts,
        st.floats(allow_nan=False, allow_infinity=False) | st.none(),
    ),
    max_size=30,
)


def _records(ops: Iterable[tuple[str, str, int, str, float | None]]) -> list[dict[str, Any]]:
    out = [start()]
    for i, (event, key, n, text, latency) in enumerate(ops):
        if event == "submitted":
            out.append(ledger.submitted(key=key, index=i, attempt=n, train_url=text, ts=TS))
        elif event == "succeeded":
            out.append(
                ledger.succeeded(
                    key=key,
                    index=i,
                    version_id=i,
                    version_name=text,
                    parameter=[(text, text)],
                    train_url=text,
                    attempts=n,
                    reconciled=n % 2 == 0,
                    latency_ms=latency,
                    ts=TS,
                )
            )
        else:
            out.append(
                ledger.failed(
                    key=key,
                    index=i,
                    error_code=text or None,
                    error_message=text,
                    http_status=None,
                    request_id=None,
                    attempts=n,
                    ts=TS,
                )
            )
    return out


@given(_ops)
def test_fold_replays_any_interleaving(ops: list[tuple[str, str, int, str, float | None]]) -> None:
    """Any order of lines: last outcome wins, pending = sent after it, attempts = the highest."""
    records = _records(ops)
    outcomes: dict[str, dict[str, Any]] = {}
    pending: dict[str, dict[str, Any]] = {}
    attempts: dict[str, int] = {}
    for record in records[1:]:
        key = record["key"]
        if record["event"] == "submitted":
            pending[key] = record
            attempts[key] = max(attempts.get(key, 0), record["attempt"])
        else:
            outcomes[key] = record
            pending.pop(key, None)
            attempts[key] = max(attempts.get(key, 0), record["attempts"])
    state = fold(lines(*records))
    assert (state.outcomes, state.pending, state.attempts) == (outcomes, pending, attempts)
    settled = state.succeeded_keys() | state.failed_keys()
    assert settled.isdisjoint(state.pending) and settled | set(pending) == set(attempts)


def _state(state: LedgerState) -> tuple[Any, ...]:
    return state.outcomes, state.pending, state.attempts, state.runs


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(_ops, st.data())
def test_every_crash_point_reads_back_and_resumes(
    ops: list[tuple[str, str, int, str, float | None]], data: st.DataObject
) -> None:
    """Cut a ledger at any byte, add the next run's newline and lines: it folds without error."""
    records = _records(ops)
    encoded = lines(*records)
    whole = b"".join(encoded)
    cut = data.draw(st.integers(0, len(whole)), label="cut")
    prefix = whole[:cut]
    survivors, end = [], 0
    for record, line in zip(records, encoded, strict=True):
        end += len(line)
        if end - 1 <= cut:  # the JSON is whole (its newline may be missing)
            survivors.append(record)
    later = [start(), sent("z")]
    with capture_logs():
        crashed = fold(io.BytesIO(prefix))
        assert _state(crashed) == _state(fold(lines(*survivors)))
        glue = b"\n" if prefix and not prefix.endswith(b"\n") else b""
        resumed = fold(io.BytesIO(prefix + glue + b"".join(lines(*later))))
    assert _state(resumed) == _state(fold(lines(*survivors, *later)))


# --- the writer ----------------------------------------------------------------------------------


class GatedSync:
    """An fsync that holds every batch until the test releases it, so writers can queue behind."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, fd: int) -> None:
        self.entered.set()
        assert self.release.wait(timeout=30)
        os.fsync(fd)


def file_records(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


async def test_concurrent_writes_share_fsyncs(tmp_path: Path) -> None:
    """100 writers at once give 100 whole lines with far fewer fsyncs than writes."""
    path = tmp_path / "s.jsonl"
    records = [sent(f"k{i}", index=i) for i in range(100)]
    async with LedgerWriter(path) as writer, anyio.create_task_group() as tg:
        for record in records:
            tg.start_soon(writer.write, record)
    assert sorted(file_records(path), key=lambda r: r["index"]) == records
    assert writer.records_written == 100
    assert writer.fsyncs == writer.batches < 100


async def test_write_many_appends_in_order_with_one_fsync(tmp_path: Path) -> None:
    """write_many makes all its records durable in one batch, in the order given."""
    path = tmp_path / "s.jsonl"
    records = [seen(f"k{i}", 8, "RUNNING") for i in range(50)]
    async with LedgerWriter(path) as writer:
        await writer.write_many(records)
        await writer.write_many([])
    assert file_records(path) == records
    assert writer.fsyncs == 1


async def test_write_many_refuses_all_when_one_record_is_bad(tmp_path: Path) -> None:
    """One invalid record in write_many means none of them is written."""
    path = tmp_path / "s.jsonl"
    broken = {**seen("b", 8, "RUNNING"), "status": "8"}
    async with LedgerWriter(path) as writer:
        with pytest.raises(ValueError, match=r"status\.status"):
            await writer.write_many([seen("a", 8, "RUNNING"), broken])
    assert file_records(path) == []


async def test_write_returns_after_its_line_is_fsynced(tmp_path: Path) -> None:
    """Each write waits for the fsync of the batch holding its line."""
    path = tmp_path / "s.jsonl"
    synced: list[int] = []

    def sync(fd: int) -> None:
        os.fsync(fd)
        synced.append(len(path.read_bytes().splitlines()))

    async with LedgerWriter(path, sync=sync) as writer:
        for i in range(3):
            await writer.write(sent(f"k{i}"))
            assert synced[-1] == i + 1
    assert writer.fsyncs == 3


async def test_a_new_ledger_is_created_with_mode_0600(tmp_path: Path) -> None:
    """The file is created owner-only whatever the umask (it names buckets and jobs)."""
    path = tmp_path / "s.jsonl"
    old = os.umask(0)
    try:
        async with LedgerWriter(path) as writer:
            await writer.write(start())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_an_existing_ledger_readable_by_others_is_kept_with_a_warning(tmp_path: Path) -> None:
    """A wider mode on an existing file is not changed behind the user's back, only warned about."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(encode(start()))
    path.chmod(0o644)
    with capture_logs() as events:
        async with LedgerWriter(path) as writer:
            await writer.write(sent("a"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [e for e in events if e["event"] == "batchsubmit.ledger.mode_too_wide"] == [
        {"event": "batchsubmit.ledger.mode_too_wide", "log_level": "warning", "path": str(path),
         "mode": "0o644", "hint": f"chmod 600 {path}"},
    ]  # fmt: skip


async def test_a_full_disk_fails_every_waiter_and_every_later_write() -> None:
    """ENOSPC (/dev/full) reaches all writers of the batch and all later ones, as LedgerError."""
    errors: list[BaseException] = []

    async def write(writer: LedgerWriter, i: int) -> None:
        try:
            await writer.write(sent(f"k{i}"))
        except LedgerError as exc:
            errors.append(exc)

    with capture_logs() as events:
        async with LedgerWriter("/dev/full") as writer:
            async with anyio.create_task_group() as tg:
                for i in range(5):
                    tg.start_soon(write, writer, i)
            with pytest.raises(LedgerError, match="ENOSPC") as later:
                await writer.write(sent("late"))
    assert len(errors) == 5
    for error in [*errors, later.value]:
        assert isinstance(error, LedgerError) and error.path == "/dev/full"
        assert "No space left on device (ENOSPC); the disk is full" in str(error)
        assert isinstance(error.__cause__, OSError)
    assert writer.fsyncs == 0 and "broken" in repr(writer)
    assert [e["event"] for e in events] == ["batchsubmit.ledger.write_failed"]


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (lambda tmp: tmp / "no-such-dir" / "s.jsonl", r"\(ENOENT\); the directory does not exist"),
        (lambda tmp: tmp, r"\(EISDIR\); that is a directory"),
    ],
    ids=["missing-dir", "directory"],
)
async def test_an_unusable_path_fails_at_open(
    tmp_path: Path, where: Callable[[Path], Path], reason: str
) -> None:
    """A ledger that cannot be opened fails before anything is sent, with the reason and a hint."""
    with pytest.raises(LedgerError, match=reason) as info:
        async with LedgerWriter(where(tmp_path)):
            pass
    assert info.value.path == str(where(tmp_path))


async def test_appending_after_a_torn_line_starts_a_new_line(tmp_path: Path) -> None:
    """If the file ends mid-line, the next record goes after a newline; the ledger reads back."""
    path = tmp_path / "s.jsonl"
    before = encode(start()) + encode(ok("a"))[:40]
    path.write_bytes(before)
    async with LedgerWriter(path) as writer:
        await writer.write(sent("b"))
        await writer.write(ok("b"))
    assert path.read_bytes() == before + b"\n" + encode(sent("b")) + encode(ok("b"))
    with capture_logs() as events:
        state = read_ledger(path)
    assert state.torn_line and state.succeeded_keys() == {"b"}
    assert [e["line"] for e in events] == [2]


async def test_a_cancelled_waiter_loses_no_lines(tmp_path: Path) -> None:
    """Cancelling one writer queued behind a batch neither drops nor repeats anyone's line."""
    path = tmp_path / "s.jsonl"
    gate = GatedSync()
    scopes = [anyio.CancelScope() for _ in range(5)]
    finished: list[int] = []

    async def write(writer: LedgerWriter, i: int) -> None:
        with scopes[i]:
            await writer.write(sent(f"k{i}", index=i))
            finished.append(i)

    async with LedgerWriter(path, sync=gate) as writer, anyio.create_task_group() as tg:
        tg.start_soon(write, writer, 0)
        await anyio.to_thread.run_sync(gate.entered.wait)  # batch 1 (k0) is being synced
        for i in range(1, 5):
            tg.start_soon(write, writer, i)
        await anyio.wait_all_tasks_blocked()
        assert writer.pending == 5
        scopes[2].cancel()
        await anyio.wait_all_tasks_blocked()
        gate.release.set()
    assert sorted(finished) == [0, 1, 3, 4]
    assert sorted(r["key"] for r in file_records(path)) == ["k0", "k1", "k2", "k3", "k4"]
    assert writer.fsyncs == writer.batches == 2


async def test_a_cancelled_flusher_still_completes_its_batch(tmp_path: Path) -> None:
    """Cancelling the writer whose task runs the fsync does not tear or drop the batch."""
    path = tmp_path / "s.jsonl"
    gate = GatedSync()
    scope = anyio.CancelScope()
    finished: list[int] = []

    async def first(writer: LedgerWriter) -> None:
        with scope:
            await writer.write(sent("k0"))
            await anyio.lowlevel.checkpoint()

    async def other(writer: LedgerWriter, i: int) -> None:
        await writer.write(sent(f"k{i}"))
        finished.append(i)

    async with LedgerWriter(path, sync=gate) as writer, anyio.create_task_group() as tg:
        tg.start_soon(first, writer)
        await anyio.to_thread.run_sync(gate.entered.wait)
        for i in (1, 2):
            tg.start_soon(other, writer, i)
        await anyio.wait_all_tasks_blocked()
        scope.cancel()
        await anyio.wait_all_tasks_blocked()
        gate.release.set()
    assert scope.cancelled_caught
    assert sorted(finished) == [1, 2]
    assert [r["key"] for r in file_records(path)] == ["k0", "k1", "k2"]


async def test_a_batch_whose_writers_were_all_cancelled_is_still_written(tmp_path: Path) -> None:
    """The writer of a batch is shielded: the others in it count on it, cancelled or not."""
    path = tmp_path / "s.jsonl"
    gate = GatedSync()
    scopes = [anyio.CancelScope() for _ in range(3)]

    async def write(writer: LedgerWriter, i: int) -> None:
        with scopes[i]:
            await writer.write(sent(f"k{i}"))

    async with LedgerWriter(path, sync=gate) as writer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, writer, 0)
            await anyio.to_thread.run_sync(gate.entered.wait)
            tg.start_soon(write, writer, 1)
            tg.start_soon(write, writer, 2)
            await anyio.wait_all_tasks_blocked()
            scopes[1].cancel()
            scopes[2].cancel()
            await anyio.wait_all_tasks_blocked()
            gate.release.set()
        assert writer.pending == 0  # written before the close, by the cancelled k1
        assert [r["key"] for r in file_records(path)] == ["k0", "k1", "k2"]
        assert all(scope.cancelled_caught for scope in scopes[1:])
    assert writer.fsyncs == 2 and "closed" in repr(writer)


async def test_another_sweeps_ledger_is_refused_on_open(tmp_path: Path) -> None:
    """With expected_sweep, a file whose first run is of another sweep is refused, untouched."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(encode(start(sweep="other")))
    with pytest.raises(LedgerError, match="another sweep's ledger: it records sweep 'other'"):
        async with LedgerWriter(path, expected_sweep="lr-sweep"):
            pass
    assert path.read_bytes() == encode(start(sweep="other"))


async def test_a_run_of_another_sweep_is_refused(tmp_path: Path) -> None:
    """Writing a run_started for another sweep than the ledger's raises and writes nothing."""
    path = tmp_path / "s.jsonl"
    async with LedgerWriter(path, expected_sweep="lr-sweep") as writer:
        await writer.write(start())
        with pytest.raises(LedgerError, match="refusing to start a run of sweep 'other'"):
            await writer.write(start(sweep="other"))
    assert file_records(path) == [start()]


async def test_a_second_writer_on_the_same_ledger_is_refused(tmp_path: Path) -> None:
    """Two runs appending to one ledger at once could both send a point: the second is refused."""
    path = tmp_path / "s.jsonl"
    async with LedgerWriter(path):
        with pytest.raises(LedgerError, match="another batchsubmit process is writing"):
            async with LedgerWriter(path):
                pass
    async with LedgerWriter(path):  # free again once the first is closed
        pass


async def test_an_invalid_record_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A record the reader would reject is a caller's bug: ValueError, and the file is untouched."""
    path = tmp_path / "s.jsonl"
    record = sent("a")
    del record["train_url"]
    async with LedgerWriter(path) as writer:
        with pytest.raises(ValueError, match="submitted record without 'train_url'"):
            await writer.write(record)
    assert path.read_bytes() == b"" and writer.batches == 0


async def test_write_needs_an_open_writer(tmp_path: Path) -> None:
    """Writing before open or after close is a programming error that says what to write instead."""
    writer = LedgerWriter(tmp_path / "s.jsonl")
    with pytest.raises(RuntimeError, match="async with LedgerWriter"):
        await writer.write(sent("a"))
    async with writer:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await writer.write(sent("a"))


async def test_repr_shows_live_state(tmp_path: Path) -> None:
    """The repr names the file and shows pending records, batches and fsyncs."""
    path = tmp_path / "s.jsonl"
    writer = LedgerWriter(path)
    assert repr(writer) == (
        f"<LedgerWriter {str(path)!r} not open pending=0 written=0 batches=0 fsyncs=0>"
    )
    async with writer:
        await writer.write(start())
        assert repr(writer) == (
            f"<LedgerWriter {str(path)!r} open pending=0 written=1 batches=1 fsyncs=1>"
        )


async def test_what_the_writer_writes_the_reader_reads(tmp_path: Path) -> None:
    """A ledger written by LedgerWriter folds back to the records written, in order."""
    path = tmp_path / "s.jsonl"
    records = [start(), sent("a"), ok("a"), sent("b"), bad("b")]
    async with LedgerWriter(path, expected_sweep="lr-sweep") as writer:
        for record in records:
            await writer.write(record)
    state = read_ledger(path)
    assert file_records(path) == records
    assert state.succeeded_keys() == {"a"} and state.failed_keys() == {"b"}
    assert datetime.fromisoformat(state.first_ts or "").tzinfo == UTC

"""Following created versions to the end: the pure board, the watch loop against the emulator
(its clock stepped, never slept on), and ``batchsubmit watch``."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from rich.console import Console
from structlog.testing import capture_logs

from batchsubmit import ledger
from batchsubmit.auth import NoCredentials
from batchsubmit.cli import main
from batchsubmit.client import ModelArtsClient
from batchsubmit.commands.display import BoardView, render_board
from batchsubmit.commands.run import RunOptions, run_sweep
from batchsubmit.emulator import Emulator, EmulatorConfig, run_emulator
from batchsubmit.errors import APIError, UsageError
from batchsubmit.ledger import LedgerWriter, encode, fold, read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.watch import (
    NOT_LISTED,
    UNSEEN,
    Board,
    Observation,
    Tracked,
    WatchResult,
    _until_next,
    is_success,
    is_terminal,
    job_ids_of,
    status_name,
    watch_ledger,
)
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

PROJECT = "0123456789abcdef0123456789abcdef"
JOB = 10
TS = "2026-11-26T10:00:00.000Z"
INIT, RUNNING, COMPLETED, FAILED, KILLED, LOST = 1, 8, 10, 11, 12, 14


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """`main` configures structlog to the captured stderr of a test: undo that afterwards."""
    yield
    structlog.reset_defaults()


# --- helpers -------------------------------------------------------------------------------------


def started(settings: dict[str, Any] | None = None, total: int = 3) -> dict[str, Any]:
    settings = {
        "endpoint": "http://127.0.0.1:1",
        "project_id": PROJECT,
        "job_id": JOB,
        **(settings or {}),
    }
    return ledger.run_started(sweep="w", spec_sha256="ab", total=total, settings=settings, ts=TS)


def ok(key: str, version_id: int) -> dict[str, Any]:
    return ledger.succeeded(
        key=key, index=0, version_id=version_id, version_name="V", parameter=[("lr", key)],
        train_url=f"/b/{key}/", attempts=1, reconciled=False, latency_ms=5.0, ts=TS,
    )  # fmt: skip


def bad(key: str) -> dict[str, Any]:
    return ledger.failed(
        key=key, index=0, error_code="ModelArts.0118", error_message="quota", http_status=400,
        request_id=None, attempts=1, ts=TS,
    )  # fmt: skip


def seen(key: str, version_id: int, status: int) -> dict[str, Any]:
    return ledger.status(
        key=key, version_id=version_id, status=status, status_name=status_name(status),
        duration_ms=0, ts=TS,
    )  # fmt: skip


def state_of(*records: dict[str, Any]) -> ledger.LedgerState:
    return fold([encode(r) for r in records])


def board_of(*statuses: int | None, missing_polls: int = 3) -> Board:
    """Versions 1..n of job 10, with these statuses (None: not seen yet)."""
    return Board(
        [Tracked(f"k{v}", v, s, 0, JOB) for v, s in enumerate(statuses, start=1)],
        missing_polls=missing_polls,
    )


def listing(*pairs: tuple[int, int], duration: int = 0) -> dict[int, Observation]:
    return {version_id: Observation(status, duration) for version_id, status in pairs}


# --- the pure core -------------------------------------------------------------------------------


def test_status_names_and_terminal_statuses_follow_the_api() -> None:
    """Known codes have their API names; COMPLETED is success; unknown codes are never terminal."""
    assert [status_name(c) for c in (1, 8, 10, 14)] == ["INIT", "RUNNING", "COMPLETED", "LOST"]
    assert status_name(99) == "STATUS_99" and not is_terminal(99) and not is_success(99)
    assert is_terminal(COMPLETED) and is_success(COMPLETED)
    assert all(is_terminal(c) and not is_success(c) for c in (FAILED, KILLED, LOST))
    assert not is_terminal(RUNNING) and not is_terminal(INIT)


def test_the_board_follows_succeeded_points_from_their_last_recorded_status() -> None:
    """Only succeeded points are followed, each from the status last recorded for its version."""
    state = state_of(
        started(), ok("a", 21), ok("b", 22), bad("c"), seen("a", 21, RUNNING),
        seen("b", 99, COMPLETED),  # another version's status: not b's
    )  # fmt: skip
    board = Board.from_state(state)
    assert {(t.key, t.version_id, t.status) for t in board.tracked.values()} == {
        ("a", 21, RUNNING), ("b", 22, None),
    }  # fmt: skip


def test_a_record_is_appended_only_when_a_status_changes() -> None:
    """The same status seen again appends nothing; a new one appends one contract record."""
    board = board_of(None, None)
    first = board.observe({JOB: listing((1, INIT), (2, INIT))}, job_ids=[JOB], ts=TS)
    assert [(r["key"], r["status_name"]) for r in first] == [("k1", "INIT"), ("k2", "INIT")]
    assert board.observe({JOB: listing((1, INIT), (2, INIT))}, job_ids=[JOB], ts=TS) == []
    changed = board.observe({JOB: listing((1, RUNNING), (2, INIT), duration=1500)}, job_ids=[JOB])
    assert changed == [
        {**changed[0], "event": "status", "key": "k1", "version_id": 1, "status": RUNNING,
         "status_name": "RUNNING", "duration_ms": 1500},
    ]  # fmt: skip
    assert ledger.check_record(changed[0]) and list(changed[0]) == [
        "event",
        *ledger.RECORD_FIELDS["status"],
        *ledger.RECORD_EXTRAS["status"],
        "ts",
    ]
    assert board.tracked[2].duration_ms == 1500  # durations follow without a record


def test_versions_of_other_points_in_the_listing_are_ignored() -> None:
    """A listing holds every version of the job; only the followed ones matter."""
    board = board_of(None)
    assert len(board.observe({JOB: listing((1, INIT), (7, RUNNING))}, job_ids=[JOB])) == 1
    assert list(board.tracked) == [1]


def test_the_watch_is_done_when_every_version_is_terminal() -> None:
    """done once every version is terminal; the exit code is 0 only if all COMPLETED."""
    board = board_of(RUNNING, COMPLETED)
    assert not board.done and not board.all_ok()
    board.observe({JOB: listing((1, COMPLETED))}, job_ids=[JOB])
    assert board.done and board.all_ok()
    for end in (FAILED, KILLED, LOST):
        board = board_of(COMPLETED, end)
        assert board.done and not board.all_ok()
        assert [t.key for t in board.failed()] == ["k2"]


def test_only_jobs_holding_an_unfinished_version_are_listed() -> None:
    """Every job is listed while a version's job is unknown; then only the ones still running."""
    board = Board([Tracked("a", 1), Tracked("b", 2)])
    assert board.jobs_to_poll([10, 11, 12]) == [10, 11, 12]
    board.observe(
        {10: listing((1, RUNNING)), 11: listing((2, COMPLETED)), 12: {}}, job_ids=[10, 11, 12]
    )
    assert board.jobs_to_poll([10, 11, 12]) == [10]
    board.observe({10: listing((1, FAILED))}, job_ids=[10, 11, 12])
    assert board.jobs_to_poll([10, 11, 12]) == [] and board.done


def test_a_version_no_longer_listed_is_given_up_after_missing_polls() -> None:
    """Absent from its job's listing for missing_polls rounds in a row: NOT_LISTED, a failure."""
    board = board_of(RUNNING, RUNNING, missing_polls=2)
    board.observe({JOB: listing((2, RUNNING))}, job_ids=[JOB])
    assert not board.done and board.tracked[1].missed == 1
    board.observe({JOB: listing((1, RUNNING), (2, RUNNING))}, job_ids=[JOB])  # back: reset
    assert board.tracked[1].missed == 0
    for _ in range(2):
        board.observe({JOB: listing((2, COMPLETED))}, job_ids=[JOB])
    assert board.done and not board.all_ok()
    assert board.counts() == Counter({NOT_LISTED: 1, "COMPLETED": 1})
    assert [t.key for t in board.failed()] == ["k1"]


def test_a_short_interval_waits_out_the_grace_before_giving_up() -> None:
    """Given times, missing_polls rounds are not enough: missing_grace seconds must pass too."""
    board = board_of(RUNNING, missing_polls=2)
    board.missing_grace = 30.0
    for now in (100.0, 101.0, 102.0, 129.0):
        board.observe({JOB: {}}, job_ids=[JOB], now=now)
        assert not board.done, now
    board.observe({JOB: {}}, job_ids=[JOB], now=130.0)
    assert board.done and board.counts() == Counter({NOT_LISTED: 1})


def test_a_failed_listing_counts_no_version_as_missing() -> None:
    """A round whose listing of a job failed (job absent from listings) leaves its versions be."""
    board = board_of(RUNNING, missing_polls=1)
    board.observe({}, job_ids=[JOB])
    assert board.tracked[1].missed == 0 and not board.done
    unknown_job = Board([Tracked("a", 1)], missing_polls=1)
    unknown_job.observe({10: {}}, job_ids=[10, 11])  # job 11 not listed: it may be there
    assert unknown_job.tracked[1].missed == 0
    unknown_job.observe({10: {}, 11: {}}, job_ids=[10, 11])
    assert unknown_job.done and unknown_job.counts() == Counter({NOT_LISTED: 1})


def test_a_version_not_listed_yet_is_unseen_not_failed() -> None:
    """Before its first listing a version is UNSEEN, which keeps the watch going."""
    board = Board([Tracked("a", 1)])
    assert board.counts() == Counter({UNSEEN: 1}) and not board.done


def test_job_ids_come_from_the_last_run() -> None:
    """settings.job_ids wins over settings.job_id; a ledger naming no job is a usage error."""
    assert job_ids_of(state_of(started())) == (JOB,)
    assert job_ids_of(state_of(started({"job_ids": [11, 12, 11]}))) == (11, 12)
    with pytest.raises(UsageError, match="names no job"):
        job_ids_of(state_of(started({"job_id": None})))


def test_polls_keep_to_a_grid_of_intervals() -> None:
    """Polls keep to multiples of the interval; ticks a slow poll missed are skipped."""
    assert _until_next(100.0, 100.0, 5.0) == 5.0
    assert _until_next(100.0, 101.5, 5.0) == pytest.approx(3.5)
    assert _until_next(100.0, 112.0, 5.0) == pytest.approx(3.0)


def test_the_live_view_shows_counts_the_slowest_and_the_failed() -> None:
    """The table counts versions by status, lists the longest running and the ones that failed."""
    board = Board(
        [Tracked("slow", 1, RUNNING, 900_000, JOB), Tracked("fast", 2, RUNNING, 1_000, JOB),
         Tracked("bad[x]", 3, FAILED, 5_000, JOB), Tracked("ok", 4, COMPLETED, 9_000, JOB)],
    )  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(render_board(board, polls=3, sweep="w"))
    text = out.getvalue()
    for expected in ("RUNNING", "2", "COMPLETED", "slowest running", "15m 0s", "bad[x]"):
        assert expected in text
    assert text.index("slow ") < text.index("fast ")
    assert "ended without completing (1)" in text


# --- the watch loop against the emulator ---------------------------------------------------------


def write_spec(path: Path, *, a: int, b: int, name: str = "watched") -> Path:
    """A spec of a x b points against job 10 (based on version 20)."""
    spec = {
        "name": name,
        "target": {"endpoint": "emulator", "project_id": PROJECT, "job_id": JOB},
        "base": {
            "config": {
                "worker_server_num": 1, "app_url": "/bkt/app/", "boot_file_url": "/bkt/app/t.py",
                "data_url": "/bkt/data/", "spec_id": 1, "engine_id": 1, "pre_version_id": 20,
                "train_url": "/bkt/out/{sweep}/{key}/",
            },
        },
        "grid": {"lr": [0.1 / 10**i for i in range(a)], "bs": [2**(4 + i) for i in range(b)]},
    }  # fmt: skip
    path.write_text(json.dumps(spec))
    return path


async def run_points(emu: Emulator, spec: Path, ledger_path: Path) -> None:
    """Run the sweep against the emulator (the emulator's clock stands still meanwhile)."""
    options = RunOptions(spec=spec, endpoint=emu.url, ledger=ledger_path, rate=500, quiet=True)
    await run_sweep(options, credentials=NoCredentials(project_id=PROJECT))


async def watch(
    emu: Emulator, ledger_path: Path, clock: FakeClock, *, interval: float = 1.0, **kw: Any
) -> WatchResult:
    """Watch with the emulator's clock: each sleep of the watch moves the emulator's time on."""
    async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
        return await watch_ledger(
            ledger_path, client=client, interval=interval, clock=clock, sleep=clock.sleep,
            limiter=AdaptiveRateLimiter(100, clock=clock, sleep=clock.sleep), **kw,
        )  # fmt: skip


def status_lines(path: Path) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, path.read_bytes().splitlines()) if r["event"] == "status"]


async def test_watch_follows_every_version_to_its_end_and_records_each_change(
    tmp_path: Path,
) -> None:
    """INIT, RUNNING, then COMPLETED or FAILED per version, as the emulator has them; exit 1."""
    clock = FakeClock(1_800_000_000.0)
    config = EmulatorConfig(
        project_id=PROJECT, init_seconds=1, run_seconds=3, failure_share=0.3, seed=5
    )
    spec, path = write_spec(tmp_path / "s.json", a=3, b=4), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config, clock=clock) as emu:
        await run_points(emu, spec, path)
        lists_before = emu.counters["lists"]
        with capture_logs() as logs:
            result = await watch(emu, path, clock)
        truth = {v["version_id"]: v["status"] for v in emu.versions(JOB)}
        assert emu.counters["lists"] - lists_before == result.polls == 5  # 0 s, 1 s ... 4 s
        assert emu.counters["details"] == 0
    lines = status_lines(path)
    per_version: dict[int, list[str]] = {}
    for line in lines:
        per_version.setdefault(line["version_id"], []).append(line["status_name"])
    assert len(per_version) == 12
    assert {tuple(s[:2]) for s in per_version.values()} == {("INIT", "RUNNING")}
    assert {v: truth[v] for v in per_version} == {
        v: {"COMPLETED": COMPLETED, "FAILED": FAILED}[s[-1]] for v, s in per_version.items()
    }
    failed = sum(s[-1] == "FAILED" for s in per_version.values())
    assert 0 < failed < 12 and not result.ok
    assert result.counts == {"COMPLETED": 12 - failed, "FAILED": failed}
    assert {e.status_name for e in result.statuses.values()} == {"COMPLETED", "FAILED"}
    ends = [r for r in lines if r["status_name"] == "COMPLETED"]
    assert {r["duration_ms"] for r in ends} == {3000}
    progress = [e["poll"] for e in logs if e["event"] == "batchsubmit.watch.progress"]
    assert progress == [1, 2, 3, 4, 5]
    state = read_ledger(path)
    assert state.statuses.keys() == state.succeeded_keys()
    assert state.spans[-1].finished is not None  # status lines leave the run's span whole


async def test_all_completed_exits_0_and_a_second_watch_sends_nothing(tmp_path: Path) -> None:
    """Every version COMPLETED: exit 0; watching again lists nothing and appends nothing."""
    clock = FakeClock(1_800_000_000.0)
    config = EmulatorConfig(project_id=PROJECT, init_seconds=0, run_seconds=2)
    spec, path = write_spec(tmp_path / "s.json", a=2, b=2), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config, clock=clock) as emu:
        await run_points(emu, spec, path)
        first = await watch(emu, path, clock)
        size, lists = path.stat().st_size, emu.counters["lists"]
        second = await watch(emu, path, clock)
        assert emu.counters["lists"] == lists
    assert first.ok and second.ok
    assert second.polls == 0 and path.stat().st_size == size
    assert second.statuses == first.statuses and second.counts == {"COMPLETED": 4}


async def test_a_stopped_watch_resumes_without_repeating_a_status(tmp_path: Path) -> None:
    """Cancelled after its first poll and started again: each status of a version appears once."""
    clock = FakeClock(1_800_000_000.0)
    config = EmulatorConfig(project_id=PROJECT, init_seconds=1, run_seconds=2)
    spec, path = write_spec(tmp_path / "s.json", a=2, b=3), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config, clock=clock) as emu:
        await run_points(emu, spec, path)
        with anyio.CancelScope() as scope:

            async def stop_at_first_sleep(seconds: float) -> None:
                scope.cancel()
                await anyio.sleep_forever()

            async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
                await watch_ledger(
                    path, client=client, interval=1.0, clock=clock, sleep=stop_at_first_sleep,
                    limiter=AdaptiveRateLimiter(100, clock=clock, sleep=clock.sleep),
                )  # fmt: skip
        assert {r["status_name"] for r in status_lines(path)} == {"INIT"}
        result = await watch(emu, path, clock)
    pairs = Counter((r["version_id"], r["status_name"]) for r in status_lines(path))
    assert set(pairs.values()) == {1} and len(pairs) == 6 * 3
    assert result.ok


async def test_on_a_terminal_the_live_table_is_shown_and_a_callers_writer_is_used(
    tmp_path: Path,
) -> None:
    """A terminal console gets the rich table (the command line's BoardView, fed each round);
    lines go through the writer the caller holds."""
    clock = FakeClock(1_800_000_000.0)
    config = EmulatorConfig(project_id=PROJECT, init_seconds=0, run_seconds=1)
    spec, path = write_spec(tmp_path / "s.json", a=1, b=2), tmp_path / "s.ledger.jsonl"
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    async with run_emulator(config, clock=clock) as emu:
        await run_points(emu, spec, path)
        async with LedgerWriter(path, expected_sweep="watched") as writer:  # holds the lock
            view = BoardView(console, sweep="watched")
            with view.shown():
                result = await watch(emu, path, clock, on_round=view.update, writer=writer)
            assert writer.records_written == 4  # RUNNING, then COMPLETED, for two versions
    assert result.ok
    text = out.getvalue()
    assert "watching 2 versions of sweep watched" in text and "COMPLETED" in text


async def test_throttled_listings_slow_down_and_still_finish(tmp_path: Path) -> None:
    """Three jobs against a 1 request/s gateway: 429s are waited out and every job is followed."""
    clock = FakeClock(1_800_000_000.0)
    jobs = {10: 20, 11: 30, 12: 40}
    config = EmulatorConfig(
        project_id=PROJECT, jobs=jobs, init_seconds=1, run_seconds=1, rate=1, burst=1
    )
    path = tmp_path / "s.ledger.jsonl"
    records = [started({"job_ids": list(jobs)}, total=3)]
    async with run_emulator(config, clock=clock) as emu:
        async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
            for n, (job, base) in enumerate(jobs.items()):
                body = {"config": {"worker_server_num": 1, "app_url": "/b/a/",
                                   "boot_file_url": "/b/a/t.py", "data_url": "/b/d/",
                                   "spec_id": 1, "engine_id": 1, "pre_version_id": base,
                                   "train_url": f"/b/o/{n}/"}}  # fmt: skip
                created = await client.create_version(job, body)
                clock.now += 1  # the gateway's bucket refills
                records.append(ok(f"k{n}", created.version_id))
        path.write_bytes(b"".join(encode(r) for r in records))
        result = await watch(emu, path, clock, interval=0.5)
        assert emu.counters["throttled"] > 0
    assert result.ok and result.counts == {"COMPLETED": 3}


async def test_a_failing_listing_is_retried_at_the_next_interval(tmp_path: Path) -> None:
    """A 500 on the list call is logged and tried again next round; nothing is counted missing."""
    clock = FakeClock(1_800_000_000.0)
    config = EmulatorConfig(project_id=PROJECT, init_seconds=0, run_seconds=1)
    spec, path = write_spec(tmp_path / "s.json", a=1, b=2), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config, clock=clock) as emu:
        await run_points(emu, spec, path)
        emu.set_faults(error_500_share=1.0, faults_on_lists=True)

        async def heal_then_sleep(seconds: float) -> None:
            emu.set_faults(error_500_share=0.0)
            await clock.sleep(seconds)

        async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
            with capture_logs() as logs:
                result = await watch_ledger(
                    path, client=client, interval=1.0, clock=clock, sleep=heal_then_sleep,
                    limiter=AdaptiveRateLimiter(100, clock=clock, sleep=clock.sleep),
                    missing_polls=1, missing_grace=0,
                )  # fmt: skip
    failures = [e for e in logs if e["event"] == "batchsubmit.watch.list_failed"]
    assert len(failures) == 1 and failures[0]["will_retry"] is True
    assert failures[0]["error_code"] == "ModelArts.0010"
    assert result.ok and result.counts == {"COMPLETED": 2}


async def test_a_refused_listing_stops_the_watch_with_the_error(tmp_path: Path) -> None:
    """A job the server does not know (4xx) is not retried: the watch raises its error."""
    clock = FakeClock(1_800_000_000.0)
    path = tmp_path / "s.ledger.jsonl"
    path.write_bytes(encode(started({"job_id": 99})) + encode(ok("a", 21)))
    async with run_emulator(EmulatorConfig(project_id=PROJECT), clock=clock) as emu:
        with pytest.raises(APIError, match=r"ModelArts\.2775"):
            await watch(emu, path, clock)
    assert status_lines(path) == []


async def test_a_ledger_without_a_run_is_a_usage_error(tmp_path: Path) -> None:
    """Nothing recorded: the watch refuses before sending anything."""
    clock = FakeClock()
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    async with run_emulator(EmulatorConfig(project_id=PROJECT), clock=clock) as emu:
        with pytest.raises(UsageError, match="no run recorded"):
            await watch(emu, path, clock)
        assert emu.counters["lists"] == 0


async def test_a_ledger_with_nothing_succeeded_has_nothing_to_watch(tmp_path: Path) -> None:
    """No version was created: exit 0 at once, saying the points have no version."""
    clock = FakeClock()
    path = tmp_path / "s.jsonl"
    path.write_bytes(encode(started(total=1)) + encode(bad("a")))
    async with run_emulator(EmulatorConfig(project_id=PROJECT), clock=clock) as emu:
        result = await watch(emu, path, clock)
        assert emu.counters["lists"] == 0
    assert result.ok and result.polls == 0
    assert result.message is not None and "1 point has no version" in result.message


# --- batchsubmit watch ---------------------------------------------------------------------------


def test_watch_of_a_missing_ledger_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ledger that does not exist is a usage error, exit 2, with what writes one."""
    assert main(["watch", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such ledger" in capsys.readouterr().err


def test_watch_refuses_a_non_positive_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--interval 0 is a usage error."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(encode(started()) + encode(ok("a", 21)))
    assert main(["watch", str(path), "--interval", "0"]) == 2
    assert "argument --interval: must be at least 0.01, got 0" in capsys.readouterr().err


def test_an_ended_embedded_emulator_cannot_be_watched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An `--endpoint emulator` run without its state file: exit 2 saying why and what to do."""
    path = tmp_path / "s.ledger.jsonl"
    path.write_bytes(encode(started({"endpoint": "emulator"})) + encode(ok("a", 21)))
    assert main(["watch", str(path)]) == 2
    err = capsys.readouterr().err
    assert "embedded emulator" in err and "s.ledger.jsonl.emulator.json" in err
    assert "--watch" in err


def test_an_embedded_emulator_run_is_watched_from_its_state_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the run's state file, watch serves it again (same project) and follows it: exit 0."""
    spec = write_spec(tmp_path / "s.json", a=2, b=2)
    path = tmp_path / "s.ledger.jsonl"
    assert main(["run", str(spec), "--ledger", str(path), "--quiet"]) == 0
    state_file = Path(f"{path}.emulator.json")
    state = json.loads(state_file.read_text())
    for version in state["versions"]:  # they were created long ago: all over by now
        version["create_time"] -= 3_600_000
        version["visible_at"] -= 3_600_000
    state_file.write_text(json.dumps(state))
    assert main(["watch", str(path), "--interval", "0.01"]) == 0
    assert "4 COMPLETED" in capsys.readouterr().err
    assert read_ledger(path).statuses.keys() == read_ledger(path).succeeded_keys()


def test_watch_help_names_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """``watch --help`` explains the polling, the status line and the exit codes."""
    assert main(["watch", "--help"]) == 0
    out = capsys.readouterr().out
    for expected in ("list call per job", '"event": "status"', "130 interrupted", "--interval"):
        assert expected in out


@pytest.fixture
async def long_run(tmp_path: Path) -> AsyncIterator[tuple[Emulator, Path]]:
    """An emulator whose versions run for an hour, and a ledger of two of them."""
    config = EmulatorConfig(project_id=PROJECT, init_seconds=0, run_seconds=3600)
    spec, path = write_spec(tmp_path / "s.json", a=1, b=2), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config) as emu:
        await run_points(emu, spec, path)
        yield emu, path


@pytest.mark.integration
async def test_ctrl_c_stops_the_watch_with_130(long_run: tuple[Emulator, Path]) -> None:
    """SIGINT to a watching process: it stops at once, exit 130, the statuses seen so far kept."""
    emu, path = long_run
    env = {**os.environ, "MODELARTS_TOKEN": "t0ken", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "batchsubmit", "watch", str(path), "--endpoint", emu.url,
               "--interval", "60", "--log-format", "json"]  # fmt: skip
    async with await anyio.open_process(command, env=env) as process:
        assert process.stderr is not None
        buffered = b""
        with anyio.fail_after(30):
            async for chunk in process.stderr:  # wait for the first round's progress line
                buffered += chunk
                if b"batchsubmit.watch.progress" in buffered:
                    break
            process.send_signal(signal.SIGINT)
            code = await process.wait()
    assert code == 130
    assert {r["status_name"] for r in status_lines(path)} == {"RUNNING"}


def test_watch_quiet_draws_nothing_and_ends_with_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--quiet: no table and no info lines; every version already ended COMPLETED, so exit 0
    with the one-line verdict."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(
        encode(started(total=1)) + encode(ok("a", 21)) + encode(seen("a", 21, COMPLETED))
    )
    assert main(["watch", str(path), "--quiet", "--interval", "1"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == "batchsubmit: 1 versions: 1 COMPLETED"

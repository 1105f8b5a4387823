"""Stopping and deleting the versions a ledger created (issue 13): the pure plan, the shell
against the emulator over loopback sockets (its clock stepped, never slept on), a stop killed
midway and resumed, and ``batchsubmit stop`` / ``delete``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from batchsubmit import ledger
from batchsubmit.auth import NoCredentials
from batchsubmit.client import ModelArtsClient
from batchsubmit.commands.run import RunOptions, run_sweep
from batchsubmit.emulator import Emulator, EmulatorConfig, run_emulator
from batchsubmit.errors import UsageError
from batchsubmit.ledger import encode, fold, read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.stopping import (
    Action,
    Candidate,
    Done,
    StopResult,
    parse_keys,
    plan,
    stop_ledger,
)
from batchsubmit.v1 import V1Target
from batchsubmit.watch import watch_ledger
from tests.chaos.test_chaos import LedgerLines, spawn, wait_exit, wait_lines
from tests.fakes import FakeClock, cli, emulator_in_thread

pytestmark = pytest.mark.anyio

PROJECT = "0123456789abcdef0123456789abcdef"
JOB = 10
TS = "2026-11-26T10:00:00.000Z"
RUNNING, COMPLETED, KILLED = 8, 10, 12


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """`main` configures structlog to the captured stderr of a test: undo that afterwards."""
    yield
    structlog.reset_defaults()


# --- helpers -------------------------------------------------------------------------------------


def write_spec(path: Path, *, a: int, b: int) -> Path:
    """A spec of a x b points against job 10 (based on version 20); a superset keeps the keys."""
    spec = {
        "name": "stoppable",
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


async def run_points(emu: Emulator, spec: Path, path: Path) -> None:
    """Run the sweep against the emulator (its clock stands still meanwhile)."""
    options = RunOptions(spec=spec, endpoint=emu.url, ledger=path, rate=500, quiet=True)
    await run_sweep(options, credentials=NoCredentials(project_id=PROJECT))


class Counting(V1Target):
    """The v1 target, noting every stop and delete it is asked for."""

    def __init__(self, client: ModelArtsClient) -> None:
        super().__init__(client)
        self.calls: list[tuple[str, int]] = []

    async def stop(self, job_id: int, id: int) -> None:
        self.calls.append(("stop", id))
        await super().stop(job_id, id)

    async def delete(self, job_id: int, id: int) -> None:
        self.calls.append(("delete", id))
        await super().delete(job_id, id)


async def stop(
    emu: Emulator, path: Path, clock: FakeClock, *, action: Action = "stop", yes: bool = True,
    keys: list[str] | None = None,
) -> tuple[StopResult, list[tuple[str, int]]]:
    """Stop (delete) in-process with the emulator's clock; the result and the calls made."""
    async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
        target = Counting(client)
        result = await stop_ledger(
            path, action=action, lister=client, target=target, keys=keys, yes=yes,
            limiter=AdaptiveRateLimiter(100, clock=clock, sleep=clock.sleep), sleep=clock.sleep,
        )  # fmt: skip
    return result, target.calls


def lines(path: Path, event: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, path.read_bytes().splitlines()) if r["event"] == event]


def truth(emu: Emulator) -> dict[int, dict[str, Any]]:
    """Ground truth: version id -> its status and whether it is deleted."""
    return {v["version_id"]: v for v in emu.versions(JOB)}


@dataclass
class Sweep:
    """A ledger whose versions are partly running, partly ended, beside a foreign version."""

    emu: Emulator
    clock: FakeClock
    path: Path
    running: dict[str, int]  # key -> version id, still running
    ended: dict[str, int]  # key -> version id, COMPLETED
    foreign: int  # a version of the job created by someone else, running


async def create_foreign(emu: Emulator) -> int:
    """A version of job 10 created directly, not by the ledger."""
    body = {"config": {"worker_server_num": 1, "app_url": "/b/a/", "boot_file_url": "/b/a/t.py",
                       "data_url": "/b/d/", "spec_id": 1, "engine_id": 1, "pre_version_id": 20,
                       "train_url": "/bkt/someone-else/"}}  # fmt: skip
    async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
        return (await client.create_version(JOB, body)).version_id


@pytest.fixture
async def sweep(tmp_path: Path) -> AsyncIterator[Sweep]:
    """4 points run and COMPLETED, then the spec grown to 8: 4 more RUNNING; 1 foreign RUNNING."""
    clock = FakeClock(1_800_000_000.0)
    config = EmulatorConfig(project_id=PROJECT, init_seconds=0, run_seconds=10)
    path = tmp_path / "s.ledger.jsonl"
    async with run_emulator(config, clock=clock) as emu:
        await run_points(emu, write_spec(tmp_path / "s.json", a=2, b=2), path)
        first = {k: r["version_id"] for k, r in read_ledger(path).outcomes.items()}
        clock.now += 60  # those four are COMPLETED now
        emu.set_faults(run_seconds=3600)
        await run_points(emu, write_spec(tmp_path / "s.json", a=2, b=4), path)
        every = {k: r["version_id"] for k, r in read_ledger(path).outcomes.items()}
        foreign = await create_foreign(emu)
        running = {k: v for k, v in every.items() if k not in first}
        assert len(first) == len(running) == 4
        assert {truth(emu)[v]["status"] for v in first.values()} == {COMPLETED}
        assert {truth(emu)[v]["status"] for v in [*running.values(), foreign]} == {RUNNING}
        yield Sweep(emu, clock, path, running, first, foreign)


# --- the pure core -------------------------------------------------------------------------------


def ok(key: str, version_id: int) -> dict[str, Any]:
    return ledger.succeeded(
        key=key, index=0, version_id=version_id, version_name="V", parameter=[("lr", key)],
        train_url=f"/b/{key}/", attempts=1, reconciled=False, latency_ms=5.0, ts=TS,
    )  # fmt: skip


def state_of(*records: dict[str, Any], jobs: list[int] | None = None) -> ledger.LedgerState:
    settings = {"endpoint": "http://127.0.0.1:1", "project_id": PROJECT, "job_id": JOB}
    if jobs:
        settings["job_ids"] = jobs
    start = ledger.run_started(sweep="w", spec_sha256="ab", total=9, settings=settings, ts=TS)
    return fold([encode(r) for r in (start, *records)])


def test_the_plan_stops_what_runs_or_is_not_listed_and_leaves_the_ended_alone() -> None:
    """Running and unlisted versions are stopped; terminal ones, recorded ones, failed and
    pending points (no known version) are left alone."""
    sent = ledger.submitted(key="p", index=5, attempt=1, train_url="/b/p/", ts=TS)
    failed = ledger.failed(key="f", index=6, error_code="ModelArts.0118", error_message="quota",
                           http_status=400, request_id=None, attempts=1, ts=TS)  # fmt: skip
    state = state_of(
        ok("run", 21), ok("done", 22), ok("new", 23), ok("was", 24), sent, failed,
        ledger.stopped(key="was", version_id=24, job_id=JOB, ts=TS),
    )  # fmt: skip
    listed = {JOB: {21: RUNNING, 22: COMPLETED, 24: KILLED, 99: RUNNING}}
    the_plan = plan(state, "stop", listed, job_ids=[JOB])
    assert the_plan.todo == (Candidate("new", 23, JOB, None), Candidate("run", 21, JOB, RUNNING))
    assert the_plan.ended == (Candidate("done", 22, JOB, COMPLETED),)
    assert the_plan.done_before == 1 and the_plan.pending == 1 and not the_plan.unaddressable
    deleting = plan(state, "delete", listed, job_ids=[JOB])
    assert [c.key for c in deleting.todo] == ["done", "run", "was"]
    assert [c.key for c in deleting.gone] == ["new"] and deleting.done_before == 0


def test_a_stop_line_of_an_older_version_does_not_count() -> None:
    """A key re-sent since (a new version) is stopped again: the line named its old version."""
    state = state_of(ok("k", 21), ledger.stopped(key="k", version_id=21, job_id=JOB, ts=TS),
                     ok("k", 30))  # fmt: skip
    assert not state.was_stopped("k") and state.stopped == {"k": 21}
    assert [c.version_id for c in plan(state, "stop", {}, job_ids=[JOB]).todo] == [30]


def test_an_unlisted_version_of_a_several_job_ledger_cannot_be_addressed() -> None:
    """With several jobs, a version no listing shows has no known job: reported, not sent."""
    state = state_of(ok("a", 21), ok("b", 31), jobs=[10, 11])
    the_plan = plan(state, "stop", {10: {}, 11: {31: RUNNING}}, job_ids=[10, 11])
    assert the_plan.todo == (Candidate("b", 31, 11, RUNNING),)
    assert the_plan.unaddressable == (Candidate("a", 21, None, None),)
    assert StopResult(the_plan, None).ok  # a dry run is fine
    assert not StopResult(the_plan, Done()).ok  # done: one of them could not be addressed


def test_keys_are_parsed_and_checked_against_the_ledger() -> None:
    """--keys splits on commas; a key without a version of this ledger is a usage error."""
    assert parse_keys(" a, b,,a ") == ("a", "b") and parse_keys(None) is None
    with pytest.raises(UsageError, match="names no key"):
        parse_keys(" , ")
    state = state_of(ok("a", 21))
    assert [c.key for c in plan(state, "stop", {}, job_ids=[JOB], keys=["a"]).todo] == ["a"]
    with pytest.raises(UsageError, match="zz \\(not a point of this ledger\\)"):
        plan(state, "stop", {}, job_ids=[JOB], keys=["a", "zz"])


def test_stopped_and_deleted_records_are_contract_records() -> None:
    """The new lines have their fields in order, pass the check, and fold as no run's line."""
    for build in (ledger.stopped, ledger.deleted):
        record = build(key="k", version_id=21, job_id=JOB, ts=TS)
        assert list(record) == ["event", *ledger.RECORD_FIELDS[record["event"]], "ts"]
        assert ledger.check_record(record) is record
    state = state_of(ok("k", 21), ledger.deleted(key="k", version_id=21, job_id=JOB, ts=TS))
    assert state.was_deleted("k") and len(state.spans) == 1 and state.lines == 3


# --- against the emulator ------------------------------------------------------------------------


async def test_the_dry_run_shows_what_would_be_stopped_and_changes_nothing(sweep: Sweep) -> None:
    """Without yes: the running versions of the ledger are planned, no call, no line."""
    before, statuses = sweep.path.read_bytes(), truth(sweep.emu)
    result, calls = await stop(sweep.emu, sweep.path, sweep.clock, yes=False)
    assert result.outcome is None and calls == [] and sweep.emu.counters.get("stops", 0) == 0
    assert {c.version_id for c in result.plan.todo} == set(sweep.running.values())
    assert {c.label() for c in result.plan.todo} == {"RUNNING"}
    assert {c.version_id for c in result.plan.ended} == set(sweep.ended.values())
    assert sweep.path.read_bytes() == before and truth(sweep.emu) == statuses


async def test_stop_stops_exactly_the_ledgers_running_versions_and_records_each(
    sweep: Sweep,
) -> None:
    """--yes: the ledger's running versions are KILLED, one stopped line each; the ended ones
    and the foreign version are untouched; a re-run sends nothing and writes nothing."""
    result, calls = await stop(sweep.emu, sweep.path, sweep.clock)
    assert result.ok and sorted(calls) == sorted(("stop", v) for v in sweep.running.values())
    after = truth(sweep.emu)
    assert {v: after[v]["status"] for v in sweep.running.values()} == dict.fromkeys(
        sweep.running.values(), KILLED
    )
    assert {after[v]["status"] for v in sweep.ended.values()} == {COMPLETED}
    assert after[sweep.foreign]["status"] == RUNNING
    recorded = lines(sweep.path, "stopped")
    assert {(r["key"], r["version_id"], r["job_id"]) for r in recorded} == {
        (k, v, JOB) for k, v in sweep.running.items()
    }
    size, stops = sweep.path.stat().st_size, sweep.emu.counters["stops"]
    again, calls = await stop(sweep.emu, sweep.path, sweep.clock)
    assert calls == [] and sweep.emu.counters["stops"] == stops == 4
    assert sweep.path.stat().st_size == size
    assert again.ok and again.plan.done_before == 4 and len(again.plan.ended) == 4


async def test_keys_limit_the_stop_to_those_points(sweep: Sweep) -> None:
    """--keys: only those points' versions are stopped; a key not in the ledger sends nothing."""
    key, version = sorted(sweep.running.items())[0]
    with pytest.raises(UsageError, match="not a point of this ledger"):
        await stop(sweep.emu, sweep.path, sweep.clock, keys=[key, "0000000000000000"])
    assert sweep.emu.counters.get("stops", 0) == 0 and lines(sweep.path, "stopped") == []
    result, calls = await stop(sweep.emu, sweep.path, sweep.clock, keys=[key])
    assert result.ok and calls == [("stop", version)]
    statuses = {v: s["status"] for v, s in truth(sweep.emu).items()}
    assert [v for v in sweep.running.values() if statuses[v] == KILLED] == [version]


async def test_delete_deletes_only_this_ledgers_versions(sweep: Sweep) -> None:
    """delete: every version of the ledger (running or ended) is deleted and recorded; the
    foreign one stays; the dry run before it and the re-run after it send no delete."""
    ours = {**sweep.running, **sweep.ended}
    dry, calls = await stop(sweep.emu, sweep.path, sweep.clock, action="delete", yes=False)
    assert calls == [] and {c.version_id for c in dry.plan.todo} == set(ours.values())
    result, calls = await stop(sweep.emu, sweep.path, sweep.clock, action="delete")
    assert result.ok and sorted(calls) == sorted(("delete", v) for v in ours.values())
    after = truth(sweep.emu)
    assert {v for v, s in after.items() if s["deleted"]} == set(ours.values())
    assert after[sweep.foreign]["status"] == RUNNING and not after[sweep.foreign]["deleted"]
    assert {(r["key"], r["version_id"]) for r in lines(sweep.path, "deleted")} == set(ours.items())
    again, calls = await stop(sweep.emu, sweep.path, sweep.clock, action="delete")
    assert calls == [] and again.ok and again.plan.done_before == 8
    nothing, calls = await stop(sweep.emu, sweep.path, sweep.clock)  # stop: nothing left to stop
    assert calls == [] and not nothing.plan.todo and nothing.plan.done_before == 8


async def test_status_and_watch_still_read_a_ledger_with_stopped_lines(
    sweep: Sweep, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a stop: status counts the same points; watch follows them to KILLED / COMPLETED."""
    await stop(sweep.emu, sweep.path, sweep.clock)
    code, out, _ = cli(["status", str(sweep.path), "--json"], capsys)
    assert code == 0 and json.loads(out)["succeeded"] == 8
    code, out, _ = cli(["status", str(sweep.path), "--points", "--format", "json"], capsys)
    assert code == 0 and len(out.splitlines()) == 8
    async with ModelArtsClient(sweep.emu.url, NoCredentials(project_id=PROJECT)) as client:
        watched = await watch_ledger(
            sweep.path, client=client, interval=1.0, clock=sweep.clock, sleep=sweep.clock.sleep,
            limiter=AdaptiveRateLimiter(100, clock=sweep.clock, sleep=sweep.clock.sleep),
        )  # fmt: skip
    assert watched.counts == {"KILLED": 4, "COMPLETED": 4} and not watched.ok
    state = read_ledger(sweep.path)
    assert state.statuses.keys() == state.succeeded_keys()
    assert all(state.was_stopped(k) for k in sweep.running)


@pytest.mark.integration
async def test_a_stop_killed_midway_resumes_without_a_second_call_for_the_recorded(
    tmp_path: Path,
) -> None:
    """`batchsubmit stop --yes` SIGKILLed after 3 stopped lines; the re-run stops the rest and
    sends no stop for a version recorded stopped; every one of the ledger's versions is KILLED."""
    clock = FakeClock(1_800_000_000.0)
    config = EmulatorConfig(project_id=PROJECT, init_seconds=0, run_seconds=3600)
    path = tmp_path / "s.ledger.jsonl"
    async with run_emulator(config, clock=clock) as emu:
        await run_points(emu, write_spec(tmp_path / "s.json", a=3, b=4), path)
        ours = {r["version_id"] for r in read_ledger(path).outcomes.values()}
        counted = LedgerLines(path)
        start = counted.refresh()
        args = ["stop", str(path), "--yes", "--rate", "6", "--quiet"]
        with spawn(*args, log=tmp_path / "stop.log") as proc:
            assert await wait_lines(counted, start + 3, proc), (tmp_path / "stop.log").read_text()
            proc.kill()
            assert await wait_exit(proc, 10) == -9
        recorded = {r["version_id"] for r in lines(path, "stopped")}
        assert 3 <= len(recorded) < len(ours)
        result, calls = await stop(emu, path, clock)
        assert result.ok and not {v for _, v in calls} & recorded
        assert {v for _, v in calls} | recorded | {c.version_id for c in result.plan.ended} == ours
        assert {truth(emu)[v]["status"] for v in ours} == {KILLED}
    stopped = [r["version_id"] for r in lines(path, "stopped")]
    assert len(stopped) == len(set(stopped))  # one line per version at most


# --- batchsubmit stop / delete -------------------------------------------------------------------


def test_the_commands_dry_run_stop_delete_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stop shows a table and sends nothing; --yes stops (exit 0); delete without --yes is a dry
    run; delete --yes deletes; a refused stop exits 1; a missing ledger or bad key exits 2; an
    unreachable service exits 3."""
    spec, path = write_spec(tmp_path / "s.json", a=1, b=2), tmp_path / "s.ledger.jsonl"
    config = EmulatorConfig(project_id=PROJECT, init_seconds=0, run_seconds=3600)
    with emulator_in_thread(config) as emu:
        assert main_ok(["run", str(spec), "--endpoint", emu.url, "--ledger", str(path),
                        "--quiet"], capsys)  # fmt: skip
        keys = sorted(read_ledger(path).succeeded_keys())
        code, out, err = cli(["stop", str(path)], capsys)
        assert code == 0 and all(k in out for k in keys) and "RUNNING" in out
        assert "would be stopped" in err and emu.counters.get("stops", 0) == 0
        assert cli(["stop", str(path), "--keys", "nope"], capsys)[0] == 2
        code, _, err = cli(["stop", str(path), "--yes"], capsys)
        assert code == 0 and "2 versions stopped" in err and emu.counters["stops"] == 2
        code, out, _ = cli(["delete", str(path)], capsys)
        assert code == 0 and all(k in out for k in keys) and emu.counters.get("deletes", 0) == 0
        code, _, err = cli(["delete", str(path), "--yes", "--quiet"], capsys)
        assert code == 0 and emu.counters["deletes"] == 2
        ghost = tmp_path / "ghost.jsonl"  # a version the server does not have: refused
        ghost.write_bytes(encode(ledger.run_started(
            sweep="g", spec_sha256="ab", total=1, ts=TS,
            settings={"endpoint": emu.url, "project_id": PROJECT, "job_id": JOB},
        )) + encode(ok("g", 999)))  # fmt: skip
        code, _, err = cli(["stop", str(ghost), "--yes"], capsys)
        assert code == 1 and "ModelArts.4851" in err and lines(ghost, "stopped") == []
    assert cli(["stop", str(tmp_path / "nope.jsonl")], capsys)[0] == 2
    code, _, err = cli(["stop", str(ghost), "--yes", "--endpoint", "http://127.0.0.1:9"], capsys)
    assert code == 3 and "could not reach" in err  # nothing listening: the listing cannot start
    code, _, err = cli(["stop", str(path), "--yes", "--endpoint", "http://127.0.0.1:9"], capsys)
    assert code == 0 and "nothing left to stop" in err  # every one recorded: nothing is sent


def main_ok(argv: list[str], capsys: pytest.CaptureFixture[str]) -> bool:
    return cli(argv, capsys)[0] == 0


def test_stop_and_delete_help_name_the_line_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each command's --help gives its ledger line, the dry run and the exit codes."""
    for action, done in (("stop", "stopped"), ("delete", "deleted")):
        code, out, _ = cli([action, "--help"], capsys)
        assert code == 0
        for expected in (f'"event": "{done}"', "--yes", "dry run", "130 interrupted", "--keys"):
            assert expected in out, (action, expected)


def test_a_ledger_without_a_run_has_nothing_to_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty ledger: exit 2 before anything is sent."""
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    code, _, err = cli(["stop", str(path)], capsys)
    assert code == 2 and "no run recorded" in err

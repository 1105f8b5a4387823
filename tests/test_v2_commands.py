"""The commands after a v2 run (issue 14): watch, status, report, stop and delete follow, show,
terminate and delete training jobs, over real HTTP against the emulator (its clock stepped,
never slept on), and the Python API's results carry their ids. v1 is pinned by its own tests."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.console import Console
from structlog.testing import capture_logs

import batchsubmit as bs
from batchsubmit import phases
from batchsubmit.auth import NoCredentials
from batchsubmit.cli import main
from batchsubmit.client import ModelArtsClient
from batchsubmit.commands.display import render_board
from batchsubmit.commands.run import RunOptions, run_sweep
from batchsubmit.emulator import Emulator, EmulatorConfig, run_emulator
from batchsubmit.ledger import read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.points import point_rows
from batchsubmit.report import write_report
from batchsubmit.stopping import Action, StopResult, stop_ledger
from batchsubmit.summary import summarize
from batchsubmit.v2 import V2Target
from batchsubmit.watch import Board, WatchResult, name_prefix, watch_ledger
from tests.fakes import FakeClock, emulator_in_thread

pytestmark = pytest.mark.anyio

PROJECT = "0123456789abcdef0123456789abcdef"
START = 1_800_000_000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_spec(path: Path, n: int = 4, *, name: str = "lr-v2") -> Path:
    """A v2 spec of ``n`` points (one swept learning rate each)."""
    spec = {
        "name": name,
        "target": {"api": "v2", "endpoint": "emulator", "project_id": PROJECT,
                   "workspace_id": "0"},
        "base": {
            "kind": "job",
            "metadata": {"name": "{sweep}-{key}"},
            "algorithm": {
                "code_dir": "/bkt/app/", "boot_file": "/bkt/app/train.py",
                "engine": {"engine_id": "pytorch-cp36-1.4.0-v2"},
                "parameters": [{"name": "epochs", "value": "10"}],
                "outputs": [{"name": "train_url",
                             "remote": {"obs": {"obs_url": "/bkt/out/{sweep}/{key}/"}}}],
            },
            "spec": {"resource": {"flavor_id": "modelarts.vm.cpu.2u", "node_count": 1}},
        },
        "grid": {"learning_rate": [0.1 / 10**i for i in range(n)]},
    }  # fmt: skip
    path.write_text(json.dumps(spec))
    return path


def config(**knobs: Any) -> EmulatorConfig:
    """Short phase timelines: Creating 1 s, Pending 1 s, Running 2 s."""
    base: dict[str, Any] = {
        "project_id": PROJECT, "v2_creating_seconds": 1, "v2_pending_seconds": 1,
        "v2_running_seconds": 2, "v2_terminating_seconds": 1, "seed": 7,
    }  # fmt: skip
    return EmulatorConfig(**{**base, **knobs})


async def run_points(emu: Emulator | str, spec: Path, ledger_path: Path) -> None:
    """Run the sweep (the emulator's clock stands still meanwhile)."""
    url = emu if isinstance(emu, str) else emu.url
    options = RunOptions(spec=spec, endpoint=url, ledger=ledger_path, rate=500, quiet=True)
    await run_sweep(options, credentials=NoCredentials(project_id=PROJECT))


async def watch(emu: Emulator, path: Path, clock: FakeClock, **kw: Any) -> WatchResult:
    """Watch with the emulator's clock: each sleep of the watch moves the emulator's time on."""
    async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
        return await watch_ledger(
            path, client=client, interval=1.0, clock=clock, sleep=clock.sleep,
            limiter=AdaptiveRateLimiter(100, clock=clock, sleep=clock.sleep), **kw,
        )  # fmt: skip


async def stop(emu: Emulator, path: Path, action: Action = "stop", yes: bool = True) -> StopResult:
    async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
        target = V2Target(client, name_prefix=name_prefix(read_ledger(path)), workspace_id="0")
        return await stop_ledger(
            path, action=action, lister=client, target=target,
            limiter=AdaptiveRateLimiter(100), yes=yes,
        )  # fmt: skip


def lines(path: Path, event: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, path.read_bytes().splitlines()) if r["event"] == event]


def truth(emu: Emulator) -> dict[str, str]:
    """Training job id -> its phase on the server now."""
    return {job["id"]: job["phase"] for job in emu.v2_jobs()}


# --- the pure parts ------------------------------------------------------------------------------


def test_phases_mean_what_the_contracts_table_says() -> None:
    """Completed is the only success; Failed, Abnormal fail; Terminated stops; others are active."""
    assert [phases.verdict(p) for p in ("Completed", "Failed", "Abnormal", "Terminated")] == [
        "succeeded", "failed", "failed", "stopped",
    ]  # fmt: skip
    for active in ("Creating", "Pending", "Running", "Terminating", "Hibernating"):
        assert phases.verdict(active) == "active" and not phases.is_terminal(active)
    assert not phases.is_known_phase("Hibernating") and phases.is_known_phase("Pending")
    assert phases.verdict_of_name("KILLED") == "failed"  # v1 names keep v1's meaning
    assert phases.verdict_of_name("STATUS_99") == "active"


def test_the_name_prefix_is_the_longest_common_prefix_of_the_job_names(tmp_path: Path) -> None:
    """Every succeeded point's job_name starts with it; a single job's name is its own prefix."""
    from batchsubmit import ledger

    def ok(key: str, name: str) -> dict[str, Any]:
        return ledger.succeeded(
            key=key, index=0, training_job_id=f"id-{key}", job_name=name, parameter=(),
            train_url="/o/", attempts=1, reconciled=False, latency_ms=1.0,
        )  # fmt: skip

    start = ledger.run_started(sweep="s", spec_sha256="x", total=2, settings={"api": "v2"})
    state = ledger.fold([ledger.encode(start), ledger.encode(ok("a", "lr-v2-ab12")),
                         ledger.encode(ok("b", "lr-v2-ac34"))])  # fmt: skip
    assert name_prefix(state) == "lr-v2-a"
    state = ledger.fold([ledger.encode(start), ledger.encode(ok("a", "solo"))])
    assert name_prefix(state) == "solo"


# --- watch ---------------------------------------------------------------------------------------


async def test_watch_follows_v2_jobs_to_their_end_with_one_search_per_interval(
    tmp_path: Path,
) -> None:
    """Creating, Pending, Running, then Completed or Failed per job, as the server has them; one
    search walk per round and no detail call; a status line per phase change; exit 1."""
    clock = FakeClock(START)
    spec, path = write_spec(tmp_path / "s.json", n=8), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config(failure_share=0.5), clock=clock) as emu:
        await run_points(emu, spec, path)
        searches, details = emu.counters["v2_searches"], emu.counters["v2_details"]
        result = await watch(emu, path, clock)
        server = truth(emu)
        walks = emu.counters["v2_searches"] - searches
        assert emu.counters["v2_details"] == details == 0
    assert result.polls == 5  # 0 s Creating, 1 s Pending, 2 s Running ... 4 s ended
    assert walks == 2 * result.polls  # a walk: the page, then the empty page that ends it
    per_job: dict[str, list[str]] = {}
    for line in lines(path, "status"):
        assert "version_id" not in line and "status" not in line
        per_job.setdefault(line["training_job_id"], []).append(line["status_name"])
    assert len(per_job) == 8
    assert {tuple(p[:3]) for p in per_job.values()} == {("Creating", "Pending", "Running")}
    assert {j: p[-1] for j, p in per_job.items()} == {j: server[j] for j in per_job}
    failed = sum(p[-1] == "Failed" for p in per_job.values())
    assert 0 < failed < 8 and not result.ok
    assert result.counts == {"Completed": 8 - failed, "Failed": failed}
    assert all(e.status is None for e in result.statuses.values())
    state = read_ledger(path)
    assert {e.status_name for e in state.statuses.values()} == {"Completed", "Failed"}


async def test_an_abnormal_job_ends_the_watch_as_a_failure(tmp_path: Path) -> None:
    """abnormal_share 1: every job ends Abnormal after Creating; exit 1, and a second watch
    sends nothing (every job is terminal in the ledger)."""
    clock = FakeClock(START)
    spec, path = write_spec(tmp_path / "s.json", n=2), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config(abnormal_share=1.0), clock=clock) as emu:
        await run_points(emu, spec, path)
        first = await watch(emu, path, clock)
        searches = emu.counters["v2_searches"]
        second = await watch(emu, path, clock)
        assert emu.counters["v2_searches"] == searches
    assert not first.ok and first.counts == {"Abnormal": 2}
    assert second.polls == 0 and second.counts == {"Abnormal": 2}
    assert "2 training jobs" in (first.message or "")


async def test_all_completed_exits_ok_and_unknown_phases_are_active_and_logged(
    tmp_path: Path,
) -> None:
    """Every job Completed: ok. A phase the contract does not list is logged and followed on."""
    clock = FakeClock(START)
    spec, path = write_spec(tmp_path / "s.json", n=3), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config(), clock=clock) as emu:
        await run_points(emu, spec, path)
        result = await watch(emu, path, clock)
    assert result.ok and result.counts == {"Completed": 3}
    board = Board.from_state(read_ledger(path))
    from batchsubmit.watch import Observation

    job = next(iter(board.tracked))
    board.tracked[job].status = "Running"
    with capture_logs():
        changed = board.observe({0: {job: Observation("Hibernating", 5)}}, job_ids=(0,))
    assert [r["status_name"] for r in changed] == ["Hibernating"]
    assert not board.done  # unknown: still active
    out = io.StringIO()
    Console(file=out, width=120).print(render_board(board, polls=1, sweep="lr-v2"))
    assert "training jobs" in out.getvalue() and "phase" in out.getvalue()


def test_watch_on_the_command_line_follows_a_v2_ledger(tmp_path: Path) -> None:
    """`batchsubmit watch LEDGER` against a v2 run: exit 0 once every job Completed."""
    spec, path = write_spec(tmp_path / "s.json", n=2), tmp_path / "s.ledger.jsonl"
    fast = config(v2_creating_seconds=0, v2_pending_seconds=0, v2_running_seconds=0)
    with emulator_in_thread(fast) as emu:
        anyio.run(run_points, emu.url, spec, path, backend="asyncio")
        code = main(["watch", str(path), "--endpoint", emu.url, "--interval", "0.05",
                     "--quiet"])  # fmt: skip
    assert code == 0
    assert {r["status_name"] for r in lines(path, "status")} == {"Completed"}


# --- status and the API --------------------------------------------------------------------------


async def test_status_points_and_the_api_show_training_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--points (json, csv, table) and PointResult carry training_job_id, job_name and the
    phase; the v1 fields are None."""
    clock = FakeClock(START)
    spec, path = write_spec(tmp_path / "s.json", n=2), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config(), clock=clock) as emu:
        await run_points(emu, spec, path)
        await watch(emu, path, clock)
        server = {j["id"]: j["name"] for j in emu.v2_jobs()}
    capsys.readouterr()  # the run's own summary
    assert main(["status", str(path), "--points", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["training_job_id"]: r["job_name"] for r in rows} == server
    assert {r["phase"] for r in rows} == {"Completed"} and all("version_id" not in r for r in rows)
    assert main(["status", str(path), "--points", "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert header[-5:] == ["training_job_id", "job_name", "phase", "error_code", "attempts"]
    assert main(["status", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["statuses"] == {"Completed": 2}
    assert main(["status", str(path)]) == 0
    assert "every training completed (2)" in capsys.readouterr().out
    result = bs.read_ledger(path)
    assert {p.training_job_id: p.job_name for p in result.succeeded.values()} == server
    assert all(p.version_id is None and p.version_name is None and p.job_id is None
               for p in result.succeeded.values())  # fmt: skip
    assert {r.training_job_id for r in point_rows(read_ledger(path))} == set(server)


# --- report --------------------------------------------------------------------------------------


async def test_the_report_shows_phases_as_training_states(tmp_path: Path) -> None:
    """Completed -> completed, Failed/Abnormal -> training failed, Terminated -> stopped."""
    clock = FakeClock(START)
    spec, path = write_spec(tmp_path / "s.json", n=6), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config(failure_share=0.5), clock=clock) as emu:
        await run_points(emu, spec, path)
        first = sorted(read_ledger(path).succeeded_keys())[0]
        clock.now += 2.5  # every job Running
        async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
            job = read_ledger(path).outcomes[first]["training_job_id"]
            await client.terminate_training_job(job)
        await watch(emu, path, clock)
        server = truth(emu)
    data = write_report(path, tmp_path / "r.html")
    assert server[job] == "Terminated"
    expected: dict[str, int] = {}
    for phase in server.values():
        state = {"Completed": "completed", "Failed": "training failed",
                 "Terminated": "stopped"}[phase]  # fmt: skip
        expected[state] = expected.get(state, 0) + 1
    assert dict(data.states) == expected
    html = (tmp_path / "r.html").read_text()
    assert "v2 training jobs" in html and "phase Terminated (stopped)" in html
    assert job in html  # the stopped job is listed among those that did not complete


# --- stop and delete -----------------------------------------------------------------------------


async def test_stop_terminates_running_jobs_and_leaves_ended_ones_alone(tmp_path: Path) -> None:
    """A dry run sends only the search; --yes terminates each running job once (Terminating,
    then Terminated), writes stopped lines with training_job_id, and a re-run does nothing."""
    clock = FakeClock(START)
    spec, path = write_spec(tmp_path / "s.json", n=4), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config(v2_running_seconds=100), clock=clock) as emu:
        await run_points(emu, spec, path)
        clock.now += 2.5
        dry = await stop(emu, path, yes=False)
        assert emu.counters["v2_terminates"] == 0 and dry.outcome is None
        assert {c.label() for c in dry.plan.todo} == {"Running"} and len(dry.plan.todo) == 4
        done = await stop(emu, path)
        assert emu.counters["v2_terminates"] == 4
        assert set(truth(emu).values()) == {"Terminating"}
        clock.now += 1.5
        assert set(truth(emu).values()) == {"Terminated"}
        again = await stop(emu, path)
        assert emu.counters["v2_terminates"] == 4 and again.plan.done_before == 4
    assert done.ok and done.outcome is not None and len(done.outcome.done) == 4
    stopped = lines(path, "stopped")
    assert sorted(r["training_job_id"] for r in stopped) == sorted(truth_ids(path))
    assert all("job_id" not in r and "version_id" not in r for r in stopped)
    assert summarize(read_ledger(path)).stopped == 4


def truth_ids(path: Path) -> list[str]:
    return [r["training_job_id"] for r in lines(path, "succeeded")]


async def test_a_job_that_ended_before_the_terminate_is_reported_not_refused(
    tmp_path: Path,
) -> None:
    """409 ModelArts.2796 (the job ended between the search and the call): no refusal, no
    stopped line, the command succeeds."""
    clock = FakeClock(START)
    spec, path = write_spec(tmp_path / "s.json", n=2), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config(), clock=clock) as emu:
        await run_points(emu, spec, path)
        async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
            target = V2Target(client, name_prefix="lr-v2-", workspace_id="0")
            result = await stop_ledger(
                path, action="stop", lister=client, target=_EndsFirst(target, clock),
                limiter=AdaptiveRateLimiter(100), yes=True,
            )  # fmt: skip
        assert set(truth(emu).values()) == {"Completed"}
    assert result.ok and result.outcome is not None
    assert len(result.outcome.ended) == 2 and not result.outcome.refused
    assert lines(path, "stopped") == []


class _EndsFirst(V2Target):
    """A V2Target whose jobs all end (the clock moves on) between its search and a terminate."""

    def __init__(self, inner: V2Target, clock: FakeClock) -> None:
        super().__init__(inner.client, name_prefix=inner.name_prefix,
                         workspace_id=inner.workspace_id)  # fmt: skip
        self.clock = clock

    async def stop(self, job_id: int, id: int | str) -> None:
        self.clock.now = START + 100  # past every job's end
        await super().stop(job_id, id)


def test_stop_and_delete_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`stop --yes` terminates the running jobs, `delete --yes` deletes them (a job already
    gone, 400 ModelArts.2775, is reported, not refused); the tables name training_job_id."""
    spec, path = write_spec(tmp_path / "s.json", n=3), tmp_path / "s.ledger.jsonl"
    slow = config(v2_creating_seconds=0, v2_pending_seconds=0, v2_running_seconds=10_000,
                  v2_delete_lag=0)  # fmt: skip
    with emulator_in_thread(slow) as emu:
        anyio.run(run_points, emu.url, spec, path, backend="asyncio")
        assert main(["stop", str(path), "--endpoint", emu.url]) == 0
        assert "training_job_id" in capsys.readouterr().out
        assert main(["stop", str(path), "--endpoint", emu.url, "--yes"]) == 0
        assert "3 training jobs stopped" in capsys.readouterr().err
        assert {j["phase"] for j in emu.v2_jobs()} <= {"Terminating", "Terminated"}
        assert emu.counters["v2_terminates"] == 3
        assert main(["delete", str(path), "--endpoint", emu.url, "--yes"]) == 0
        assert emu.counters["v2_deletes"] == 3
        err = capsys.readouterr().err
    assert "3 training jobs deleted" in err
    deleted = lines(path, "deleted")
    assert sorted(r["training_job_id"] for r in deleted) == sorted(truth_ids(path))


class _DeletedFirst(V2Target):
    """A V2Target whose every job is deleted by someone else between its search and a delete."""

    async def delete(self, job_id: int, id: int | str) -> None:
        await self.client.delete_training_job(str(id))  # by hand, meanwhile
        await super().delete(job_id, id)


async def test_a_job_gone_before_the_delete_is_reported_not_refused(tmp_path: Path) -> None:
    """400 ModelArts.2775 (deleted meanwhile): no refusal, no deleted line, the command succeeds."""
    clock = FakeClock(START)
    spec, path = write_spec(tmp_path / "s.json", n=2), tmp_path / "s.ledger.jsonl"
    async with run_emulator(config(v2_delete_lag=0), clock=clock) as emu:
        await run_points(emu, spec, path)
        async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
            target = _DeletedFirst(client, name_prefix="lr-v2-", workspace_id="0")
            result = await stop_ledger(
                path, action="delete", lister=client, target=target,
                limiter=AdaptiveRateLimiter(100), yes=True,
            )  # fmt: skip
        assert emu.counters["v2_deletes"] == 2  # the deletes by hand; ours were answered 2775
        assert all(job["deleted"] for job in emu.v2_jobs())
    assert result.ok and result.outcome is not None
    assert len(result.outcome.gone) == 2 and not result.outcome.refused
    assert lines(path, "deleted") == []

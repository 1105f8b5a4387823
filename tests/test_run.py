"""The proof of the engine: whole runs against the emulator over real loopback sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from batchsubmit.auth import NoCredentials
from batchsubmit.commands.run import RunOptions, run_sweep
from batchsubmit.emulator import EmulatorConfig, run_emulator
from batchsubmit.ledger import read_ledger

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PROJECT = "0123456789abcdef0123456789abcdef"
JOB = 10


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_spec(path: Path, *, a: int, b: int, name: str = "proof") -> Path:
    """A spec of a x b points against job 10 (based on version 20)."""
    grid = {"a": list(range(a)), "b": [f"v{i}" for i in range(b)]}
    spec = {
        "name": name,
        "target": {"endpoint": "emulator", "project_id": PROJECT, "job_id": JOB},
        "base": {
            "job_desc": "a={a} b={b}",
            "config": {
                "worker_server_num": 1, "app_url": "/bkt/app/", "boot_file_url": "/bkt/app/t.py",
                "data_url": "/bkt/data/", "spec_id": 1, "engine_id": 1, "pre_version_id": 20,
                "train_url": "/bkt/out/{sweep}/{key}/",
            },
        },
        "grid": grid,
    }
    path.write_text(json.dumps(spec))
    return path


def created(emu: Any) -> list[dict[str, Any]]:
    """Versions the sweep created (the seed version 20 excluded)."""
    return [v for v in emu.versions(JOB) if v["version_id"] != 20]


def assert_exactly_once(emu: Any, ledger: Path, points: int) -> None:
    """One version per point on the server, and the ledger's version_ids are exactly those."""
    versions = created(emu)
    identities = Counter(
        (v["train_url"], tuple((p["label"], p["value"]) for p in v["parameter"])) for v in versions
    )
    duplicates = {k: n for k, n in identities.items() if n > 1}
    assert not duplicates, f"duplicate versions: {duplicates}"
    assert len(versions) == points
    state = read_ledger(ledger)
    succeeded = {k: r for k, r in state.outcomes.items() if r["event"] == "succeeded"}
    assert len(succeeded) == points, f"not succeeded: {points - len(succeeded)}"
    assert not state.pending
    assert {r["version_id"] for r in succeeded.values()} == {v["version_id"] for v in versions}


async def test_exactly_once_under_faults(tmp_path: Path) -> None:
    """500 points, 20% 500s, 10% ambiguous commits, throttling, 1 s list lag: one version each."""
    spec = write_spec(tmp_path / "proof.json", a=25, b=20)
    ledger = tmp_path / "proof.ledger.jsonl"
    config = EmulatorConfig(
        project_id=PROJECT, rate=200, burst=20, error_500_share=0.2, ambiguous_share=0.1,
        stall_seconds=3.0, list_lag=1.0, seed=7,
    )
    async with run_emulator(config) as emu:
        result = await run_sweep(
            RunOptions(spec=spec, endpoint=emu.url, ledger=ledger, rate=400, concurrency=16,
                       max_attempts=12, timeout=0.5, settle=1.2, quiet=True),
            credentials=NoCredentials(project_id=PROJECT),
        )
        counters = emu.counters
        assert counters["faults_500"] > 0
        assert counters["ambiguous"] > 0
        assert counters["throttled"] > 0
        assert_exactly_once(emu, ledger, 500)
    assert result.exit_code == 0, result.message
    state = read_ledger(ledger)
    assert any(r["reconciled"] for r in state.outcomes.values())


async def test_resume_sends_nothing_twice(tmp_path: Path) -> None:
    """A second run of a finished sweep sends no create and exits 0."""
    spec = write_spec(tmp_path / "s.json", a=3, b=4)
    ledger = tmp_path / "s.ledger.jsonl"
    async with run_emulator(EmulatorConfig(project_id=PROJECT)) as emu:
        options = RunOptions(spec=spec, endpoint=emu.url, ledger=ledger, rate=100, quiet=True)
        creds = NoCredentials(project_id=PROJECT)
        first = await run_sweep(options, credentials=creds)
        creates = emu.counters["creates"]
        second = await run_sweep(options, credentials=creds)
        assert emu.counters["creates"] == creates == 12
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert second.summary is not None and second.summary.succeeded == 12


async def test_lost_ledger_adopts_what_the_server_has(tmp_path: Path) -> None:
    """With the ledger deleted, a re-run finds every version on the server and creates none."""
    spec = write_spec(tmp_path / "s.json", a=2, b=5)
    ledger = tmp_path / "s.ledger.jsonl"
    async with run_emulator(EmulatorConfig(project_id=PROJECT)) as emu:
        options = RunOptions(spec=spec, endpoint=emu.url, ledger=ledger, rate=100, quiet=True)
        creds = NoCredentials(project_id=PROJECT)
        await run_sweep(options, credentials=creds)
        ledger.unlink()
        result = await run_sweep(options, credentials=creds)
        assert emu.counters["creates"] == 10
        assert_exactly_once(emu, ledger, 10)
    assert result.exit_code == 0
    assert all(r["reconciled"] for r in read_ledger(ledger).outcomes.values())


async def test_failed_points_are_resent_only_with_retry_failed(tmp_path: Path) -> None:
    """Points refused for good are recorded, skipped on resume, re-sent with --retry-failed."""
    spec = write_spec(tmp_path / "s.json", a=2, b=3)
    ledger = tmp_path / "s.ledger.jsonl"
    config = EmulatorConfig(project_id=PROJECT, max_versions_per_job=4)  # 20 + 3 new ones
    async with run_emulator(config) as emu:
        creds = NoCredentials(project_id=PROJECT)
        options = RunOptions(spec=spec, endpoint=emu.url, ledger=ledger, rate=100, quiet=True,
                             concurrency=1)
        first = await run_sweep(options, credentials=creds)
        assert first.exit_code == 1
        assert first.summary is not None
        assert (first.summary.succeeded, first.summary.failed) == (3, 3)
        assert first.summary.failures_by_code == {"ModelArts.0118": 3}
        requests = emu.counters["creates"] + emu.counters["rejected"]
        again = await run_sweep(options, credentials=creds)
        assert emu.counters["creates"] + emu.counters["rejected"] == requests
        assert again.exit_code == 1
        emu.set_faults(max_versions_per_job=None)
        retried = await run_sweep(
            RunOptions(spec=spec, endpoint=emu.url, ledger=ledger, rate=100, quiet=True,
                       retry_failed=True),
            credentials=creds,
        )
        assert retried.exit_code == 0
        assert_exactly_once(emu, ledger, 6)


def cli(*args: str, env: dict[str, str], capture: bool = True) -> subprocess.Popen[bytes]:
    pipe = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "batchsubmit", *args],
        env={**os.environ, **env}, stdout=pipe, stderr=pipe,
    )


async def wait_for_lines(path: Path, n: int, proc: subprocess.Popen[bytes]) -> None:
    """Poll until the ledger has ``n`` lines (or the process ended); bounded at 30 s."""
    ledger = anyio.Path(path)
    with anyio.fail_after(30):
        while proc.poll() is None:
            if await ledger.exists() and (await ledger.read_bytes()).count(b"\n") >= n:
                return
            await anyio.sleep(0.01)


@pytest.mark.parametrize("kill_after_lines", [5, 60, 150])
async def test_sigkill_then_rerun_loses_and_duplicates_nothing(
    tmp_path: Path, kill_after_lines: int
) -> None:
    """`batchsubmit run` killed with SIGKILL mid-run, then re-run: exactly one version per point."""
    spec = write_spec(tmp_path / "s.json", a=10, b=12)
    ledger = tmp_path / "s.ledger.jsonl"
    config = EmulatorConfig(
        project_id=PROJECT, auth="token", tokens=(SecretStr("tok-123"),), list_lag=0.5,
        ambiguous_share=0.05, ambiguous_kinds=frozenset({"500", "reset"}), latency_ms=5,
    )
    env = {"MODELARTS_TOKEN": "tok-123", "HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": ""}
    async with run_emulator(config) as emu:
        args = ["run", str(spec), "--endpoint", emu.url, "--ledger", str(ledger),
                "--rate", "200", "--concurrency", "8", "--settle", "0.7", "--quiet"]
        proc = cli(*args, env=env, capture=False)
        try:
            await wait_for_lines(ledger, kill_after_lines, proc)
            proc.send_signal(signal.SIGKILL)
        finally:
            await anyio.to_thread.run_sync(proc.wait)
        rerun = cli(*args, env=env)
        _out, err = await anyio.to_thread.run_sync(rerun.communicate)
        assert rerun.returncode == 0, err.decode()
        assert_exactly_once(emu, ledger, 120)


async def test_wrong_sk_stops_after_the_first_answer(tmp_path: Path) -> None:
    """A wrong SK: one refused request, no retries, exit 2 with a hint of what to check."""
    spec = write_spec(tmp_path / "s.json", a=5, b=5)
    ledger = tmp_path / "s.ledger.jsonl"
    config = EmulatorConfig(
        project_id=PROJECT, auth="aksk", access_keys={"AKRIGHT": SecretStr("the-right-sk")}
    )
    env = {"HUAWEICLOUD_SDK_AK": "AKRIGHT", "HUAWEICLOUD_SDK_SK": "a-wrong-sk-value",
           "MODELARTS_TOKEN": ""}
    async with run_emulator(config) as emu:
        proc = cli("run", str(spec), "--endpoint", emu.url, "--ledger", str(ledger),
                   "--concurrency", "8", env=env)
        out, err = await anyio.to_thread.run_sync(proc.communicate)
        assert emu.counters["requests"] == 1
        assert emu.counters["auth_failures"] == 1
        assert emu.counters["creates"] == 0
    assert proc.returncode == 2
    text = (out + err).decode()
    assert "HUAWEICLOUD_SDK_SK" in text
    assert "a-wrong-sk-value" not in text


async def test_a_sweep_too_big_to_send_is_refused_before_anything(tmp_path: Path) -> None:
    """A 12,000,000-point grid is a spec error at once: no preflight for ever, no ledger."""
    from batchsubmit.errors import SpecError

    spec = write_spec(tmp_path / "huge.json", a=4000, b=3000)
    ledger = tmp_path / "huge.ledger.jsonl"
    with pytest.raises(SpecError, match="12,000,000 points"):
        await run_sweep(RunOptions(spec=spec, ledger=ledger, quiet=True))
    assert not ledger.exists()


async def test_an_absurd_concurrency_flag_is_refused_before_anything(tmp_path: Path) -> None:
    """--concurrency above the cap is a usage error naming the cap: no ledger, no request."""
    from batchsubmit.errors import UsageError

    spec = write_spec(tmp_path / "s.json", a=2, b=2)
    ledger = tmp_path / "s.ledger.jsonl"
    with pytest.raises(UsageError, match="at most 1,000, got 1,001"):
        await run_sweep(RunOptions(spec=spec, ledger=ledger, quiet=True, concurrency=1001))
    assert not ledger.exists()


async def test_ctrl_c_finishes_requests_in_flight_and_exits_130(tmp_path: Path) -> None:
    """SIGINT mid-run: no new points, in-flight outcomes and run_finished written, exit 130."""
    spec = write_spec(tmp_path / "s.json", a=10, b=10)
    ledger = tmp_path / "s.ledger.jsonl"
    config = EmulatorConfig(
        project_id=PROJECT, auth="token", tokens=(SecretStr("tok-9"),), latency_ms=100
    )
    env = {"MODELARTS_TOKEN": "tok-9", "HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": ""}
    async with run_emulator(config) as emu:
        proc = cli("run", str(spec), "--endpoint", emu.url, "--ledger", str(ledger),
                   "--rate", "20", "--concurrency", "4", "--quiet", env=env, capture=False)
        try:
            await wait_for_lines(ledger, 20, proc)
            proc.send_signal(signal.SIGINT)
        finally:
            code = await anyio.to_thread.run_sync(proc.wait)
        creates = emu.counters["creates"]
    assert code == 130
    state = read_ledger(ledger)
    assert not state.pending  # every request in flight got its outcome line
    assert len(state.outcomes) == creates < 100
    last = state.spans[-1].finished
    assert last is not None and last["interrupted"] is True


async def test_a_refused_credential_leaves_no_ledger_and_no_empty_summary(tmp_path: Path) -> None:
    """Refused at the first request: the refusal and its hint only (no "sweep ?" table), and
    no 0-byte ledger left behind."""
    spec = write_spec(tmp_path / "s.json", a=2, b=2)
    ledger = tmp_path / "s.ledger.jsonl"
    config = EmulatorConfig(project_id=PROJECT, auth="token", tokens=(SecretStr("right"),))
    env = {"MODELARTS_TOKEN": "wrong", "HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": ""}
    async with run_emulator(config) as emu:
        proc = cli("run", str(spec), "--endpoint", emu.url, "--ledger", str(ledger), env=env)
        _out, err = await anyio.to_thread.run_sync(proc.communicate)
    text = err.decode()
    assert proc.returncode == 2
    assert "run stopped" in text and "MODELARTS_TOKEN" in text
    assert "sweep ?" not in text and "No run is recorded" not in text
    assert not ledger.exists()


async def test_nothing_listening_names_the_url_and_exits_3(tmp_path: Path) -> None:
    """An endpoint where nothing listens: exit 3 (could not reach the service), the message
    names the URL and what to check; nothing written."""
    spec = write_spec(tmp_path / "s.json", a=2, b=2)
    ledger = tmp_path / "s.ledger.jsonl"
    env = {"MODELARTS_TOKEN": "", "HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": ""}
    proc = cli("run", str(spec), "--endpoint", "http://127.0.0.1:9", "--ledger", str(ledger),
               "--max-attempts", "1", env=env)
    _out, err = await anyio.to_thread.run_sync(proc.communicate)
    text = err.decode()
    assert proc.returncode == 3, text
    assert "could not reach http://127.0.0.1:9" in text and "check the endpoint" in text
    assert not ledger.exists()


async def test_a_local_open_emulator_needs_no_credentials(tmp_path: Path) -> None:
    """`run --endpoint http://127.0.0.1:PORT` against an open `batchsubmit emulator` works with
    no credentials in the environment (a loopback endpoint may be open)."""
    spec = write_spec(tmp_path / "s.json", a=2, b=2)
    ledger = tmp_path / "s.ledger.jsonl"
    env = {"MODELARTS_TOKEN": "", "HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": ""}
    async with run_emulator(EmulatorConfig(project_id=PROJECT)) as emu:
        proc = cli("run", str(spec), "--endpoint", emu.url, "--ledger", str(ledger), "--quiet",
                   env=env)
        _out, err = await anyio.to_thread.run_sync(proc.communicate)
        assert proc.returncode == 0, err.decode()
        assert len(created(emu)) == 4


async def test_ctrl_c_while_watching_stops_the_watch_at_once(tmp_path: Path) -> None:
    """SIGINT after every point was sent, while `run --watch` follows the trainings: the watch
    stops without waiting out the grace (nothing is in flight), exit 130, the run recorded as
    finished, not interrupted."""
    spec = write_spec(tmp_path / "s.json", a=2, b=2)
    ledger = tmp_path / "s.ledger.jsonl"
    config = EmulatorConfig(project_id=PROJECT, init_seconds=60, run_seconds=60)
    env = {"MODELARTS_TOKEN": "", "HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": ""}
    async with run_emulator(config) as emu:
        proc = cli("run", str(spec), "--endpoint", emu.url, "--ledger", str(ledger), "--quiet",
                   "--watch", "--watch-interval", "0.2", env=env, capture=False)
        try:
            await wait_for_lines(ledger, 2 + 4 * 2 + 4, proc)  # ... run_finished, INIT x4
            proc.send_signal(signal.SIGINT)
            with anyio.fail_after(5):  # the grace is 10 s: stopping at once is well inside 5
                while proc.poll() is None:  # noqa: ASYNC110 (a process, not an event)
                    await anyio.sleep(0.05)
            code = proc.returncode
        finally:
            proc.kill()
    assert code == 130
    finished = read_ledger(ledger).spans[-1].finished
    assert finished is not None and finished["interrupted"] is False

"""Chaos: whole runs under random faults, SIGKILLs, server restarts and a full disk (issue 6).

Real loopback sockets throughout. The emulator runs in the test's event loop, so its ground truth
(``emu.versions()``) is what the invariants are checked against, or, when it must be restarted, as
a ``batchsubmit emulator`` process with a state file. The submitter is always a ``batchsubmit run``
process, so it can be SIGKILLed at any moment; moments are chosen by ledger line counts, never by
sleeping. Seeds make the fault mix reproducible; wall-clock timing still varies from run to run.

Exactly once rests on one timing assumption, which every run here respects: ``--settle`` covers
the list lag plus how late the server may still create a version after the request left it (here
the largest injected latency: a real server may act on a request the client has given up on; the
emulator, whose body read fails once the client hangs up, happens not to).

Run with ``-s`` to see what each test injected (faults per kind, kills, restarts).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from pydantic import SecretStr

from batchsubmit.emulator import Emulator, EmulatorConfig, run_emulator
from batchsubmit.ledger import read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.sweep import bind, iter_points, load_spec
from batchsubmit.v1 import identity
from tests.fakes import FakeClock

pytestmark = [pytest.mark.chaos, pytest.mark.anyio]

PROJECT = "0123456789abcdef0123456789abcdef"
JOB = 10
BASE_VERSION = 20  # the emulator's seeded version of job 10, the sweep's pre_version_id
TOKEN = "chaos-token-0"
ENV = {"MODELARTS_TOKEN": TOKEN, "HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": ""}
CONCURRENCY = 8
TIMEOUT = 0.3  # the client's read timeout: stalls and latency spikes go past it

Identity = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the sweep and what the server and the ledger say about it ----------------------------------


def write_spec(path: Path, *, a: int, b: int, name: str = "chaos") -> Path:
    """A spec of a x b points against job 10, each with its own train_url."""
    spec = {
        "name": name,
        "target": {"endpoint": "emulator", "project_id": PROJECT, "job_id": JOB},
        "base": {
            "job_desc": "a={a} b={b}",
            "config": {
                "worker_server_num": 1, "app_url": "/bkt/app/", "boot_file_url": "/bkt/app/t.py",
                "data_url": "/bkt/data/", "spec_id": 1, "engine_id": 1,
                "pre_version_id": BASE_VERSION, "train_url": "/bkt/out/{sweep}/{key}/",
            },
        },
        "grid": {"a": list(range(a)), "b": [f"v{i}" for i in range(b)]},
    }
    path.write_text(json.dumps(spec))
    return path


def spec_identities(spec: Path) -> set[Identity]:
    """The identity (train_url + parameter list) of every point of the spec."""
    bound = bind(load_spec(spec), JOB)
    return {identity(p.train_url, p.parameter) for p in iter_points(bound, validate=False)}


def identity_of(record: Mapping[str, Any]) -> Identity:
    """The identity of a server version or of a ledger ``succeeded`` record."""
    return record["train_url"], tuple((p["label"], p["value"]) for p in record["parameter"])


def server_versions(versions: list[dict[str, Any]]) -> dict[Identity, list[int]]:
    """Ground truth: the version ids created for each identity (the seed version left out)."""
    found: dict[Identity, list[int]] = {}
    for version in versions:
        if version["version_id"] != BASE_VERSION:
            found.setdefault(identity_of(version), []).append(version["version_id"])
    return found


def ledger_verdict(ledger: Path, points: int) -> int:
    """The exit code the ledger calls for: 0 iff every point succeeded and none is pending."""
    state = read_ledger(ledger)
    done = sum(1 for r in state.outcomes.values() if r["event"] == "succeeded")
    return 0 if done == points and not state.pending else 1


def check_exactly_once(versions: list[dict[str, Any]], ledger: Path, spec: Path) -> None:
    """One version per point and none other; the ledger's succeeded version_id is the server's."""
    expected = spec_identities(spec)
    on_server = server_versions(versions)
    duplicates = {who: ids for who, ids in on_server.items() if len(ids) > 1}
    assert not duplicates, f"duplicate versions: {duplicates}"
    assert on_server.keys() == expected, (
        f"lost: {len(expected - on_server.keys())}, foreign: {len(on_server.keys() - expected)}"
    )
    state = read_ledger(ledger)
    assert not state.pending, f"left pending: {sorted(state.pending)}"
    assert len(state.outcomes) == len(expected)
    for key, record in state.outcomes.items():
        assert record["event"] == "succeeded", f"{key}: {record}"
        who = identity_of(record)
        assert on_server.get(who) == [record["version_id"]], (
            f"{key}: the ledger says version {record['version_id']}, the server has "
            f"{on_server.get(who)}"
        )


# --- processes and the ledger they write --------------------------------------------------------


@contextlib.contextmanager
def spawn(
    *args: str, log: Path, stdout: int = subprocess.DEVNULL, memory_mb: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m batchsubmit ARGS`` with stderr appended to ``log``; killed and reaped on exit.

    ``memory_mb`` caps its address space (``ulimit -v``), for runs that might eat the host.
    """
    command = [sys.executable, "-m", "batchsubmit", *args]
    if memory_mb is not None:
        command = ["sh", "-c", f'ulimit -v {memory_mb * 1024} && exec "$@"', "sh", *command]
    with (
        log.open("ab") as err,
        subprocess.Popen(command, env={**os.environ, **ENV}, stdout=stdout, stderr=err) as proc,
    ):
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


async def wait_exit(proc: subprocess.Popen[bytes], within: float) -> int:
    """The exit code, polling; fails the test after ``within`` seconds."""
    with anyio.fail_after(within):
        while True:
            code = proc.poll()
            if code is not None:
                return code
            await anyio.sleep(0.02)


class LedgerLines:
    """Counts a growing ledger's lines, reading only what was appended since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.count = 0

    def refresh(self) -> int:
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return self.count
        self._offset += len(data)
        self.count += data.count(b"\n")
        return self.count


async def wait_lines(
    lines: LedgerLines, n: int, proc: subprocess.Popen[bytes], within: float = 60
) -> bool:
    """True once the ledger has ``n`` lines; False if the process ended first."""
    with anyio.fail_after(within):
        while proc.poll() is None:
            if lines.refresh() >= n:
                return True
            await anyio.sleep(0.005)
    return False


async def until(condition: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    """Poll ``condition`` every millisecond while ``proc`` runs; fails the test after 30 s."""
    with anyio.fail_after(30):
        while True:
            if condition():
                return
            assert proc.poll() is None, "the process ended first"
            await anyio.sleep(0.001)


def run_args(spec: Path, url: str, ledger: Path, *, rate: float, settle: float,
             max_attempts: int, timeout: float = TIMEOUT) -> list[str]:
    return [
        "run", str(spec), "--endpoint", url, "--ledger", str(ledger), "--rate", f"{rate:.1f}",
        "--concurrency", str(CONCURRENCY), "--max-attempts", str(max_attempts),
        "--timeout", str(timeout), "--settle", f"{settle:.2f}", "--quiet",
    ]


def fault_counts(counters: Mapping[str, int]) -> str:
    names = ("creates", "faults_500", "ambiguous_500", "ambiguous_reset", "ambiguous_stall",
             "throttled", "lists")
    return " ".join(f"{name}={counters.get(name, 0)}" for name in names)


# --- 1. random faults and SIGKILLs, several seeds -----------------------------------------------

SEEDS = (1, 2, 3, 4)
GRID = (20, 10)  # 200 points


@dataclass(frozen=True)
class Mix:
    """The faults one seed chose."""

    rate: float  # the emulator's gateway limit, requests/s
    burst: int
    retry_after: bool
    error_500: float
    faults_on_lists: bool  # 500s on list calls too: reconciliation must retry its listings
    ambiguous: float
    stall: float  # seconds: past the client's timeout
    list_lag: float
    latency_ms: float
    jitter_ms: float  # uniform, so the largest latency is known
    spike_ms: float  # latency spikes: past the client's timeout
    client_rate: float  # --rate: below or well above the gateway's limit
    kills: tuple[int, ...]  # ledger lines after which each killed run is killed

    @classmethod
    def draw(cls, rng: random.Random) -> Mix:
        rate = rng.uniform(60, 150)
        return cls(
            rate=rate, burst=rng.randint(2, 12), retry_after=rng.random() < 0.5,
            error_500=rng.uniform(0.03, 0.15), faults_on_lists=rng.random() < 0.5,
            ambiguous=rng.uniform(0.03, 0.12),
            stall=rng.uniform(TIMEOUT + 0.2, TIMEOUT + 0.8), list_lag=rng.uniform(0.1, 0.6),
            latency_ms=rng.uniform(1, 8), jitter_ms=rng.uniform(0, 20),
            spike_ms=rng.uniform(TIMEOUT * 1000 + 100, TIMEOUT * 1000 + 400),
            client_rate=rate * rng.uniform(0.8, 3.0),
            kills=tuple(rng.randint(2, 400) for _ in range(rng.choice((1, 2)))),
        )

    @property
    def settle(self) -> float:
        """List lag plus the latest a version can be created after its request left, + margin."""
        return self.list_lag + (self.spike_ms + self.latency_ms + self.jitter_ms) / 1000 + 0.3

    def config(self, seed: int) -> EmulatorConfig:
        return EmulatorConfig(
            project_id=PROJECT, auth="token", tokens=(SecretStr(TOKEN),), seed=seed,
            rate=self.rate, burst=self.burst, retry_after=self.retry_after,
            error_500_share=self.error_500, faults_on_lists=self.faults_on_lists,
            ambiguous_share=self.ambiguous,
            ambiguous_kinds=frozenset({"500", "reset", "stall"}), stall_seconds=self.stall,
            list_lag=self.list_lag, latency_ms=self.latency_ms,
            latency_jitter_ms=self.jitter_ms, latency_distribution="uniform",
        )


async def weather(emu: Emulator, rng: random.Random, mix: Mix, seen: Counter[str]) -> None:
    """Change the faults at random moments: latency spikes, throttling and Retry-After on/off."""
    while True:
        await anyio.sleep(rng.uniform(0.3, 1.2))
        event = rng.choice(("spike", "spike", "retry_after", "rate"))
        seen[event] += 1
        if event == "spike":
            before = emu.counters["requests"]
            emu.set_faults(latency_ms=mix.spike_ms)
            await anyio.sleep(rng.uniform(0.1, 0.4))
            emu.set_faults(latency_ms=mix.latency_ms)
            seen["spiked_requests"] += emu.counters["requests"] - before
        elif event == "retry_after":
            emu.set_faults(retry_after=not emu.config.retry_after)
        else:
            rate = None if rng.random() < 0.25 else mix.rate * rng.uniform(0.5, 1.5)
            emu.set_faults(rate=rate, burst=mix.burst)


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_faults_and_kills_keep_exactly_once(tmp_path: Path, seed: int) -> None:
    """Random faults, 1-2 SIGKILLs and re-runs: one version per point, the ledger agrees."""
    rng = random.Random(seed)
    mix = Mix.draw(rng)
    points = GRID[0] * GRID[1]
    spec = write_spec(tmp_path / "chaos.json", a=GRID[0], b=GRID[1])
    ledger = tmp_path / "chaos.ledger.jsonl"
    log = tmp_path / "run.err"
    seen: Counter[str] = Counter()
    runs: list[tuple[int, float]] = []  # (exit code, seconds) of each run
    async with run_emulator(mix.config(seed)) as emu:
        args = run_args(spec, emu.url, ledger, rate=mix.client_rate, settle=mix.settle,
                        max_attempts=25)
        lines = LedgerLines(ledger)
        async with anyio.create_task_group() as tg:
            tg.start_soon(weather, emu, random.Random(seed + 1000), mix, seen)
            for offset in mix.kills:
                state = read_ledger(ledger)
                remaining = points - len(state.succeeded_keys())
                target = lines.refresh() + min(offset, max(2, remaining))
                started = anyio.current_time()
                with spawn(*args, log=log) as proc:
                    if await wait_lines(lines, target, proc):
                        proc.send_signal(signal.SIGKILL)
                        seen["kills"] += 1
                    code = await wait_exit(proc, 60)
                runs.append((code, round(anyio.current_time() - started, 1)))
                if code != -signal.SIGKILL:  # it finished before its moment came
                    assert code == ledger_verdict(ledger, points), log.read_text()
            for _ in range(3):  # a run may halt (most recent requests failed): re-run
                started = anyio.current_time()
                with spawn(*args, "--retry-failed", log=log) as proc:
                    code = await wait_exit(proc, 90)
                runs.append((code, round(anyio.current_time() - started, 1)))
                assert code == ledger_verdict(ledger, points), log.read_text()
                if code == 0:
                    break
            tg.cancel_scope.cancel()
        versions, counters = emu.versions(JOB), emu.counters
    print(f"\nchaos seed={seed} {mix}\n  runs={runs} {fault_counts(counters)} "
          f"weather={dict(seen)}")
    assert runs[-1][0] == 0, log.read_text()
    check_exactly_once(versions, ledger, spec)


# --- 1b. a kill at the worst moment, placed rather than drawn -----------------------------------


async def test_kill_just_after_a_send_held_back_by_retry_after(tmp_path: Path) -> None:
    """A create sent after a Retry-After pause and killed before its reply: the re-run adopts it."""
    spec = write_spec(tmp_path / "chaos.json", a=3, b=1)
    ledger = tmp_path / "chaos.ledger.jsonl"
    log = tmp_path / "run.err"
    # Found by this suite: the engine wrote a point's intent and *then* waited for the limiter,
    # so an intent could predate its send by a whole Retry-After pause; the re-run, which waits
    # the settle interval from the newest pending intent, listed too early and sent it again.
    lag = 2.0
    # Burst 2: the start-of-run listing and the canary pass; the next create gets a 429 with
    # Retry-After 4 while the next point, holding the only request slot, waits out the pause.
    config = EmulatorConfig(
        project_id=PROJECT, auth="token", tokens=(SecretStr(TOKEN),), rate=0.25, burst=2,
        list_lag=lag,
    )
    async with run_emulator(config) as emu:
        args = [*run_args(spec, emu.url, ledger, rate=100, settle=lag + 0.5, max_attempts=5,
                          timeout=30), "--concurrency", "1"]
        with spawn(*args, log=log) as proc:
            await until(lambda: emu.counters["throttled"] > 0, proc)
            # From now on every create is made and its reply held back: the client is killed
            # between the creation and the reply.
            emu.set_faults(rate=None, ambiguous_share=1.0, ambiguous_kinds={"stall"},
                           stall_seconds=30)
            await until(lambda: emu.counters["creates"] == 2, proc)  # the canary, the paused one
            proc.send_signal(signal.SIGKILL)
            await wait_exit(proc, 10)
        emu.set_faults(ambiguous_share=0.0)
        with spawn(*args, log=log) as proc:
            assert await wait_exit(proc, 60) == 0, log.read_text()
        check_exactly_once(emu.versions(JOB), ledger, spec)


async def test_no_burst_when_a_retry_after_pause_ends() -> None:
    """After a Retry-After pause, sends resume at the rate: no bucket refilled while paused."""
    # Found by the seeded runs: every worker sent at once when the pause ended, a gateway with
    # a small burst threw most of them back with another Retry-After, and the rate collapsed.
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(100, clock=clock, sleep=clock.sleep)
    limiter.on_throttle(sent_at=await limiter.acquire(), retry_after=1.0)
    paused_at, rate = clock(), limiter.rate
    sends = [await limiter.acquire() for _ in range(11)]
    assert sends[0] >= paused_at + 1.0
    assert sends[-1] - sends[0] == pytest.approx(10 / rate)


# --- 2. the emulator restarted mid-run ----------------------------------------------------------


@contextlib.contextmanager
def emulator_process(port: int, state: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``batchsubmit emulator`` with a state file saved on every change, and mild faults.

    Saving on every change rewrites and fsyncs the whole state (tens of ms once it holds a few
    hundred versions), so this emulator is slow: the client's timeout is set well above that.
    """
    args = [
        "emulator", "--port", str(port), "--auth", "token", "--admin",
        "--state-file", str(state), "--save-interval", "0", "--seed", "11",
        "--rate", "150", "--burst", "10", "--latency-ms", "5", "--latency-jitter-ms", "10",
        "--error-500-share", "0.05", "--ambiguous-share", "0.06",
        "--stall-seconds", str(RESTART_TIMEOUT + 1), "--list-lag", "0.3", "--log-level", "error",
    ]
    with spawn(*args, log=log, stdout=subprocess.PIPE) as proc:
        yield proc


async def listening_url(proc: subprocess.Popen[bytes]) -> str:
    """The URL from the emulator's one stdout line."""
    assert proc.stdout is not None
    with anyio.fail_after(30):
        line = await anyio.to_thread.run_sync(proc.stdout.readline)
    assert line.startswith(b"batchsubmit emulator listening on "), line
    return line.decode().rsplit(" ", 1)[1].strip()


async def admin_state(url: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/_admin/state") as response,
    ):
        data: dict[str, Any] = await response.json()
        return data


RESTART_TIMEOUT = 2.0


async def test_emulator_restarted_mid_run_is_ridden_out(tmp_path: Path) -> None:
    """Emulator SIGTERMed, then SIGKILLed (state saved on every change), restarted: exit 0."""
    spec = write_spec(tmp_path / "chaos.json", a=24, b=10)  # 240 points
    ledger = tmp_path / "chaos.ledger.jsonl"
    state_file = tmp_path / "emulator.json"
    emu_log, run_log = tmp_path / "emulator.err", tmp_path / "run.err"
    lines = LedgerLines(ledger)
    restarts: list[tuple[str, dict[str, int]]] = []
    with contextlib.ExitStack() as stack:
        emu = stack.enter_context(emulator_process(0, state_file, emu_log))
        url = await listening_url(emu)
        port = int(url.rsplit(":", 1)[1])
        args = run_args(spec, url, ledger, rate=300, settle=0.7, max_attempts=40,
                        timeout=RESTART_TIMEOUT)
        run = stack.enter_context(spawn(*args, log=run_log))
        for how, after in ((signal.SIGTERM, 120), (signal.SIGKILL, 150)):
            assert await wait_lines(lines, lines.refresh() + after, run), run_log.read_text()
            counters = (await admin_state(url))["counters"]
            emu.send_signal(how)
            code = await wait_exit(emu, 30)
            assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL), emu_log.read_text()
            restarts.append((how.name, counters))
            emu = stack.enter_context(emulator_process(port, state_file, emu_log))
            assert await listening_url(emu) == url
        code = await wait_exit(run, 120)
        final = await admin_state(url)
        emu.send_signal(signal.SIGTERM)
        assert await wait_exit(emu, 30) == 0, emu_log.read_text()
    print(f"\nrestarts: {restarts}\n  last emulator: {fault_counts(final['counters'])}")
    assert code == 0, run_log.read_text()
    check_exactly_once(final["versions"], ledger, spec)


# --- 3. the disk fills up under the ledger ------------------------------------------------------


@contextlib.contextmanager
def tiny_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only: skipped elsewhere)."""
    path.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)]
    try:
        subprocess.run(mount, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs (needs root): {exc}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True, capture_output=True)


def fill(path: Path) -> int:
    """Write ``path`` until the file system is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * 4096
    with path.open("wb", buffering=0) as out:
        while True:
            try:
                n = out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                return written
            written += n or 0


def intents(ledger: Path) -> Counter[str]:
    """train_url -> submitted lines for it (complete lines only: a torn one was never durable)."""
    found: Counter[str] = Counter()
    for raw in ledger.read_bytes().split(b"\n")[:-1]:
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # the torn tail of the batch that hit the full disk
        if record.get("event") == "submitted":
            found[record["train_url"]] += 1
    return found


async def test_full_disk_stops_sending_and_loses_nothing(tmp_path: Path) -> None:
    """Disk full mid-run: exit 2 naming the ledger and why; every create received has its intent."""
    spec = write_spec(tmp_path / "chaos.json", a=30, b=10)  # 300 points, ~130 kB of ledger
    config = EmulatorConfig(
        project_id=PROJECT, auth="token", tokens=(SecretStr(TOKEN),), latency_ms=10
    )
    log = tmp_path / "run.err"
    with tiny_disk(tmp_path / "disk", "256k") as disk:
        ledger = disk / "chaos.ledger.jsonl"
        async with run_emulator(config) as emu:
            args = run_args(spec, emu.url, ledger, rate=400, settle=0.2, max_attempts=6)
            lines = LedgerLines(ledger)
            with spawn(*args, log=log) as proc:
                assert await wait_lines(lines, 80, proc), log.read_text()
                filler = disk / "filler"
                fill(filler)
                creates_at_fill = emu.counters["creates"]
                code = await wait_exit(proc, 60)
            message = log.read_text()
            received = Counter(
                v["train_url"] for v in emu.versions(JOB) if v["version_id"] != BASE_VERSION
            )
            recorded = intents(ledger)
            creates = emu.counters["creates"]
            print(f"\nfull disk: creates at fill={creates_at_fill}, at exit={creates}, "
                  f"intents={sum(recorded.values())}, ledger lines={lines.refresh()}")
            assert code == 2, message
            assert str(ledger) in message and "No space left on device" in message, message
            unrecorded = received - recorded
            assert not unrecorded, f"sent without a durable intent: {unrecorded}"
            assert creates < 300, "the run went on sending after the disk was full"
            filler.unlink()
            with spawn(*args, log=log) as proc:
                assert await wait_exit(proc, 60) == 0, log.read_text()
            check_exactly_once(emu.versions(JOB), ledger, spec)


async def test_a_ledger_that_refuses_every_write_sends_nothing(tmp_path: Path) -> None:
    """A ledger on /dev/full (a device, every write ENOSPC): exit 2 naming it, nothing sent."""
    spec = write_spec(tmp_path / "chaos.json", a=3, b=3)
    ledger = tmp_path / "chaos.ledger.jsonl"
    ledger.symlink_to("/dev/full")
    log = tmp_path / "run.err"
    config = EmulatorConfig(project_id=PROJECT, auth="token", tokens=(SecretStr(TOKEN),))
    async with run_emulator(config) as emu:
        args = run_args(spec, emu.url, ledger, rate=100, settle=0.2, max_attempts=3)
        # Capped, so that reading an endless device fails fast instead of eating the host.
        with spawn(*args, log=log, memory_mb=1024) as proc:
            code = await wait_exit(proc, 60)
        message = log.read_text()
        assert emu.counters["creates"] == 0
    assert code == 2, message
    assert str(ledger) in message and "not a regular file" in message, message

"""Start-up benchmarks: how long a command takes before it does anything, baselines in the same run.

    .venv/bin/python benchmarks/bench_startup.py              # median of 9 runs each (~30 s)
    .venv/bin/python benchmarks/bench_startup.py --repeat 21

1. Wall time of whole commands that do (almost) nothing, beside `python -c pass` and a process
   that only imports aiohttp, pydantic and rich (what a command that sends needs).
2. `batchsubmit run` against a `batchsubmit emulator` process that verifies AK/SK signatures (the
   client's code path for a real endpoint): from the process start to the first request, read
   on a TCP relay in front of the emulator (the first bytes of the first connection: the listing
   every run starts with), then to the ledger's run_started line (the listing answered), the
   first `submitted` line (a create's intent on disk) and the emulator's first create_time;
   beside them, in the same runs, a bare aiohttp script's first request (import aiohttp, one
   GET through the same relay: what any aiohttp client pays), and a process that only imports
   what `run` imports, as a plain import would (aiohttp's CA store loaded, the collector on).

The commands run as installed (`.venv/bin/batchsubmit` when it exists, else `python -m
batchsubmit`), and the package is byte-compiled first, as `pip install` does (this machine sets
PYTHONDONTWRITEBYTECODE=1: without it every start recompiles every module it imports).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PROJECT = "0123456789abcdef0123456789abcdef"
AK, SK = "BENCHstartupAK0123", "BENCHstartupSKnotAsecretAtAll0123456789"


def batchsubmit() -> list[str]:
    """The installed console script beside this Python, else ``python -m batchsubmit``."""
    script = Path(PY).with_name("batchsubmit")
    return [str(script)] if script.exists() else [PY, "-m", "batchsubmit"]


def compile_package() -> None:
    """Byte-compile batchsubmit once, as ``pip install`` does, so no start compiles it again."""
    import compileall

    import batchsubmit

    compileall.compile_dir(Path(batchsubmit.__file__).parent, quiet=1)


def wall(argv: list[str], repeat: int, cwd: Path = ROOT) -> float:
    """Median wall time in seconds of ``argv`` run ``repeat`` times (after one warm-up run)."""
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
        if i:  # the first run warms the file cache
            times.append(time.perf_counter() - start)
    return statistics.median(times)


HEAVY = "import aiohttp, pydantic, rich"
#: What `run` imports before it can send: the runner's stack, the logging set-up, and PyYAML.
RUN_IMPORTS = "import batchsubmit.logs, batchsubmit.runner, yaml"


def row(*cells: object) -> None:
    print("  ".join(f"{c!s:<52}" if i == 0 else f"{c!s:>12}" for i, c in enumerate(cells)))


def commands(repeat: int) -> None:
    cli = batchsubmit()
    print(f"1. whole commands, wall time (median of {repeat}); `batchsubmit` is {' '.join(cli)}")
    row("", "seconds")
    cases: list[tuple[str, list[str]]] = [
        ("python -c pass", [PY, "-c", "pass"]),
        ('python -c "import aiohttp, pydantic, rich"', [PY, "-c", HEAVY]),
        ("batchsubmit --version", [*cli, "--version"]),
        ("batchsubmit run --help", [*cli, "run", "--help"]),
        ("batchsubmit expand sweeps/quickstart.yaml --count",
         [*cli, "expand", "sweeps/quickstart.yaml", "--count"]),
    ]  # fmt: skip
    for name, argv in cases:
        row(name, f"{wall(argv, repeat):.3f}")


class Relay:
    """A TCP relay to ``target`` on a free loopback port that notes when the first bytes come."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.first_bytes: float | None = None  # time.time() of the first request's first bytes
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        self.first_bytes = None

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(conn, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, client_side: bool) -> None:
        try:
            while data := src.recv(65536):
                if client_side and self.first_bytes is None:
                    self.first_bytes = time.time()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()


@contextmanager
def emulator(env: dict[str, str]) -> Iterator[str]:
    """A `batchsubmit emulator` process that requires AK/SK signatures; yields its base URL."""
    proc = subprocess.Popen(
        [*batchsubmit(), "emulator", "--port", "0", "--admin", "--auth", "aksk",
         "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        proc.wait(10)


SPEC = """\
name: {name}
target: {{endpoint: "{endpoint}", project_id: {project}, job_id: 10}}
base:
  job_desc: "startup lr={{learning_rate}} bs={{batch_size}}"
  config:
    worker_server_num: 1
    app_url: /bucket/app/
    boot_file_url: /bucket/app/train.py
    data_url: /bucket/data/
    spec_id: 1
    engine_id: 1
    pre_version_id: 20
    train_url: /bucket/out/{{sweep}}/{{key}}/
grid:
  learning_rate: [0.1, 0.03, 0.01, 0.001]
  batch_size: [32, 64, 128]
submit: {{rate: 10, concurrency: 4}}
"""


#: The least an aiohttp client does before its first request: import aiohttp, open a session,
#: send one GET (the emulator answers it 401: it is not signed).
BARE_AIOHTTP = """\
import asyncio, sys
import aiohttp
async def main():
    async with aiohttp.ClientSession() as session:
        async with session.get(sys.argv[1]) as reply:
            await reply.read()
asyncio.run(main())
"""


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def first_request(tmp: Path, repeat: int) -> None:
    print(f"\n2. `batchsubmit run` (12-point YAML spec, AK/SK signed, --quiet) against a "
          f"`batchsubmit emulator --auth aksk` process,\n   seconds from the process start "
          f"(median of {repeat}, a new sweep each run)")
    row("", "seconds")
    env = {**os.environ, "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    env.pop("MODELARTS_TOKEN", None)
    marks: dict[str, list[float]] = {
        "first request (relay's first bytes)": [],
        "ledger run_started (listing answered)": [],
        "ledger's first submitted": [],
        "emulator's first create_time (ms)": [],
        "the whole command": [],
    }
    bare: list[float] = []
    with emulator(env) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        relay = Relay((host, int(port)))
        try:
            for i in range(repeat + 1):
                name = f"startup{i}"
                spec = tmp / f"{name}.yaml"
                relay_url = f"http://127.0.0.1:{relay.port}"
                spec.write_text(SPEC.format(name=name, endpoint=relay_url, project=PROJECT))
                ledger = tmp / f"{name}.ledger.jsonl"
                relay.reset()
                start = time.time()
                subprocess.run(
                    [*batchsubmit(), "run", str(spec), "--ledger", str(ledger), "--quiet"],
                    check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                )  # fmt: skip
                end = time.time()
                if not i:  # the first run warms the file cache
                    continue
                records = [json.loads(line) for line in ledger.read_text().splitlines()]
                started = next(r["ts"] for r in records if r["event"] == "run_started")
                submitted = next(r["ts"] for r in records if r["event"] == "submitted")
                created = min(
                    v["create_time"] for v in _versions(url) if f"/{name}/" in v["train_url"]
                )
                assert relay.first_bytes is not None
                for key, at in zip(
                    marks,
                    (relay.first_bytes, _ts(started), _ts(submitted), created / 1000, end),
                    strict=True,
                ):
                    marks[key].append(at - start)
                relay.reset()
                start = time.time()
                subprocess.run(
                    [PY, "-c", BARE_AIOHTTP, f"{relay_url}/v1/{PROJECT}/training-jobs/10/versions"],
                    check=True, cwd=tmp, stdout=subprocess.DEVNULL,
                )  # fmt: skip
                assert relay.first_bytes is not None
                bare.append(relay.first_bytes - start)
        finally:
            relay.close()
    for name, values in marks.items():
        row(name, f"{statistics.median(values):.3f}")
    print("   baseline: a bare aiohttp script (import aiohttp, one GET), in the same runs")
    row("baseline: first request", f"{statistics.median(bare):.3f}")
    # In tmp, not the checkout: `python -c` imports from its directory first.
    print(f'   baseline: python -c "{RUN_IMPORTS}" (what run imports, nothing run)')
    row("baseline", f"{wall([PY, '-c', RUN_IMPORTS], repeat, cwd=tmp):.3f}")


def _versions(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/_admin/state") as reply:
        state: dict[str, Any] = json.load(reply)
    return state["versions"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=9, help="runs of each; the median is shown")
    args = parser.parse_args()
    compile_package()
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}\n")
    commands(args.repeat)
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        first_request(tmp, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

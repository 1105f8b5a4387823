"""Submission benchmarks against the emulator on loopback, baselines in the same run.

    .venv/bin/python benchmarks/bench_submit.py            # all four scenarios (~2-3 minutes)
    .venv/bin/python benchmarks/bench_submit.py --quick    # smaller RSS sweep

Each scenario starts a fresh emulator process and times the whole `batchsubmit run` command
(process start-up included), then reads the emulator's counters from its admin endpoint.
Baselines need `requests` (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROJECT = "0123456789abcdef0123456789abcdef"
PY = sys.executable


def write_spec(path: Path, points: int, name: str) -> Path:
    """A spec of ``points`` points (a x b grid) against the emulator's job 10."""
    a = 100 if points >= 1000 else 10
    spec = {
        "name": name,
        "target": {"endpoint": "emulator", "project_id": PROJECT, "job_id": 10},
        "base": {"config": {
            "worker_server_num": 1, "app_url": "/b/app/", "boot_file_url": "/b/app/t.py",
            "data_url": "/b/data/", "spec_id": 1, "engine_id": 1, "pre_version_id": 20,
            "train_url": "/b/out/{sweep}/{key}/",
        }},
        "grid": {"a": list(range(a)), "b": list(range(points // a))},
    }
    path.write_text(json.dumps(spec))
    return path


@contextmanager
def emulator(*flags: str) -> Iterator[str]:
    """A fresh emulator process; yields its base URL."""
    proc = subprocess.Popen(
        [PY, "-m", "batchsubmit", "emulator", "--port", "0", "--admin", "--log-level",
         "warning", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        yield line.strip().rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        proc.wait(10)


def counters(url: str) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/_admin/state") as reply:
        state: dict[str, Any] = json.load(reply)
    return state["counters"]


def run_cli(spec: Path, url: str, *flags: str) -> tuple[float, int, float]:
    """Wall time, exit code and peak RSS (MB) of one `batchsubmit run` process."""
    ledger = spec.with_suffix(".ledger.jsonl")
    env = {**os.environ, "MODELARTS_TOKEN": "bench"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "-m", "batchsubmit", "run", str(spec), "--endpoint", url, "--ledger", str(ledger),
         "--quiet", *flags],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()  # never fills the pipe; --quiet keeps it short
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(err[-2000:].decode(errors="replace"), file=sys.stderr)
    rss = usage.ru_maxrss / 1024
    return wall, proc.returncode, rss


def bodies(spec: Path) -> list[dict[str, Any]]:
    from batchsubmit.sweep import iter_points, load_spec

    return [p.body for p in iter_points(load_spec(spec))]


def requests_loop(url: str, items: list[dict[str, Any]], threads: int) -> float:
    import requests

    endpoint = f"{url}/v1/{PROJECT}/training-jobs/10/versions"
    session_per_thread: dict[int, Any] = {}

    def send(body: dict[str, Any]) -> None:
        import threading

        session = session_per_thread.setdefault(threading.get_ident(), requests.Session())
        reply = session.post(endpoint, json=body, timeout=30)
        reply.raise_for_status()

    start = time.perf_counter()
    if threads == 1:
        for body in items:
            send(body)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(send, items))
    return len(items) / (time.perf_counter() - start)


def row(*cells: object) -> None:
    print("  ".join(f"{c!s:<28}" if i == 0 else f"{c!s:>16}" for i, c in enumerate(cells)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 points for the RSS scenario")
    parser.add_argument("--only", default="1234", help="scenarios to run, e.g. 12")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-submit-"))
    print(f"machine: {os.cpu_count()} cores; emulator and client on loopback\n")

    if "1" in args.only:
        known(tmp)
    if "2" in args.only:
        unknown(tmp)
    if "3" in args.only:
        overhead(tmp)
    if "4" in args.only:
        peak_rss(tmp, 20_000 if args.quick else 100_000)


def known(tmp: Path) -> None:
    print("1. known limit: emulator 40 req/s (1 s burst), 50 ms latency, 400 points, --rate 40")
    row("", "wall s", "versions/s", "% of limit", "429s", "exit")
    with emulator("--rate", "40", "--latency-ms", "50", "--no-retry-after") as url:
        spec = write_spec(tmp / "known.json", 400, "known")
        wall, code, _ = run_cli(spec, url, "--rate", "40", "--concurrency", "8")
        c = counters(url)
        row("batchsubmit", f"{wall:.2f}", f"{400 / wall:.1f}", f"{400 / wall / 40:.1%}",
            c["throttled"], code)



def unknown(tmp: Path) -> None:
    print("\n2. unknown limit: same emulator, --rate 100")
    row("", "wall s", "versions/s", "% of limit", "429 share", "exit")
    with emulator("--rate", "40", "--latency-ms", "50", "--no-retry-after") as url:
        spec = write_spec(tmp / "unknown.json", 400, "unknown")
        wall, code, _ = run_cli(spec, url, "--rate", "100", "--concurrency", "8")
        c = counters(url)
        share = c["throttled"] / max(1, c["requests"])
        row("batchsubmit", f"{wall:.2f}", f"{400 / wall:.1f}", f"{400 / wall / 40:.1%}",
            f"{share:.1%} ({c['throttled']})", code)



def overhead(tmp: Path) -> None:
    print("\n3. client overhead: unthrottled emulator, no latency, 2,000 points (versions/s)")
    row("", "versions/s", "x thread pool")
    results: dict[str, float] = {}
    with emulator() as url:
        spec = write_spec(tmp / "overhead.json", 2000, "overhead")
        wall, _code, _ = run_cli(spec, url, "--rate", "100000", "--concurrency", "16")
        results["batchsubmit (ledger fsync'd)"] = 2000 / wall
    items = bodies(spec)
    try:
        with emulator() as url:
            results["requests, plain loop"] = requests_loop(url, items, 1)
        with emulator() as url:
            results["requests, 8 threads"] = requests_loop(url, items, 8)
    except ImportError:
        print("  (requests not installed: pip install -e '.[bench]' for the baselines)")
    pool = results.get("requests, 8 threads")
    for name, rate in results.items():
        row(name, f"{rate:.0f}", f"{rate / pool:.2f}x" if pool else "-")



def peak_rss(tmp: Path, n: int) -> None:
    print(f"\n4. peak RSS of `batchsubmit run` for a {n:,}-point sweep (unthrottled emulator)")
    row("", "wall s", "versions/s", "peak RSS MB", "exit")
    with emulator() as url:
        spec = write_spec(tmp / "rss.json", n, "rss")
        wall, code, rss = run_cli(spec, url, "--rate", "100000", "--concurrency", "32")
        row("batchsubmit", f"{wall:.1f}", f"{n / wall:.0f}", f"{rss:.0f}", code)


if __name__ == "__main__":
    main()

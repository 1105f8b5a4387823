"""Submission benchmarks against the emulator on loopback, baselines in the same run.

    .venv/bin/python benchmarks/bench_submit.py            # all five scenarios (~10 minutes)
    .venv/bin/python benchmarks/bench_submit.py --quick    # smaller RSS sweep, 300-point pacing
    .venv/bin/python benchmarks/bench_submit.py --only 5   # pacing on every gateway (~5 minutes)
    .venv/bin/python benchmarks/bench_submit.py --only 5 --gateways "bucket of 1" --points 200

Each scenario starts a fresh emulator process and times the whole `batchsubmit run` command
(process start-up included), then reads the emulator's counters from its admin endpoint.
Scenario 5 (issue 11) runs 900 points against a 40/s limit with 50 ms latency on each kind of
gateway (a token bucket of 1 and of 2, a fixed and a sliding one-second window), at ``--rate 40``
and at ``--rate 100`` with the limit announced in the 429 or not, each figure beside its target
and the figure measured before the paced limiter; beside the bucket of 1, a bare aiohttp client
that only paces, at fixed spacings 0-16% wider than the limit's interval (what any spacing
reaches against that gateway with this machine's jitter); a policy shared with another client
(the emulator's ``--shared-rate``); then the most creates sent in any
one-second window at ``--rate R`` against an unthrottled emulator, from the ledger's
``submitted`` times and from the emulator's create times (both whole milliseconds, hence the +1
a window may show).
Scenario 3 signs every request with AK/SK on both sides against an emulator that verifies each
signature (`--auth aksk`): batchsubmit with its own signer, the `requests` baselines with
huaweicloudsdkcore's. It runs each baseline as a process of its own (Python start-up, the imports,
the pre-rendered bodies read from a file), so both sides are timed alike, and shows beside it the
sending alone: the ledger's run_started..run_finished for batchsubmit, the loop for the baselines.
The package is byte-compiled first, as `pip install` does. Baselines need `requests` and
`huaweicloudsdkcore` (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
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
# Scenario 3's access key pair: the emulator verifies every signature made with it.
AK, SK = "BENCHAKBENCHAKBENCHAK", "bench-secret-key-bench-secret-key-0123"
AKSK_ENV = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}


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
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        if not url.startswith("http://"):
            raise SystemExit(f"the emulator did not start (exit {proc.wait(10)}): "
                             f"run `{PY} -m batchsubmit emulator {' '.join(flags)}` to see why")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def counters(url: str) -> dict[str, int]:
    counts: dict[str, int] = admin_state(url)["counters"]
    return counts


def run_cli(
    spec: Path, url: str, *flags: str, env: dict[str, str] | None = None
) -> tuple[float, int, float]:
    """Wall time, exit code and peak RSS (MB) of one `batchsubmit run` process (a token, unless
    ``env`` gives other credentials)."""
    ledger = spec.with_suffix(".ledger.jsonl")
    env = {**os.environ, **(env or {"MODELARTS_TOKEN": "bench"})}
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
    """Versions/s of a plain ``requests`` loop (threads=1) or a thread pool, timed in-process.

    Each request is signed with AK/SK by huaweicloudsdkcore's own ``Signer``: the official
    signer, the one a user of ``requests`` would reach for, and independent of batchsubmit (a
    baseline signing with batchsubmit.auth would move with the code it is measured against).
    Like batchsubmit, it encodes each body and signs it, with X-Project-Id among the headers.
    """
    import threading
    from types import SimpleNamespace
    from urllib.parse import urlsplit

    import requests
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    signer = Signer(SimpleNamespace(ak=AK, sk=SK))
    host = urlsplit(url).netloc
    path = f"/v1/{PROJECT}/training-jobs/10/versions"
    endpoint = f"{url}{path}"
    session_per_thread: dict[int, Any] = {}

    def send(body: dict[str, Any]) -> None:
        session = session_per_thread.setdefault(threading.get_ident(), requests.Session())
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        request = SdkRequest(
            method="POST", schema="http", host=host, resource_path=path, query_params=[],
            header_params={"Content-Type": "application/json", "X-Project-Id": PROJECT},
            body=data,
        )
        signer.sign(request)
        reply = session.post(endpoint, data=data, headers=request.header_params, timeout=30)
        reply.raise_for_status()

    start = time.perf_counter()
    if threads == 1:
        for body in items:
            send(body)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(send, items))
    return len(items) / (time.perf_counter() - start)


def baseline_process(url: str, bodies_file: Path, threads: int) -> tuple[float, float]:
    """(whole process, sending only) versions/s of a baseline script run as its own process.

    The script is this file (``--baseline``): it starts Python, imports requests, reads the
    pre-rendered bodies and sends them, so its start-up is timed as batchsubmit's is.
    """
    start = time.perf_counter()
    out = subprocess.run(
        [PY, __file__, "--baseline", url, str(bodies_file), str(threads)],
        check=True, capture_output=True, text=True,
    ).stdout
    wall = time.perf_counter() - start
    n = len(json.loads(bodies_file.read_text()))
    return n / wall, float(out.split()[-1])


def paced_loop(url: str, items: list[bytes], rate: float, concurrency: int = 8
               ) -> tuple[float, int]:
    """(seconds sending, 429s) of a bare aiohttp client that only paces: each create leaves
    1/rate s after the one before it left (the last 1.5 ms of each wait spun, as batchsubmit's
    limiter does), at most ``concurrency`` in flight, a 429'd one resent at its next turn."""
    import asyncio

    import aiohttp

    async def main() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        todo = list(reversed(items))
        endpoint = f"{url}/v1/{PROJECT}/training-jobs/10/versions"
        headers = {"Content-Type": "application/json", "X-Auth-Token": "bench"}
        lock = asyncio.Lock()
        last, throttled = -math.inf, 0

        async def turn() -> None:
            nonlocal last
            async with lock:
                # a deadline, not an event: sleep to 1.5 ms before it, then spin
                while (wait := last + 1.0 / rate - loop.time()) > 0:  # noqa: ASYNC110
                    await asyncio.sleep(wait - 0.0015 if wait > 0.0015 else 0)
                last = loop.time()

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal throttled
            while todo:
                data = todo.pop()
                while True:
                    await turn()
                    async with session.post(endpoint, data=data, headers=headers) as reply:
                        await reply.read()
                    if reply.status != 429:
                        reply.raise_for_status()
                        break
                    throttled += 1

        start = loop.time()
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return loop.time() - start, throttled

    return asyncio.run(main())


def run_span(ledger: Path) -> float:
    """Seconds from the ledger's run_started to its run_finished: the run without start-up."""
    from datetime import datetime

    stamps = {}
    for line in ledger.read_text().splitlines():
        record = json.loads(line)
        if record["event"] in ("run_started", "run_finished"):
            stamps[record["event"]] = datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
    return (stamps["run_finished"] - stamps["run_started"]).total_seconds()


def compile_package() -> None:
    """Byte-compile batchsubmit once, as ``pip install`` does, so no run compiles it again.

    (An editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module
    from source at every start: ~0.1 s per command that no installed copy pays.)
    """
    import compileall

    import batchsubmit

    compileall.compile_dir(Path(batchsubmit.__file__).parent, quiet=1)


def row(*cells: object) -> None:
    print("  ".join(f"{c!s:<28}" if i == 0 else f"{c!s:>16}" for i, c in enumerate(cells)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 points for the RSS scenario")
    parser.add_argument("--only", default="12345", help="scenarios to run, e.g. 12")
    parser.add_argument("--points", type=int, default=None,
                        help="points per pacing run of scenario 5 (default 900; --quick 300)")
    parser.add_argument("--gateways", default=",".join(GATEWAYS),
                        help="scenario 5's gateways, comma-separated (default: all four)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each side of scenario 3; the median is shown")
    parser.add_argument("--baseline", nargs=3, metavar=("URL", "BODIES", "THREADS"),
                        help=argparse.SUPPRESS)  # the child process of a baseline
    parser.add_argument("--paced-baseline", nargs=3, metavar=("URL", "BODIES", "RATE"),
                        help=argparse.SUPPRESS)  # the child process of scenario 5's baseline
    args = parser.parse_args()
    if args.paced_baseline:
        url, bodies_file, rate = args.paced_baseline
        encoded = [json.dumps(b, separators=(",", ":")).encode()
                   for b in json.loads(Path(bodies_file).read_text())]
        seconds, throttled = paced_loop(url, encoded, float(rate))
        print(f"{seconds:.3f} {throttled}")
        return
    if args.baseline:
        url, bodies_file, threads = args.baseline
        items = json.loads(Path(bodies_file).read_text())
        print(f"{requests_loop(url, items, int(threads)):.3f}")
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-submit-"))
    compile_package()
    print(f"machine: {os.cpu_count()} cores; emulator and client on loopback\n")

    if "1" in args.only:
        known(tmp)
    if "2" in args.only:
        unknown(tmp)
    if "3" in args.only:
        overhead(tmp, args.repeat)
    if "4" in args.only:
        peak_rss(tmp, 20_000 if args.quick else 100_000)
    if "5" in args.only:
        points = args.points or (300 if args.quick else 900)
        pacing(tmp, points, [g.strip() for g in args.gateways.split(",") if g.strip()])


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



def overhead(tmp: Path, repeat: int) -> None:
    n = 2000
    print(f"\n3. client overhead: unthrottled emulator verifying AK/SK signatures, no latency, "
          f"{n:,} points (versions/s, median of {repeat} runs, each against a fresh emulator)")
    print("   whole process: from the command's start to its exit, Python start-up included;")
    print("   sending only: batchsubmit's run_started..run_finished in its ledger, the baselines'")
    print("   loop after the imports (requests, huaweicloudsdkcore's signer)")
    row("", "whole process", "x thread pool", "sending only", "x thread pool")
    # The baseline is the 8-thread pool; 64 threads show that the pool is held back by
    # CPU (the GIL), not by too few requests in flight, so batchsubmit's 64 are no unfair edge.
    baselines = (("requests, plain loop", 1), ("requests, 8 threads", 8),
                 ("requests, 64 threads", 64))
    runs: dict[str, list[tuple[float, float]]] = {
        "batchsubmit (ledger fsync'd)": [], **{name: [] for name, _ in baselines},
    }
    bodies_file = tmp / "overhead-bodies.json"
    has_requests = all(
        importlib.util.find_spec(name) is not None for name in ("requests", "huaweicloudsdkcore")
    )
    if not has_requests:
        print("  (requests or huaweicloudsdkcore not installed: pip install -e '.[bench]' for "
              "the baselines)")
    aksk = ("--auth", "aksk", "--aksk", f"{AK}:{SK}")
    for i in range(repeat):
        with emulator(*aksk) as url:
            spec = write_spec(tmp / f"overhead{i}.json", n, f"overhead{i}")
            wall, code, _ = run_cli(spec, url, "--rate", "100000", "--concurrency", "64",
                                    env=AKSK_ENV)
            if code != 0:
                raise SystemExit(f"batchsubmit run exited {code}")
            span = run_span(spec.with_suffix(".ledger.jsonl"))
            runs["batchsubmit (ledger fsync'd)"].append((n / wall, n / span))
        if i == 0:
            bodies_file.write_text(json.dumps(bodies(spec)))
        if not has_requests:
            continue
        for name, threads in baselines:
            with emulator(*aksk) as url:
                runs[name].append(baseline_process(url, bodies_file, threads))
    medians = {
        name: (statistics.median(w for w, _ in rs), statistics.median(s for _, s in rs))
        for name, rs in runs.items() if rs
    }
    pool = medians.get("requests, 8 threads")
    for name, (whole, sending) in medians.items():
        row(name, f"{whole:.0f}", f"{whole / pool[0]:.2f}x" if pool else "-",
            f"{sending:.0f}", f"{sending / pool[1]:.2f}x" if pool else "-")


def peak_rss(tmp: Path, n: int) -> None:
    print(f"\n4. peak RSS of `batchsubmit run` for a {n:,}-point sweep (unthrottled emulator)")
    row("", "wall s", "versions/s", "peak RSS MB", "exit")
    with emulator() as url:
        spec = write_spec(tmp / "rss.json", n, "rss")
        wall, code, rss = run_cli(spec, url, "--rate", "100000", "--concurrency", "32")
        row("batchsubmit", f"{wall:.1f}", f"{n / wall:.0f}", f"{rss:.0f}", code)


# --- 5. pacing on every kind of gateway (issue 11) ----------------------------------------------

GATEWAYS: dict[str, tuple[str, ...]] = {
    "bucket of 1": ("--gateway", "bucket", "--burst", "1"),
    "bucket of 2": ("--gateway", "bucket", "--burst", "2"),
    "fixed window": ("--gateway", "fixed-window"),
    "sliding window": ("--gateway", "sliding-window"),
}
# (title, --rate, emulator flags, target share of the limit, most 429s allowed, figures before)
PACING: tuple[tuple[str, str, tuple[str, ...], float, float, dict[str, str]], ...] = (
    ("--rate 40", "40", (), 0.98, 0.0,
     {"bucket of 1": "0.79", "bucket of 2": "0.90", "fixed window": "0.78"}),
    ("--rate 100, limit announced in the 429", "100", (), 0.96, 0.01,
     {"bucket of 2": "0.89"}),
    ("--rate 100, limit not announced", "100", ("--no-announce-limit",), 0.92, 0.02, {}),
)
LIMIT = 40


def ledger_times(ledger: Path) -> tuple[list[float], float]:
    """The ledger's ``submitted`` times (s, sorted) and its first submit to last outcome (s)."""
    from datetime import datetime

    def seconds(ts: str) -> float:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()

    sent, outcomes = [], []
    for line in ledger.read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "submitted":
            sent.append(seconds(record["ts"]))
        elif record["event"] in ("succeeded", "failed"):
            outcomes.append(seconds(record["ts"]))
    sent.sort()
    return sent, (max(outcomes) - sent[0]) if sent and outcomes else float("nan")


def most_in_a_second(times: list[float]) -> int:
    """The most of ``times`` (sorted, seconds) in any window [t, t + 1)."""
    most, end = 0, 0
    for start, t in enumerate(times):
        end = max(end, start)
        while end < len(times) and times[end] < t + 1.0:
            end += 1
        most = max(most, end - start)
    return most


def pacing(tmp: Path, points: int, gateways: list[str]) -> None:
    print(f"\n5. pacing (issue 11): {points} points, {LIMIT}/s limit, 50 ms latency, "
          "--concurrency 8, whole command")
    print("   share of the limit = points / wall time of the whole `batchsubmit run` / limit;")
    print("   sending only = points / (first submitted .. last outcome in the ledger) / limit")
    for title, rate, flags, target, max_429, before in PACING:
        print(f"\n  {title}: target >= {target:.2f} of the limit, "
              f"{'no' if max_429 == 0 else f'<= {max_429:.0%} of requests'} throttled")
        row("", "share of limit", "sending only", "429s", "target", "before", "")
        for gateway in gateways:
            with emulator("--rate", str(LIMIT), "--latency-ms", "50", *GATEWAYS[gateway],
                          *flags) as url:
                spec = write_spec(tmp / f"pacing-{rate}-{len(flags)}-{gateway[0]}"
                                  f"{gateway[-1]}.json", points, "pacing")
                wall, code, _ = run_cli(spec, url, "--rate", rate, "--concurrency", "8")
                c = counters(url)
            _, span = ledger_times(spec.with_suffix(".ledger.jsonl"))
            share = points / wall / LIMIT
            throttled = c["throttled"] / max(1, c["requests"])
            met = share >= target and throttled <= max_429 and code == 0
            row(gateway, f"{share:.3f}", f"{points / span / LIMIT:.3f}",
                f"{throttled:.1%} ({c['throttled']})", f">= {target:.2f}",
                before.get(gateway, "-"), "ok" if met else f"MISSED (exit {code})")
    if "bucket of 1" in gateways:
        paced_baseline(tmp, points)
    shared_policy(tmp, max(100, points // 3))
    print("\n  most creates sent in any one-second window [t, t+1), --rate R, unthrottled "
          "emulator, 50 ms latency")
    row("", "points", "first second", "ledger submitted", "emulator created", "target", "before")
    for r in (10, 50):
        n = r * 8
        with emulator("--latency-ms", "50") as url:
            spec = write_spec(tmp / f"window-{r}.json", n, f"window{r}")
            _, code, _ = run_cli(spec, url, "--rate", str(r), "--concurrency", "8")
            created = sorted(
                v["create_time"] / 1000 for v in admin_state(url)["versions"]
                if v["job_id"] == 10 and v["version_id"] != 20
            )
        sent, _ = ledger_times(spec.with_suffix(".ledger.jsonl"))
        first = sum(1 for t in sent if t < sent[0] + 1.0)
        row(f"--rate {r}", n, first, most_in_a_second(sent), most_in_a_second(created),
            f"{r} (+1)", "12-18" if r == 10 else "-")
        if code != 0:
            print(f"  (batchsubmit run exited {code})")


def shared_policy(tmp: Path, points: int) -> None:
    """Another client sends 30/s under the same announced 40/s policy: what do we get of it,
    and at how many 429s (the emulator's ``--shared-rate``)."""
    print(f"\n  another client sends 30/s under the announced {LIMIT}/s policy (emulator "
          f"--shared-rate 30), {points} points, --rate 40: at least 10/s is left to us")
    row("", "creates/s", "while sending", "429s")
    for gateway in ("bucket of 2", "fixed window", "sliding window"):
        with emulator("--rate", str(LIMIT), "--latency-ms", "50", "--shared-rate", "30",
                      *GATEWAYS[gateway]) as url:
            spec = write_spec(tmp / f"shared-{gateway[0]}{gateway[-1]}.json", points, "shared")
            wall, code, _ = run_cli(spec, url, "--rate", "40", "--concurrency", "8")
            c = counters(url)
        _, span = ledger_times(spec.with_suffix(".ledger.jsonl"))
        row(gateway, f"{points / wall:.1f}", f"{points / span:.1f}",
            f"{c['throttled'] / max(1, c['requests']):.1%} ({c['throttled']})",
            "" if code == 0 else f"(exit {code})")


#: Scenario 5's baseline spacings: one interval of the limit, widened by these margins.
BASELINE_MARGINS = (0.0, 0.02, 0.04, 0.08, 0.16)


def paced_baseline(tmp: Path, points: int) -> None:
    """The bucket of 1 against a client that only paces, at fixed spacings: what any spacing
    reaches against that gateway on this machine, beside what the limiter finds by itself."""
    print(f"\n  bucket of 1, {LIMIT}/s: a client that only paces (a bare aiohttp script, its own "
          "process: each create 1/40 s x (1 + margin)\n  after the one before, 8 in flight, a "
          "429'd one resent at its next turn): the best a fixed spacing does here")
    row("", "share of limit", "sending only", "429s")
    spec = write_spec(tmp / "paced-baseline.json", points, "pacedbaseline")
    bodies_file = tmp / "paced-baseline-bodies.json"
    bodies_file.write_text(json.dumps(bodies(spec)))
    for margin in BASELINE_MARGINS:
        with emulator("--rate", str(LIMIT), "--latency-ms", "50", *GATEWAYS["bucket of 1"]) as url:
            start = time.perf_counter()
            out = subprocess.run(
                [PY, __file__, "--paced-baseline", url, str(bodies_file),
                 str(LIMIT / (1 + margin))],
                check=True, capture_output=True, text=True,
            ).stdout
            wall = time.perf_counter() - start
        seconds, throttled = out.split()
        row(f"margin {margin:.0%}", f"{points / wall / LIMIT:.3f}",
            f"{points / float(seconds) / LIMIT:.3f}",
            f"{int(throttled) / (points + int(throttled)):.1%} ({throttled})")


def admin_state(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/_admin/state") as reply:
        state: dict[str, Any] = json.load(reply)
    return state


if __name__ == "__main__":
    main()

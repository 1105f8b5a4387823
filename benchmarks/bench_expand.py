"""Benchmark the sweep expander on a 1,000,000-point grid, with scikit-learn as a baseline.

    .venv/bin/python benchmarks/bench_expand.py [--points-per-axis 100]

Prints one table. Every row runs in a fresh subprocess, so each peak RSS (``ru_maxrss``) belongs
to that measurement alone; "import RSS" is the same process's footprint before the work began.
Rows:

- ``count``: ``load_spec`` + ``count_points`` (what ``batchsubmit expand --count`` does).
- ``render``: ``iter_points(validate=False)``: keys, templates, bodies; no validation.
- ``render + validate``: ``iter_points()``: every body through ``CreateVersionRequest``.
- ``preflight``: what ``expand`` and ``run`` do before sending anything: the first body
  validated in full, then per point only what it fills in (``sweep/check.py``), plus the
  duplicate key / train_url checks.
- ``preflight, every body in full``: the baseline, preflight as it was before issue 11 (kept
  here as ``full_preflight``): every body through ``CreateVersionRequest``, keys in one array
  sorted at the end.
- ``sklearn ParameterGrid``: ``len(ParameterGrid(grid))``, and ``list(ParameterGrid(grid))``
  materialised (dicts of Python values: no rendering, keys, bodies or validation).

Each row runs ``--repeat`` times (3 by default) and shows the median time and its peak RSS; the
machine is shared, so compare rows of one run: the last lines give preflight's speed as a ratio of
the baseline's and of render's, measured in the same run.

Targets: (issue 3) count under 1 s; render + validate at least 50,000 points/s with a peak RSS
under 150 MB; (issue 11) preflight of 1,000,000 points at least 200,000 points/s, under 80 MB.
"""

from __future__ import annotations

import argparse
import itertools
import json
import operator
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SPEC = """\
name: bench
target:
  endpoint: emulator
  project_id: 0123456789abcdef0123456789abcdef
  job_id: 10
base:
  job_desc: "lr={{learning_rate}} bs={{batch_size}} seed={{seed}}"
  config:
    worker_server_num: 1
    app_url: /bucket/app/
    boot_file_url: /bucket/app/train.py
    data_url: /bucket/data/
    spec_id: 1
    engine_id: 1
    pre_version_id: 20
    train_url: /bucket/out/{{sweep}}/{{key}}/
    log_url: /bucket/log/{{sweep}}/{{key}}/
    parameter:
      - {{label: epochs, value: "10"}}
grid:
  learning_rate: {lr}
  batch_size: {bs}
  seed: {seed}
"""


def grid(n: int) -> dict[str, list[Any]]:
    return {
        "learning_rate": [round(1e-4 * (i + 1), 6) for i in range(n)],
        "batch_size": [8 * (i + 1) for i in range(n)],
        "seed": list(range(n)),
    }


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def full_preflight(plan: Any) -> int:
    """The baseline: preflight before issue 11, every body rendered and validated in full."""
    from array import array
    from hashlib import blake2b

    from batchsubmit.identity import normalise_train_url
    from batchsubmit.sweep.expand import expand_plan

    keys: array[int] = array("Q")
    urls: array[int] | None = None if plan.train_url_unique else array("Q")
    for point in expand_plan(plan, True):
        keys.append(int(point.key, 16))
        if urls is not None:
            url = normalise_train_url(point.train_url).encode()
            urls.append(int.from_bytes(blake2b(url, digest_size=8).digest()))
    for digests in (keys, urls or array("Q")):
        ordered = sorted(digests)
        if any(itertools.starmap(operator.eq, itertools.pairwise(ordered))):
            raise RuntimeError("a repeat: the benchmark's grid has none")
        del ordered
    return len(keys)


def measure(kind: str, spec_path: str, n: int) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    if kind.startswith("sklearn"):
        from sklearn.model_selection import ParameterGrid

        base_rss = rss_mb()
        start = time.perf_counter()
        if kind == "sklearn-len":
            points = len(ParameterGrid(grid(n)))
        else:
            materialised = list(ParameterGrid(grid(n)))
            points = len(materialised)
        seconds = time.perf_counter() - start
        return {"points": points, "seconds": seconds, "rss": rss_mb(), "base_rss": base_rss}

    from batchsubmit.sweep import count_points, iter_points, load_spec, preflight

    base_rss = rss_mb()
    start = time.perf_counter()
    spec = load_spec(spec_path)
    if kind == "count":
        points = count_points(spec)
    elif kind == "preflight":
        points = preflight(spec)
    elif kind == "preflight-full":
        points = full_preflight(spec.plan)
    else:
        points = 0
        for _ in iter_points(spec, validate=kind == "validate"):
            points += 1
    seconds = time.perf_counter() - start
    return {"points": points, "seconds": seconds, "rss": rss_mb(), "base_rss": base_rss}


ROWS = [
    ("count", "batchsubmit --count (load + count_points)"),
    ("render", "batchsubmit render (no validation)"),
    ("validate", "batchsubmit render + validate"),
    ("preflight", "batchsubmit preflight (+ uniqueness)"),
    ("preflight-full", "baseline: preflight, every body in full"),
    ("sklearn-len", "sklearn len(ParameterGrid)"),
    ("sklearn-list", "sklearn list(ParameterGrid)"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points-per-axis", type=int, default=100, metavar="N",
                        help="values per grid key; the grid has 3 keys, so N**3 points")
    parser.add_argument("--repeat", type=int, default=3, metavar="R",
                        help="runs per row (fresh processes); the median is shown")
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.points_per_axis
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], n)))
        return 0

    g = grid(n)
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "bench.yaml"
        spec_path.write_text(
            SPEC.format(lr=g["learning_rate"], bs=g["batch_size"], seed=g["seed"])
        )
        results: list[tuple[str, dict[str, Any] | None, str]] = []
        by_kind: dict[str, dict[str, Any]] = {}
        # Rows interleaved (row 1, row 2, ..., row 1, row 2, ...): a burst of load on the shared
        # machine then falls on every row alike rather than on one.
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind, _ in ROWS}
        failed: dict[str, str] = {}
        for _ in range(max(1, args.repeat)):
            for kind, _label in ROWS:
                if kind in failed:
                    continue
                proc = subprocess.run(
                    [sys.executable, __file__, "--points-per-axis", str(n),
                     "--measure", kind, str(spec_path)],
                    capture_output=True, text=True, check=False,
                )
                if proc.returncode != 0:
                    failed[kind] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                    continue
                runs[kind].append(json.loads(proc.stdout))
        for kind, label in ROWS:
            if kind in failed:
                results.append((label, None, failed[kind]))
                continue
            median = statistics.median(r["seconds"] for r in runs[kind])
            chosen = min(runs[kind], key=lambda r: abs(r["seconds"] - median))
            row = {**chosen, "seconds": median, "rss": max(r["rss"] for r in runs[kind])}
            by_kind[kind] = row
            results.append((label, row, ""))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{n ** 3:,}-point grid (3 keys x {n} values), Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {load:.2f}, median of {max(1, args.repeat)} "
          "runs (peak RSS: the largest)")
    header = f"{'measurement':<44} {'points':>10} {'seconds':>9} {'points/s':>11} " \
             f"{'peak RSS':>9} {'import RSS':>10}"
    print(header)
    print("-" * len(header))
    for label, result, reason in results:
        if result is None:
            print(f"{label:<44} {'-':>10} {'-':>9} {'-':>11} {'-':>9} {'-':>10}  ({reason})")
            continue
        rate = result["points"] / result["seconds"] if result["seconds"] else float("inf")
        rate_text = "-" if "count" in label or "len(" in label else f"{rate:,.0f}"
        print(f"{label:<44} {result['points']:>10,} {result['seconds']:>9.3f} {rate_text:>11} "
              f"{result['rss']:>7.1f}MB {result['base_rss']:>8.1f}MB")
    new, old, render = (by_kind.get(k) for k in ("preflight", "preflight-full", "render"))
    if new is not None and old is not None and render is not None:
        print(f"preflight: {old['seconds'] / new['seconds']:.2f}x the baseline's speed "
              f"(every body in full), {render['seconds'] / new['seconds']:.2f}x render's; "
              f"peak RSS {new['rss']:.1f} MB against {old['rss']:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Exactly once by name against the v2 emulator (issue 14), under each switch of section 7.

Whole runs (``run_sweep``, the command line's run path, in process) against the emulator over
loopback sockets, with ambiguous commits of every kind, 500s on creates and searches, throttling
and search lag, under each value of each switch of ``v2-training-jobs.md`` section 7 and all of
them at once; then the ledger is deleted and the sweep run again. Every invariant is checked
against the emulator's ground truth (``v2_jobs()``: every job ever created, by name), never
against what a search shows. Decoy jobs whose names contain the sweep's prefix (or match it as a
SQL LIKE pattern, or ignoring case) sit in every search the client makes: none may be adopted, and
with them the searches take more than one page, so both readings of ``offset`` are walked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from batchsubmit.auth import NoCredentials
from batchsubmit.commands.run import RunOptions, RunResult, run_sweep
from batchsubmit.emulator import Emulator, EmulatorConfig, run_emulator
from batchsubmit.ledger import read_ledger
from batchsubmit.sweep import Point, iter_points, load_spec

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PROJECT = "0123456789abcdef0123456789abcdef"
CREDS = NoCredentials(project_id=PROJECT)
SWEEP = "lr_v2"  # a "_": a SQL LIKE wildcard, should the search's like be one
DECOYS = 240  # with the 32 points, more than two search pages (limit 50) under every like:
# a walk that reads only two pages right (offset 0 and 1) then goes wrong misses jobs


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the sweep, and what the server and the ledger say about it -----------------------------


def write_spec(path: Path, *, seeds: int = 4, grid: Mapping[str, list[Any]] | None = None) -> Path:
    """A v2 sweep of 4 x 2 x ``seeds`` points (or of ``grid``), each job named
    ``{sweep}-{key}``."""
    spec = {
        "name": SWEEP,
        "target": {"api": "v2", "endpoint": "emulator", "project_id": PROJECT,
                   "workspace_id": "0"},
        "base": {
            "kind": "job",
            "metadata": {"name": "{sweep}-{key}", "description": "lr={learning_rate}"},
            "algorithm": {
                "code_dir": "/bucket/app/", "boot_file": "/bucket/app/train.py",
                "engine": {"engine_id": "pytorch-cp36-1.4.0-v2"},
                "parameters": [{"name": "epochs", "value": "10"}],
                "inputs": [{"name": "data_url", "remote": {"obs": {"obs_url": "/bucket/data/"}}}],
                "outputs": [{"name": "train_url",
                             "remote": {"obs": {"obs_url": "/bucket/out/{sweep}/{key}/"}}}],
            },
            "spec": {"resource": {"flavor_id": "modelarts.vm.cpu.2u", "node_count": 1}},
        },
        "grid": grid or {
            "learning_rate": ["0.1", "0.01", "0.001", "0.0001"],
            "batch_size": [32, 64],
            "seed": list(range(seeds)),
        },
    }
    path.write_text(json.dumps(spec))
    return path


def points_of(spec: Path) -> dict[str, Point]:
    """job name -> point, for every point of the spec."""
    return {p.body["metadata"]["name"]: p for p in iter_points(load_spec(spec), validate=False)}


def sent_parameters(job: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(p["name"], p["value"]) for p in job["body"]["algorithm"]["parameters"]]


def jobs_by_name(emu: Emulator) -> dict[str, list[dict[str, Any]]]:
    """Ground truth: every job ever created, by name."""
    found: dict[str, list[dict[str, Any]]] = {}
    for job in emu.v2_jobs():
        found.setdefault(job["name"], []).append(job)
    return found


def check_exactly_once(emu: Emulator, ledger: Path, spec: Path, *, others: int) -> None:
    """One job per point, sent with the point's body; ``others`` jobs besides (decoys, foreign)
    untouched; the ledger's training_job_ids are exactly the points' jobs, nothing pending."""
    points = points_of(spec)
    on_server = jobs_by_name(emu)
    duplicates = {name: [j["id"] for j in jobs] for name, jobs in on_server.items()
                  if name in points and len(jobs) > 1}
    assert not duplicates, f"duplicate jobs: {duplicates}"
    missing = sorted(points.keys() - on_server.keys())
    assert not missing, f"no job for {missing}"
    for name, point in points.items():
        (job,) = on_server[name]
        assert job["body"] == point.body, name
    assert len(emu.v2_jobs()) == len(points) + others
    state = read_ledger(ledger)
    assert not state.pending, f"left pending: {sorted(state.pending)}"
    assert len(state.outcomes) == len(points)
    for point in points.values():
        record = state.outcomes[point.key]
        assert record["event"] == "succeeded", record
        name = record["job_name"]
        assert name == point.body["metadata"]["name"]
        assert record["training_job_id"] == on_server[name][0]["id"], name


async def until_searchable(emu: Emulator) -> None:
    """Wait out the search lag of the newest job (by the emulator's clock): a ledger lost right
    after a run is only recoverable once its last jobs show in search."""
    newest = max(job["visible_at"] for job in emu.v2_jobs())
    await anyio.sleep(max(0.0, (newest - emu.now_ms()) / 1000 + 0.01))


async def run(spec: Path, url: str, ledger: Path, **options: Any) -> RunResult:
    settings = {"rate": 200.0, "concurrency": 8, "max_attempts": 12, "timeout": 0.5,
                "settle": 0.6, "quiet": True, **options}
    return await run_sweep(
        RunOptions(spec=spec, endpoint=url, ledger=ledger, **settings), credentials=CREDS
    )


# --- jobs made by someone else, straight on the emulator ----------------------------------------


async def create_job(
    url: str, body: Mapping[str, Any], *, token: str | None = None
) -> dict[str, Any]:
    """POST a v2 job as another client would; 201 expected."""
    headers = {"X-Auth-Token": token} if token else {}
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/v2/{PROJECT}/training-jobs", json=body, headers=headers
    ) as reply:
        answer: dict[str, Any] = await reply.json()
        assert reply.status == 201, answer
    return answer


def renamed(point: Point, name: str) -> dict[str, Any]:
    """The point's own body under another name."""
    body: dict[str, Any] = json.loads(json.dumps(point.body))
    body["metadata"]["name"] = name
    return body


async def plant_decoys(
    url: str, spec: Path, *, token: str | None = None, count: int = DECOYS
) -> int:
    """Jobs the sweep's search finds under one reading of ``like`` or another, none of them a
    point's: names that contain the prefix, that match it with ``_`` as a wildcard (with a point's
    very body), or that contain it ignoring case. Returns how many."""
    points = list(points_of(spec).values())
    for i in range(count):
        point = points[i % len(points)]
        key = point.key
        name = (f"{SWEEP}-decoy-{i}", f"lrXv2-{key}-{i}", f"LR_V2-DECOY-{i}")[i % 3]
        await create_job(url, renamed(point, name), token=token)
    return count


# --- a foreign job on a point's name -----------------------------------------------------------


def foreign_body(point: Point, *, same_parameters: bool) -> dict[str, Any]:
    """A job of the point's name made by someone else: other parameters, or the same ones with
    another output (so nothing of what the client compares says it is the point's)."""
    body = renamed(point, point.body["metadata"]["name"])
    if same_parameters:
        body["algorithm"]["outputs"][0]["remote"]["obs"]["obs_url"] = "/bucket/someone-else/"
    else:
        body["algorithm"]["parameters"] = [{"name": "learning_rate", "value": "0.9"}]
    return body


@pytest.mark.parametrize("search_lag", [0.0, 5.0], ids=["listed", "not yet listed"])
@pytest.mark.parametrize("same_parameters", [False, True], ids=["other params", "same params"])
async def test_a_foreign_job_on_a_points_name_fails_that_point_only(
    tmp_path: Path, search_lag: float, same_parameters: bool
) -> None:
    """A job someone else made under one point's name, other parameters (or the same parameters
    and another output), listed or not yet: that point fails with batchsubmit.identity_conflict,
    nothing is created for it, every other point succeeds once; exit 1."""
    spec = write_spec(tmp_path / "conflict.json")
    points = points_of(spec)
    taken = sorted(points)[5]
    ledger = tmp_path / "conflict.ledger.jsonl"
    config = EmulatorConfig(project_id=PROJECT, search_lag=search_lag)
    async with run_emulator(config) as emu:
        foreign = await create_job(
            emu.url, foreign_body(points[taken], same_parameters=same_parameters)
        )
        result = await run(spec, emu.url, ledger)
        on_server = jobs_by_name(emu)
        assert [job["id"] for job in on_server[taken]] == [foreign["metadata"]["id"]]
        assert len(emu.v2_jobs()) == len(points)  # the foreign one and every other point's
        assert all(len(on_server[name]) == 1 for name in points)
    assert result.exit_code == 1
    outcomes = read_ledger(ledger).outcomes
    failed = outcomes[points[taken].key]
    assert failed["event"] == "failed"
    assert failed["error_code"] == "batchsubmit.identity_conflict"
    assert failed["attempts"] <= 1
    succeeded = [r for r in outcomes.values() if r["event"] == "succeeded"]
    assert len(succeeded) == len(points) - 1
    assert {r["job_name"] for r in succeeded} == points.keys() - {taken}


# --- the proof across the switches ---------------------------------------------------------------

FAULTS: dict[str, Any] = {
    "rate": 60.0, "burst": 5, "error_500_share": 0.1, "ambiguous_share": 0.1,
    "stall_seconds": 1.0, "search_lag": 0.3, "faults_on_lists": True,
}
# Every value of every switch of section 7 (the defaults are in the first case).
SWITCHES: dict[str, dict[str, Any]] = {
    "defaults (page offsets, matching count, ...)": {},
    "offset is a record offset": {"v2_offset": "record"},
    "count of this page": {"v2_count": "page"},
    "default limit 1": {"v2_default_limit": 1},
    "limit clamped": {"v2_limit_range": "clamp"},
    "like ignores case": {"v2_like": "contains-ignore-case"},
    "like is SQL LIKE": {"v2_like": "sql-like"},
    "names unique per project": {"v2_name_scope": "project"},
    "names compared ignoring case": {"v2_name_case": "insensitive"},
    "names never reused": {"v2_name_reuse": "never"},
    "names reused at once": {"v2_name_reuse": "immediately", "v2_delete_lag": 0.0},
    "race window below the settle": {"v2_race_window": 0.4},
    "quota of exactly the sweep": {"v2_quota": 32 + DECOYS},
    "no search lag": {"search_lag": 0.0},
    "search lag near the settle": {"search_lag": 0.5},
    "phases at once, some Failed and Abnormal": {
        "v2_creating_seconds": 0.0, "v2_pending_seconds": 0.0, "v2_running_seconds": 0.1,
        "failure_share": 0.2, "abnormal_share": 0.2,
    },
    "slow phases": {"v2_creating_seconds": 5.0, "v2_pending_seconds": 5.0,
                    "v2_running_seconds": 60.0},
}
EVERYTHING: dict[str, Any] = {
    "v2_offset": "record", "v2_count": "page", "v2_default_limit": 1, "v2_limit_range": "clamp",
    "v2_like": "sql-like", "v2_name_scope": "project", "v2_name_case": "insensitive",
    "v2_name_reuse": "never", "v2_race_window": 0.4, "v2_quota": 32 + DECOYS,
    "v2_delete_lag": 0.0, "search_lag": 0.5, "v2_creating_seconds": 0.0,
    "v2_pending_seconds": 0.2, "v2_running_seconds": 0.5, "failure_share": 0.1,
    "abnormal_share": 0.1,
}


async def proof(tmp_path: Path, config: EmulatorConfig, *, runs: int = 2) -> None:
    """Decoys planted, then the sweep under faults (re-run while points are pending, as a user
    would, at most ``runs`` times): exactly once; then a lost ledger creates nothing."""
    spec = write_spec(tmp_path / "v2.json")
    ledger = tmp_path / "v2.ledger.jsonl"
    faults = {name: getattr(config, name) for name in FAULTS}
    quiet = config.with_changes(error_500_share=0.0, ambiguous_share=0.0, rate=None,
                                v2_quota=None)
    async with run_emulator(quiet) as emu:
        decoys = await plant_decoys(emu.url, spec)
        emu.set_faults(**faults, v2_quota=config.v2_quota)
        result = await run(spec, emu.url, ledger)
        for _ in range(runs - 1):
            if result.exit_code == 0:
                break
            result = await run(spec, emu.url, ledger)
        assert result.exit_code == 0, result.message
        check_exactly_once(emu, ledger, spec, others=decoys)
        counters = emu.counters
        assert counters["ambiguous"] + counters["faults_500"] > 0, counters
        assert counters["throttled"] > 0
        creates = counters["v2_creates"]
        await until_searchable(emu)
        ledger.unlink()
        searches = emu.counters["v2_searches"]
        again = await run(spec, emu.url, ledger)
        assert emu.counters["v2_creates"] == creates, "a lost ledger must create nothing"
        assert emu.counters["v2_searches"] - searches >= 3, "a walk of more than one page"
        assert again.exit_code == 0, again.message
        check_exactly_once(emu, ledger, spec, others=decoys)
        assert all(r["reconciled"] for r in read_ledger(ledger).outcomes.values())


@pytest.mark.parametrize(
    ("seed", "switch"),
    [(n, switch) for n, switch in enumerate([*SWITCHES.values(), EVERYTHING], start=21)],
    ids=[*SWITCHES, "every switch at once"],
)
async def test_exactly_once_by_name_under_each_switch(
    tmp_path: Path, seed: int, switch: dict[str, Any]
) -> None:
    """Ambiguous commits of every kind, 500s on creates and searches, throttling and search lag
    under one section-7 switch (and all of them): one job per point by name, the ledger's
    training_job_ids are the server's; a lost ledger then creates nothing."""
    config = EmulatorConfig(project_id=PROJECT, seed=seed, **{**FAULTS, **switch})
    await proof(tmp_path, config)


async def test_a_search_lag_past_the_settle_leaves_points_pending_never_doubled(
    tmp_path: Path,
) -> None:
    """A search lag longer than the settle: a point whose first send landed unseen is resent,
    the duplicate name is refused (2751) and, still not listed, the point is left pending, never
    given a second job; once the jobs show in search a re-run settles every point."""
    spec = write_spec(tmp_path / "lag.json")
    points = points_of(spec)
    ledger = tmp_path / "lag.ledger.jsonl"
    config = EmulatorConfig(project_id=PROJECT, seed=7, **{**FAULTS, "search_lag": 2.0,
                                                          "ambiguous_share": 0.25})
    async with run_emulator(config) as emu:
        first = await run(spec, emu.url, ledger)
        assert emu.counters["ambiguous"] > 0
        on_server = jobs_by_name(emu)
        assert all(len(jobs) == 1 for jobs in on_server.values()), on_server
        state = read_ledger(ledger)
        assert first.exit_code == (1 if state.pending else 0)
        assert state.pending, "the lag should have outlasted some point's settle"
        for key in state.pending:  # pending, yet its job exists: the first send landed
            (point,) = [p for p in points.values() if p.key == key]
            assert len(on_server[point.body["metadata"]["name"]]) == 1
        await until_searchable(emu)
        creates = emu.counters["v2_creates"]
        again = await run(spec, emu.url, ledger)
        assert again.exit_code == 0, again.message
        check_exactly_once(emu, ledger, spec, others=0)
        assert emu.counters["v2_creates"] == creates  # the pending points' jobs were adopted


async def test_a_2751_after_a_throttled_first_attempt_is_a_conflict(tmp_path: Path) -> None:
    """A foreign job (other parameters) holds the canary point's name, not yet searchable; the
    point's first attempt is answered 429 (so nothing of ours was created), its second 2751:
    the name is someone else's, so the point fails with batchsubmit.identity_conflict rather
    than being left pending as if an attempt of ours had landed."""
    spec = write_spec(tmp_path / "throttled.json", seeds=1)
    ledger = tmp_path / "throttled.ledger.jsonl"
    points = points_of(spec)
    canary = min(points.values(), key=lambda p: p.index)  # sent alone, first
    async with run_emulator(EmulatorConfig(project_id=PROJECT, search_lag=10.0)) as emu:
        await create_job(emu.url, foreign_body(canary, same_parameters=False))
        emu.set_faults(rate=2.0, burst=1)  # the start listing takes the token: the canary waits
        await run(spec, emu.url, ledger)
        assert emu.counters["throttled"] > 0
        assert len(emu.v2_jobs()) == len(points)
    state = read_ledger(ledger)
    assert canary.key not in state.pending, "left pending: a 429 proves nothing was created"
    record = state.outcomes[canary.key]
    assert (record["event"], record["error_code"]) == ("failed", "batchsubmit.identity_conflict")

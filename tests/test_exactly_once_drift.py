"""Exactly once against a server that does not echo what it was sent (issue 10).

Whole runs (``run_sweep``, in process) against the emulator over loopback sockets, with each
switch of ``real-service-unknowns.md`` that a client must survive, then a re-run with the ledger
deleted. Every invariant is checked against the emulator's ground truth (what was really sent and
created), never against what the server echoes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from batchsubmit.auth import NoCredentials
from batchsubmit.commands.run import RunOptions, run_sweep
from batchsubmit.emulator import Emulator, EmulatorConfig, run_emulator
from batchsubmit.ledger import read_ledger
from batchsubmit.sweep import bind, iter_points, load_spec
from tests.fakes import until_listed

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PROJECT = "0123456789abcdef0123456789abcdef"
JOB = 10
BASE_VERSION = 20
CREDS = NoCredentials(project_id=PROJECT)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_spec(path: Path, *, seeds: int = 1, config: dict[str, Any] | None = None) -> Path:
    """A sweep whose values look like numbers and booleans in more than one spelling."""
    spec = {
        "name": path.stem,
        "target": {"endpoint": "emulator", "project_id": PROJECT, "job_id": JOB},
        "base": {
            "config": {
                "worker_server_num": 1, "app_url": "/bkt/app/", "boot_file_url": "/bkt/app/t.py",
                "data_url": "/bkt/data/", "spec_id": 1, "engine_id": 1,
                "pre_version_id": BASE_VERSION, "train_url": "/bkt/out/{sweep}/{key}/",
                "parameter": [{"label": "epochs", "value": "010"}],
                **(config or {}),
            },
        },
        "grid": {
            "learning_rate": ["0.010", "1e-3", "5E-1", 0.25],
            "batch_size": ["32", "64.0"],
            "nesterov": ["true", "False"],
            "seed": list(range(seeds)),
        },
    }
    path.write_text(json.dumps(spec))
    return path


def points_of(spec: Path) -> dict[str, Any]:
    """train_url -> point, for every point of the spec."""
    return {p.train_url: p for p in iter_points(bind(load_spec(spec), JOB), validate=False)}


def created(emu: Emulator) -> list[dict[str, Any]]:
    return [v for v in emu.versions(JOB) if v["version_id"] != BASE_VERSION]


def check_exactly_once(emu: Emulator, ledger: Path, spec: Path) -> None:
    """Ground truth: one version per point, sent with the point's own parameters; the ledger
    names exactly those versions, and nothing is left pending."""
    points = points_of(spec)
    versions = created(emu)
    by_url: dict[str, list[int]] = {}
    for version in versions:
        by_url.setdefault(version["train_url"], []).append(version["version_id"])
        point = points[version["train_url"]]
        sent = [(p["label"], p["value"]) for p in version["parameter"]]
        assert sent == list(point.parameter)
    duplicates = {url: ids for url, ids in by_url.items() if len(ids) > 1}
    assert not duplicates, f"duplicate versions: {duplicates}"
    assert by_url.keys() == points.keys()
    state = read_ledger(ledger)
    assert not state.pending, f"left pending: {sorted(state.pending)}"
    for record in state.outcomes.values():
        assert record["event"] == "succeeded", record
        assert by_url[record["train_url"]] == [record["version_id"]]


async def run(spec: Path, url: str, ledger: Path, **options: Any) -> Any:
    settings = {"rate": 200.0, "concurrency": 8, "max_attempts": 12, "timeout": 0.5,
                "settle": 0.6, "quiet": True, **options}
    return await run_sweep(
        RunOptions(spec=spec, endpoint=url, ledger=ledger, **settings), credentials=CREDS
    )


async def create_foreign(url: str, train_url: str) -> int:
    """A version someone else made: the point's train_url, other parameters."""
    body = {"config": {
        "worker_server_num": 1, "app_url": "/bkt/app/", "boot_file_url": "/bkt/app/t.py",
        "data_url": "/bkt/data/", "spec_id": 1, "engine_id": 1, "pre_version_id": BASE_VERSION,
        "train_url": train_url, "parameter": [{"label": "learning_rate", "value": "0.9"}],
    }}
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/v1/{PROJECT}/training-jobs/{JOB}/versions", json=body
    ) as reply:
        answer = await reply.json()
    return int(answer["version_id"])


async def test_a_foreign_version_on_a_points_train_url_fails_that_point_only(
    tmp_path: Path,
) -> None:
    """A version on one point's train_url with other parameters: that point fails with
    batchsubmit.identity_conflict naming the version; nothing is created for it; exit 1."""
    spec = write_spec(tmp_path / "conflict.json")
    points = points_of(spec)
    taken = sorted(points)[3]
    ledger = tmp_path / "conflict.ledger.jsonl"
    async with run_emulator(EmulatorConfig(project_id=PROJECT)) as emu:
        foreign = await create_foreign(emu.url, taken.rstrip("/"))
        result = await run(spec, emu.url, ledger)
        on_url = [v["version_id"] for v in created(emu) if v["train_url"].rstrip("/")
                  == taken.rstrip("/")]
        assert on_url == [foreign]
        assert len(created(emu)) == len(points)  # the foreign one and every other point's
    assert result.exit_code == 1
    outcomes = read_ledger(ledger).outcomes
    failed = outcomes[points[taken].key]
    assert failed["event"] == "failed"
    assert failed["error_code"] == "batchsubmit.identity_conflict"
    assert f"version {foreign}" in failed["error_message"]
    assert sum(r["event"] == "succeeded" for r in outcomes.values()) == len(points) - 1


# --- the proof across the switches ---------------------------------------------------------------

FAULTS: dict[str, Any] = {
    "rate": 150.0, "burst": 10, "error_500_share": 0.1, "ambiguous_share": 0.1,
    "stall_seconds": 1.0, "list_lag": 0.3, "faults_on_lists": True,
}
SWITCHES: dict[str, dict[str, Any]] = {
    "echo-numbers": {"echo_numbers": True},
    "shuffle-params": {"shuffle_params": True},
    "add-params": {"add_params": (("max_epochs", "5"), ("preset", "resnet"))},
    "normalise-train-url": {"normalise_train_url": True},
    "max-per-page, served offsets": {"max_per_page": 7},
    "max-per-page, requested offsets": {"max_per_page": 7, "page_offsets": "requested"},
    "errors-200": {"errors_200": True},
    "error_msg": {"error_field": "error_msg"},
    "APIG prefix": {"gateway_prefix": "APIG"},
    "retry-after": {"retry_after": True},
    "minute policy": {"policy_period": "minute", "rate": 9000.0},
    "unannounced limit": {"announce_limit": False},
    "fixed window": {"gateway": "fixed-window"},
    "sliding window": {"gateway": "sliding-window"},
    "lenient": {"strict": False},
}
EVERYTHING: dict[str, Any] = {
    name: value for switch in SWITCHES.values() for name, value in switch.items()
    if name not in ("page_offsets", "rate", "policy_period")
} | {"page_offsets": "requested"}


@pytest.mark.parametrize(
    ("seed", "switch"),
    [(n, switch) for n, switch in enumerate([*SWITCHES.values(), EVERYTHING], start=1)],
    ids=[*SWITCHES, "every switch at once"],
)
async def test_exactly_once_whatever_the_server_echoes(
    tmp_path: Path, seed: int, switch: dict[str, Any]
) -> None:
    """Ambiguous commits, 500s, throttling and list lag under one drift switch (and all of them):
    one version per point, the ledger names exactly those; a lost ledger then creates nothing."""
    spec = write_spec(tmp_path / "drift.json", seeds=2)
    ledger = tmp_path / "drift.ledger.jsonl"
    config = EmulatorConfig(project_id=PROJECT, seed=seed, **{**FAULTS, **switch})
    async with run_emulator(config) as emu:
        result = await run(spec, emu.url, ledger)
        if result.exit_code != 0:  # points left pending by a fault are resumed, as a user would
            result = await run(spec, emu.url, ledger)
        assert result.exit_code == 0, result.message
        check_exactly_once(emu, ledger, spec)
        counters = emu.counters
        assert counters["ambiguous"] + counters["faults_500"] > 0
        creates = counters["creates"]
        await until_listed(emu)
        ledger.unlink()
        again = await run(spec, emu.url, ledger)
        assert emu.counters["creates"] == creates, "a lost ledger must create nothing"
        assert again.exit_code == 0, again.message
        check_exactly_once(emu, ledger, spec)


@pytest.mark.parametrize("error_field", ["error_message", "error_msg"])
async def test_a_refusal_answered_as_http_200_fails_the_point_with_its_code(
    tmp_path: Path, error_field: str
) -> None:
    """A business error sent as HTTP 200 with is_success false (U6), its message under either
    name (U7), is a refusal: the point fails with the service's code and message, is not
    retried, and creates nothing."""
    spec = write_spec(tmp_path / "quota.json")
    ledger = tmp_path / "quota.ledger.jsonl"
    config = EmulatorConfig(project_id=PROJECT, max_versions_per_job=3, errors_200=True,
                            error_field=error_field)
    async with run_emulator(config) as emu:
        result = await run(spec, emu.url, ledger, concurrency=1)
        assert len(created(emu)) == 2  # the seeded version and two of ours fill the quota
    assert result.exit_code == 1
    outcomes = read_ledger(ledger).outcomes.values()
    failed = [r for r in outcomes if r["event"] == "failed"]
    assert len(failed) == len(points_of(spec)) - 2
    for record in failed:
        assert (record["error_code"], record["http_status"], record["attempts"]) == (
            "ModelArts.0118", 200, 1)
        assert "quota" in record["error_message"]

"""Bulk re-versioning end to end: many jobs, each from its own latest version, over sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from batchsubmit.auth import NoCredentials
from batchsubmit.commands.run import RunOptions, run_sweep
from batchsubmit.emulator import EmulatorConfig, run_emulator
from batchsubmit.ledger import read_ledger

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PROJECT = "0123456789abcdef0123456789abcdef"
JOBS = {10: 20, 11: 21, 12: 22}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def body(job_id: int, pre_version_id: int) -> dict[str, Any]:
    return {
        "job_desc": f"job {job_id} on dataset v1",
        "config": {
            "worker_server_num": 2, "app_url": f"/bkt/job{job_id}/code/",
            "boot_file_url": f"/bkt/job{job_id}/code/train.py", "spec_id": 3, "engine_id": 5,
            "dataset_id": "ds-1", "dataset_version_id": "v1", "pre_version_id": pre_version_id,
            "train_url": f"/bkt/job{job_id}/out/", "log_url": f"/bkt/job{job_id}/log/",
            "parameter": [{"label": "lr", "value": "0.1"}, {"label": "epochs", "value": "5"}],
        },
    }


async def seed_versions(url: str) -> dict[int, int]:
    """Give every job a real version (the emulator's seeds carry no config); their ids."""
    latest = {}
    async with aiohttp.ClientSession() as session:
        for job_id, seed in JOBS.items():
            async with session.post(
                f"{url}/v1/{PROJECT}/training-jobs/{job_id}/versions", json=body(job_id, seed)
            ) as reply:
                assert reply.status == 200, await reply.text()
                latest[job_id] = (await reply.json())["version_id"]
    return latest


def write_spec(path: Path) -> Path:
    spec = {
        "name": "move-dataset",
        "target": {"endpoint": "emulator", "project_id": PROJECT, "job_ids": list(JOBS)},
        "base": {
            "from_version": "latest",
            "config": {
                "dataset_version_id": "v2",
                "train_url": "/bkt/reversion/{sweep}/{job_id}/",
            },
        },
    }
    path.write_text(yaml.safe_dump(spec))
    return path


async def test_reversions_three_jobs_from_latest(tmp_path: Path) -> None:
    """Each job gets one new version on top of its latest, with only the dataset version moved."""
    spec = write_spec(tmp_path / "move.yaml")
    ledger = tmp_path / "move.ledger.jsonl"
    async with run_emulator(EmulatorConfig(project_id=PROJECT, jobs=JOBS)) as emu:
        latest = await seed_versions(emu.url)
        options = RunOptions(spec=spec, endpoint=emu.url, ledger=ledger, rate=50, quiet=True)
        creds = NoCredentials(project_id=PROJECT)
        result = await run_sweep(options, credentials=creds)
        assert result.exit_code == 0, result.message
        created = [v for v in emu.versions() if v["version_id"] not in (*JOBS.values(),
                                                                          *latest.values())]
        assert len(created) == 3
        for version in created:
            job_id = version["job_id"]
            assert version["pre_version_id"] == latest[job_id]
            assert version["dataset_version_id"] == "v2"
            assert version["dataset_id"] == "ds-1"  # kept from the base
            assert version["app_url"] == f"/bkt/job{job_id}/code/"
            assert version["train_url"] == f"/bkt/reversion/move-dataset/{job_id}/"
            assert [(p["label"], p["value"]) for p in version["parameter"]] == [
                ("lr", "0.1"), ("epochs", "5")
            ]
        # A re-run resumes: `latest` is now the version we created, but the base stays put.
        again = await run_sweep(options, credentials=creds)
        assert again.exit_code == 0
        assert len(emu.versions()) == len(JOBS) * 2 + 3
    state = read_ledger(ledger)
    assert sorted(state.outcomes) == sorted(
        k for k in state.outcomes if k.split(":")[0] in {str(j) for j in JOBS}
    )
    assert len(state.outcomes) == 3
    assert state.runs[0]["settings"]["bases"] == {str(j): v for j, v in latest.items()}


async def test_reversion_watched_to_completion_then_reported(tmp_path: Path) -> None:
    """`run --watch` follows the three new versions to COMPLETED; the report shows all three."""
    from batchsubmit.report import write_report

    spec = write_spec(tmp_path / "move.yaml")
    ledger = tmp_path / "move.ledger.jsonl"
    config = EmulatorConfig(project_id=PROJECT, jobs=JOBS, init_seconds=0.1, run_seconds=0.3)
    async with run_emulator(config) as emu:
        await seed_versions(emu.url)
        result = await run_sweep(
            RunOptions(spec=spec, endpoint=emu.url, ledger=ledger, rate=50, quiet=True,
                       watch=True, watch_interval=0.2),
            credentials=NoCredentials(project_id=PROJECT),
        )
    assert result.exit_code == 0, result.message
    state = read_ledger(ledger)
    assert {entry.status_name for entry in state.statuses.values()} == {"COMPLETED"}
    assert len(state.statuses) == 3
    html_path = tmp_path / "report.html"
    write_report(ledger, html_path)
    html = html_path.read_text()
    assert "move-dataset" in html
    assert "<svg" in html
    for external in ('src="http', "href=\"http", "url(http", "<link", "<script src"):
        assert external not in html  # self-contained: nothing fetched when opened
    for key in state.outcomes:
        assert key.split(":")[1] in html or key in html


async def test_a_dedicated_pool_sweep_runs_and_re_versioning_keeps_the_pool(
    tmp_path: Path,
) -> None:
    """sweeps/dedicated-pool.yaml (pool_id, no spec_id) creates its six versions on the pool;
    re-versioning the latest of them builds on it and keeps the pool."""
    example = Path(__file__).parent.parent / "sweeps" / "dedicated-pool.yaml"
    ledger = tmp_path / "pool.ledger.jsonl"
    async with run_emulator(EmulatorConfig(project_id=PROJECT, jobs=JOBS)) as emu:
        creds = NoCredentials(project_id=PROJECT)
        result = await run_sweep(
            RunOptions(spec=example, endpoint=emu.url, ledger=ledger, rate=50, quiet=True),
            credentials=creds,
        )
        assert result.exit_code == 0, result.message
        pooled = [v for v in emu.versions(10) if v.get("pool_id")]
        assert len(pooled) == 6
        assert {v["pool_id"] for v in pooled} == {"pool-gpu-a1"}
        assert all(v.get("spec_id") is None for v in pooled)
        spec = tmp_path / "move.yaml"
        spec.write_text(yaml.safe_dump({
            "name": "pool-move", "target": {"endpoint": "emulator", "project_id": PROJECT,
                                            "job_id": 10},
            "base": {"from_version": "latest", "config": {
                "train_url": "/bkt/reversion/{sweep}/", "engine_id": 1}},
        }))
        moved = await run_sweep(
            RunOptions(spec=spec, endpoint=emu.url, ledger=tmp_path / "m.ledger.jsonl",
                       rate=50, quiet=True),
            credentials=creds,
        )
        assert moved.exit_code == 0, moved.message
        (rebased,) = [v for v in emu.versions(10) if v["train_url"].startswith("/bkt/reversion")]
        assert rebased["pre_version_id"] == max(v["version_id"] for v in pooled)
        assert (rebased["pool_id"], rebased.get("spec_id")) == ("pool-gpu-a1", None)

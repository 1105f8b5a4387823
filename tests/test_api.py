"""The Python API: bs.submit / bs.submit_sync / bs.read_ledger against bs.testing.Emulator.

In process (no subprocess), over real loopback sockets to the emulator's own thread.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

import batchsubmit as bs
from batchsubmit.ledger import read_ledger as fold_ledger

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PROJECT = "0123456789abcdef0123456789abcdef"
JOB = 10
FAULTS = {"ambiguous_share": 0.1, "error_500_share": 0.1, "list_lag": 0.2, "stall_seconds": 1.0,
          "rate": 200.0, "burst": 5, "seed": 3}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_spec(path: Path, *, a: int = 5, b: int = 4, name: str = "api") -> Path:
    spec = {
        "name": name,
        "target": {"endpoint": "emulator", "project_id": PROJECT, "job_id": JOB},
        "base": {"config": {
            "worker_server_num": 1, "app_url": "/b/app/", "boot_file_url": "/b/app/t.py",
            "data_url": "/b/data/", "spec_id": 1, "engine_id": 1, "pre_version_id": 20,
            "train_url": "/b/out/{sweep}/{key}/",
        }},
        "grid": {"lr": [f"0.{i}" for i in range(1, a + 1)], "bs": list(range(b))},
    }
    path.write_text(json.dumps(spec))
    return path


def options(emu: bs.testing.Emulator, ledger: Path) -> dict[str, Any]:
    return {"endpoint": emu.url, "credentials": emu.credentials, "ledger": ledger,
            "rate": 400, "concurrency": 8, "max_attempts": 12, "read_timeout": 0.5,
            "settle": 0.5}


def check_against_truth(result: bs.SubmitResult, emu: bs.testing.Emulator, points: int) -> None:
    """Every point succeeded, and its version_id is the one the emulator created for it."""
    created = {v["train_url"]: v["version_id"] for v in emu.versions(JOB)
               if v["version_id"] not in emu.seeded_version_ids}
    assert len(created) == points == len(result.succeeded)
    assert not result.failed and not result.unresolved and result.complete
    for point in result.succeeded.values():
        truth = next(v for v in emu.versions(JOB) if v["version_id"] == point.version_id)
        assert created[truth["train_url"]] == point.version_id
        assert point.parameters == {p["label"]: p["value"] for p in truth["parameter"]}
        assert point.job_id == JOB


async def test_submit_gives_every_points_version_id_under_faults(tmp_path: Path) -> None:
    """await bs.submit in a running loop, ambiguous commits and 500s injected: each point's
    version_id in the result is the emulator's, and the ledger says the same."""
    spec = bs.load_spec(write_spec(tmp_path / "s.json"))
    seen: list[bs.EngineStats] = []
    with bs.testing.Emulator(project_id=PROJECT, faults=FAULTS) as emu:
        result = await bs.submit(spec, on_progress=seen.append,
                                 **options(emu, tmp_path / "l.jsonl"))
        assert emu.counters["ambiguous"] + emu.counters["faults_500"] > 0
        check_against_truth(result, emu, 20)
    assert any(p.reconciled for p in result.succeeded.values()) or emu.counters["ambiguous"] == 0
    assert seen and seen[-1].succeeded == 20  # the last snapshot is the final count
    assert bs.read_ledger(tmp_path / "l.jsonl").succeeded == result.succeeded


def test_submit_sync_from_a_worker_thread(tmp_path: Path) -> None:
    """bs.submit_sync in a thread that is not the main one (no signal handlers needed)."""
    spec = write_spec(tmp_path / "s.json", a=3, b=3)
    box: list[bs.SubmitResult | BaseException] = []
    with bs.testing.Emulator(project_id=PROJECT, faults=FAULTS) as emu:

        def work() -> None:
            try:
                box.append(bs.submit_sync(spec, **options(emu, tmp_path / "l.jsonl")))
            except BaseException as exc:  # handed to the test's thread
                box.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(60)
        (result,) = box
        assert isinstance(result, bs.SubmitResult), result
        check_against_truth(result, emu, 9)


async def test_submit_sync_inside_a_running_loop_uses_a_thread_of_its_own(tmp_path: Path) -> None:
    """Called where an event loop already runs (a notebook cell), submit_sync still works."""
    spec = write_spec(tmp_path / "s.json", a=2, b=2)
    with bs.testing.Emulator(project_id=PROJECT) as emu:
        result = bs.submit_sync(spec, **options(emu, tmp_path / "l.jsonl"))
        check_against_truth(result, emu, 4)


async def test_a_refused_credential_is_raised_not_returned(tmp_path: Path) -> None:
    """A wrong token raises bs.AuthError after one refused request; nothing is created."""
    spec = write_spec(tmp_path / "s.json")
    with bs.testing.Emulator(project_id=PROJECT, auth="token",
                             tokens=("right-token",)) as emu:
        with pytest.raises(bs.AuthError) as caught:
            await bs.submit(spec, **{**options(emu, tmp_path / "l.jsonl"),
                                     "credentials": bs.TokenCredentials(
                                         token="wrong-token", project_id=PROJECT)})
        assert emu.counters["requests"] == 1 and emu.counters["creates"] == 0
    assert "wrong-token" not in str(caught.value)


async def test_a_bad_spec_raises_a_spec_error_naming_the_file(tmp_path: Path) -> None:
    """A spec error is raised (bs.SpecError), with the file, before anything is sent."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "x", "target": {"job_id": 1}, "base": {}}))
    with pytest.raises(bs.SpecError, match=r"bad\.json"):
        await bs.submit(path, endpoint="http://127.0.0.1:9", ledger=tmp_path / "l.jsonl")
    assert not (tmp_path / "l.jsonl").exists()


async def test_failures_are_data_until_raise_for_failures(tmp_path: Path) -> None:
    """Refused points are in result.failed with their code and parameters; raise_for_failures
    raises FailedPointsError naming the code."""
    spec = write_spec(tmp_path / "s.json", a=2, b=3)
    with bs.testing.Emulator(project_id=PROJECT, max_versions_per_job=3) as emu:
        result = await bs.submit(spec, **{**options(emu, tmp_path / "l.jsonl"),
                                          "concurrency": 1})
    assert len(result.succeeded) == 2 and len(result.failed) == 4
    failure = next(iter(result.failed.values()))
    assert (failure.error_code, failure.http_status) == ("ModelArts.0118", 400)
    assert set(failure.parameters) == {"lr", "bs"}
    with pytest.raises(bs.FailedPointsError, match=r"4 failed \(ModelArts.0118\)"):
        result.raise_for_failures()
    from_disk = bs.read_ledger(tmp_path / "l.jsonl")
    assert from_disk.failed == result.failed  # parameters come from the ledger's own lines


async def lines_written(ledger: Path, n: int) -> None:
    """Return once the ledger has ``n`` lines (polled; bounded at 30 s)."""
    with anyio.fail_after(30):
        while fold_ledger(ledger).lines < n:  # noqa: ASYNC110 (a file, not an event)
            await anyio.sleep(0.01)


async def test_cancelling_the_caller_stops_like_ctrl_c(tmp_path: Path) -> None:
    """A cancelled bs.submit sends no new point, lets requests in flight finish and records
    them (run_finished interrupted, nothing pending), then the cancellation goes on."""
    spec = write_spec(tmp_path / "s.json", a=10, b=10)
    ledger = tmp_path / "l.jsonl"
    with bs.testing.Emulator(project_id=PROJECT, latency_ms=100) as emu:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: bs.submit(spec, **{**options(emu, ledger), "rate": 50,
                                                          "concurrency": 4}))
                await lines_written(ledger, 20)
                scope.cancel()
        creates = emu.counters["creates"]
    state = fold_ledger(ledger)
    assert not state.pending  # every request in flight got its outcome line
    assert len(state.outcomes) == creates < 100
    finished = state.spans[-1].finished
    assert finished is not None and finished["interrupted"] is True


async def test_the_library_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """No progress bar, no summary, no debug lines: stdout and stderr stay empty."""
    import structlog

    structlog.reset_defaults()  # as in a script that never configured structlog
    spec = write_spec(tmp_path / "s.json", a=2, b=2)
    with bs.testing.Emulator(project_id=PROJECT, faults={"ambiguous_share": 0.5}) as emu:
        await bs.submit(spec, **options(emu, tmp_path / "l.jsonl"))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_a_spec_from_a_dict_is_the_spec_of_the_same_file(tmp_path: Path) -> None:
    """SweepSpec.from_dict checks a mapping as load_spec checks a file: same points, same bodies."""
    path = write_spec(tmp_path / "s.json")
    data = json.loads(path.read_text())
    from_file = bs.load_spec(path)
    from_dict = bs.SweepSpec.from_dict(data, name="api")
    from batchsubmit.sweep import iter_points

    assert [p.body for p in iter_points(from_dict)] == [p.body for p in iter_points(from_file)]
    assert from_dict.name == "api" and len(from_dict.sha256) == 64
    assert bs.SweepSpec.from_dict(data, name="other").sha256 != from_dict.sha256


@pytest.mark.parametrize(
    ("where", "value", "field", "text"),
    [
        ("grid.lr", "0.1", "grid.lr", "list"),
        ("target.job_id", 0, "target.job_id", "greater than or equal to 1"),
        ("base.config.spec_id", "one", "base.config.spec_id", "integer"),
    ],
)
def test_dict_spec_errors_name_the_key_path(
    tmp_path: Path, where: str, value: Any, field: str, text: str
) -> None:
    """A mistake in a dict spec is a SpecError naming the key path (a file's names the line)."""
    data = json.loads(write_spec(tmp_path / "s.json").read_text())
    *parents, last = where.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    with pytest.raises(bs.SpecError) as caught:
        bs.SweepSpec.from_dict(data, name="lr")
    assert caught.value.field is not None and caught.value.field.startswith(field)
    assert text in str(caught.value)
    assert "<spec lr>" in str(caught.value)


def test_a_dict_spec_must_hold_json_values() -> None:
    """A value JSON cannot hold (a set, an object) is refused with a SpecError, not a crash."""
    with pytest.raises(bs.SpecError, match="JSON values only"):
        bs.SweepSpec.from_dict({"name": "x", "grid": {"lr": {1, 2}}})


def test_the_test_double_shows_the_v2_ground_truth() -> None:
    """bs.testing.Emulator serves the v2 API too, and v2_jobs() is its ground truth."""
    import urllib.request

    from tests.test_emulator_v2 import V2_EXAMPLE

    with bs.testing.Emulator(project_id=PROJECT) as emu:
        assert emu.v2_jobs() == []
        request = urllib.request.Request(
            f"{emu.url}/v2/{PROJECT}/training-jobs", data=json.dumps(V2_EXAMPLE).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            created = json.loads(reply.read())
        (job,) = emu.v2_jobs()
    assert job["id"] == created["metadata"]["id"]
    assert job["name"] == V2_EXAMPLE["metadata"]["name"]

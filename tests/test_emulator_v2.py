"""The emulator's v2 training-job API (shared/spec/v2-training-jobs.md) over the loopback socket.

Plain aiohttp against ``run_emulator``; time is a fake clock stepped by hand (phases, search and
delete lag, race window, token buckets), so nothing here sleeps to wait for a state change.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from batchsubmit.commands.emulator import build_config, register
from batchsubmit.emulator import DEFAULT_PROJECT_ID, Emulator, EmulatorConfig, run_emulator
from batchsubmit.emulator.config import RUNTIME_KNOBS, V2_KNOBS
from tests.fakes import DROP, FakeClock, body_with

PID = DEFAULT_PROJECT_ID
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the create_time of the contract's example
NAME = "lr-batch-grid-p0007-9c1e4b7a"

# The worked example of the contract (section 8), one point of a sweep as a v2 job.
V2_EXAMPLE: dict[str, Any] = {
    "kind": "job",
    "metadata": {
        "name": NAME,
        "workspace_id": "0",
        "description": "lr-batch-grid: lr=0.01 bs=128 (p0007)",
    },
    "algorithm": {
        "code_dir": "/my-bucket/resnet/code/",
        "boot_file": "/my-bucket/resnet/code/train.py",
        "engine": {"engine_id": "pytorch-cp36-1.4.0-v2"},
        "parameters": [
            {"name": "epochs", "value": "90"},
            {"name": "learning_rate", "value": "0.01"},
        ],
        "inputs": [{"name": "data_url", "remote": {"obs": {"obs_url": "/my-bucket/data/"}}}],
        "outputs": [{"name": "train_url", "remote": {"obs": {"obs_url": "/my-bucket/out/7/"}}}],
    },
    "spec": {
        "resource": {"flavor_id": "modelarts.vm.pnt1.large.eco", "node_count": 1},
        "log_export_path": {"obs_url": "/my-bucket/log/7/"},
    },
}


def named(name: str, **changes: Any) -> dict[str, Any]:
    """The example under another metadata.name (and other dotted-path changes)."""
    return body_with({"metadata.name": name, **changes}, base=V2_EXAMPLE)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@asynccontextmanager
async def serve(clock: FakeClock, **knobs: Any) -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(**knobs), clock=clock) as emu:
        yield emu


def jobs_url(emu: Emulator, suffix: str = "") -> str:
    return f"{emu.url}/v2/{PID}/training-jobs{suffix}"


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None, **kwargs: Any
) -> tuple[int, Any]:
    async with session.request(method, url, json=body, **kwargs) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else text


async def create(
    session: aiohttp.ClientSession, emu: Emulator, body: Any, **kwargs: Any
) -> tuple[int, Any]:
    return await call(session, "POST", jobs_url(emu), body, **kwargs)


async def search(session: aiohttp.ClientSession, emu: Emulator, **query: Any) -> tuple[int, Any]:
    return await call(session, "POST", f"{emu.url}/v2/{PID}/training-job-searches", query)


async def names(session: aiohttp.ClientSession, emu: Emulator, **query: Any) -> list[str]:
    status, body = await search(session, emu, **query)
    assert status == 200, body
    return [item["metadata"]["name"] for item in body["items"]]


def by_name(name: str) -> list[dict[str, Any]]:
    return [{"key": "name", "operator": "like", "value": [name]}]


async def detail(session: aiohttp.ClientSession, emu: Emulator, job_id: str) -> tuple[int, Any]:
    return await call(session, "GET", jobs_url(emu, f"/{job_id}"))


async def terminate(
    session: aiohttp.ClientSession, emu: Emulator, job_id: str, body: Any = None
) -> tuple[int, Any]:
    action = {"action_type": "terminate"} if body is None else body
    return await call(session, "POST", jobs_url(emu, f"/{job_id}/actions"), action)


async def delete(session: aiohttp.ClientSession, emu: Emulator, job_id: str) -> tuple[int, Any]:
    return await call(session, "DELETE", jobs_url(emu, f"/{job_id}"))


async def created_at_steps(
    session: aiohttp.ClientSession, emu: Emulator, clock: FakeClock, count: int, prefix: str = "j"
) -> list[str]:
    """Create ``prefix0..`` one second apart (distinct create_time); their ids, in order."""
    ids = []
    for index in range(count):
        status, body = await create(session, emu, named(f"{prefix}{index}"))
        assert status == 201, body
        ids.append(body["metadata"]["id"])
        clock.now += 1
    return ids


# --- create ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_answers_201_with_the_job_object(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The contract's example creates a job: 201, a UUID id, phase Creating, the body echoed."""
    async with serve(clock) as emu:
        status, job = await create(session, emu, V2_EXAMPLE)
        assert status == 201
        job_id = job["metadata"]["id"]
        assert str(uuid.UUID(job_id)) == job_id
        assert job["kind"] == "job"
        assert job["metadata"] == {
            **V2_EXAMPLE["metadata"],
            "id": job_id,
            "create_time": int(START * 1000),
            "user_name": "",
        }
        assert job["status"] == {
            "phase": "Creating",
            "secondary_phase": "Creating",
            "duration": 0,
            "start_time": 0,
            "tasks": ["worker-0"],
            "node_count_metrics": None,
            "task_statuses": [],
            "running_records": [],
        }
        assert job["algorithm"] == V2_EXAMPLE["algorithm"]
        assert job["spec"]["resource"] == {**V2_EXAMPLE["spec"]["resource"], "policy": "regular"}
        [truth] = emu.v2_jobs()
        assert (truth["id"], truth["name"], truth["body"]) == (job_id, NAME, V2_EXAMPLE)
        assert emu.counters["v2_creates"] == 1


VALID_VARIANTS = [
    {"kind": "visualization_job", "metadata.workspace_id": DROP, "metadata.description": DROP},
    {"algorithm.code_dir": "obs://my-bucket/code", "algorithm.boot_file": "obs://my-bucket/code/t.py"},
    {"algorithm.engine": {"engine_name": "PyTorch", "engine_version": "1.8"}},
    {"algorithm.engine": {"image_url": "org/image:1"}, "algorithm.command": "python t.py"},
    {"algorithm.code_dir": DROP, "algorithm.boot_file": DROP, "algorithm.engine": DROP,
     "algorithm.id": "2e5451fe-913f-4492-821a-2981031382f7"},
    {"algorithm.inputs.0.remote": {"dataset": {"id": "d1", "version_id": "v1"}}},
    {"algorithm.environments": {"OMP_NUM_THREADS": "4"}, "metadata.annotations": {"a": "b"}},
    {"spec.resource.node_count": DROP, "spec.resource.pool_id": "pool-1",
     "spec.log_export_path": DROP},
    {"metadata.workspace_id": "0123456789abcdef0123456789abcdef", "train_type": "x"},
]  # fmt: skip


@pytest.mark.parametrize("changes", VALID_VARIANTS)
@pytest.mark.asyncio
async def test_valid_variants_are_created(
    session: aiohttp.ClientSession, clock: FakeClock, changes: dict[str, Any]
) -> None:
    """Each documented alternative form (code source, engine, remote, paths) is accepted."""
    async with serve(clock) as emu:
        status, body = await create(session, emu, body_with(changes, base=V2_EXAMPLE))
        assert status == 201, body


INVALID = [
    ({"kind": DROP}, "ModelArts.2788", "kind"),
    ({"kind": "bogus"}, "ModelArts.2816", "kind"),
    ({"kind": 1}, "ModelArts.2825", "kind"),
    ({"foo": 1}, "ModelArts.2788", "foo"),
    ({"metadata": DROP}, "ModelArts.2788", "metadata"),
    ({"metadata.name": DROP}, "ModelArts.2788", "metadata.name"),
    ({"metadata.name": "lr0.01"}, "ModelArts.2816", "metadata.name"),
    ({"metadata.name": "x" * 65}, "ModelArts.2816", "metadata.name"),
    ({"metadata.name": 7}, "ModelArts.2825", "metadata.name"),
    ({"metadata.workspace_id": "ws-1"}, "ModelArts.0102", "metadata.workspace_id"),
    ({"metadata.description": "d" * 257}, "ModelArts.2816", "metadata.description"),
    ({"metadata.owner": "me"}, "ModelArts.2788", "metadata.owner"),
    ({"metadata.annotations": {"a": 1}}, "ModelArts.2825", "metadata.annotations.a"),
    ({"algorithm": DROP}, "ModelArts.2788", "algorithm"),
    ({"algorithm.boot_file": DROP}, "ModelArts.2788", "algorithm.boot_file"),
    ({"algorithm.id": "a1"}, "ModelArts.2788", "algorithm.id"),
    ({"algorithm.boot_file": "/elsewhere/train.py"}, "ModelArts.2758", "algorithm.boot_file"),
    ({"algorithm.code_dir": "my-bucket/resnet/code/"}, "ModelArts.2802", "algorithm.code_dir"),
    ({"algorithm.engine": DROP}, "ModelArts.2788", "algorithm.engine"),
    ({"algorithm.engine": {}}, "ModelArts.2788", "algorithm.engine"),
    ({"algorithm.engine.image_url": "org/i:1"}, "ModelArts.2788", "algorithm.engine"),
    ({"algorithm.engine": {"image_url": "org/i:1"}}, "ModelArts.2806", "algorithm.command"),
    ({"algorithm.engine.engine_id": 5}, "ModelArts.2825", "algorithm.engine.engine_id"),
    ({"algorithm.parameters.0.value": 90}, "ModelArts.2825", "algorithm.parameters[0].value"),
    ({"algorithm.parameters.0.label": "x"}, "ModelArts.2788", "algorithm.parameters[0].label"),
    ({"algorithm.parameters": {}}, "ModelArts.2825", "algorithm.parameters"),
    ({"algorithm.inputs.0.remote": {}}, "ModelArts.2854", "algorithm.inputs[0].remote"),
    ({"algorithm.inputs.0.remote.obs.obs_url": "data"}, "ModelArts.2791",
     "algorithm.inputs[0].remote.obs.obs_url"),
    ({"algorithm.inputs.0.remote": {"dataset": {"id": "d"}}}, "ModelArts.2788",
     "algorithm.inputs[0].remote.dataset.version_id"),
    ({"algorithm.outputs.0.name": DROP}, "ModelArts.2788", "algorithm.outputs[0].name"),
    ({"algorithm.outputs.0.remote": {"dataset": {"id": "d", "version_id": "v"}}},
     "ModelArts.2854", "algorithm.outputs[0].remote"),
    ({"algorithm.environments": {"1X": "a"}}, "ModelArts.2816", "algorithm.environments"),
    ({"algorithm.environments": {"X": "$HOME"}}, "ModelArts.2816", "algorithm.environments.X"),
    ({"spec": DROP}, "ModelArts.2788", "spec"),
    ({"spec.resource": DROP}, "ModelArts.2788", "spec.resource"),
    ({"spec.resource.flavor_id": DROP}, "ModelArts.2788", "spec.resource.flavor_id"),
    ({"spec.resource.flavor_id": " "}, "ModelArts.2816", "spec.resource.flavor_id"),
    ({"spec.resource.node_count": 0}, "ModelArts.2816", "spec.resource.node_count"),
    ({"spec.resource.node_count": "1"}, "ModelArts.2825", "spec.resource.node_count"),
    ({"spec.log_export_path.obs_url": "log"}, "ModelArts.2791", "spec.log_export_path.obs_url"),
    ({"spec.gpus": 1}, "ModelArts.2788", "spec.gpus"),
    ({"tasks": []}, "ModelArts.2788", "tasks"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "code", "field"), INVALID)
@pytest.mark.asyncio
async def test_each_body_rule_is_refused_naming_the_field(
    session: aiohttp.ClientSession,
    clock: FakeClock,
    changes: dict[str, Any],
    code: str,
    field: str,
) -> None:
    """A broken body is 400 with the rule's code, the v2 shape and a message naming the field."""
    async with serve(clock) as emu:
        status, body = await create(session, emu, body_with(changes, base=V2_EXAMPLE))
        assert (status, body["error_code"]) == (400, code), body
        assert field in body["error_msg"], body
        assert set(body) == {"error_code", "error_msg"}  # no is_success in v2
        assert emu.v2_jobs() == []


@pytest.mark.asyncio
async def test_a_body_that_is_not_a_json_object_is_2787(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Invalid JSON and a JSON array are 400 ModelArts.2787."""
    async with serve(clock) as emu:
        async with session.post(jobs_url(emu), data=b"{nope") as response:
            assert (response.status, (await response.json())["error_code"]) == (
                400,
                "ModelArts.2787",
            )
        status, body = await create(session, emu, [V2_EXAMPLE])
        assert (status, body["error_code"]) == (400, "ModelArts.2787")


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_taken_name_is_2751_with_the_inferred_body(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """A second create of one name is 400 ModelArts.2751 with error_msg and error_solution."""
    async with serve(clock) as emu:
        assert (await create(session, emu, V2_EXAMPLE))[0] == 201
        clock.now += 3600  # Completed by now: finished jobs hold their names too
        assert await create(session, emu, V2_EXAMPLE) == (
            400,
            {
                "error_code": "ModelArts.2751",
                "error_msg": f"Duplicate training job (name {NAME}).",
                "error_solution": "Change training job name.",
            },
        )
        assert len(emu.v2_jobs()) == 1


@pytest.mark.asyncio
async def test_name_scope_and_case_switches(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """By default names are unique per workspace and case-sensitive; both are switches."""
    other_ws = {"metadata.workspace_id": "f" * 32}
    async with serve(clock) as emu:
        assert (await create(session, emu, named("Sweep-1")))[0] == 201
        assert (await create(session, emu, named("sweep-1")))[0] == 201
        assert (await create(session, emu, named("Sweep-1", **other_ws)))[0] == 201
        emu.set_faults(v2_name_scope="project", v2_name_case="insensitive")
        status, body = await create(
            session, emu, named("SWEEP-1", **{"metadata.workspace_id": "e" * 32})
        )
        assert (status, body["error_code"]) == (400, "ModelArts.2751")


@pytest.mark.asyncio
async def test_race_window_lets_two_creates_of_one_name_in(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Within v2_race_window two creates of one name both get 201; after it, 2751 again."""
    async with serve(clock, v2_race_window=1.0) as emu:
        assert (await create(session, emu, V2_EXAMPLE))[0] == 201
        clock.now += 0.5
        assert (await create(session, emu, V2_EXAMPLE))[0] == 201
        assert await names(session, emu, filters=by_name(NAME)) == [NAME, NAME]
        clock.now += 1.0
        assert (await create(session, emu, V2_EXAMPLE))[1]["error_code"] == "ModelArts.2751"
        assert [job["name"] for job in emu.v2_jobs()] == [NAME, NAME]


@pytest.mark.parametrize(
    ("reuse", "at_delete", "after_lag"),
    [("never", 400, 400), ("after_delete", 400, 201), ("immediately", 201, 400)],
)
@pytest.mark.asyncio
async def test_name_reuse_after_delete(
    session: aiohttp.ClientSession,
    clock: FakeClock,
    reuse: str,
    at_delete: int,
    after_lag: int,
) -> None:
    """never keeps a deleted job's name taken; after_delete frees it once the delete lag is
    over; immediately frees it at once (the new job then holds it)."""
    async with serve(clock, v2_name_reuse=reuse, v2_delete_lag=30) as emu:
        _, job = await create(session, emu, V2_EXAMPLE)
        assert (await delete(session, emu, job["metadata"]["id"]))[0] == 202
        assert (await create(session, emu, V2_EXAMPLE))[0] == at_delete
        clock.now += 30
        assert (await create(session, emu, V2_EXAMPLE))[0] == after_lag
        assert len(emu.v2_jobs()) == 2 if 201 in (at_delete, after_lag) else 1


# --- search ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_search_answers_the_documented_fields(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The contract's name search: total, count, limit, offset, sort, workspace, items."""
    async with serve(clock) as emu:
        _, job = await create(session, emu, V2_EXAMPLE)
        query = {"offset": 0, "limit": 50, "sort_by": "create_time", "order": "asc"}
        status, body = await search(session, emu, **query, filters=by_name(NAME))
        assert status == 200
        assert body == {
            "total": 1, "count": 1, "limit": 50, "offset": 0, "sort_by": "create_time",
            "order": "asc", "group_by": "", "workspace_id": "0",
            "ai_project": "default-ai-project", "items": [job],
        }  # fmt: skip
        assert emu.counters["v2_searches"] == 1


@pytest.mark.asyncio
async def test_offset_as_page_index_and_as_record_offset(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """v2_offset=page serves items [o*l, o*l+l), record serves [o, o+l); default is page."""
    async with serve(clock) as emu:
        await created_at_steps(session, emu, clock, 7)
        pages = [await names(session, emu, order="asc", limit=3, offset=o) for o in range(4)]
        assert pages == [["j0", "j1", "j2"], ["j3", "j4", "j5"], ["j6"], []]
        assert await names(session, emu, limit=3) == ["j6", "j5", "j4"]  # desc by default
        emu.set_faults(v2_offset="record")
        records = [await names(session, emu, order="asc", limit=3, offset=o) for o in (0, 1, 5)]
        assert records == [["j0", "j1", "j2"], ["j1", "j2", "j3"], ["j5", "j6"]]


@pytest.mark.asyncio
async def test_total_and_count_switch(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """total counts every visible job; count is the matches (default) or this page's items."""
    async with serve(clock) as emu:
        await created_at_steps(session, emu, clock, 5, prefix="a-")
        await created_at_steps(session, emu, clock, 2, prefix="b-")
        _, body = await search(session, emu, limit=1, filters=by_name("b-"))
        assert (body["total"], body["count"], len(body["items"])) == (7, 2, 1)
        emu.set_faults(v2_count="page")
        _, body = await search(session, emu, limit=1, filters=by_name("b-"))
        assert (body["total"], body["count"], len(body["items"])) == (7, 1, 1)


@pytest.mark.asyncio
async def test_limit_default_and_out_of_range(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """No limit serves v2_default_limit; outside 1..50 is 400 ModelArts.2816, or clamped."""
    async with serve(clock) as emu:
        await created_at_steps(session, emu, clock, 12)
        assert len(await names(session, emu)) == 10
        for limit in (0, 51):
            status, body = await search(session, emu, limit=limit)
            assert (status, body["error_code"]) == (400, "ModelArts.2816")
            assert "limit" in body["error_msg"]
        status, body = await search(session, emu, offset=-1)
        assert (status, body["error_code"]) == (400, "ModelArts.2816")
        status, body = await search(session, emu, limit="5")
        assert (status, body["error_code"]) == (400, "ModelArts.2825")
        emu.set_faults(v2_default_limit=4, v2_limit_range="clamp")
        assert len(await names(session, emu)) == 4
        for limit, served in ((0, 1), (51, 12)):
            _, body = await search(session, emu, limit=limit)
            assert (body["limit"], len(body["items"])) == (min(max(limit, 1), 50), served)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"filters": [{"key": "owner", "operator": "in", "value": ["x"]}]}, "ModelArts.2807"),
        ({"filters": [{"key": "name", "operator": "in", "value": ["x"]}]}, "ModelArts.2808"),
        ({"filters": [{"key": "name", "operator": "like", "value": "x"}]}, "ModelArts.2809"),
        ({"filters": [{"key": "create_time", "operator": "between", "value": ["a", ""]}]},
         "ModelArts.2809"),
        ({"filters": [{"key": "name", "value": ["x"]}]}, "ModelArts.2789"),
        ({"sort_by": "duration"}, "ModelArts.2790"),
        ({"order": "up"}, "ModelArts.2790"),
        ({"page": 1}, "ModelArts.2788"),
    ],
)  # fmt: skip
@pytest.mark.asyncio
async def test_bad_search_bodies(
    session: aiohttp.ClientSession, clock: FakeClock, query: dict[str, Any], code: str
) -> None:
    """Unknown filter key, operator, value, a malformed filter or sort: their 400 codes."""
    async with serve(clock) as emu:
        status, body = await search(session, emu, **query)
        assert (status, body["error_code"]) == (400, code), body


@pytest.mark.asyncio
async def test_filters_and_like_modes(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """like is a case-sensitive substring by default; ignore-case and SQL LIKE are switches;
    phase and create_time filters select by phase and time."""
    async with serve(clock, v2_creating_seconds=1, v2_pending_seconds=0) as emu:
        for name in ("abc", "aXc", "ABC-2"):
            await create(session, emu, named(name))
        clock.now += 5
        await create(session, emu, named("late"))
        asc = {"order": "asc"}
        assert await names(session, emu, **asc, filters=by_name("bc")) == ["abc"]
        emu.set_faults(v2_like="contains-ignore-case")
        assert await names(session, emu, **asc, filters=by_name("bc")) == ["abc", "ABC-2"]
        emu.set_faults(v2_like="sql-like")
        assert await names(session, emu, **asc, filters=by_name("a_c")) == ["abc", "aXc"]
        creating = [{"key": "phase", "operator": "in", "value": ["Creating"]}]
        assert await names(session, emu, filters=creating) == ["late"]
        since = str(int(clock.now * 1000))
        window = [{"key": "create_time", "operator": "between", "value": [since, ""]}]
        assert await names(session, emu, filters=window) == ["late"]


# --- phases, terminate, delete -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_phases_progress_with_the_clock(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Creating, Pending (Queuing), Running (start_time, duration), then Completed."""
    async with serve(
        clock, v2_creating_seconds=1, v2_pending_seconds=2, v2_running_seconds=3
    ) as emu:
        _, job = await create(session, emu, V2_EXAMPLE)
        job_id, t0 = job["metadata"]["id"], int(START * 1000)
        seen = []
        for step in (0.5, 1, 2, 1, 3):
            clock.now += step
            status = (await detail(session, emu, job_id))[1]["status"]
            seen.append((status["phase"], status["secondary_phase"], status["start_time"],
                         status["duration"]))  # fmt: skip
        assert seen == [
            ("Creating", "Creating", 0, 0),
            ("Pending", "Queuing", 0, 0),
            ("Running", "Running", t0 + 3000, 500),
            ("Running", "Running", t0 + 3000, 1500),
            ("Completed", "Completed", t0 + 3000, 3000),
        ]
        assert emu.v2_jobs()[0]["phase"] == "Completed"


@pytest.mark.parametrize(
    ("knobs", "final", "secondary", "started"),
    [({"failure_share": 1.0}, "Failed", "Failed", True),
     ({"abnormal_share": 1.0}, "Abnormal", "CreateFailed", False)],
)  # fmt: skip
@pytest.mark.asyncio
async def test_injected_failed_and_abnormal(
    session: aiohttp.ClientSession,
    clock: FakeClock,
    knobs: dict[str, float],
    final: str,
    secondary: str,
    started: bool,
) -> None:
    """failure_share ends a job Failed after Running; abnormal_share Abnormal after Creating."""
    async with serve(clock, **knobs) as emu:
        _, job = await create(session, emu, V2_EXAMPLE)
        clock.now += 1.5  # past Creating (1 s)
        _, now = await detail(session, emu, job["metadata"]["id"])
        assert now["status"]["phase"] == ("Pending" if started else "Abnormal")
        clock.now += 60
        _, end = await detail(session, emu, job["metadata"]["id"])
        assert (end["status"]["phase"], end["status"]["secondary_phase"]) == (final, secondary)
        assert bool(end["status"]["start_time"]) is started


@pytest.mark.asyncio
async def test_terminate(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """terminate: 202 with the job Terminating, then Terminated; again or when ended 409 2796."""
    async with serve(clock, v2_terminating_seconds=2) as emu:
        _, job = await create(session, emu, V2_EXAMPLE)
        job_id = job["metadata"]["id"]
        status, body = await terminate(session, emu, job_id)
        assert (status, body["metadata"]["id"], body["status"]["phase"]) == (
            202,
            job_id,
            "Terminating",
        )
        status, body = await terminate(session, emu, job_id)
        assert (status, body["error_code"]) == (409, "ModelArts.2796")
        clock.now += 2
        assert (await detail(session, emu, job_id))[1]["status"]["phase"] == "Terminated"
        clock.now += 3600
        assert (await detail(session, emu, job_id))[1]["status"]["phase"] == "Terminated"
        _, done = await create(session, emu, named("done"))
        clock.now += 3600
        status, body = await terminate(session, emu, done["metadata"]["id"])
        assert (status, body["error_code"]) == (409, "ModelArts.2796")
        assert emu.counters["v2_terminates"] == 1


@pytest.mark.asyncio
async def test_bad_terminate_bodies_and_unknown_ids(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Another action is 2812, none 2788; an unknown id is 400 ModelArts.2775 (not 404)."""
    async with serve(clock) as emu:
        _, job = await create(session, emu, V2_EXAMPLE)
        job_id = job["metadata"]["id"]
        status, body = await terminate(session, emu, job_id, {"action_type": "pause"})
        assert (status, body["error_code"]) == (400, "ModelArts.2812")
        status, body = await terminate(session, emu, job_id, {})
        assert (status, body["error_code"]) == (400, "ModelArts.2788")
        missing = "00000000-0000-4000-8000-000000000000"
        for status, body in (
            await detail(session, emu, missing),
            await terminate(session, emu, missing),
            await delete(session, emu, missing),
        ):
            assert (status, body) == (
                400,
                {
                    "error_code": "ModelArts.2775",
                    "error_msg": f"Training job (ID: {missing}) not found.",
                },
            )


@pytest.mark.asyncio
async def test_delete_and_delete_lag(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """delete: 202, empty body; an active job is stopped; it stays visible for v2_delete_lag,
    then is gone from detail and search (2775), kept in ground truth marked deleted."""
    async with serve(clock, v2_delete_lag=40, v2_terminating_seconds=0) as emu:
        _, job = await create(session, emu, V2_EXAMPLE)
        job_id = job["metadata"]["id"]
        assert await delete(session, emu, job_id) == (202, "")
        clock.now += 39
        status, body = await detail(session, emu, job_id)
        assert (status, body["status"]["phase"]) == (200, "Terminated")
        assert await names(session, emu) == [NAME]
        assert (await delete(session, emu, job_id))[0] == 202  # still being deleted
        clock.now += 1
        assert (await detail(session, emu, job_id))[1]["error_code"] == "ModelArts.2775"
        assert (await delete(session, emu, job_id))[1]["error_code"] == "ModelArts.2775"
        assert await names(session, emu) == []
        [truth] = emu.v2_jobs()
        assert truth["deleted"] and not truth["visible"] and truth["phase"] == "Terminated"


# --- lag and faults -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_search_lag_hides_a_new_job_from_search_and_detail(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """With search_lag a new job is absent from search and detail (2775), not from truth, and
    its name is taken at once."""
    async with serve(clock, search_lag=5) as emu:
        _, job = await create(session, emu, V2_EXAMPLE)
        job_id = job["metadata"]["id"]
        assert await names(session, emu, filters=by_name(NAME)) == []
        assert (await detail(session, emu, job_id))[1]["error_code"] == "ModelArts.2775"
        assert (await create(session, emu, V2_EXAMPLE))[1]["error_code"] == "ModelArts.2751"
        assert emu.v2_jobs()[0]["visible"] is False
        clock.now += 5
        assert await names(session, emu, filters=by_name(NAME)) == [NAME]
        assert (await detail(session, emu, job_id))[0] == 200


@pytest.mark.asyncio
async def test_injected_500_creates_nothing(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """error_500_share=1 answers 500 ModelArts.0010 (v2 shape) before creating anything."""
    async with serve(clock, error_500_share=1.0) as emu:
        assert await create(session, emu, V2_EXAMPLE) == (
            500,
            {"error_code": "ModelArts.0010", "error_msg": "internal error"},
        )
        assert (await search(session, emu))[0] == 200  # reads unaffected by default
        assert emu.v2_jobs() == [] and emu.counters["faults_500"] == 1


@pytest.mark.asyncio
async def test_faults_on_lists_reach_search_and_detail(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """With faults_on_lists, error_500_share also fails v2 search and detail."""
    async with serve(clock) as emu:
        _, job = await create(session, emu, V2_EXAMPLE)
        emu.set_faults(error_500_share=1.0, faults_on_lists=True)
        assert (await search(session, emu))[0] == 500
        assert (await detail(session, emu, job["metadata"]["id"]))[0] == 500


@pytest.mark.asyncio
async def test_unknown_v2_routes_are_the_gateways_404(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """A path or method the v2 API lacks is 404 APIGW.0101 in the gateway's shape."""
    async with serve(clock) as emu:
        for method, url in (("GET", jobs_url(emu)), ("POST", f"{emu.url}/v2/{PID}/nothing")):
            status, body = await call(session, method, url, {})
            assert (status, body["error_code"]) == (404, "APIGW.0101")
            assert set(body) == {"error_code", "error_msg", "request_id"}


@pytest.mark.parametrize("kind", ["500", "reset", "stall"])
@pytest.mark.asyncio
async def test_ambiguous_commit_creates_the_job_but_hides_the_reply(
    session: aiohttp.ClientSession, clock: FakeClock, kind: str
) -> None:
    """An ambiguous commit (500, reset, stall) creates the job; the resend is then 2751."""
    knobs = {"ambiguous_share": 1.0, "ambiguous_kinds": {kind}, "stall_seconds": 30}
    async with serve(clock, **knobs) as emu:
        timeout = aiohttp.ClientTimeout(total=0.2)
        if kind == "500":
            status, body = await create(session, emu, V2_EXAMPLE)
            assert (status, body["error_code"]) == (500, "ModelArts.0010")
        else:
            error = TimeoutError if kind == "stall" else aiohttp.ClientConnectionError
            with pytest.raises(error):
                await create(session, emu, V2_EXAMPLE, timeout=timeout)
        [truth] = emu.v2_jobs()
        assert (truth["name"], truth["ambiguous"]) == (NAME, kind)
        assert emu.counters[f"ambiguous_{kind}"] == 1
        emu.set_faults(ambiguous_share=0.0)
        assert (await create(session, emu, V2_EXAMPLE))[1]["error_code"] == "ModelArts.2751"
        assert await names(session, emu, filters=by_name(NAME)) == [NAME]


@pytest.mark.asyncio
async def test_throttling_is_shared_with_v1(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """One bucket per project for both APIs: a 429 APIGW.0308 in the gateway's shape."""
    async with serve(clock, rate=1, burst=2) as emu:
        assert (await create(session, emu, V2_EXAMPLE))[0] == 201
        assert (await call(session, "GET", f"{emu.url}/v1/{PID}/training-jobs/10/versions"))[
            0
        ] == 200
        status, body = await search(session, emu)
        assert (status, body["error_code"]) == (429, "APIGW.0308")
        assert set(body) == {"error_code", "error_msg", "request_id"}
        clock.now += 1
        assert (await search(session, emu))[0] == 200


@pytest.mark.asyncio
async def test_quota_of_active_jobs(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """With v2_quota, a create beyond that many active jobs is 400 ModelArts.2815; ended and
    terminated jobs do not count."""
    async with serve(clock, v2_quota=2, v2_terminating_seconds=0) as emu:
        ids = await created_at_steps(session, emu, clock, 2)
        status, body = await create(session, emu, named("third"))
        assert (status, body["error_code"]) == (400, "ModelArts.2815")
        await terminate(session, emu, ids[0])
        assert (await create(session, emu, named("third")))[0] == 201
        assert (await create(session, emu, named("fourth")))[0] == 400
        clock.now += 3600
        assert (await create(session, emu, named("fourth")))[0] == 201


@pytest.mark.asyncio
async def test_token_auth_and_project_check_gate_v2(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """v2 calls pass the same gate: a missing token is 401, another project 403."""
    async with serve(clock, auth="token", tokens=["tok"]) as emu:
        status, body = await create(session, emu, V2_EXAMPLE)
        assert (status, body["error_code"]) == (401, "ModelArts.0201")
        headers = {"X-Auth-Token": "tok"}
        status, body = await call(
            session, "POST", f"{emu.url}/v2/other/training-jobs", V2_EXAMPLE, headers=headers
        )
        assert (status, body["error_code"]) == (403, "ModelArts.0210")
        assert (await create(session, emu, V2_EXAMPLE, headers=headers))[0] == 201


@pytest.mark.asyncio
async def test_ids_are_uuids_from_the_seed(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The same seed gives the same job ids; another seed other ones."""
    runs = []
    for seed in (3, 3, 4):
        async with serve(clock, seed=seed) as emu:
            runs.append([job_id for job_id in await created_at_steps(session, emu, clock, 2)])
    assert runs[0] == runs[1] != runs[2]


# --- state file, admin, CLI -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_v2_jobs_survive_a_restart_and_v1_state_files_still_load(
    session: aiohttp.ClientSession, clock: FakeClock, tmp_path: Path
) -> None:
    """The state file keeps v2 jobs under an optional v2_jobs key; a file without it loads."""
    state_file = tmp_path / "emu.json"
    async with serve(clock, state_file=state_file, admin=True) as emu:
        _, job = await create(session, emu, V2_EXAMPLE)
        _, admin = await call(session, "GET", f"{emu.url}/_admin/state")
        assert [j["id"] for j in admin["v2_jobs"]] == [job["metadata"]["id"]]
    async with serve(clock, state_file=state_file) as emu:
        assert (await detail(session, emu, job["metadata"]["id"]))[1] == job
        assert (await create(session, emu, V2_EXAMPLE))[1]["error_code"] == "ModelArts.2751"
    saved = json.loads(state_file.read_text())
    del saved["v2_jobs"]
    state_file.write_text(json.dumps(saved))
    async with serve(clock, state_file=state_file) as emu:
        assert emu.v2_jobs() == [] and [v["version_id"] for v in emu.versions()] == [20]


def _parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batchsubmit")
    register(parser.add_subparsers())
    return parser.parse_args(["emulator", *flags])


def test_every_v2_flag_becomes_its_config_field() -> None:
    """Each v2 flag sets its field; without flags, the config's defaults; all are runtime knobs."""
    defaults = build_config(_parse())
    assert defaults.model_dump(include=V2_KNOBS) == EmulatorConfig().model_dump(include=V2_KNOBS)
    flags = [
        "--v2-offset", "record", "--v2-count", "page", "--v2-default-limit", "7",
        "--v2-limit-range", "clamp", "--v2-like", "sql-like", "--v2-name-scope", "project",
        "--v2-name-case", "insensitive", "--v2-name-reuse", "never", "--v2-race-window", "0.5",
        "--v2-quota", "20", "--v2-delete-lag", "5", "--search-lag", "2",
        "--v2-creating-seconds", "3", "--v2-pending-seconds", "4", "--v2-running-seconds", "5",
        "--v2-terminating-seconds", "6", "--abnormal-share", "0.25",
    ]  # fmt: skip
    assert build_config(_parse(*flags)).model_dump(include=V2_KNOBS) == {
        "v2_offset": "record", "v2_count": "page", "v2_default_limit": 7,
        "v2_limit_range": "clamp", "v2_like": "sql-like", "v2_name_scope": "project",
        "v2_name_case": "insensitive", "v2_name_reuse": "never", "v2_race_window": 0.5,
        "v2_quota": 20, "v2_delete_lag": 5.0, "search_lag": 2.0, "v2_creating_seconds": 3.0,
        "v2_pending_seconds": 4.0, "v2_running_seconds": 5.0, "v2_terminating_seconds": 6.0,
        "abnormal_share": 0.25,
    }  # fmt: skip
    assert V2_KNOBS <= RUNTIME_KNOBS
    with pytest.raises(ValueError, match="abnormal_share"):
        EmulatorConfig(failure_share=0.6, abnormal_share=0.6)


def test_help_cites_section_7_for_each_switch(capsys: pytest.CaptureFixture[str]) -> None:
    """--help explains every section-7 switch beside a citation of that section."""
    with pytest.raises(SystemExit):
        _parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    options = text.index("the v2 API:")
    for flag in (
        "--v2-offset", "--v2-count", "--v2-default-limit", "--v2-limit-range", "--v2-like",
        "--v2-name-scope", "--v2-name-case", "--v2-name-reuse", "--v2-race-window",
        "--v2-quota", "--v2-delete-lag", "--search-lag", "--v2-running-seconds",
    ):  # fmt: skip
        start = text.index(flag, options)
        assert "section 7" in text[start : start + 400], flag

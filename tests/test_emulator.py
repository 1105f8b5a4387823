"""The ModelArts v1 emulator, driven by a raw aiohttp client over the loopback socket.

Time is a fake clock wherever the emulator reads time (status, list lag, X-Sdk-Date window, token
buckets), so nothing here sleeps to wait for a state change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy
from pydantic import SecretStr
from structlog.testing import capture_logs
from yarl import URL

from batchsubmit.cli import main
from batchsubmit.emulator import (
    DEFAULT_PROJECT_ID,
    Emulator,
    EmulatorConfig,
    run_emulator,
    signature,
)
from batchsubmit.emulator.throttle import TokenBucket
from tests.fakes import DROP, EXAMPLE, body_with

PID = DEFAULT_PROJECT_ID
EPOCH_2024 = 1_704_067_200.0  # 2024-01-01T00:00:00Z, the date of auth.md's test vectors
AK, SK = "AKTESTAKTESTAKTEST", "SKtestSKtestSKtestSKtestSKtestSKtestSKte"


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = EPOCH_2024) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@asynccontextmanager
async def serve(clock: Callable[[], float], **knobs: Any) -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(**knobs), clock=clock) as emu:
        yield emu


def versions_url(emu: Emulator, job_id: int | str = 10, suffix: str = "") -> str:
    return f"{emu.url}/v1/{PID}/training-jobs/{job_id}/versions{suffix}"



async def post_json(
    session: aiohttp.ClientSession, url: str, body: Any, **kwargs: Any
) -> tuple[int, dict[str, Any], CIMultiDictProxy[str]]:
    async with session.post(url, json=body, **kwargs) as response:
        return response.status, await response.json(), response.headers


async def get_json(
    session: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with session.get(url, **kwargs) as response:
        return response.status, await response.json()


# --- create: the happy path ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_documented_example_creates_version_with_contract_body(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The spec's example (job 10, pre_version 20, trailing slash) answers the contract body."""
    async with serve(clock) as emu:
        status, body, headers = await post_json(session, versions_url(emu, suffix="/"), EXAMPLE)
        assert status == 200
        assert body == {
            "is_success": True,
            "job_id": 10,
            "job_name": "job-10",
            "status": 1,
            "create_time": int(EPOCH_2024 * 1000),
            "version_id": 21,
            "version_name": "V0002",
        }
        assert len(headers["X-Request-Id"]) >= 16
        truth = emu.versions(job_id=10)
        assert [v["version_id"] for v in truth] == [20, 21]
        assert truth[-1]["train_url"] == "/usr/train/"
        assert truth[0]["parameter"] == [] and truth[0]["model_id"] is None
        assert truth[-1]["parameter"] == EXAMPLE["config"]["parameter"]
        assert truth[-1]["request_id"] == headers["X-Request-Id"]
        assert emu.counters["creates"] == 1


@pytest.mark.asyncio
async def test_ids_are_global_and_names_count_per_job(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """New ids come from one counter above all seeded ids; names V0002.. count per job."""
    async with serve(clock, jobs={10: 20, 11: 21, 12: 22}) as emu:
        created = []
        for job_id, pre in ((11, 21), (10, 20), (11, 21)):
            body = body_with({"config.pre_version_id": pre})
            _, reply, _ = await post_json(session, versions_url(emu, job_id), body)
            created.append((reply["job_id"], reply["version_id"], reply["version_name"]))
        assert created == [(11, 23, "V0002"), (10, 24, "V0002"), (11, 25, "V0003")]


@pytest.mark.asyncio
async def test_create_job_then_version(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """A created job gets V0001 and takes versions like a seeded one."""
    async with serve(clock) as emu:
        config = body_with({"config.pre_version_id": DROP})["config"]
        status, job, _ = await post_json(
            session, f"{emu.url}/v1/{PID}/training-jobs", {"job_name": "sweep-1", "config": config}
        )
        assert status == 200
        assert job["version_name"] == "V0001" and job["job_name"] == "sweep-1"
        body = body_with({"config.pre_version_id": job["version_id"]})
        status, reply, _ = await post_json(session, versions_url(emu, job["job_id"]), body)
        assert (status, reply["version_name"]) == (200, "V0002")
        status, dup, _ = await post_json(
            session, f"{emu.url}/v1/{PID}/training-jobs", {"job_name": "sweep-1", "config": config}
        )
        assert (status, dup["error_code"]) == (400, "ModelArts.0107")


# --- create: validation --------------------------------------------------------------------------

MODEL_ONLY = {"config.app_url": DROP, "config.boot_file_url": DROP, "config.model_id": 3}
DATA_URL_ONLY = {
    "config.dataset_id": DROP,
    "config.dataset_version_id": DROP,
    "config.data_url": "/bucket/data/",
}
SOURCES_ONLY = {"config.dataset_id": DROP, "config.dataset_version_id": DROP}
OBS = {"type": "obs", "data_url": "/bucket/data/"}
DATASET = {"type": "dataset", "dataset_id": "a", "dataset_version": "b"}

VALID_VARIANTS = {
    "model_id instead of code": MODEL_ONLY,
    "data_url": DATA_URL_ONLY,
    "data_source obs": {**SOURCES_ONLY, "config.data_source": [OBS, OBS]},
    "data_source dataset": {**SOURCES_ONLY, "config.data_source": [DATASET]},
    "no job_desc, no optional fields": {"job_desc": DROP, "config.log_url": DROP},
    "empty parameter item": {"config.parameter": [{}]},
    "custom image": {"config.user_image_url": "swr/x:1", "config.user_command": "bash run.sh"},
}

INVALID = [
    ("unknown top field", {"jobdesc": "x"}, "ModelArts.0101", "jobdesc"),
    (
        "unknown config field",
        {"config.learning_rate": "1"},
        "ModelArts.0101",
        "config.learning_rate",
    ),
    (
        "unknown parameter field",
        {"config.parameter.0.name": "lr"},
        "ModelArts.0101",
        "parameter[0].name",
    ),
    (
        "unknown data_source field",
        {**SOURCES_ONLY, "config.data_source": [{**OBS, "path": "/x/"}]},
        "ModelArts.0101",
        "data_source[0].path",
    ),
    ("unknown field wins over missing", {"x": 1, "config.spec_id": DROP}, "ModelArts.0101", "x"),
    ("missing config", {"config": DROP}, "ModelArts.0101", "config"),
    (
        "missing workers",
        {"config.worker_server_num": DROP},
        "ModelArts.0101",
        "config.worker_server_num",
    ),
    ("missing spec_id", {"config.spec_id": DROP}, "ModelArts.0101", "config.spec_id"),
    ("missing train_url", {"config.train_url": DROP}, "ModelArts.0101", "config.train_url"),
    (
        "missing pre_version",
        {"config.pre_version_id": DROP},
        "ModelArts.0101",
        "config.pre_version_id",
    ),
    ("config not object", {"config": []}, "ModelArts.0101", "config"),
    ("int as string", {"config.spec_id": "1"}, "ModelArts.0101", "config.spec_id"),
    ("int as bool", {"config.worker_server_num": True}, "ModelArts.0101", "worker_server_num"),
    ("int as float", {"config.pre_version_id": 20.0}, "ModelArts.0101", "pre_version_id"),
    ("string as int", {"config.train_url": 5}, "ModelArts.0101", "config.train_url"),
    ("string as null", {"config.log_url": None}, "ModelArts.0101", "config.log_url"),
    ("desc as int", {"job_desc": 3}, "ModelArts.0101", "job_desc"),
    ("parameter not list", {"config.parameter": {"lr": "1"}}, "ModelArts.0101", "config.parameter"),
    ("parameter item not object", {"config.parameter": ["lr=1"]}, "ModelArts.0101", "parameter[0]"),
    ("parameter value number", {"config.parameter.0.value": 0.01}, "ModelArts.0101", "[0].value"),
    (
        "type error wins over long desc",
        {"job_desc": "d" * 300, "config.spec_id": "1"},
        "ModelArts.0101",
        "spec_id",
    ),
    ("desc too long", {"job_desc": "d" * 257}, "ModelArts.0107", "job_desc"),
    (
        "no code source",
        {"config.app_url": DROP, "config.boot_file_url": DROP},
        "ModelArts.2788",
        "model_id",
    ),
    ("app_url alone", {"config.boot_file_url": DROP}, "ModelArts.2788", "config.boot_file_url"),
    (
        "boot alone with model",
        {**MODEL_ONLY, "config.boot_file_url": "/a/b.py"},
        "ModelArts.2788",
        "app_url",
    ),
    ("no data source", SOURCES_ONLY, "ModelArts.2788", "exactly one"),
    ("two data sources", {"config.data_url": "/d/"}, "ModelArts.2788", "config.data_url"),
    (
        "lone dataset_id",
        {"config.dataset_version_id": DROP},
        "ModelArts.2788",
        "dataset_version_id",
    ),
    (
        "lone dataset_version_id",
        {**DATA_URL_ONLY, "config.dataset_version_id": "v"},
        "ModelArts.2788",
        "config.dataset_id",
    ),
    ("empty data_source", {**SOURCES_ONLY, "config.data_source": []}, "ModelArts.2788", "empty"),
    (
        "obs without data_url",
        {**SOURCES_ONLY, "config.data_source": [{"type": "obs"}]},
        "ModelArts.2788",
        "data_source[0]",
    ),
    (
        "obs with dataset_id",
        {**SOURCES_ONLY, "config.data_source": [{**OBS, "dataset_id": "a"}]},
        "ModelArts.2788",
        "data_source[0]",
    ),
    (
        "dataset without version",
        {**SOURCES_ONLY, "config.data_source": [{"type": "dataset", "dataset_id": "a"}]},
        "ModelArts.2788",
        "dataset_version",
    ),
    (
        "dataset with data_url",
        {**SOURCES_ONLY, "config.data_source": [{**DATASET, "data_url": "/d/"}]},
        "ModelArts.2788",
        "data_url",
    ),
    (
        "obs and dataset mixed",
        {**SOURCES_ONLY, "config.data_source": [OBS, DATASET]},
        "ModelArts.2788",
        "mixes",
    ),
    (
        "unknown type",
        {**SOURCES_ONLY, "config.data_source": [{"type": "s3", "data_url": "/d/"}]},
        "ModelArts.2788",
        "data_source[0].type",
    ),
    (
        "boot outside app",
        {"config.boot_file_url": "/other/boot.py"},
        "ModelArts.2791",
        "boot_file_url",
    ),
    ("boot file outside app_url", {"config.app_url": "/usr/ap"}, "ModelArts.2791",
     "config.boot_file_url"),
    ("boot equals app", {"config.boot_file_url": "/usr/app/"}, "ModelArts.2791", "boot_file_url"),
    ("zero workers", {"config.worker_server_num": 0}, "ModelArts.0107", "worker_server_num"),
    ("zero spec", {"config.spec_id": 0}, "ModelArts.0107", "config.spec_id"),
    ("negative engine", {"config.engine_id": -1}, "ModelArts.0107", "config.engine_id"),
    ("zero model", {**MODEL_ONLY, "config.model_id": 0}, "ModelArts.0107", "config.model_id"),
    ("pre_version of no job", {"config.pre_version_id": 999}, "ModelArts.4851", "pre_version_id"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("changes", VALID_VARIANTS.values(), ids=list(VALID_VARIANTS))
async def test_valid_variants_are_accepted(
    session: aiohttp.ClientSession, clock: FakeClock, changes: dict[str, Any]
) -> None:
    """Every documented form of code and data source is accepted."""
    async with serve(clock) as emu:
        status, body, _ = await post_json(session, versions_url(emu), body_with(changes))
        assert (status, body["is_success"]) == (200, True), body


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "code", "needle"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
async def test_invalid_bodies_get_their_error_code(
    session: aiohttp.ClientSession,
    clock: FakeClock,
    changes: dict[str, Any],
    code: str,
    needle: str,
) -> None:
    """Each create-version rule answers 400 with its code, names the field, and creates nothing."""
    async with serve(clock) as emu:
        status, body, _ = await post_json(session, versions_url(emu), body_with(changes))
        assert status == 400
        assert set(body) == {"is_success", "error_code", "error_message"}
        assert (body["is_success"], body["error_code"]) == (False, code)
        assert needle in body["error_message"]
        assert emu.counters["creates"] == 0 and len(emu.versions()) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "raw", [b"{", b"[1, 2]", b"\xff\xfe", b""], ids=["cut", "array", "bytes", "empty"]
)
async def test_body_not_a_json_object_is_2787(
    session: aiohttp.ClientSession, clock: FakeClock, raw: bytes
) -> None:
    """A body that is not one JSON object answers 400 ModelArts.2787."""
    async with serve(clock) as emu, session.post(versions_url(emu), data=raw) as response:
        assert response.status == 400
        assert (await response.json())["error_code"] == "ModelArts.2787"


@pytest.mark.asyncio
async def test_unknown_job_and_version_quota(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Unknown job is 2775, a pre_version of another job 4851, a full job 0118."""
    async with serve(clock, jobs={10: 20, 11: 21}, max_versions_per_job=2) as emu:
        status, body, _ = await post_json(session, versions_url(emu, 99), EXAMPLE)
        assert (status, body["error_code"]) == (400, "ModelArts.2775")
        status, body, _ = await post_json(session, versions_url(emu, "abc"), EXAMPLE)
        assert (status, body["error_code"]) == (400, "ModelArts.2775")
        other = body_with({"config.pre_version_id": 21})
        status, body, _ = await post_json(session, versions_url(emu, 10), other)
        assert (status, body["error_code"]) == (400, "ModelArts.4851")
        assert (await post_json(session, versions_url(emu), EXAMPLE))[0] == 200
        status, body, _ = await post_json(session, versions_url(emu), EXAMPLE)
        assert (status, body["error_code"]) == (400, "ModelArts.0118")
        assert emu.counters["creates"] == 1


# --- reads ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_list_versions_paging(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """page 0 (default) lists all, newest first; page N is the Nth slice of per_page."""
    async with serve(clock) as emu:
        for _ in range(5):
            await post_json(session, versions_url(emu), EXAMPLE)
        status, body = await get_json(session, versions_url(emu))
        assert status == 200
        assert [v["version_id"] for v in body["versions"]] == [25, 24, 23, 22, 21, 20]
        assert body["version_count"] == 6 and body["job_name"] == "job-10"
        pages = []
        for page in (1, 2, 3, 4):
            _, body = await get_json(session, versions_url(emu) + f"?page={page}&per_page=2")
            pages.append([v["version_id"] for v in body["versions"]])
            assert body["version_count"] == 6
        assert pages == [[25, 24], [23, 22], [21, 20], []]
        _, body = await get_json(session, versions_url(emu) + "?page=1")
        assert len(body["versions"]) == 6  # per_page defaults to 10
        for query, code in (("per_page=0", "ModelArts.0107"), ("page=x", "ModelArts.0101")):
            status, body = await get_json(session, versions_url(emu) + "?" + query)
            assert (status, body["error_code"]) == (400, code)
        assert emu.counters["lists"] == 6


@pytest.mark.asyncio
async def test_version_fields_in_list_and_detail(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """List items and detail carry every documented version field; unknown ids are 2775/4851."""
    fields = {
        "version_id", "version_name", "pre_version_id", "status", "create_time", "duration",
        "app_url", "boot_file_url", "parameter", "spec_id", "worker_server_num", "data_url",
        "dataset_id", "dataset_version_id", "data_source", "model_id", "engine_id", "engine_name",
        "engine_version", "train_url", "log_url", "user_image_url", "user_command", "start_time",
    }  # fmt: skip
    async with serve(clock) as emu:
        await post_json(session, versions_url(emu), EXAMPLE)
        _, listing = await get_json(session, versions_url(emu))
        assert fields <= set(listing["versions"][0])
        status, detail = await get_json(session, versions_url(emu, suffix="/21"))
        assert status == 200
        assert fields | {"is_success", "job_id", "job_name"} <= set(detail)
        assert (detail["pre_version_id"], detail["parameter"]) == (
            20,
            EXAMPLE["config"]["parameter"],
        )
        status, body = await get_json(session, versions_url(emu, suffix="/77"))
        assert (status, body["error_code"]) == (400, "ModelArts.4851")
        status, body = await get_json(session, versions_url(emu, 77, "/21"))
        assert (status, body["error_code"]) == (400, "ModelArts.2775")


@pytest.mark.asyncio
async def test_list_jobs(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """Jobs list newest first with paging and their latest visible version."""
    async with serve(clock, jobs={10: 20, 11: 21, 12: 22}) as emu:
        clock.advance(1)
        await post_json(session, versions_url(emu, 11), body_with({"config.pre_version_id": 21}))
        url = f"{emu.url}/v1/{PID}/training-jobs"
        status, body = await get_json(session, url + "?per_page=2&page=1")
        assert status == 200
        assert body["job_total_count"] == 3
        assert {"job_count_limit", "quotas"} <= set(body)
        assert [job["job_id"] for job in body["jobs"]] == [12, 11]
        assert body["jobs"][1]["version_id"] == 23 and body["jobs"][1]["version_count"] == 2
        _, body = await get_json(session, url + "?per_page=2&page=2")
        assert [job["job_id"] for job in body["jobs"]] == [10]
        status, body = await get_json(session, url + "?page=0")
        assert (status, body["error_code"]) == (400, "ModelArts.0107")


@pytest.mark.asyncio
async def test_list_lag_hides_new_version_from_reads_not_truth(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """With list_lag, a new version is missing from list and detail until the lag has passed."""
    async with serve(clock, list_lag=5.0) as emu:
        _, created, _ = await post_json(session, versions_url(emu), EXAMPLE)
        version_id = created["version_id"]
        assert [v["version_id"] for v in emu.versions(10)] == [20, version_id]
        _, listing = await get_json(session, versions_url(emu))
        assert [v["version_id"] for v in listing["versions"]] == [20]
        assert listing["version_count"] == 1
        status, body = await get_json(session, versions_url(emu, suffix=f"/{version_id}"))
        assert (status, body["error_code"]) == (400, "ModelArts.4851")
        clock.advance(4.9)
        _, listing = await get_json(session, versions_url(emu))
        assert listing["version_count"] == 1
        clock.advance(0.1)
        _, listing = await get_json(session, versions_url(emu))
        assert [v["version_id"] for v in listing["versions"]] == [version_id, 20]
        status, _ = await get_json(session, versions_url(emu, suffix=f"/{version_id}"))
        assert status == 200


@pytest.mark.asyncio
async def test_status_progresses_with_the_clock(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """INIT for init_seconds, RUNNING for run_seconds, then COMPLETED, or FAILED by share."""
    async with serve(clock, init_seconds=2, run_seconds=3) as emu:
        _, created, _ = await post_json(session, versions_url(emu), EXAMPLE)
        detail_url = versions_url(emu, suffix=f"/{created['version_id']}")
        seen = []
        for step in (0, 1.9, 0.1, 2.9, 0.1, 100):
            clock.advance(step)
            _, detail = await get_json(session, detail_url)
            seen.append((detail["status"], detail["duration"]))
        assert seen == [(1, 0), (1, 0), (8, 0), (8, 2900), (10, 3000), (10, 3000)]
        emu.set_faults(failure_share=1.0)
        _, failing, _ = await post_json(session, versions_url(emu), EXAMPLE)
        clock.advance(5)
        assert emu.versions(10)[-1]["status"] == 11
        assert failing["status"] == 1


@pytest.mark.asyncio
async def test_stop_and_delete(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """Stop turns a running version KILLED; delete hides it from reads but not from truth."""
    async with serve(clock, init_seconds=0, run_seconds=60) as emu:
        await post_json(session, versions_url(emu), EXAMPLE)
        status, body, _ = await post_json(session, versions_url(emu, suffix="/21/stop"), None)
        assert (status, body) == (200, {"is_success": True})
        clock.advance(1)
        assert emu.versions(10)[-1]["status"] == 12
        async with session.delete(versions_url(emu, suffix="/21")) as response:
            assert (response.status, await response.json()) == (200, {"is_success": True})
        _, listing = await get_json(session, versions_url(emu))
        assert [v["version_id"] for v in listing["versions"]] == [20]
        assert emu.versions(10)[-1]["deleted"] is True
        status, body, _ = await post_json(session, versions_url(emu, suffix="/21/stop"), None)
        assert (status, body["error_code"]) == (400, "ModelArts.4851")


# --- throttling and faults -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_throttling_answers_apigw_0308_without_retry_after(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Beyond the bucket, any API call gets 429 APIGW.0308 naming its policy; time refills it."""
    async with serve(clock, rate=2, burst=2) as emu:
        assert (await post_json(session, versions_url(emu), EXAMPLE))[0] == 200
        assert (await get_json(session, versions_url(emu)))[0] == 200
        async with session.get(versions_url(emu)) as response:
            assert response.status == 429
            assert "Retry-After" not in response.headers  # G2: not known to be sent
            body = await response.json()
        assert body == {
            "error_code": "APIGW.0308",
            "error_msg": "The throttling threshold has been reached: policy user over "
            "ratelimit,limit:2,time:1 second",
            "request_id": response.headers["X-Request-Id"],
        }
        status, _, _ = await post_json(session, versions_url(emu), EXAMPLE)
        assert status == 429
        clock.advance(0.5)
        assert (await post_json(session, versions_url(emu), EXAMPLE))[0] == 200
        assert emu.counters["throttled"] == 2 and emu.counters["creates"] == 2


@pytest.mark.asyncio
async def test_retry_after_is_sent_when_asked(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """retry_after=True adds Retry-After (whole seconds, at least 1) to every 429."""
    async with serve(clock, rate=0.25, burst=1, retry_after=True) as emu:
        await get_json(session, versions_url(emu))
        async with session.get(versions_url(emu)) as response:
            assert (response.status, response.headers["Retry-After"]) == (429, "4")
        clock.advance(3.5)
        async with session.get(versions_url(emu)) as response:
            assert (response.status, response.headers["Retry-After"]) == (429, "1")
        emu.set_faults(retry_after=False)
        async with session.get(versions_url(emu)) as response:
            assert response.status == 429 and "Retry-After" not in response.headers


def test_token_bucket_refills_at_its_rate() -> None:
    """A bucket admits its burst, then one request per 1/rate seconds, and says how long to wait."""
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=10, capacity=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [None, None, None]
    assert bucket.try_acquire() == pytest.approx(0.1)
    clock.advance(0.05)
    assert bucket.try_acquire() == pytest.approx(0.05)
    clock.advance(0.05)
    assert bucket.try_acquire() is None
    clock.advance(100)
    assert bucket.level == 3
    assert "level=3.00" in repr(bucket)


@pytest.mark.asyncio
async def test_injected_500_creates_nothing(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """error_500_share=1 answers 500 ModelArts.0010 before creating; turning it off heals."""
    async with serve(clock, error_500_share=1.0) as emu:
        with capture_logs() as events:
            status, body, _ = await post_json(session, versions_url(emu), EXAMPLE)
        assert [e["event"] for e in events] == ["batchsubmit.emulator.fault_500"]
        assert status == 500
        assert body == {
            "is_success": False,
            "error_code": "ModelArts.0010",
            "error_message": "internal error",
        }
        assert (await get_json(session, versions_url(emu)))[0] == 200  # reads unaffected
        assert len(emu.versions()) == 1 and emu.counters["faults_500"] == 1
        emu.set_faults(error_500_share=0.0)
        assert (await post_json(session, versions_url(emu), EXAMPLE))[0] == 200


@pytest.mark.asyncio
async def test_ambiguous_500_creates_then_fails(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """An ambiguous 500 comes after the version was created."""
    async with serve(clock, ambiguous_share=1.0, ambiguous_kinds={"500"}) as emu:
        status, body, _ = await post_json(session, versions_url(emu), EXAMPLE)
        assert (status, body["error_code"]) == (500, "ModelArts.0010")
        assert emu.versions(10)[-1]["ambiguous"] == "500"
        assert emu.counters["creates"] == 1 and emu.counters["ambiguous_500"] == 1


@pytest.mark.asyncio
async def test_ambiguous_reset_creates_then_drops_connection(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """An ambiguous reset creates the version and drops the connection without a reply."""
    async with serve(clock, ambiguous_share=1.0, ambiguous_kinds={"reset"}) as emu:
        with pytest.raises(aiohttp.ClientConnectionError):
            await post_json(session, versions_url(emu), EXAMPLE)
        assert [v["version_id"] for v in emu.versions(10)] == [20, 21]
        emu.set_faults(ambiguous_share=0.0)
        assert (await post_json(session, versions_url(emu), EXAMPLE))[0] == 200


@pytest.mark.asyncio
async def test_ambiguous_stall_creates_then_outlasts_client_timeout(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """An ambiguous stall creates the version and holds the reply past the client's timeout."""
    started = time.monotonic()
    async with serve(
        clock, ambiguous_share=1.0, ambiguous_kinds={"stall"}, stall_seconds=30
    ) as emu:
        with pytest.raises(TimeoutError):
            await post_json(
                session, versions_url(emu), EXAMPLE, timeout=aiohttp.ClientTimeout(total=0.2)
            )
        assert emu.versions(10)[-1]["ambiguous"] == "stall"
    assert time.monotonic() - started < 5  # shutdown does not wait out the stall


@pytest.mark.asyncio
async def test_faults_are_reproducible_by_seed(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The same seed and request sequence give the same faults."""
    outcomes = []
    for _ in range(2):
        async with serve(clock, seed=42, error_500_share=0.5) as emu:
            statuses = [
                (await post_json(session, versions_url(emu), EXAMPLE))[0] for _ in range(12)
            ]
            outcomes.append(statuses)
    assert outcomes[0] == outcomes[1] and {200, 500} == set(outcomes[0])


# --- auth ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_token_auth(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """Token mode: no token 401 ModelArts.0201, unknown token 0203, a configured one passes."""
    async with serve(clock, auth="token", tokens=["tok-1"]) as emu:
        status, body = await get_json(session, versions_url(emu))
        assert (status, body["error_code"]) == (401, "ModelArts.0201")
        status, body = await get_json(session, versions_url(emu), headers={"X-Auth-Token": "bad"})
        assert (status, body["error_code"]) == (401, "ModelArts.0203")
        status, _ = await get_json(session, versions_url(emu), headers={"X-Auth-Token": "tok-1"})
        assert status == 200
        assert emu.counters["auth_failures"] == 2


@pytest.mark.asyncio
async def test_other_project_is_403(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """A project id other than the emulator's answers 403 ModelArts.0210."""
    async with serve(clock) as emu:
        status, body = await get_json(session, f"{emu.url}/v1/other/training-jobs/10/versions")
        assert (status, body["error_code"]) == (403, "ModelArts.0210")


VECTOR_HOST = "modelarts.cn-north-4.myhuaweicloud.com"
VECTOR_BASE = f"/v1/{PID}/training-jobs/10/versions"
VECTOR_HEADERS = {
    "content-type": "application/json",
    "x-project-id": PID,
    "x-sdk-date": "20240101T000000Z",
    "host": VECTOR_HOST,
}
VECTORS = [
    (
        "POST",
        VECTOR_BASE,
        "",
        VECTOR_HEADERS,
        b'{"job_desc": "d", "config": {"worker_server_num": 1, "pre_version_id": 20}}',
        "content-type;host;x-project-id;x-sdk-date",
        "f3123cd484ecef0e93f9a0e1dda998d1a5002ad8df104595615a6a70da10b44c",
    ),
    (
        "GET",
        VECTOR_BASE,
        "page=1&per_page=5",
        VECTOR_HEADERS,
        b"",
        "content-type;host;x-project-id;x-sdk-date",
        "dd6d0422fe3d28bff6cf733637d87d24727f26a024dc794b8948a828758072fb",
    ),
    (
        "GET",
        VECTOR_BASE + "/11",
        "",
        {"x-sdk-date": "20240101T000000Z", "x_custom": "skipped", "host": VECTOR_HOST},
        b"",
        "host;x-sdk-date",
        "33acfa8385adcbac3b782f0ef8df763b836628a3ef68b4bd3ee11c38bc179482",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "body", "signed", "expected"),
    VECTORS,
    ids=["1", "2", "3"],
)
def test_auth_md_vectors_verify(
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    signed: str,
    expected: str,
) -> None:
    """The three test vectors of auth.md verify, and a changed body or query does not."""
    headers = {
        **headers,
        "authorization": f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={signed}, "
        f"Signature={expected}",
    }
    kwargs: dict[str, Any] = {
        "method": method,
        "raw_path": path,
        "raw_query": query,
        "headers": headers,
        "body": body,
        "secret_for": {AK: SK}.get,
        "now": EPOCH_2024 + 60,
    }
    assert signature.verify(**kwargs) == AK
    for change in ({"body": body + b" "}, {"raw_query": query + "&x=1"}):
        with pytest.raises(signature.SignatureError, match="signature mismatch"):
            signature.verify(**{**kwargs, **change})


def sign_request(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes, sk: str = SK
) -> str:
    """This file's own signer (auth.md steps 3-11), independent of the emulator's verifier."""
    signed = sorted(name.lower() for name in headers if "_" not in name)
    lowered = {name.lower(): value for name, value in headers.items()}
    uri = "/".join(quote(seg, safe="~") for seg in unquote(path).split("/"))
    uri += "" if uri.endswith("/") else "/"
    pairs = sorted(
        tuple(unquote(x) for x in (p + "=").split("=")[:2]) for p in query.split("&") if p
    )
    canonical_query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)
    canonical = "\n".join(
        [
            method,
            uri,
            canonical_query,
            "".join(f"{n}:{lowered[n].strip()}\n" for n in signed),
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"SDK-HMAC-SHA256\n{lowered['x-sdk-date']}\n{digest}"
    sig = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={';'.join(signed)}, Signature={sig}"


def test_own_signer_reproduces_vector_1() -> None:
    """The test signer agrees with auth.md, so the end-to-end tests below sign correctly."""
    method, path, query, headers, body, _, expected = VECTORS[0]
    assert sign_request(method, path, query, headers, body).endswith(f"Signature={expected}")


async def send_signed(
    session: aiohttp.ClientSession,
    emu: Emulator,
    *,
    method: str = "POST",
    path: str = VECTOR_BASE,
    query: str = "",
    body: bytes = json.dumps(EXAMPLE).encode(),
    date: str = "20240101T000000Z",
    tamper: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Sign a request for the emulator's host, let ``tamper`` change it, send it exactly."""
    host = URL(emu.url).raw_authority
    headers = {
        "Content-Type": "application/json",
        "X-Project-Id": PID,
        "X-Sdk-Date": date,
        "Host": host,
    }
    headers["Authorization"] = sign_request(method, path, query, headers, body)
    request: dict[str, Any] = {
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body": body,
    }
    if tamper is not None:
        tamper(request)
    target = emu.url + request["path"] + ("?" + request["query"] if request["query"] else "")
    async with session.request(
        request["method"],
        URL(target, encoded=True),
        headers=request["headers"],
        data=request["body"],
    ) as response:
        return response.status, await response.json()


@pytest.mark.asyncio
async def test_signed_request_verifies_end_to_end(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """AK/SK mode accepts a request signed per auth.md, for a POST and a GET with a query."""
    async with serve(clock, auth="aksk", access_keys={AK: SK}) as emu:
        status, body = await send_signed(session, emu)
        assert (status, body["version_id"]) == (200, 21)
        status, body = await send_signed(
            session, emu, method="GET", query="per_page=5&page=1", body=b""
        )
        assert (status, body["version_count"]) == (200, 2)


TAMPERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "body": (
        lambda r: r.update(body=r["body"].replace(b"/usr/train/", b"/usr/evil/")),
        "signature mismatch",
    ),
    "header": (lambda r: r["headers"].update({"Content-Type": "text/plain"}), "signature mismatch"),
    "path": (lambda r: r.update(path=r["path"].replace("/10/", "/11/")), "signature mismatch"),
    "query": (lambda r: r.update(query="page=2"), "signature mismatch"),
    "unknown AK": (
        lambda r: r["headers"].update(
            Authorization=r["headers"]["Authorization"].replace(AK, "AKOTHER")
        ),
        "unknown access key",
    ),
    "garbled": (lambda r: r["headers"].update(Authorization="SDK-HMAC-SHA256 nonsense"), "garbled"),
    "missing": (lambda r: r["headers"].pop("Authorization"), "missing Authorization"),
    "host unsigned": (
        lambda r: r["headers"].update(
            Authorization=r["headers"]["Authorization"].replace(
                "content-type;host;", "content-type;"
            )
        ),
        "must include host",
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize(("tamper", "reason"), TAMPERS.values(), ids=list(TAMPERS))
async def test_tampered_signed_request_is_apig_0301(
    session: aiohttp.ClientSession,
    clock: FakeClock,
    tamper: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    """A request changed after signing is refused with 401 APIGW.0301 and creates nothing."""
    async with serve(clock, auth="aksk", access_keys={AK: SK}, jobs={10: 20, 11: 21}) as emu:
        status, body = await send_signed(session, emu, tamper=tamper)
        assert status == 401
        assert set(body) == {"error_code", "error_msg", "request_id"}
        assert body["error_code"] == "APIGW.0301"
        assert reason in body["error_msg"] and SK not in body["error_msg"]
        assert emu.counters["creates"] == 0 and emu.counters["auth_failures"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("offset", [-16 * 60, 16 * 60])
async def test_signed_date_outside_15_minutes_is_refused(
    session: aiohttp.ClientSession, clock: FakeClock, offset: int
) -> None:
    """An X-Sdk-Date more than 15 minutes off the server clock is 401 APIGW.0301."""
    async with serve(clock, auth="aksk", access_keys={AK: SK}) as emu:
        clock.now = EPOCH_2024 + offset  # the request below is dated EPOCH_2024
        status, body = await send_signed(session, emu)
        assert (status, body["error_code"]) == (401, "APIGW.0301")
        assert "date out of window" in body["error_msg"]
        clock.now = EPOCH_2024 + offset * 14 / 16  # 14 minutes off: still inside
        assert (await send_signed(session, emu))[0] == 200


@pytest.mark.asyncio
async def test_official_sdk_signer_is_accepted(
    session: aiohttp.ClientSession,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A request signed by huaweicloudsdkcore's Signer (the oracle of auth.md) verifies."""
    monkeypatch.setenv("HOME", str(tmp_path))  # the SDK may write ~/.huaweicloud
    sdk_signer = pytest.importorskip("huaweicloudsdkcore.signer.signer")
    sdk_request = pytest.importorskip("huaweicloudsdkcore.sdk_request")
    async with serve(clock, auth="aksk", access_keys={AK: SK}) as emu:
        host = URL(emu.url).raw_authority
        body = json.dumps(body_with({"config.train_url": "/out/a b~c/"}))
        request = sdk_request.SdkRequest(
            method="POST",
            host=host,
            resource_path=VECTOR_BASE,
            query_params=[],
            header_params={
                "Content-Type": "application/json",
                "X-Project-Id": PID,
                "X-Sdk-Date": "20240101T000500Z",
            },
            body=body,
        )
        credentials = type("Credentials", (), {"ak": AK, "sk": SK})()
        sdk_signer.Signer(credentials).sign(request)
        async with session.post(
            URL(emu.url + request.uri, encoded=True),
            headers=request.header_params,
            data=request.body,
        ) as response:
            assert response.status == 200, await response.text()
        assert emu.versions(10)[-1]["train_url"] == "/out/a b~c/"


# --- state file, admin, plumbing -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_state_file_survives_a_restart(
    session: aiohttp.ClientSession, clock: FakeClock, tmp_path: Path
) -> None:
    """Versions and the id counter are saved at shutdown and loaded at the next start."""
    state_file = tmp_path / "state" / "emu.json"
    async with serve(clock, state_file=state_file, state_save_interval=30) as emu:
        await post_json(session, versions_url(emu), EXAMPLE)
    async with serve(clock, state_file=state_file) as emu:
        assert [v["version_id"] for v in emu.versions(10)] == [20, 21]
        _, reply, _ = await post_json(session, versions_url(emu), EXAMPLE)
        assert (reply["version_id"], reply["version_name"]) == (22, "V0003")
    assert not [p for p in state_file.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.asyncio
async def test_state_saved_on_every_change_when_interval_is_zero(
    session: aiohttp.ClientSession, clock: FakeClock, tmp_path: Path
) -> None:
    """state_save_interval=0 writes the file before the create's reply is sent."""
    state_file = tmp_path / "emu.json"
    async with serve(clock, state_file=state_file, state_save_interval=0) as emu:
        await post_json(session, versions_url(emu), EXAMPLE)
        saved = json.loads(state_file.read_text())
        assert sorted(v["version_id"] for v in saved["versions"]) == [20, 21]


@pytest.mark.asyncio
async def test_admin_endpoints_are_off_by_default(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Without admin=True the /_admin routes do not exist (404 APIGW.0101)."""
    async with serve(clock) as emu:
        status, body = await get_json(session, f"{emu.url}/_admin/state")
        assert (status, body["error_code"]) == (404, "APIGW.0101")
        status, _, _ = await post_json(session, f"{emu.url}/_admin/faults", {"error_500_share": 1})
        assert status == 404
        assert emu.config.error_500_share == 0


@pytest.mark.asyncio
async def test_admin_endpoints(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """Admin mode shows ground truth, changes knobs at runtime, resets; secrets stay hidden."""
    async with serve(clock, admin=True, auth="token", tokens=["tok-secret"]) as emu:
        headers = {"X-Auth-Token": "tok-secret"}
        await post_json(session, versions_url(emu), EXAMPLE, headers=headers)
        async with session.get(f"{emu.url}/_admin/state") as response:
            text = await response.text()
        state = json.loads(text)
        assert [v["version_id"] for v in state["versions"]] == [20, 21]
        assert state["counters"]["creates"] == 1
        assert "tok-secret" not in text
        status, body, _ = await post_json(
            session, f"{emu.url}/_admin/faults", {"error_500_share": 1}
        )
        assert (status, body["config"]["error_500_share"]) == (200, 1.0)
        assert (await post_json(session, versions_url(emu), EXAMPLE, headers=headers))[0] == 500
        for bad in ({"port": 1}, {"error_500_share": 2}):
            status, body, _ = await post_json(session, f"{emu.url}/_admin/faults", bad)
            assert (status, body["is_success"]) == (400, False)
        assert (await post_json(session, f"{emu.url}/_admin/reset", None))[0] == 200
        assert len(emu.versions()) == 1 and emu.counters["creates"] == 0


@pytest.mark.asyncio
async def test_every_response_has_a_unique_request_id(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Successes, errors and unknown routes all carry a distinct X-Request-Id."""
    async with serve(clock) as emu:
        ids = set()
        for url in (versions_url(emu), versions_url(emu, 99), f"{emu.url}/nowhere"):
            async with session.get(url) as response:
                ids.add(response.headers["X-Request-Id"])
        async with session.patch(versions_url(emu)) as response:
            assert response.status == 404
            ids.add(response.headers["X-Request-Id"])
        assert len(ids) == 4


def test_runtime_changes_refuse_identity_fields_and_hide_secrets() -> None:
    """set_faults-style changes cannot touch port/auth; repr and public view never show an SK."""
    config = EmulatorConfig(auth="aksk", access_keys={AK: SecretStr(SK)})
    with pytest.raises(ValueError, match="cannot change auth"):
        config.with_changes(auth="open")
    assert config.with_changes(rate=5).bucket_size == 5
    assert SK not in repr(config) and SK not in json.dumps(config.public_view())
    with pytest.raises(ValueError, match="tokens"):
        EmulatorConfig(auth="token")


@pytest.mark.asyncio
async def test_emulator_serves_through_aiohttp_test_utilities(clock: FakeClock) -> None:
    """Emulator.app runs under aiohttp's TestServer without run_emulator."""
    emu = Emulator(EmulatorConfig(), clock=clock)
    async with TestClient(TestServer(emu.app)) as client:
        response = await client.post(VECTOR_BASE, json=EXAMPLE)
        assert response.status == 200
        assert (await response.json())["version_id"] == 21


def test_cli_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """`batchsubmit emulator --help` explains the command, with examples."""
    assert main(["emulator", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--port", "--auth", "--rate", "--ambiguous-kinds", "--list-lag", "--state-file"):
        assert flag in text
    assert "examples:" in text


def test_cli_subprocess_serves_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    """The CLI prints its listening line, serves requests, and exits 0 on SIGTERM, saving state."""
    state_file = tmp_path / "state.json"
    env = {**os.environ, "MODELARTS_TOKEN": "env-token-secret"}
    command = [sys.executable, "-m", "batchsubmit", "emulator", "--port", "0", "--auth", "token"]
    command += ["--state-file", str(state_file), "--save-interval", "60"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "no listening line within 20 s"
        line = process.stdout.readline()
        assert line.startswith("batchsubmit emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        request = urllib.request.Request(
            f"{url}/v1/{PID}/training-jobs/10/versions",
            data=json.dumps(EXAMPLE).encode(),
            headers={"Content-Type": "application/json", "X-Auth-Token": "env-token-secret"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["version_id"] == 21
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out == ""  # the listening line was the only stdout
    assert f"batchsubmit run SPEC --endpoint {url} --project-id {PID}" in err  # how to use it
    assert "env-token-secret" not in out + err
    assert {v["version_id"] for v in json.loads(state_file.read_text())["versions"]} == {20, 21}

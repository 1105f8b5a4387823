"""The emulator disagreeing with the client, one switch at a time (real-service-unknowns.md).

Each switch imitates one thing the real service may do that a literal reading of the
documentation does not promise (U1..U9, G1..G5). Wire behaviour is checked over the loopback
socket with plain aiohttp; the pure parts (value echo, shuffle, paths, the gateway's counters)
also directly. Time is a fake clock: nothing sleeps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from batchsubmit.commands.emulator import build_config, connect_hint, parse_add_params, register
from batchsubmit.emulator import (
    DEFAULT_PROJECT_ID,
    RUNTIME_KNOBS,
    Emulator,
    EmulatorConfig,
    run_emulator,
)
from batchsubmit.emulator.config import DRIFT_KNOBS
from batchsubmit.emulator.drift import echo_value, normalise_obs_path, shuffled
from batchsubmit.emulator.throttle import (
    FixedWindow,
    Limit,
    SlidingWindow,
    Throttle,
    TokenBucket,
)
from batchsubmit.errors import UsageError
from tests.fakes import DROP, EXAMPLE, body_with

PID = DEFAULT_PROJECT_ID
EPOCH_2024 = 1_704_067_200.0  # a whole minute: fixed windows of 1 s and 60 s start here


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
async def serve(clock: FakeClock, **knobs: Any) -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(**knobs), clock=clock) as emu:
        yield emu


def versions_url(emu: Emulator, job_id: int = 10, suffix: str = "") -> str:
    return f"{emu.url}/v1/{PID}/training-jobs/{job_id}/versions{suffix}"


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with session.post(url, json=body, **kwargs) as response:
        return response.status, await response.json()


async def get(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.get(url, **kwargs) as response:
        return response.status, await response.json()


async def listed(session: aiohttp.ClientSession, emu: Emulator, query: str = "") -> Any:
    status, body = await get(session, versions_url(emu) + query)
    assert status == 200, body
    return body


def params(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"label": label, "value": value} for label, value in pairs]


# --- U1: values echoed as JSON numbers -----------------------------------------------------------

ECHOES = [
    ("0.010", 0.01), ("32", 32), ("1e-2", 0.01), ("-3.5E+2", -350.0), ("0", 0), ("true", True),
    ("false", False), ("007", "007"), (" 1", " 1"), ("1.", "1."), ("1e999", "1e999"),
    ("NaN", "NaN"), ("True", "True"), ("0x10", "0x10"), ("", ""), ("lr", "lr"),
]  # fmt: skip


@pytest.mark.parametrize(("sent", "echoed"), ECHOES, ids=[repr(s) for s, _ in ECHOES])
def test_echo_value_turns_finite_json_numbers_and_booleans_into_json(
    sent: str, echoed: object
) -> None:
    """Only a string that is a finite JSON number (or true/false) changes type, to that value."""
    result = echo_value(sent)
    assert result == echoed and type(result) is type(echoed)


@pytest.mark.asyncio
async def test_echo_numbers_lists_values_as_json_numbers(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """With echo_numbers, "0.010" is listed as 0.01 and "true" as true; truth keeps the strings."""
    sent = params(("lr", "0.010"), ("bs", "32"), ("wd", "1e-2"), ("aug", "true"), ("opt", "adam"))
    async with serve(clock, echo_numbers=True) as emu:
        _, created = await post(session, versions_url(emu), body_with({"config.parameter": sent}))
        async with session.get(versions_url(emu)) as response:
            raw = await response.text()
        assert '{"label": "lr", "value": 0.01}' in raw
        echoed = [{"label": "lr", "value": 0.01}, {"label": "bs", "value": 32},
                  {"label": "wd", "value": 0.01}, {"label": "aug", "value": True},
                  {"label": "opt", "value": "adam"}]  # fmt: skip
        assert json.loads(raw)["versions"][0]["parameter"] == echoed
        _, detail = await get(session, versions_url(emu, suffix=f"/{created['version_id']}"))
        assert detail["parameter"] == echoed
        assert emu.versions(10)[-1]["parameter"] == sent
        emu.set_faults(echo_numbers=False)
        assert (await listed(session, emu))["versions"][0]["parameter"] == sent


# --- U2: parameters reordered, labels added ------------------------------------------------------


def test_shuffle_is_stable_per_seed_and_never_the_sent_order() -> None:
    """For 2..7 items and many seeds: a permutation, the same for a seed, never the input order."""
    for size in range(2, 8):
        items = list(range(size))
        for seed in range(300):
            order = shuffled(items, seed)
            assert sorted(order) == items and order != items
            assert shuffled(items, seed) == order
    assert shuffled([1], 5) == [1] and shuffled([], 5) == []


@pytest.mark.asyncio
async def test_shuffle_params_lists_another_stable_order(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """With shuffle_params, list and detail agree on one order, not the sent one; truth is sent."""
    sent = params(("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"))
    async with serve(clock, shuffle_params=True) as emu:
        _, created = await post(session, versions_url(emu), body_with({"config.parameter": sent}))
        first = (await listed(session, emu))["versions"][0]["parameter"]
        again = (await listed(session, emu))["versions"][0]["parameter"]
        _, detail = await get(session, versions_url(emu, suffix=f"/{created['version_id']}"))
        assert first == again == detail["parameter"]
        assert first != sent and sorted(first, key=lambda p: p["label"]) == sent
        assert emu.versions(10)[-1]["parameter"] == sent


@pytest.mark.asyncio
async def test_add_params_appends_labels_the_request_did_not_send(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """add_params are appended to every version's parameters; a sent label keeps its value."""
    added = (("seed", "0"), ("learning_rate", "9"))
    async with serve(clock, add_params=added) as emu:
        await post(session, versions_url(emu), EXAMPLE)
        versions = (await listed(session, emu))["versions"]
        assert versions[0]["parameter"] == [*EXAMPLE["config"]["parameter"], *params(("seed", "0"))]
        assert versions[1]["parameter"] == params(*added)  # the seeded version sent none
        _, detail = await get(session, versions_url(emu, suffix="/21"))
        assert detail["parameter"] == versions[0]["parameter"]
        assert emu.versions(10)[-1]["parameter"] == EXAMPLE["config"]["parameter"]


@pytest.mark.asyncio
async def test_drifts_combine_added_then_shuffled_then_echoed(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """With all three on, the added labels are shuffled in and echoed too."""
    async with serve(
        clock, add_params=(("epochs", "10"),), shuffle_params=True, echo_numbers=True
    ) as emu:
        await post(session, versions_url(emu), EXAMPLE)
        got = (await listed(session, emu))["versions"][0]["parameter"]
        expected = params(("learning_rate", "0.01"), ("batch_size", "32"), ("epochs", "10"))
        assert [p["label"] for p in got] != [p["label"] for p in expected]
        assert sorted((p["label"], p["value"]) for p in got) == [
            ("batch_size", 32), ("epochs", 10), ("learning_rate", 0.01),
        ]  # fmt: skip


# --- U3: OBS paths rewritten ---------------------------------------------------------------------

PATHS = [
    ("/bucket/a/b/", "obs://bucket/a/b"), ("/bucket/a/b", "obs://bucket/a/b"),
    ("obs://bucket/a/", "obs://bucket/a"), ("obs://bucket/a", "obs://bucket/a"),
    ("bucket/a/", "bucket/a/"), ("s3://b/a/", "s3://b/a/"),
]  # fmt: skip


@pytest.mark.parametrize(("sent", "normalised"), PATHS, ids=[s for s, _ in PATHS])
def test_normalise_obs_path(sent: str, normalised: str) -> None:
    """/bucket/path/ gains the obs:// scheme and loses its trailing slash; others stay."""
    assert normalise_obs_path(sent) == normalised


@pytest.mark.asyncio
async def test_normalise_train_url_rewrites_train_and_log_url(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """With normalise_train_url, list and detail return obs:// paths without a trailing slash."""
    async with serve(clock, normalise_train_url=True) as emu:
        await post(session, versions_url(emu), EXAMPLE)  # /usr/train/, /usr/log/
        await post(session, versions_url(emu), body_with({"config.train_url": "obs://b/x/"}))
        versions = (await listed(session, emu))["versions"]
        assert [(v["train_url"], v["log_url"]) for v in versions[:2]] == [
            ("obs://b/x", "obs://usr/log"), ("obs://usr/train", "obs://usr/log"),
        ]  # fmt: skip
        _, detail = await get(session, versions_url(emu, suffix="/21"))
        assert detail["train_url"] == "obs://usr/train"
        assert detail["app_url"] == "/usr/app/"  # only train_url and log_url
        assert [v["train_url"] for v in emu.versions(10)[1:]] == ["/usr/train/", "obs://b/x/"]


# --- U4: pages shorter than asked ----------------------------------------------------------------


async def _seven_versions(session: aiohttp.ClientSession, emu: Emulator) -> None:
    for _ in range(6):
        await post(session, versions_url(emu), EXAMPLE)  # 21..26, with the seeded 20: seven


async def _pages(session: aiohttp.ClientSession, emu: Emulator, per_page: int) -> list[list[int]]:
    pages = []
    for page in range(1, 6):
        body = await listed(session, emu, f"?page={page}&per_page={per_page}")
        assert body["version_count"] == 7
        pages.append([v["version_id"] for v in body["versions"]])
    return pages


@pytest.mark.asyncio
async def test_max_per_page_served_offsets_page_by_what_was_served(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """max_per_page=2, served: per_page=3 gives pages of 2 starting at (p-1)*2; page 0 gives 2."""
    async with serve(clock, max_per_page=2) as emu:
        await _seven_versions(session, emu)
        assert await _pages(session, emu, 3) == [[26, 25], [24, 23], [22, 21], [20], []]
        assert await _pages(session, emu, 1) == [[26], [25], [24], [23], [22]]
        whole = await listed(session, emu)
        assert [v["version_id"] for v in whole["versions"]] == [26, 25]
        assert whole["version_count"] == 7


@pytest.mark.asyncio
async def test_max_per_page_requested_offsets_skip_the_cut_rest_of_each_page(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """max_per_page=2, requested: per_page=3 pages start at (p-1)*3, so every third is unseen."""
    async with serve(clock, max_per_page=2, page_offsets="requested") as emu:
        await _seven_versions(session, emu)
        assert await _pages(session, emu, 3) == [[26, 25], [23, 22], [20], [], []]
        assert await _pages(session, emu, 2) == [[26, 25], [24, 23], [22, 21], [20], []]
        assert len((await listed(session, emu, "?page=0&per_page=5"))["versions"]) == 2


# --- U6, U7: the shape of the service's errors ---------------------------------------------------


@pytest.mark.asyncio
async def test_errors_200_answers_business_errors_with_status_200(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """With errors_200, a 400 comes as 200 with is_success false; gateway errors and 500s do not."""
    async with serve(clock, errors_200=True, rate=1, burst=2) as emu:
        status, body = await post(session, versions_url(emu), body_with({"config.spec_id": "1"}))
        assert (status, body["is_success"], body["error_code"]) == (200, False, "ModelArts.0101")
        assert "config.spec_id" in body["error_message"]
        status, body = await post(session, versions_url(emu, 99), EXAMPLE)
        assert (status, body["is_success"], body["error_code"]) == (200, False, "ModelArts.2775")
        status, body = await get(session, f"{emu.url}/v1/{PID}/nowhere")
        assert (status, body["error_code"]) == (404, "APIGW.0101")
        status, body = await get(session, versions_url(emu))
        assert (status, body["error_code"]) == (429, "APIGW.0308")
        emu.set_faults(rate=None, error_500_share=1.0)
        status, body = await post(session, versions_url(emu), EXAMPLE)
        assert (status, body["error_code"]) == (500, "ModelArts.0010")
        assert emu.counters["creates"] == 0 and emu.counters["rejected"] == 3


@pytest.mark.asyncio
async def test_errors_200_covers_token_refusals_but_not_signature_refusals(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The service's own 401 ModelArts.0203 becomes a 200; the gateway's 401 APIGW.0301 stays."""
    async with serve(clock, errors_200=True, auth="token", tokens=["t"]) as emu:
        status, body = await get(session, versions_url(emu), headers={"X-Auth-Token": "x"})
        assert (status, body["is_success"], body["error_code"]) == (200, False, "ModelArts.0203")
    async with serve(clock, errors_200=True, auth="aksk", access_keys={"AK": "SK"}) as emu:
        garbled = {"Authorization": "SDK-HMAC-SHA256 nonsense", "X-Sdk-Date": "20240101T000000Z"}
        status, body = await get(session, versions_url(emu), headers=garbled)
        assert (status, body["error_code"]) == (401, "APIGW.0301")


@pytest.mark.asyncio
async def test_error_field_names_the_message_error_msg(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """error_field="error_msg" renames the service's message field; the gateway's is unchanged."""
    async with serve(clock, error_field="error_msg") as emu:
        status, body = await post(session, versions_url(emu), body_with({"x": 1}))
        assert status == 400
        assert set(body) == {"is_success", "error_code", "error_msg"}
        assert "unknown field x" in body["error_msg"]
        _, body = await get(session, f"{emu.url}/nowhere")
        assert set(body) == {"error_code", "error_msg", "request_id"}


# --- G1: the gateway's prefix --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_gateway_prefix_apig_spells_every_gateway_code(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """gateway_prefix="APIG" answers APIG.0101, APIG.0308 and APIG.0301; ModelArts codes stay."""
    async with serve(clock, gateway_prefix="APIG", rate=1, burst=1) as emu:
        assert (await get(session, f"{emu.url}/nowhere"))[1]["error_code"] == "APIG.0101"
        await get(session, versions_url(emu))
        status, body = await get(session, versions_url(emu))
        assert (status, body["error_code"]) == (429, "APIG.0308")
    async with serve(clock, gateway_prefix="APIG", auth="aksk", access_keys={"AK": "SK"}) as emu:
        status, body = await get(session, versions_url(emu), headers={"Authorization": "x"})
        assert (status, body["error_code"]) == (401, "APIG.0301")


# --- G3: what the 429 announces ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_minute_policy_announces_and_counts_per_minute(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """policy_period=minute: rate 0.05/s is "limit:3,time:1 minute", 3 per aligned minute."""
    async with serve(clock, rate=0.05, policy_period="minute", gateway="fixed-window") as emu:
        statuses = [(await get(session, versions_url(emu)))[0] for _ in range(3)]
        status, body = await get(session, versions_url(emu))
        assert statuses == [200, 200, 200] and status == 429
        assert body["error_msg"] == (
            "The throttling threshold has been reached: policy user over ratelimit,"
            "limit:3,time:1 minute"
        )
        clock.now = EPOCH_2024 + 59.9
        assert (await get(session, versions_url(emu)))[0] == 429
        clock.now = EPOCH_2024 + 60  # the next aligned minute
        assert [(await get(session, versions_url(emu)))[0] for _ in range(4)] == [200] * 3 + [429]


@pytest.mark.asyncio
async def test_unannounced_limit_names_no_policy(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """announce_limit=False: the 429 says the threshold was reached and nothing about a limit."""
    async with serve(clock, rate=1, burst=1, announce_limit=False) as emu:
        await get(session, versions_url(emu))
        status, body = await get(session, versions_url(emu))
        assert (status, body["error_msg"]) == (429, "The throttling threshold has been reached")


# --- G5: how the gateway counts ------------------------------------------------------------------


def test_fixed_window_admits_its_limit_per_aligned_window() -> None:
    """L per window [k, k+1): the wait runs to the boundary, and 2L pass across it at once."""
    clock = FakeClock(100.75)
    window = FixedWindow(limit=3, window=1.0, clock=clock)
    assert [window.try_acquire() for _ in range(3)] == [None] * 3
    assert window.try_acquire() == 0.25
    clock.advance(0.125)
    assert window.try_acquire() == 0.125
    clock.advance(0.125)  # 101.0: a new window
    assert [window.try_acquire() for _ in range(4)] == [None, None, None, 1.0]
    assert window.used == 3 and "limit=3/1s" in repr(window)


def test_sliding_window_admits_its_limit_in_any_trailing_window() -> None:
    """L in any (t-1, t]: after a burst at 100.75 the next is admitted at 101.75, not at 101."""
    clock = FakeClock(100.75)
    window = SlidingWindow(limit=3, window=1.0, clock=clock)
    assert [window.try_acquire() for _ in range(3)] == [None] * 3
    clock.advance(0.25)
    assert window.try_acquire() == 0.75
    clock.advance(0.625)
    assert window.try_acquire() == 0.125
    clock.advance(0.125)
    assert [window.try_acquire() for _ in range(4)] == [None, None, None, 1.0]
    assert window.used == 3 and "used=3" in repr(window)


def test_windows_give_nothing_back_when_the_clock_steps_back() -> None:
    """A wall clock stepping back neither reopens a fixed window nor expires sliding entries."""
    clock = FakeClock(100.5)
    fixed, sliding = FixedWindow(1, 1.0, clock), SlidingWindow(1, 1.0, clock)
    assert (fixed.try_acquire(), sliding.try_acquire()) == (None, None)
    clock.now = 99.0
    assert (fixed.try_acquire(), sliding.try_acquire()) == (0.5, 1.0)


def _greedy(limiter: Limit, clock: FakeClock, seconds: float, step: float) -> list[float]:
    """Times of every admission of a client that asks as often as it can for ``seconds``."""
    admitted = []
    for tick in range(round(seconds / step)):
        clock.now = tick * step
        while limiter.try_acquire() is None:
            admitted.append(clock.now)
    return admitted


@pytest.mark.parametrize("window", [1.0, 60.0])
def test_greedy_client_gets_exactly_the_limit_of_each_window_kind(window: float) -> None:
    """Asking every 1/128 window: fixed gives L per aligned window, sliding <= L in any window."""
    limit, step = 4, window / 128  # a binary fraction: ticks land exactly on boundaries
    clock = FakeClock(0.0)
    fixed = _greedy(FixedWindow(limit, window, clock), clock, 5 * window, step)
    per_window = [sum(1 for t in fixed if k * window <= t < (k + 1) * window) for k in range(5)]
    assert per_window == [limit] * 5
    clock = FakeClock(0.0)
    sliding = _greedy(SlidingWindow(limit, window, clock), clock, 5 * window, step)
    assert len(sliding) == 5 * limit
    assert all(sum(1 for t in sliding if end - window < t <= end) <= limit for end in sliding)
    clock = FakeClock(0.0)
    bucket = _greedy(TokenBucket(limit / window, limit, clock), clock, 5 * window, step)
    assert limit * 5 <= len(bucket) <= limit * 6  # a full bucket, then the rate


@pytest.mark.parametrize("gateway", ["bucket", "fixed-window", "sliding-window"])
def test_another_client_shares_the_policy(gateway: str) -> None:
    """shared_rate 30 under a 40/s policy: asking 40 times a second, a client gets neither the
    whole limit nor less than the 10 the other leaves; asking 10 times, it gets them all."""

    def admitted_per_second(asked: int, shared: float) -> float:
        clock = FakeClock(0.0)
        throttle = Throttle(clock)
        config = EmulatorConfig(rate=40, gateway=gateway, shared_rate=shared)
        throttle.configure(config.throttle_policy)
        admitted = 0
        for tick in range(asked * 10):
            clock.now = tick / asked
            admitted += throttle.check(PID) is None and clock.now >= 2.0  # after the burst
        return admitted / 8

    assert admitted_per_second(40, 0) >= 39.5  # alone: the limit (a sliding window rounds)
    assert 10 < admitted_per_second(40, 30) < 30
    assert admitted_per_second(10, 30) >= 9.5


def test_another_clients_idle_spell_replays_only_what_still_counts() -> None:
    """An hour between two requests replays the other client's last seconds, not its hour."""
    clock = FakeClock(0.0)
    throttle = Throttle(clock)
    throttle.configure(EmulatorConfig(rate=40, gateway="fixed-window", shared_rate=1000)
                       .throttle_policy)
    assert throttle.check(PID) is None
    clock.now = 3600.5  # the other client filled this window long ago
    assert throttle.check(PID) is not None
    assert build_config(_parse("--rate", "40", "--shared-rate", "30")).shared_rate == 30
    with pytest.raises(UsageError, match=r"--shared-rate.*--rate"):
        build_config(_parse("--shared-rate", "30"))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("gateway", "at_1_00", "at_1_95"),
    [("fixed-window", 3, 0), ("sliding-window", 0, 3), ("bucket", 0, 3)],
)
async def test_gateway_kinds_over_http(
    session: aiohttp.ClientSession, clock: FakeClock, gateway: str, at_1_00: int, at_1_95: int
) -> None:
    """rate 3/s, three sent at 0.9 s: how many more each kind admits at 1.0 s and at 1.95 s."""
    async with serve(clock, rate=3, gateway=gateway) as emu:

        async def admitted_of_four(at: float) -> int:
            clock.now = EPOCH_2024 + at
            statuses = [(await get(session, versions_url(emu)))[0] for _ in range(4)]
            return statuses.count(200)

        assert await admitted_of_four(0.9) == 3
        assert await admitted_of_four(1.0) == at_1_00
        assert await admitted_of_four(1.95) == at_1_95
        assert emu.counters["throttled"] == 12 - 3 - at_1_00 - at_1_95


# --- U8, U9: pool_id and the strictness of validation ---------------------------------------------

POOL_ONLY = {"config.spec_id": DROP, "config.pool_id": "pool-7f3a"}
MODEL_BESIDE_CODE = {"config.model_id": 3}
POOL_BESIDE_SPEC = {"config.pool_id": "pool-7f3a"}


@pytest.mark.asyncio
async def test_pool_id_replaces_spec_id_and_is_kept_and_listed(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """A dedicated-pool version (pool_id, no spec_id) is created, kept and shown in list/detail."""
    async with serve(clock) as emu:
        status, created = await post(session, versions_url(emu), body_with(POOL_ONLY))
        assert status == 200, created
        listing = (await listed(session, emu))["versions"]
        assert (listing[0]["pool_id"], listing[0]["spec_id"]) == ("pool-7f3a", None)
        assert (listing[1]["pool_id"], listing[1]["spec_id"]) == (None, 1)
        _, detail = await get(session, versions_url(emu, suffix=f"/{created['version_id']}"))
        assert detail["pool_id"] == "pool-7f3a"
        assert emu.versions(10)[-1]["pool_id"] == "pool-7f3a"
        job_config = body_with({**POOL_ONLY, "config.pre_version_id": DROP})["config"]
        status, job = await post(
            session, f"{emu.url}/v1/{PID}/training-jobs", {"job_name": "pool", "config": job_config}
        )
        assert status == 200 and emu.versions(job["job_id"])[0]["pool_id"] == "pool-7f3a"


POOL_REFUSALS = [
    ("neither spec_id nor pool_id", {"config.spec_id": DROP}, "ModelArts.0101",
     ("config.spec_id", "config.pool_id")),
    ("pool_id a number", {**POOL_ONLY, "config.pool_id": 7}, "ModelArts.0101", ("config.pool_id",)),
    ("pool_id null", {**POOL_ONLY, "config.pool_id": None}, "ModelArts.0101", ("config.pool_id",)),
    ("pool_id empty", {**POOL_ONLY, "config.pool_id": ""}, "ModelArts.0107", ("config.pool_id",)),
    ("pool_id blank", {**POOL_ONLY, "config.pool_id": "  "}, "ModelArts.0107", ("config.pool_id",)),
]  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
@pytest.mark.parametrize(
    ("changes", "code", "names"),
    [case[1:] for case in POOL_REFUSALS],
    ids=[case[0] for case in POOL_REFUSALS],
)
async def test_a_bad_pool_id_is_refused_strict_or_lenient(
    session: aiohttp.ClientSession,
    clock: FakeClock,
    strict: bool,
    changes: dict[str, Any],
    code: str,
    names: tuple[str, ...],
) -> None:
    """spec_id or pool_id is required, and pool_id must be a non-empty string, in either mode."""
    async with serve(clock, strict=strict) as emu:
        status, body = await post(session, versions_url(emu), body_with(changes))
        assert (status, body["error_code"]) == (400, code)
        assert all(name in body["error_message"] for name in names), body
        assert emu.counters["creates"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "names"),
    [
        (MODEL_BESIDE_CODE, ("config.model_id", "config.app_url", "config.boot_file_url")),
        (POOL_BESIDE_SPEC, ("config.spec_id", "config.pool_id")),
    ],
    ids=["model_id beside app_url", "pool_id beside spec_id"],
)
async def test_strict_refuses_what_the_documented_samples_send_and_lenient_accepts_it(
    session: aiohttp.ClientSession,
    clock: FakeClock,
    changes: dict[str, Any],
    names: tuple[str, ...],
) -> None:
    """Strict (default) answers 400 ModelArts.2788 naming both fields; lenient creates it."""
    async with serve(clock) as emu:
        status, body = await post(session, versions_url(emu), body_with(changes))
        assert (status, body["error_code"]) == (400, "ModelArts.2788")
        assert all(name in body["error_message"] for name in names), body
        emu.set_faults(strict=False)
        status, body = await post(session, versions_url(emu), body_with(changes))
        assert (status, body["is_success"]) == (200, True)
        assert emu.counters["creates"] == 1


# --- the CLI -------------------------------------------------------------------------------------


def _parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batchsubmit")
    register(parser.add_subparsers())
    return parser.parse_args(["emulator", *flags])


def test_every_drift_flag_becomes_its_config_field() -> None:
    """Each flag sets the field of the same name; without flags, the config's own defaults."""
    names = {*DRIFT_KNOBS, "retry_after"}
    defaults = build_config(_parse())
    assert {name: getattr(defaults, name) for name in names} == {
        name: getattr(EmulatorConfig(), name) for name in names
    }
    flags = [
        "--echo-numbers", "--shuffle-params", "--add-params", "seed=0, epochs=10,",
        "--normalise-train-url", "--max-per-page", "50", "--page-offsets", "requested",
        "--errors-200", "--error-field", "error_msg", "--gateway-prefix", "APIG",
        "--retry-after", "--rate", "2", "--policy-period", "minute", "--no-announce-limit",
        "--lenient", "--gateway", "sliding-window",
    ]  # fmt: skip
    config = build_config(_parse(*flags))
    assert config.model_dump(include=names) == {
        "echo_numbers": True, "shuffle_params": True,
        "add_params": (("seed", "0"), ("epochs", "10")), "normalise_train_url": True,
        "max_per_page": 50, "page_offsets": "requested", "errors_200": True,
        "error_field": "error_msg", "gateway_prefix": "APIG", "retry_after": True,
        "policy_period": "minute", "announce_limit": False, "strict": False,
        "gateway": "sliding-window",
    }  # fmt: skip
    assert build_config(_parse("--no-retry-after", "--strict")).retry_after is False
    assert DRIFT_KNOBS <= RUNTIME_KNOBS


@pytest.mark.parametrize("text", ["seed", "=0", "a=1,b"])
def test_add_params_flag_refuses_an_item_without_label_and_value(text: str) -> None:
    """--add-params needs LABEL=VALUE items; the error shows the form to write."""
    with pytest.raises(UsageError, match="LABEL=VALUE"):
        parse_add_params(text)


def test_a_label_added_twice_is_refused() -> None:
    """add_params must not name a label twice (which value would the service list?)."""
    with pytest.raises(UsageError, match="add_params"):
        build_config(_parse("--add-params", "a=1,a=2"))


def test_help_cites_the_unknown_each_drift_flag_imitates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--help names every new flag beside its entry of real-service-unknowns.md."""
    with pytest.raises(SystemExit):
        _parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    options = text.index("where and who:")  # past the usage line
    for flag, ref in (
        ("--echo-numbers", "U1"), ("--shuffle-params", "U2"), ("--add-params", "U2"),
        ("--normalise-train-url", "U3"), ("--max-per-page", "U4"), ("--page-offsets", "U4"),
        ("--errors-200", "U6"), ("--error-field", "U7"), ("--lenient", "U9"),
        ("--gateway-prefix", "G1"), ("--retry-after", "G2"), ("--policy-period", "G3"),
        ("--announce-limit", "G3"), ("--gateway", "G5"),
    ):  # fmt: skip
        start = text.index(flag, options)
        assert ref in text[start : start + 400], flag


def test_registering_the_command_imports_nothing_heavy() -> None:
    """Importing and registering `emulator` loads no pydantic, aiohttp, rich, yaml or structlog."""
    code = (
        "import argparse, sys\n"
        "from batchsubmit.commands import emulator\n"
        "emulator.register(argparse.ArgumentParser().add_subparsers())\n"
        "heavy = {'pydantic', 'aiohttp', 'rich', 'yaml', 'structlog'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("auth", "needle"),
    [("open", "no credentials are needed"), ("token", "MODELARTS_TOKEN to a token"),
     ("aksk", "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK")],
)  # fmt: skip
def test_connect_hint_says_how_to_point_a_run_here(auth: str, needle: str) -> None:
    """The start-up hint gives the run command with --endpoint and what credentials work."""
    config = EmulatorConfig.model_validate(
        {"auth": auth, "tokens": ["secret-t"], "access_keys": {"AK1": "secret-s"}}
    )
    hint = connect_hint(config, "http://127.0.0.1:9")
    assert f"batchsubmit run SPEC --endpoint http://127.0.0.1:9 --project-id {PID}" in hint
    assert needle in hint and "secret" not in hint

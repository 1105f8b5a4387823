"""The async client over real loopback sockets: results, paging, and one error class per failure.

Most tests talk to the emulator (``run_emulator``); replies the emulator never gives (broken
JSON, proxy pages, runaway bodies) come from a tiny aiohttp app served on a real socket in the
test; only the exhaustive aiohttp-exception mapping uses ``aioresponses``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import ssl
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import SecretStr
from yarl import URL

from batchsubmit.auth import AkSkCredentials, Credentials, NoCredentials, TokenCredentials
from batchsubmit.client import ModelArtsClient, parse_retry_after
from batchsubmit.emulator import DEFAULT_PROJECT_ID, EmulatorConfig, run_emulator
from batchsubmit.errors import (
    APIError,
    AuthError,
    BatchSubmitError,
    Disposition,
    IncompleteListingError,
    NotSentError,
    OutcomeUnknownError,
    ServerError,
    ThrottledError,
    UsageError,
)
from batchsubmit.models import CreateVersionRequest, CreateVersionResponse, VersionDetail

PID = DEFAULT_PROJECT_ID
JOB, FIRST_VERSION = 10, 20  # the emulator's seeded job and its first version
AK, SK = "AKTESTAKTESTAKTEST", "SKtestSKtestSKtestSKtestSKtestSKtestSKte"
WRONG_SK = "SKwrongSKwrongSKwrongSKwrongSKwrongSKwro"
TOKEN, WRONG_TOKEN = "tok-good-3f9a1c0e7b2d4a6f", "tok-bad-8e1d2c3b4a5f6e7d"
SECRETS = (SK, WRONG_SK, TOKEN, WRONG_TOKEN)
EPOCH_2024 = 1_704_067_200.0
SOME_REQUEST_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


# --- helpers ---------------------------------------------------------------------------------


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = EPOCH_2024) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def version_body(n: int = 0, **config: Any) -> CreateVersionRequest:
    """The spec's example body, with a train_url of its own and ``config`` changes."""
    base: dict[str, Any] = {
        "worker_server_num": 1,
        "app_url": "/usr/app/",
        "boot_file_url": "/usr/app/boot.py",
        "parameter": [{"label": "learning_rate", "value": "0.01"}, {"label": "n", "value": str(n)}],
        "dataset_id": "38277e62-9e59-48f4-8d89-c8cf41622c24",
        "dataset_version_id": "2ff0d6ba-c480-45ae-be41-09a8369bfc90",
        "spec_id": 1,
        "engine_id": 1,
        "train_url": f"/bucket/out/p{n}/",
        "pre_version_id": FIRST_VERSION,
    }
    return CreateVersionRequest.model_validate({"job_desc": "sweep", "config": base | config})


def open_client(
    url: str, credentials: Credentials | None = None, **options: Any
) -> ModelArtsClient:
    return ModelArtsClient(url, credentials or NoCredentials(project_id=PID), **options)


def assert_no_secrets(*things: object) -> None:
    """No SK or token in the str/repr of anything given, nor of an exception's causes."""
    for thing in things:
        seen: list[object] = [thing]
        current = thing
        while isinstance(current, BaseException) and (current.__cause__ or current.__context__):
            current = current.__cause__ or current.__context__
            seen.append(current)
        text = " ".join(f"{item!s} {item!r}" for item in seen)
        for secret in SECRETS:
            assert secret not in text


async def expect(kind: type[BatchSubmitError], call: Awaitable[Any]) -> Any:
    """Await ``call``; it must raise exactly ``kind``, whose text holds no secret."""
    with pytest.raises(BatchSubmitError) as info:
        await call
    assert type(info.value) is kind, repr(info.value)
    assert_no_secrets(info.value)
    return info.value


async def collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


@asynccontextmanager
async def tiny_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve ``handler`` for every path on a real loopback socket; yields the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(reply: bytes) -> AsyncIterator[str]:
    """A TCP server that answers any request with ``reply`` bytes, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def free_port() -> int:
    """A loopback port nobody listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- the happy path --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_version_returns_the_created_version() -> None:
    """create_version answers a CreateVersionResponse naming the version the server created."""
    async with run_emulator() as emu, open_client(emu.url) as client:
        created = await client.create_version(JOB, version_body(1))
        assert isinstance(created, CreateVersionResponse)
        truth = emu.versions(JOB)[-1]
        assert (created.version_id, created.version_name) == (truth["version_id"], "V0002")
        assert (created.job_id, created.is_success) == (JOB, True)


@pytest.mark.asyncio
async def test_create_version_sends_the_body_as_given() -> None:
    """The server stores exactly the wire body: config fields, parameter order, job_desc."""
    body = version_body(7, log_url="/bucket/log/")
    async with run_emulator() as emu, open_client(emu.url) as client:
        await client.create_version(JOB, body)
        truth = emu.versions(JOB)[-1]
        wire = body.to_wire()
        assert truth["job_desc"] == wire["job_desc"]
        assert {k: truth[k] for k in wire["config"] if k != "pre_version_id"} == {
            k: v for k, v in wire["config"].items() if k != "pre_version_id"
        }


@pytest.mark.asyncio
async def test_list_versions_iterates_every_page() -> None:
    """list_versions walks page after page (per_page 10 over 26 versions) and yields each once."""
    async with run_emulator() as emu, open_client(emu.url) as client:
        for n in range(25):
            await client.create_version(JOB, version_body(n))
        lists_before = emu.counters["lists"]
        listed = await collect(client.list_versions(JOB, per_page=10))
        assert sorted(v.version_id for v in listed) == sorted(
            v["version_id"] for v in emu.versions(JOB)
        )
        assert len(listed) == 26
        assert emu.counters["lists"] - lists_before == 3  # pages of 10, 10 and 6


@pytest.mark.asyncio
async def test_list_versions_yields_each_version_once_when_a_create_shifts_the_pages() -> None:
    """A version created mid-listing (newest first) shifts later pages; nothing is yielded twice."""
    async with run_emulator() as emu, open_client(emu.url) as client:
        for n in range(14):
            await client.create_version(JOB, version_body(n))
        before = {v["version_id"] for v in emu.versions(JOB)}
        seen: list[int] = []
        async for version in client.list_versions(JOB, per_page=5):
            seen.append(version.version_id)
            if len(seen) == 5:  # page 1 read: a new version pushes every later item down one
                await client.create_version(JOB, version_body(99))
        assert len(seen) == len(set(seen))
        assert before <= set(seen)


@pytest.mark.asyncio
async def test_list_versions_is_incomplete_when_a_page_brings_nothing_new() -> None:
    """A server that ignores ``page`` (the same page every time) ends the walk in an
    IncompleteListingError after a few calls: it cannot prove that nothing else exists."""
    page = {"is_success": True, "versions": [{"version_id": i} for i in range(1, 4)]}
    calls = 0

    async def same_page(_request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response(page)

    listed: list[int] = []
    async with tiny_server(same_page) as url, open_client(url) as client:
        async with asyncio.timeout(10):  # a guard against the bug, not a wait
            with pytest.raises(IncompleteListingError, match="no new version"):
                async for version in client.list_versions(JOB, per_page=3):
                    listed.append(version.version_id)
    assert listed == [1, 2, 3]
    assert calls == 4  # the first page, then three that brought nothing new


@pytest.mark.asyncio
async def test_list_versions_ends_when_version_count_is_reached() -> None:
    """Once ``version_count`` versions were seen the walk is complete, even on a short page."""
    page = {"is_success": True, "version_count": 3,
            "versions": [{"version_id": i} for i in range(1, 4)]}
    calls = 0

    async def same_page(_request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response(page)

    async with tiny_server(same_page) as url, open_client(url) as client:
        listed = await collect(client.list_versions(JOB))
    assert [v.version_id for v in listed] == [1, 2, 3]
    assert calls == 1


@pytest.mark.asyncio
async def test_get_version_returns_the_detail() -> None:
    """get_version answers the version's detail: ids, name, status and its config."""
    async with run_emulator() as emu, open_client(emu.url) as client:
        created = await client.create_version(JOB, version_body(3))
        detail = await client.get_version(JOB, created.version_id)
        assert isinstance(detail, VersionDetail)
        assert (detail.version_id, detail.version_name, detail.job_id) == (
            created.version_id,
            created.version_name,
            JOB,
        )
        assert detail.train_url == "/bucket/out/p3/"
        assert detail.matches("/bucket/out/p3/", [("learning_rate", "0.01"), ("n", "3")])
        assert detail.job_status is not None and not detail.job_status.terminal


@pytest.mark.asyncio
async def test_list_lag_hides_a_new_version_from_list_and_detail_until_it_passes() -> None:
    """With list lag, a new version is in ground truth at once but listed only after the lag."""
    clock = FakeClock()
    async with (
        run_emulator(EmulatorConfig(list_lag=5.0), clock=clock) as emu,
        open_client(emu.url) as client,
    ):
        created = await client.create_version(JOB, version_body(1))
        assert created.version_id in {v["version_id"] for v in emu.versions(JOB)}
        listed = {v.version_id async for v in client.list_versions(JOB)}
        assert created.version_id not in listed
        missing = await expect(APIError, client.get_version(JOB, created.version_id))
        assert (missing.error_code, missing.disposition) == ("ModelArts.4851", Disposition.FAIL)
        clock.now += 5.0
        listed = {v.version_id async for v in client.list_versions(JOB)}
        assert created.version_id in listed
        assert (await client.get_version(JOB, created.version_id)).version_id == created.version_id


# --- the server answered no --------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("prefix", ["APIGW", "APIG"])
async def test_throttled_answer_is_throttled_error_with_retry_after(prefix: str) -> None:
    """A 429 APIGW.0308 (or APIG.0308, G1) becomes ThrottledError (retry) with Retry-After
    parsed into seconds."""
    clock = FakeClock()
    config = EmulatorConfig(rate=0.5, burst=1, retry_after=True, gateway_prefix=prefix)
    async with run_emulator(config, clock=clock) as emu, open_client(emu.url) as client:
        await client.create_version(JOB, version_body(1))
        error = await expect(ThrottledError, client.create_version(JOB, version_body(2)))
        assert (error.http_status, error.error_code, error.retry_after) == (
            429, f"{prefix}.0308", 2.0
        )
        assert error.disposition is Disposition.RETRY
        assert error.request_id and re.fullmatch(r"[0-9a-f]{32}", error.request_id)
        assert len(emu.versions(JOB)) == 2


@pytest.mark.asyncio
async def test_throttled_answer_without_retry_after_has_none() -> None:
    """Without a Retry-After header, ThrottledError.retry_after is None (the backoff decides)."""
    config = EmulatorConfig(rate=0.5, burst=1, retry_after=False)
    async with (
        run_emulator(config, clock=FakeClock()) as emu,
        open_client(emu.url) as client,
    ):
        await client.create_version(JOB, version_body(1))
        error = await expect(ThrottledError, client.create_version(JOB, version_body(2)))
        assert error.retry_after is None


@pytest.mark.asyncio
async def test_token_auth_accepts_the_right_token_and_aborts_on_a_wrong_one() -> None:
    """Token mode: the right X-Auth-Token creates; a wrong one is AuthError (abort), unshown."""
    config = EmulatorConfig(auth="token", tokens=(SecretStr(TOKEN),))
    right = TokenCredentials(project_id=PID, token=SecretStr(TOKEN))
    wrong = TokenCredentials(project_id=PID, token=SecretStr(WRONG_TOKEN))
    async with run_emulator(config) as emu:
        async with open_client(emu.url, right) as good:
            await good.create_version(JOB, version_body(1))
            assert_no_secrets(good)
        async with open_client(emu.url, wrong) as bad:
            error = await expect(AuthError, bad.create_version(JOB, version_body(2)))
            assert_no_secrets(bad)
        assert (error.http_status, error.error_code) == (401, "ModelArts.0203")
        assert error.disposition is Disposition.ABORT
        assert len(emu.versions(JOB)) == 2


@pytest.mark.asyncio
async def test_aksk_signed_requests_verify_end_to_end() -> None:
    """The emulator in aksk mode verifies our signed POST (body) and GETs (query) on a socket."""
    config = EmulatorConfig(auth="aksk", access_keys={AK: SecretStr(SK)})
    credentials = AkSkCredentials(ak=AK, sk=SecretStr(SK), project_id=PID)
    async with run_emulator(config) as emu, open_client(emu.url, credentials) as client:
        created = await client.create_version(JOB, version_body(1))
        listed = await collect(client.list_versions(JOB, per_page=1))
        detail = await client.get_version(JOB, created.version_id)
        assert {v.version_id for v in listed} == {FIRST_VERSION, created.version_id}
        assert detail.version_id == created.version_id
        assert emu.counters["auth_failures"] == 0
        assert_no_secrets(client)


@pytest.mark.asyncio
@pytest.mark.parametrize("prefix", ["APIGW", "APIG"])
async def test_aksk_wrong_secret_key_is_auth_error_and_creates_nothing(prefix: str) -> None:
    """A request signed with the wrong SK is AuthError (401 APIGW.0301 or APIG.0301, abort);
    SK never shown."""
    config = EmulatorConfig(auth="aksk", access_keys={AK: SecretStr(SK)}, gateway_prefix=prefix)
    credentials = AkSkCredentials(ak=AK, sk=SecretStr(WRONG_SK), project_id=PID)
    async with run_emulator(config) as emu, open_client(emu.url, credentials) as client:
        error = await expect(AuthError, client.create_version(JOB, version_body(1)))
        assert (error.http_status, error.error_code) == (401, f"{prefix}.0301")
        assert error.disposition is Disposition.ABORT
        assert error.request_id
        assert len(emu.versions(JOB)) == 1 and emu.counters["auth_failures"] == 1
        assert_no_secrets(client)


@pytest.mark.asyncio
async def test_project_the_credentials_do_not_cover_is_auth_error() -> None:
    """403 ModelArts.0210 (project id does not match) is an AuthError: the run stops."""
    async with run_emulator() as emu, open_client(emu.url, NoCredentials(project_id="p0")) as c:
        error = await expect(AuthError, c.create_version(JOB, version_body(1)))
        assert (error.http_status, error.error_code) == (403, "ModelArts.0210")


@pytest.mark.asyncio
async def test_validation_answer_is_api_error_that_fails_the_point() -> None:
    """A 400 validation answer is APIError (fail) with error_code, message and X-Request-Id."""
    raw = version_body(1).to_wire()
    raw["config"]["learning_rate"] = "0.1"  # a raw mapping is sent as is: the server judges it
    async with run_emulator() as emu, open_client(emu.url) as client:
        error = await expect(APIError, client.create_version(JOB, raw))
        assert (error.http_status, error.error_code) == (400, "ModelArts.0101")
        assert "config.learning_rate" in error.error_message
        assert error.disposition is Disposition.FAIL
        assert error.request_id and re.fullmatch(r"[0-9a-f]{32}", error.request_id)
        assert "ModelArts.0101" in str(error) and error.request_id in str(error)


@pytest.mark.asyncio
async def test_injected_500_on_create_is_server_error_with_outcome_unknown() -> None:
    """A 500 to a POST may come after the commit: ServerError, outcome_unknown, reconcile."""
    async with (
        run_emulator(EmulatorConfig(error_500_share=1.0)) as emu,
        open_client(emu.url) as client,
    ):
        error = await expect(ServerError, client.create_version(JOB, version_body(1)))
        assert (error.http_status, error.error_code) == (500, "ModelArts.0010")
        assert error.outcome_unknown and error.disposition is Disposition.RECONCILE
        assert emu.counters["faults_500"] == 1


@pytest.mark.asyncio
async def test_500_on_a_read_is_a_retryable_server_error() -> None:
    """A 500 to a GET changed nothing: ServerError with outcome known, disposition retry."""
    config = EmulatorConfig(error_500_share=1.0, faults_on_lists=True)
    async with run_emulator(config) as emu, open_client(emu.url) as client:
        error = await expect(ServerError, collect(client.list_versions(JOB)))
        assert not error.outcome_unknown and error.disposition is Disposition.RETRY


@pytest.mark.asyncio
async def test_503_on_create_is_a_retryable_server_error() -> None:
    """503 ModelArts.4700 (gateway unavailable) never reached the service: retry."""

    async def unavailable(_request: web.Request) -> web.Response:
        body = {"is_success": False, "error_code": "ModelArts.4700", "error_msg": "unavailable"}
        return web.json_response(body, status=503, headers={"X-Request-Id": SOME_REQUEST_ID})

    async with tiny_server(unavailable) as url, open_client(url) as client:
        error = await expect(ServerError, client.create_version(JOB, version_body(1)))
    assert (error.http_status, error.error_code, error.error_message) == (
        503,
        "ModelArts.4700",
        "unavailable",
    )
    assert not error.outcome_unknown and error.disposition is Disposition.RETRY
    assert error.request_id == SOME_REQUEST_ID


# --- no usable answer ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_connection_refused_is_not_sent_and_safe_to_retry() -> None:
    """Nobody listening: NotSentError (retry) for a POST and for a GET alike."""
    async with open_client(f"http://127.0.0.1:{free_port()}") as client:
        error = await expect(NotSentError, client.create_version(JOB, version_body(1)))
        assert error.disposition is Disposition.RETRY
        assert "nothing was sent" in str(error)
        await expect(NotSentError, client.get_version(JOB, FIRST_VERSION))


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["reset", "stall", "500"])
async def test_ambiguous_commit_is_reported_as_outcome_unknown(
    kind: Literal["500", "reset", "stall"],
) -> None:
    """The client reports outcome unknown for an ambiguous commit; the version did get created."""
    config = EmulatorConfig(
        ambiguous_share=1.0, ambiguous_kinds=frozenset({kind}), stall_seconds=30.0
    )
    async with run_emulator(config) as emu, open_client(emu.url, read_timeout=0.3) as client:
        if kind == "500":
            error = await expect(ServerError, client.create_version(JOB, version_body(1)))
            assert error.outcome_unknown
        else:
            error = await expect(OutcomeUnknownError, client.create_version(JOB, version_body(1)))
            assert "may exist" in str(error)
        assert error.disposition is Disposition.RECONCILE
        created = emu.versions(JOB)[-1]
        assert (created["ambiguous"], created["train_url"]) == (kind, "/bucket/out/p1/")
        assert len(emu.versions(JOB)) == 2


# --- replies that break the contract ---------------------------------------------------------


def _reply(
    body: bytes | str, status: int = 200, content_type: str = "application/json", **headers: str
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_request: web.Request) -> web.Response:
        data = body.encode() if isinstance(body, str) else body
        return web.Response(
            body=data, status=status, headers={"Content-Type": content_type, **headers}
        )

    return handler


HUGE = b'{"is_success": true, "version_id": 5, "pad": "' + b"x" * (8 * 1024 * 1024) + b'"}'
BROKEN_REPLIES: dict[str, tuple[Any, type[BatchSubmitError], Disposition]] = {
    "non-JSON 200": (_reply("OK, created"), OutcomeUnknownError, Disposition.RECONCILE),
    "HTML 502 from a proxy": (
        _reply("<html><h1>502 Bad Gateway</h1></html>", 502, "text/html"),
        ServerError,
        Disposition.RECONCILE,
    ),
    "HTML 404 from a proxy": (
        _reply("<html>Not Found</html>", 404, "text/html"),
        APIError,
        Disposition.FAIL,
    ),
    "200 with is_success false": (
        _reply('{"is_success": false, "error_code": "ModelArts.0105", "error_message": "no"}'),
        APIError,
        Disposition.FAIL,
    ),
    "200 with is_success \"false\"": (
        _reply('{"is_success": "false", "error_code": "ModelArts.0105", "error_msg": "no"}'),
        APIError,
        Disposition.FAIL,
    ),
    "200 without version_id": (
        _reply('{"is_success": true, "job_id": 10, "version_name": "V0002"}'),
        OutcomeUnknownError,
        Disposition.RECONCILE,
    ),
    "200 version_id not a number": (
        _reply('{"is_success": true, "version_id": "V0002"}'),
        OutcomeUnknownError,
        Disposition.RECONCILE,
    ),
    "200 version_id a boolean": (
        _reply('{"is_success": true, "version_id": true}'),
        OutcomeUnknownError,
        Disposition.RECONCILE,
    ),
    "200 version_id zero": (
        _reply('{"is_success": true, "version_id": 0}'),
        OutcomeUnknownError,
        Disposition.RECONCILE,
    ),
    "200 status an object": (
        _reply('{"is_success": true, "version_id": 5, "status": {"code": 1}}'),
        OutcomeUnknownError,
        Disposition.RECONCILE,
    ),
    "200 JSON array": (_reply("[1, 2]"), OutcomeUnknownError, Disposition.RECONCILE),
    "200 JSON null": (_reply("null"), OutcomeUnknownError, Disposition.RECONCILE),
    "200 empty body": (_reply(b""), OutcomeUnknownError, Disposition.RECONCILE),
    "204 no content": (_reply(b"", 204), OutcomeUnknownError, Disposition.RECONCILE),
    "200 of more than 8 MiB": (_reply(HUGE), OutcomeUnknownError, Disposition.RECONCILE),
    "302 redirect (not followed)": (
        _reply(b"", 302, Location="http://127.0.0.1:1/elsewhere"),
        APIError,
        Disposition.FAIL,
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("handler", "kind", "disposition"), BROKEN_REPLIES.values(), ids=list(BROKEN_REPLIES)
)
async def test_a_reply_that_breaks_the_contract_is_a_classified_error(
    handler: Callable[[web.Request], Awaitable[web.Response]],
    kind: type[BatchSubmitError],
    disposition: Disposition,
) -> None:
    """Each broken reply to a create is its own classified error: never a crash or a success."""
    async with tiny_server(handler) as url, open_client(url) as client:
        error = await expect(kind, client.create_version(JOB, version_body(1)))
    assert error.disposition is disposition


@pytest.mark.asyncio
async def test_a_broken_reply_to_a_read_is_outcome_unknown_not_a_crash() -> None:
    """A list page whose versions have the wrong shape is OutcomeUnknownError, not a crash."""
    handler = _reply('{"is_success": true, "versions": [{"version_id": "x"}]}')
    async with tiny_server(handler) as url, open_client(url) as client:
        error = await expect(OutcomeUnknownError, collect(client.list_versions(JOB)))
    assert "may have been created" not in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "reply",
    [
        b"this is not HTTP\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n{\"is_success\": true",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
    ],
    ids=["not HTTP", "body cut short", "bad chunk"],
)
async def test_a_reply_that_breaks_http_is_outcome_unknown(reply: bytes) -> None:
    """Garbage, a truncated body or broken chunking after a POST: outcome unknown, no crash."""
    async with raw_server(reply) as url, open_client(url, read_timeout=5.0) as client:
        await expect(OutcomeUnknownError, client.create_version(JOB, version_body(1)))


@pytest.mark.asyncio
async def test_tolerated_deviations_in_a_success_reply() -> None:
    """Numbers as strings, a null version_name and unknown fields still read as a success."""
    handler = _reply(
        '{"is_success": true, "job_id": "10", "job_name": "j", "status": "1",'
        ' "create_time": "1524189990635", "version_id": "12", "version_name": null,'
        ' "model_metric_list": "[]", "new_field": {"a": 1}}'
    )
    async with tiny_server(handler) as url, open_client(url) as client:
        created = await client.create_version(JOB, version_body(1))
    assert (created.version_id, created.job_id, created.status) == (12, 10, 1)
    assert (created.version_name, created.create_time) == ("", 1524189990635)


@pytest.mark.asyncio
async def test_a_valid_reply_that_arrives_in_pieces_is_read_whole() -> None:
    """A large list page streamed in slow chunks is read to its end, not cut at the first chunk."""
    versions = [{"version_id": i, "train_url": f"/bucket/out/p{i}/" * 8} for i in range(1, 801)]
    payload = json.dumps({"is_success": True, "versions": versions}).encode()

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for start in range(0, len(payload), 16 * 1024):
            await response.write(payload[start : start + 16 * 1024])
            await asyncio.sleep(0.001)  # the server trickles: the client must keep reading
        await response.write_eof()
        return response

    async with tiny_server(slow) as url, open_client(url) as client:
        page = await client.list_versions_page(JOB)
    assert len(page.versions) == 800


@pytest.mark.asyncio
async def test_a_compressed_reply_is_inflated_no_further_than_the_cap() -> None:
    """A small gzip body that inflates to 64 MiB: refused after 8 MiB, never held whole."""
    bomb = gzip.compress(b"x" * (64 * 1024 * 1024), compresslevel=1)
    handler = _reply(bomb, **{"Content-Encoding": "gzip"})
    async with tiny_server(handler) as url, open_client(url) as client:
        tracemalloc.start()
        try:
            error = await expect(OutcomeUnknownError, client.create_version(JOB, version_body(1)))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "larger than" in str(error)
    assert peak < 32 * 1024 * 1024, f"held {peak / 2**20:.0f} MiB of the reply"


@pytest.mark.asyncio
async def test_reply_headers_are_read_case_insensitively() -> None:
    """x-request-id and retry-after in lower case (as HTTP/2 proxies send them) are still read."""

    async def throttled(_request: web.Request) -> web.Response:
        body = {"error_code": "APIG.0308", "error_msg": "slow down"}
        response = web.json_response(body, status=429)
        response.headers["x-request-id"] = SOME_REQUEST_ID
        response.headers["retry-after"] = "7"
        return response

    async with tiny_server(throttled) as url, open_client(url) as client:
        error = await expect(ThrottledError, client.create_version(JOB, version_body(1)))
    assert (error.request_id, error.retry_after, error.error_message) == (
        SOME_REQUEST_ID,
        7.0,
        "slow down",
    )


# --- every aiohttp exception is mapped (narrow unit test) ------------------------------------

_KEY = aiohttp.client_reqrep.ConnectionKey(
    "modelarts.example", 443, True, True, None, None, None, "modelarts.example"
)
_INFO = aiohttp.RequestInfo(
    URL("https://modelarts.example/v1"),
    "POST",
    CIMultiDictProxy(CIMultiDict[str]()),
    URL("https://modelarts.example/v1"),
)
REFUSED = ConnectionRefusedError(111, "Connection refused")
# class name -> (an instance as aiohttp raises it, what a POST that raised it becomes)
AIOHTTP_ERRORS: dict[str, tuple[BaseException, type[BatchSubmitError]]] = {
    "ClientConnectorError": (aiohttp.ClientConnectorError(_KEY, REFUSED), NotSentError),
    "ClientProxyConnectionError": (
        aiohttp.ClientProxyConnectionError(_KEY, REFUSED),
        NotSentError,
    ),
    "ClientSSLError": (aiohttp.ClientSSLError(_KEY, OSError(1, "ssl")), NotSentError),
    "ClientConnectorDNSError": (
        aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "Name or service not known")),
        NotSentError,
    ),
    "ClientConnectorSSLError": (
        aiohttp.ClientConnectorSSLError(_KEY, ssl.SSLError(1, "handshake")),
        NotSentError,
    ),
    "ClientConnectorCertificateError": (
        aiohttp.ClientConnectorCertificateError(_KEY, ssl.SSLCertVerificationError(1, "bad")),
        NotSentError,
    ),
    "ConnectionTimeoutError": (
        aiohttp.ConnectionTimeoutError("Connection timeout to host"),
        NotSentError,
    ),
    "ServerFingerprintMismatch": (
        aiohttp.ServerFingerprintMismatch(b"a", b"b", "modelarts.example", 443),
        NotSentError,
    ),
    "InvalidURL": (aiohttp.InvalidURL("http://[bad"), NotSentError),
    "InvalidUrlClientError": (aiohttp.InvalidUrlClientError("http://[bad"), NotSentError),
    "NonHttpUrlClientError": (aiohttp.NonHttpUrlClientError("ftp://x/"), NotSentError),
    "ClientError": (aiohttp.ClientError("unspecified"), OutcomeUnknownError),
    "ClientConnectionError": (aiohttp.ClientConnectionError("lost"), OutcomeUnknownError),
    "ClientConnectionResetError": (
        aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
        OutcomeUnknownError,
    ),
    "ClientOSError": (
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        OutcomeUnknownError,
    ),
    "ServerConnectionError": (aiohttp.ServerConnectionError(), OutcomeUnknownError),
    "ServerDisconnectedError": (aiohttp.ServerDisconnectedError(), OutcomeUnknownError),
    "ServerTimeoutError": (aiohttp.ServerTimeoutError("timeout"), OutcomeUnknownError),
    "SocketTimeoutError": (
        aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
        OutcomeUnknownError,
    ),
    "ClientResponseError": (
        aiohttp.ClientResponseError(_INFO, (), status=400, message="Bad status line"),
        OutcomeUnknownError,
    ),
    "ClientHttpProxyError": (
        aiohttp.ClientHttpProxyError(_INFO, (), status=502),
        OutcomeUnknownError,
    ),
    "ContentTypeError": (aiohttp.ContentTypeError(_INFO, ()), OutcomeUnknownError),
    "ClientPayloadError": (
        aiohttp.ClientPayloadError("Response payload is not completed"),
        OutcomeUnknownError,
    ),
    "UploadAbortedError": (
        aiohttp.UploadAbortedError("The request body was not fully sent"),
        OutcomeUnknownError,
    ),
    "RedirectClientError": (aiohttp.RedirectClientError("/x"), OutcomeUnknownError),
    "InvalidUrlRedirectClientError": (
        aiohttp.InvalidUrlRedirectClientError("http://[bad"),
        OutcomeUnknownError,
    ),
    "NonHttpUrlRedirectClientError": (
        aiohttp.NonHttpUrlRedirectClientError("ftp://x/"),
        OutcomeUnknownError,
    ),
    "TimeoutError": (TimeoutError(), OutcomeUnknownError),
}
# Websocket-only classes: the client never opens a websocket.
NOT_SEEN_BY_THE_CLIENT = {"WSServerHandshakeError", "WSMessageTypeError"}


def test_every_aiohttp_client_exception_has_a_mapping_case() -> None:
    """Each exception class aiohttp exports has a case below, so a new one cannot slip through."""
    exported = set(aiohttp.client_exceptions.__all__)
    assert exported - NOT_SEEN_BY_THE_CLIENT <= set(AIOHTTP_ERRORS)
    for name, (instance, _) in AIOHTTP_ERRORS.items():
        assert type(instance).__name__ == name


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as mock:
        yield mock


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("raised", "kind"), AIOHTTP_ERRORS.values(), ids=list(AIOHTTP_ERRORS)
)
async def test_every_aiohttp_exception_is_translated_for_a_create(
    mocked: aioresponses, raised: BaseException, kind: type[BatchSubmitError]
) -> None:
    """Connect-phase errors are NotSentError; anything later leaves a POST's outcome unknown."""
    mocked.post(re.compile(r".*"), exception=raised)
    async with open_client("http://modelarts.example") as client:
        error = await expect(kind, client.create_version(JOB, version_body(1)))
    assert error.__cause__ is raised
    assert error.disposition is (
        Disposition.RETRY if kind is NotSentError else Disposition.RECONCILE
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("raised", "kind"), AIOHTTP_ERRORS.values(), ids=list(AIOHTTP_ERRORS)
)
async def test_every_aiohttp_exception_is_translated_for_a_read(
    mocked: aioresponses, raised: BaseException, kind: type[BatchSubmitError]
) -> None:
    """A GET that failed is classified the same way, and never claims a version may exist."""
    mocked.get(re.compile(r".*"), exception=raised)
    async with open_client("http://modelarts.example") as client:
        error = await expect(kind, client.get_version(JOB, FIRST_VERSION))
    assert "version may exist" not in str(error)


# --- pure parts ------------------------------------------------------------------------------

NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("99999", 3600.0),
        ("Mon, 01 Jan 2024 00:00:30 GMT", 30.0),
        ("Mon, 01 Jan 2024 00:00:30 -0000", 30.0),
        ("Sun, 31 Dec 2023 23:59:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_parsed_from_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    """Retry-After: delta-seconds or an HTTP date (any zone form), clamped to 0..3600, else None."""
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    "endpoint", ["modelarts.example", "ftp://modelarts.example", "http://", "http://[::1"]
)
def test_an_unusable_endpoint_is_refused_up_front(endpoint: str) -> None:
    """An endpoint that is not an http(s) URL with a host is a UsageError before any request."""
    with pytest.raises(UsageError, match="endpoint"):
        ModelArtsClient(endpoint, NoCredentials(project_id=PID))


def test_repr_of_a_client_shows_no_secret() -> None:
    """repr(client) names endpoint and key prefix, never the SK or the token."""
    for credentials in (
        AkSkCredentials(ak=AK, sk=SecretStr(SK), project_id=PID),
        TokenCredentials(project_id=PID, token=SecretStr(TOKEN)),
    ):
        client = ModelArtsClient("https://modelarts.example", credentials)
        assert "modelarts.example" in repr(client)
        assert_no_secrets(client)


@pytest.mark.asyncio
async def test_a_client_outside_its_context_refuses_to_send() -> None:
    """Using the client without ``async with`` is a programming error, said plainly."""
    client = open_client("http://127.0.0.1:1")
    with pytest.raises(RuntimeError, match="async with"):
        await client.get_version(JOB, FIRST_VERSION)

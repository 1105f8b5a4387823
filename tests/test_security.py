"""Security: no secret is ever written, files are private, the emulator stays local, and a signed
request cannot be replayed late or changed in transit.

What is covered elsewhere and not repeated here: the str/repr of credentials, clients and client
errors (tests/test_auth.py, tests/test_client.py), a new ledger's mode (tests/test_ledger.py), the
admin routes' GET/POST off by default and the first tamper cases: body, Content-Type, job id in
the path, query replaced, unknown AK, garbled or missing Authorization, a date 16 minutes off
(tests/test_emulator.py).

Decision on the access key: the AK is an identifier, not a secret, but nothing needs it written
in full, so it is held to the same rule as SK and token: no 8-character piece of it in any output,
file, log line, error or repr (credentials' repr shows its first 4 characters, which is allowed).
Only a deliberate pydantic dump of the credentials (``model_dump``), which nothing writes, has it.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import structlog
from multidict import CIMultiDict
from pydantic import SecretStr
from yarl import URL

from batchsubmit.auth import AkSkCredentials, credentials_from_env, signed_headers
from batchsubmit.cli import build_parser
from batchsubmit.client import ModelArtsClient
from batchsubmit.commands.emulator import build_config
from batchsubmit.emulator import DEFAULT_PROJECT_ID, Emulator, EmulatorConfig, run_emulator
from batchsubmit.errors import AuthError
from batchsubmit.logs import configure_logging
from tests.fakes import cli, emulator_in_thread

PID = DEFAULT_PROJECT_ID
AK = "AKsecretTESTqwertyuiop"
SK = "SKsecretNEVERprintZXCVBNMasdfghjkl"
WRONG_SK = "SKwrongNEVERprintPOIUYTlkjhgfdsa"
TOKEN = "TKsecretNEVERprint-mnbvcxzLKJHG"
WRONG_TOKEN = "TKwrongNEVERprint-qazwsxedcRFV"
SECRETS = {"AK": AK, "SK": SK, "wrong SK": WRONG_SK, "token": TOKEN, "wrong token": WRONG_TOKEN}
BODY: dict[str, Any] = {
    "job_desc": "d",
    "config": {
        "worker_server_num": 1, "app_url": "/bkt/app/", "boot_file_url": "/bkt/app/t.py",
        "data_url": "/bkt/data/", "spec_id": 1, "engine_id": 1, "pre_version_id": 20,
        "train_url": "/bkt/out/",
    },
}  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """`main` configures structlog to the captured stderr of a test: undo that afterwards."""
    yield
    structlog.reset_defaults()


def assert_nothing_secret(texts: dict[str, str], *, but: tuple[str, ...] = ()) -> None:
    """No 8-character piece of any secret (``but`` these) in any of ``texts`` (name -> text)."""
    for secret_name, secret in SECRETS.items():
        if secret_name in but:
            continue
        pieces = {secret[i : i + 8] for i in range(len(secret) - 7)}
        for where, text in texts.items():
            found = sorted(piece for piece in pieces if piece in text)
            assert not found, f"{secret_name} ({found[0]}...) in {where}"


def write_spec(folder: Path, name: str, points: int) -> Path:
    """A sweep of ``points`` points on job 10 (version 20)."""
    spec = {
        "name": name,
        "target": {"endpoint": "emulator", "project_id": PID, "job_id": 10},
        "base": {"config": {**BODY["config"], "train_url": "/bkt/out/{sweep}/{key}/"}},
        "grid": {"i": list(range(points))},
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def use_credentials(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Exactly these credential variables (AK, SK, TOKEN), none inherited from the machine."""
    names = {"AK": "HUAWEICLOUD_SDK_AK", "SK": "HUAWEICLOUD_SDK_SK", "TOKEN": "MODELARTS_TOKEN"}
    for key, variable in names.items():
        if key in env:
            monkeypatch.setenv(variable, env[key])
        else:
            monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("HUAWEICLOUD_SDK_PROJECT_ID", raising=False)


async def refused_error(url: str, **credentials: str) -> AuthError:
    """The AuthError a client with these (wrong) credentials gets for a create."""
    creds = credentials_from_env({}, project_id=PID, **credentials)  # type: ignore[arg-type]
    async with ModelArtsClient(url, creds) as client:
        try:
            await client.create_version(10, BODY)
        except AuthError as exc:
            return exc
    raise AssertionError("the create was accepted")


def error_texts(error: BaseException) -> str:
    """Everything an error can show: str, repr, args and the formatted chain with tracebacks."""
    return " ".join([str(error), repr(error), repr(error.args), *traceback.format_exception(error)])


SWEEP_ARGS = ["--rate", "40", "--max-attempts", "12", "--settle", "0.3", "--timeout", "3"]
FAULTS: dict[str, Any] = {
    "rate": 25, "burst": 4, "retry_after": False, "error_500_share": 0.15, "ambiguous_share": 0.1,
    "ambiguous_kinds": frozenset({"500", "reset"}), "state_save_interval": 0, "seed": 3,
}  # fmt: skip


@pytest.mark.parametrize("mode", ["aksk", "token"])
def test_no_secret_is_written_anywhere(
    mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A faulty sweep (JSON log file), then a refused one (console logs): no secret anywhere."""
    state_file = tmp_path / "emulator-state.json"
    if mode == "aksk":
        config = EmulatorConfig(
            auth="aksk", access_keys={AK: SecretStr(SK)}, state_file=state_file, **FAULTS
        )
        good, bad = {"AK": AK, "SK": SK}, {"AK": AK, "SK": WRONG_SK}
        wrong = {"ak": AK, "sk": WRONG_SK}
    else:
        config = EmulatorConfig(
            auth="token", tokens=(SecretStr(TOKEN),), state_file=state_file, **FAULTS
        )
        good, bad, wrong = {"TOKEN": TOKEN}, {"TOKEN": WRONG_TOKEN}, {"token": WRONG_TOKEN}
    spec = write_spec(tmp_path, "secrets", points=20)
    log_file, ledger = tmp_path / "run.log", tmp_path / "run.ledger.jsonl"
    refused_ledger = tmp_path / "refused.ledger.jsonl"
    texts: dict[str, str] = {}
    with emulator_in_thread(config) as emulator:
        use_credentials(monkeypatch, **good)
        code, out, err = cli(
            ["run", str(spec), "--endpoint", emulator.url, "--ledger", str(ledger),
             "--log-format", "json", "--log-file", str(log_file), *SWEEP_ARGS],
            capsys,
        )  # fmt: skip
        assert code == 0, err
        texts |= {"stdout of the sweep": out, "stderr of the sweep": err}
        use_credentials(monkeypatch, **bad)
        code, out, err = cli(
            ["run", str(spec), "--endpoint", emulator.url, "--ledger", str(refused_ledger),
             *SWEEP_ARGS],
            capsys,
        )  # fmt: skip
        assert code == 2 and "run stopped" in err, err
        texts |= {"stdout of the refused run": out, "stderr of the refused run": err}
        error = anyio.run(lambda: refused_error(emulator.url, **wrong))
        counters, url = emulator.counters, emulator.url
    assert counters["throttled"] and counters["faults_500"] and counters["ambiguous"]
    assert counters["auth_failures"] == 2  # one per refused run or call: never retried
    creds = credentials_from_env(
        {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK} if mode == "aksk" else
        {"MODELARTS_TOKEN": TOKEN},
        project_id=PID,
    )  # fmt: skip
    texts |= {
        "the log file": log_file.read_text(),
        "the ledger": ledger.read_text(),
        # (the refusal comes at the first listing, before a ledger is opened: usually none)
        "the refused run's ledger": refused_ledger.read_text() if refused_ledger.exists() else "",
        "the emulator's state file": state_file.read_text(),
        "the AuthError": error_texts(error),
        "the credentials": f"{creds!s} {creds!r}",
        "the client": repr(ModelArtsClient(url, creds)),
    }
    events = [json.loads(line)["event"] for line in texts["the log file"].splitlines()]
    assert "batchsubmit.submit.outcome_unknown" in events  # the log holds the faults' events
    assert "batchsubmit.emulator.auth_failed" in texts["stderr of the refused run"]
    assert_nothing_secret(texts)
    # A deliberate dump of the credentials has the AK (it is their data), never the SK or token.
    dumps = {"the credentials' dumps": f"{creds.model_dump_json()} {creds.model_dump()}"}
    assert_nothing_secret(dumps, but=("AK",))


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, so the console renderer uses colours and rich."""

    def isatty(self) -> bool:
        return True


def _sign_with(sk: str) -> None:
    raise ValueError(f"failed to sign with a key of {len(sk)} characters")


@pytest.mark.parametrize(
    ("fmt", "stream"),
    [("console", io.StringIO), ("console", _Terminal), ("json", io.StringIO)],
    ids=["console", "console on a terminal", "json"],
)
def test_a_logged_traceback_shows_no_local_variable(
    fmt: str, stream: Callable[[], io.StringIO]
) -> None:
    """log.exception renders the traceback without the frames' locals (here, an SK argument)."""
    out = stream()
    configure_logging(fmt=fmt, stream=out)
    try:
        _sign_with(SK)
    except ValueError:
        structlog.get_logger().exception("batchsubmit.test.failed")
    assert "_sign_with" in out.getvalue()  # the traceback is there
    assert_nothing_secret({f"the {fmt} log": out.getvalue()})


def test_ledger_and_log_file_are_created_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a real run, even under umask 000, the ledger and the log file are mode 0600."""
    use_credentials(monkeypatch, TOKEN="any")
    spec, ledger, log_file = write_spec(tmp_path, "modes", 3), tmp_path / "l", tmp_path / "log"
    old = os.umask(0)
    try:
        with emulator_in_thread(EmulatorConfig()) as emulator:
            code, _, err = cli(
                ["run", str(spec), "--endpoint", emulator.url, "--ledger", str(ledger),
                 "--log-file", str(log_file)],
                capsys,
            )  # fmt: skip
    finally:
        os.umask(old)
    assert code == 0, err
    assert log_file.stat().st_size > 0
    assert {oct(p.stat().st_mode & 0o777) for p in (ledger, log_file)} == {oct(0o600)}


# --- the emulator stays local --------------------------------------------------------------------


def test_the_emulator_binds_to_loopback_and_has_no_admin_unless_told() -> None:
    """EmulatorConfig and the CLI both default to 127.0.0.1 and admin off."""
    assert EmulatorConfig().host == "127.0.0.1" and not EmulatorConfig().admin
    config = build_config(build_parser().parse_args(["emulator"]))
    assert config.host == "127.0.0.1" and not config.admin


def test_the_emulator_cli_serves_loopback_only_and_prints_no_secret(tmp_path: Path) -> None:
    """`batchsubmit emulator --auth aksk` listens on 127.0.0.1, 404s /_admin, hides its SK."""
    env = {**os.environ, "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchsubmit", "emulator", "--port", "0", "--auth", "aksk",
         "--log-level", "debug"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "no listening line within 20 s"
        line = proc.stdout.readline()
        assert line.startswith("batchsubmit emulator listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        statuses = []
        for method, path in (("GET", "/_admin/state"), ("POST", "/_admin/reset")):
            statuses.append(_status(urllib.request.Request(url + path, method=method, data=b"")))
        versions = f"{url}/v1/{PID}/training-jobs/10/versions"
        body = json.dumps(BODY).encode()
        headers = signed_headers(
            "POST", versions, {"Content-Type": "application/json", "X-Project-Id": PID}, body,
            ak=AK, sk=WRONG_SK, now=datetime.now(UTC),
        )  # fmt: skip
        statuses.append(_status(urllib.request.Request(versions, body, headers, method="POST")))
        assert statuses == [404, 404, 401]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "auth_failed" in err
    assert_nothing_secret({"stdout": line + out, "stderr": err})


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


# --- signatures: replayed late, or changed after signing -----------------------------------------

SIGNED_AT = datetime(2024, 1, 1, tzinfo=UTC)
EPOCH = SIGNED_AT.timestamp()


class Clock:
    """The emulator's epoch seconds, moved by the test."""

    def __init__(self) -> None:
        self.now = EPOCH

    def __call__(self) -> float:
        return self.now


Request = dict[str, Any]


def signed_request(emu: Emulator, method: str = "POST", query: str = "") -> Request:
    """A request signed by the client's own signer, as the client would send it."""
    url = f"{emu.url}/v1/{PID}/training-jobs/10/versions" + (f"?{query}" if query else "")
    body = json.dumps(BODY).encode() if method == "POST" else b""
    credentials = AkSkCredentials(ak=AK, sk=SecretStr(SK), project_id=PID)
    headers = credentials.headers_for(
        method, url, {"Content-Type": "application/json"}, body, SIGNED_AT
    )
    return {"method": method, "url": url, "headers": CIMultiDict(headers), "body": body}


async def send(request: Request) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            request["method"], URL(request["url"], encoded=True), headers=request["headers"],
            data=request["body"],
        ) as response,
    ):  # fmt: skip
        return response.status, await response.json()


def _other_port(request: Request) -> None:
    host, _, port = request["headers"]["Host"].rpartition(":")
    request["headers"]["Host"] = f"{host}:{int(port) + 1}"


def _later_date(request: Request) -> None:
    request["headers"]["X-Sdk-Date"] = "20240101T000001Z"  # still inside the window


TAMPERS: dict[str, tuple[str, str, Callable[[Request], None]]] = {
    "X-Project-Id changed": (
        "POST", "", lambda r: r["headers"].update({"X-Project-Id": "f" * 32})
    ),
    "X-Sdk-Date moved a second": ("POST", "", _later_date),
    "Host changed": ("POST", "", _other_port),
    "a signed header repeated": (
        "POST", "", lambda r: r["headers"].add("X-Project-Id", PID)
    ),
    "another project in the path": (
        "POST", "", lambda r: r.update(url=r["url"].replace(PID, "f" * 32))
    ),
    "one body byte changed": (
        "POST", "", lambda r: r.update(body=r["body"].replace(b'"d"', b'"e"'))
    ),
    "body with a trailing space": ("POST", "", lambda r: r.update(body=r["body"] + b" ")),
    "body left out": ("POST", "", lambda r: r.update(body=b"")),
    "query value changed": (
        "GET", "page=1&per_page=5", lambda r: r.update(url=r["url"].replace("=5", "=6"))
    ),
    "query pair added": ("GET", "page=1", lambda r: r.update(url=r["url"] + "&per_page=5")),
    "query left out": ("GET", "page=1", lambda r: r.update(url=r["url"].partition("?")[0])),
}  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "query", "tamper"), TAMPERS.values(), ids=list(TAMPERS))
async def test_a_request_changed_after_signing_is_refused(
    method: str, query: str, tamper: Callable[[Request], None]
) -> None:
    """Any signed header, the path, the query or the body changed: 401 APIGW.0301, nothing made."""
    async with run_emulator(
        EmulatorConfig(auth="aksk", access_keys={AK: SecretStr(SK)}), clock=Clock()
    ) as emu:
        request = signed_request(emu, method, query)
        assert (await send(dict(request, headers=request["headers"].copy())))[0] == 200
        tamper(request)
        status, body = await send(request)
        assert (status, body["error_code"]) == (401, "APIGW.0301")
        assert "signature mismatch" in body["error_msg"]
        assert emu.counters["creates"] == (1 if method == "POST" else 0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("offset", "ok"),
    [(900, True), (901, False), (-900, True), (-901, False), (86_400, False)],
)
async def test_a_replay_outside_the_15_minute_window_is_refused(offset: int, ok: bool) -> None:
    """The very same signed bytes are accepted up to 900 s from X-Sdk-Date and refused after."""
    clock = Clock()
    async with run_emulator(
        EmulatorConfig(auth="aksk", access_keys={AK: SecretStr(SK)}), clock=clock
    ) as emu:
        request = signed_request(emu)
        clock.now = EPOCH + offset
        status, body = await send(request)
        if ok:
            assert status == 200 and emu.counters["creates"] == 1
        else:
            assert (status, body["error_code"]) == (401, "APIGW.0301")
            assert "date out of window" in body["error_msg"]
            assert emu.counters["creates"] == 0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

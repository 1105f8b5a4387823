"""A damaged ledger through `batchsubmit run`: a clear error or a warning, never a silent re-send.

Unit tests of the reader (tests/test_ledger.py) pin how each kind of damage is folded; here the
whole command meets it, against a real emulator whose counters say what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from batchsubmit.emulator import Emulator, EmulatorConfig
from batchsubmit.ledger import read_ledger
from tests.fakes import cli, emulator_in_thread

POINTS = 6


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """`main` configures structlog to the captured stderr of a test: undo that afterwards."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The open emulator takes any token; the environment's own credentials stay out."""
    monkeypatch.setenv("MODELARTS_TOKEN", "ledger-test-token")
    for name in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with emulator_in_thread(EmulatorConfig()) as emu:
        yield emu


def write_spec(folder: Path, name: str = "alpha") -> Path:
    """A 3 x 2 sweep of job 10 (based on version 20), its outputs under the sweep's name."""
    spec = {
        "name": name,
        "target": {"endpoint": "emulator", "project_id": "0123456789abcdef0123456789abcdef",
                   "job_id": 10},
        "base": {"config": {
            "worker_server_num": 1, "app_url": "/bkt/app/", "boot_file_url": "/bkt/app/t.py",
            "data_url": "/bkt/data/", "spec_id": 1, "engine_id": 1, "pre_version_id": 20,
            "train_url": "/bkt/out/{sweep}/{key}/",
        }},
        "grid": {"a": [1, 2, 3], "b": ["x", "y"]},
    }  # fmt: skip
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def run(
    spec: Path, ledger: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    return cli(
        ["run", str(spec), "--endpoint", emu.url, "--ledger", str(ledger), "--rate", "200",
         "--settle", "0.2", "--quiet"],
        capsys,
    )  # fmt: skip


def finished_run(tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> Path:
    """A ledger of a complete run of the alpha sweep."""
    ledger = tmp_path / "alpha.ledger.jsonl"
    code, _, err = run(write_spec(tmp_path), ledger, emu, capsys)
    assert code == 0, err
    assert emu.counters["creates"] == POINTS
    return ledger


@pytest.mark.parametrize(
    "tail", [b'{"event":"succeeded","key":"0f', b"\x00" * 64], ids=["half a line", "NUL padding"]
)
def test_a_torn_last_line_warns_and_the_run_resumes(
    tail: bytes, tmp_path: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crash-torn last line is skipped with a warning; resuming re-sends nothing, twice over."""
    ledger = finished_run(tmp_path, emulator, capsys)
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.write_bytes(b"".join(lines[:5]) + tail)  # some outcomes lost, the last line torn
    for attempt in (1, 2):  # the second run reads the torn line in the middle of the file
        code, out, err = run(write_spec(tmp_path), ledger, emulator, capsys)
        assert code == 0, err
        assert "batchsubmit.ledger.torn_line" in err, attempt
        assert "Traceback" not in out + err
        assert emulator.counters["creates"] == POINTS
    state = read_ledger(ledger)
    assert len(state.succeeded_keys()) == POINTS and not state.pending


@pytest.mark.parametrize(
    "garbage",
    [b"this is not JSON\n", b"\xff\xfe\x00\n", b"[1, 2, 3]\n", b'{"event": "succeeded"}\n'],
    ids=["text", "binary", "not an object", "a record without its fields"],
)
def test_a_garbage_line_in_the_middle_stops_the_run_before_anything_is_sent(
    garbage: bytes, tmp_path: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged middle line: exit 2 naming path:line, no request at all, the ledger untouched."""
    ledger = finished_run(tmp_path, emulator, capsys)
    lines = ledger.read_bytes().splitlines(keepends=True)
    damaged = b"".join([*lines[:2], garbage, *lines[2:]])
    ledger.write_bytes(damaged)
    requests = emulator.counters["requests"]
    code, out, err = run(write_spec(tmp_path), ledger, emulator, capsys)
    assert code == 2
    assert err.startswith(f"batchsubmit: error: {ledger}:3: ") and "\n\n" not in err.strip()
    assert "Traceback" not in out + err
    assert emulator.counters["requests"] == requests
    assert ledger.read_bytes() == damaged
    assert cli(["status", str(ledger)], capsys)[0] == 2  # status says the same


def test_another_sweeps_ledger_is_refused_and_left_alone(
    tmp_path: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sweep beta run on alpha's ledger: exit 2 naming the ledger, no create, ledger unchanged."""
    ledger = finished_run(tmp_path, emulator, capsys)
    before = ledger.read_bytes()
    code, out, err = run(write_spec(tmp_path, "beta"), ledger, emulator, capsys)
    assert code == 2
    assert f"batchsubmit: error: {ledger}: another sweep's ledger" in err
    assert "Traceback" not in out + err
    assert emulator.counters["creates"] == POINTS
    assert ledger.read_bytes() == before


@pytest.mark.parametrize("case", ["another sweep", "a missing directory"])
def test_an_unusable_ledger_is_refused_before_any_request(
    case: str, tmp_path: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whether the ledger can be used is settled before the first request, not after a listing."""
    if case == "another sweep":
        ledger = finished_run(tmp_path, emulator, capsys)
        spec = write_spec(tmp_path, "beta")
    else:
        ledger, spec = tmp_path / "missing" / "alpha.ledger.jsonl", write_spec(tmp_path)
    requests = emulator.counters["requests"]
    code, _, err = run(spec, ledger, emulator, capsys)
    assert code == 2
    assert err.startswith(f"batchsubmit: error: {ledger}: "), err
    assert emulator.counters["requests"] == requests


def _directory(path: Path) -> None:
    path.mkdir()


def _symlink_loop(path: Path) -> None:
    path.symlink_to(path)


def _under_a_file(path: Path) -> Path:
    path.write_text("")
    return path / "ledger.jsonl"


UNUSABLE = {
    "a directory": (_directory, "directory"),
    "a symlink loop": (_symlink_loop, "symbolic links"),
    "under a file": (_under_a_file, "Not a directory"),
    "in a missing directory": (lambda path: path / "missing" / "ledger.jsonl", "does not exist"),
}


@pytest.mark.parametrize(("make", "says"), UNUSABLE.values(), ids=list(UNUSABLE))
def test_an_unusable_ledger_path_is_a_clear_error_and_nothing_is_created(
    make: object,
    says: str,
    tmp_path: Path,
    emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A ledger that is a directory, a loop or unreachable: exit 2 and no create.

    (An unreadable file takes the same read-error path as the loop; tests run as root, who
    reads a file of mode 000, so that case has no test of its own.)
    """
    ledger = tmp_path / "ledger.jsonl"
    made = make(ledger)  # type: ignore[operator]
    ledger = made if isinstance(made, Path) else ledger
    code, out, err = run(write_spec(tmp_path), ledger, emulator, capsys)
    assert code == 2, err
    message = err.strip()
    assert message.startswith(f"batchsubmit: error: {ledger}: ") and "\n\n" not in message
    assert says in message
    assert "Traceback" not in out + err
    assert emulator.counters["creates"] == 0


@pytest.mark.parametrize(
    "spec", ["quickstart.yaml", "custom-image.json", "built-in-algorithm.toml"]
)
def test_a_spec_given_as_the_ledger_is_named_for_what_it_is(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status SPEC` says the file is a spec, not a ledger, and which file to give instead
    (not "restore the file from a copy")."""
    path = Path(__file__).parent.parent / "sweeps" / spec
    code, _, err = cli(["status", str(path)], capsys)
    assert code == 2
    assert "this is a sweep spec, not a ledger" in err and "restore" not in err

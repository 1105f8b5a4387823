"""One row per point (`batchsubmit status --points`): the pure rows, each format parsed back
against a real sweep's ground truth, the filters, old ledgers, the status records a watch writes,
and the key and index of `expand --json` lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from batchsubmit import ledger
from batchsubmit.auth import NoCredentials
from batchsubmit.cli import main
from batchsubmit.client import ModelArtsClient
from batchsubmit.commands.run import RunOptions, run_sweep
from batchsubmit.emulator import EmulatorConfig, run_emulator
from batchsubmit.ledger import encode, fold, read_ledger
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.points import FIELDS, PointRow, parameter_columns, point_rows
from batchsubmit.sweep import iter_points, load_spec
from batchsubmit.watch import watch_ledger
from tests.fakes import FakeClock

PROJECT = "0123456789abcdef0123456789abcdef"
JOB = 10
TS = "2026-11-26T10:00:00.000Z"
SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
COLUMNS = ["index", "key", "epochs", "lr", "bs", "outcome", "version_id", "status", "error_code",
           "attempts"]  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """`main` configures structlog to the captured stderr of a test: undo that afterwards."""
    yield
    structlog.reset_defaults()


def write_spec(path: Path, *, a: int, b: int) -> Path:
    """A spec of a x b points against job 10, with a fixed parameter before the swept ones."""
    spec = {
        "name": path.stem,
        "target": {"endpoint": "emulator", "project_id": PROJECT, "job_id": JOB},
        "base": {
            "config": {
                "worker_server_num": 1, "app_url": "/bkt/app/", "boot_file_url": "/bkt/app/t.py",
                "data_url": "/bkt/data/", "spec_id": 1, "engine_id": 1, "pre_version_id": 20,
                "train_url": "/bkt/out/{sweep}/{key}/",
                "parameter": [{"label": "epochs", "value": "3"}],
            },
        },
        "grid": {"lr": [f"0.{i + 1}" for i in range(a)], "bs": [str(16 << i) for i in range(b)]},
    }  # fmt: skip
    path.write_text(json.dumps(spec))
    return path


async def sweep_with_failures(spec: Path, path: Path) -> dict[str, int]:
    """Run the sweep where the job holds 3 new versions at most; train_url -> version created."""
    config = EmulatorConfig(project_id=PROJECT, max_versions_per_job=4)  # version 20 + 3 new
    async with run_emulator(config) as emu:
        options = RunOptions(spec=spec, endpoint=emu.url, ledger=path, rate=100, quiet=True,
                             concurrency=1)  # fmt: skip
        await run_sweep(options, credentials=NoCredentials(project_id=PROJECT))
        return {v["train_url"]: v["version_id"] for v in emu.versions(JOB)}


def expected_rows(spec: Path, path: Path, created: dict[str, int]) -> list[dict[str, Any]]:
    """The row each point of the spec should have: the emulator's versions, the ledger's lines."""
    attempts: dict[str, int] = {}
    for line in path.read_bytes().splitlines():  # the ledger's own lines, not its fold
        record = json.loads(line)
        if record["event"] in ("submitted", "succeeded", "failed"):
            seen = record.get("attempt", record.get("attempts", 0))
            attempts[record["key"]] = max(attempts.get(record["key"], 0), seen)
    return [
        {
            "index": p.index, "key": p.key, "parameters": dict(p.parameter),
            "outcome": "succeeded" if p.train_url in created else "failed",
            "version_id": created.get(p.train_url), "status": None,
            "error_code": None if p.train_url in created else "ModelArts.0118",
            "attempts": attempts[p.key],
        }
        for p in iter_points(load_spec(spec), validate=False)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A 6-point sweep of which 3 failed (ModelArts.0118): its ledger and the expected rows."""
    folder = tmp_path_factory.mktemp("points")
    spec, path = write_spec(folder / "p.json", a=2, b=3), folder / "p.ledger.jsonl"
    created = anyio.run(sweep_with_failures, spec, path, backend="asyncio")
    expected = expected_rows(spec, path, created)
    assert sorted(r["outcome"] for r in expected) == ["failed"] * 3 + ["succeeded"] * 3
    return path, expected


def status_points(
    path: Path, capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[int, str]:
    """`batchsubmit status PATH --points FLAGS...`: (exit code, stdout)."""
    code = main(["status", str(path), "--points", *flags])
    out, _ = capsys.readouterr()
    return code, out


def as_cells(row: dict[str, Any]) -> dict[str, str]:
    """An expected row as a CSV row reads back: strings, empty for None, parameters flattened."""
    flat = {k: v for k, v in row.items() if k != "parameters"} | row["parameters"]
    return {k: "" if v is None else str(v) for k, v in flat.items()}


# --- every format, parsed back -------------------------------------------------------------------


def test_json_lines_are_the_ledgers_points(
    swept: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """--format json: one object per point, by index, with the fixed fields and its parameters."""
    path, expected = swept
    code, out = status_points(path, capsys, "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == expected
    assert all(list(row) == [*FIELDS[:2], "parameters", *FIELDS[2:]] for row in rows)
    assert code == 1  # as `status`: some points failed


@pytest.mark.parametrize(("form", "delimiter"), [("csv", ","), ("tsv", "\t")])
def test_csv_and_tsv_are_the_ledgers_points_with_a_column_per_parameter(
    swept: tuple[Path, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
    form: str,
    delimiter: str,
) -> None:
    """--format csv|tsv: a header row (parameters by label), then one row per point by index."""
    path, expected = swept
    code, out = status_points(path, capsys, "--format", form)
    reader = csv.DictReader(io.StringIO(out), delimiter=delimiter)
    assert reader.fieldnames == COLUMNS
    assert list(reader) == [as_cells(row) for row in expected]
    assert code == 1


def test_the_table_names_every_point_and_a_column_per_parameter(
    swept: tuple[Path, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default table: a row per point with its key, parameters, outcome, version and code."""
    monkeypatch.setenv("COLUMNS", "200")
    path, expected = swept
    code, out = status_points(path, capsys)
    lines = out.splitlines()
    header = next(line for line in lines if "key" in line and "outcome" in line)
    for name in ("#", "epochs", "lr", "bs", "version_id", "error_code", "attempts"):
        assert f" {name} " in header
    assert " status " not in header  # never watched: the empty column is left out
    for row in expected:
        (line,) = [line for line in lines if row["key"] in line]
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        assert cells[:5] == [str(row["index"]), row["key"], *row["parameters"].values()]
        assert row["outcome"] in cells and str(row["version_id"] or row["error_code"]) in cells
    assert code == 1


# --- filters, flags and exit codes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [["--failed"], ["--succeeded"], ["--pending"], ["--failed", "--succeeded"],
     ["--failed", "--pending", "--succeeded"]],
    ids=" ".join,
)  # fmt: skip
def test_the_filters_keep_only_those_points_and_add_up(
    swept: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    """Each filter keeps the points with that outcome; several keep the points of any of them."""
    path, expected = swept
    wanted = {flag.removeprefix("--") for flag in flags}
    code, out = status_points(path, capsys, *flags, "--format", "json")
    assert [json.loads(line) for line in out.splitlines()] == [
        row for row in expected if row["outcome"] in wanted
    ]
    assert code == 1  # the summary's exit code, whatever is shown


def test_a_filter_that_keeps_nothing_prints_only_the_header(
    swept: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """No pending point: csv prints the header row alone, json prints nothing."""
    path, _ = swept
    assert status_points(path, capsys, "--pending", "--format", "csv")[1].splitlines() == [
        ",".join(["index", "key", "outcome", "version_id", "status", "error_code", "attempts"])
    ]
    assert status_points(path, capsys, "--pending", "--format", "json")[1] == ""


def test_every_point_succeeded_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--points exits as `status` does: 0 once every point of the sweep succeeded."""
    path = tmp_path / "ok.ledger.jsonl"
    path.write_bytes(b"".join(encode(r) for r in (started(total=1), ok("a", 0, 21))))
    code, out = status_points(path, capsys, "--format", "csv")
    assert code == 0 and out.splitlines()[1] == "0,a,0.1,succeeded,21,,,1"


@pytest.mark.parametrize(
    "argv",
    [["--failed"], ["--format", "csv"], ["--points", "--json"], ["--points", "--format", "xml"]],
    ids=" ".join,
)
def test_flags_that_go_with_points_are_usage_errors_without_it(
    swept: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """A filter or --format without --points, or --json with it, exits 2 saying what to write."""
    path, _ = swept
    assert main(["status", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert "--points" in err or "invalid choice" in err


def test_the_help_documents_the_points_view(capsys: pytest.CaptureFixture[str]) -> None:
    """`status --help` names the flags, the formats and the columns."""
    assert main(["status", "--help"]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    for expected in ("--points", "--failed", "--pending", "--succeeded", "--format",
                     "table,json,csv,tsv", "param.<label>", "JSON Lines", "add up"):
        assert expected in flat  # fmt: skip


# --- the pure rows -------------------------------------------------------------------------------


def started(total: int = 3) -> dict[str, Any]:
    settings = {"endpoint": "http://127.0.0.1:1", "project_id": PROJECT, "job_id": JOB}
    return ledger.run_started(sweep="p", spec_sha256="ab", total=total, settings=settings, ts=TS)


def ok(key: str, index: int, version_id: int, **parameter: str) -> dict[str, Any]:
    return ledger.succeeded(
        key=key, index=index, version_id=version_id, version_name="V",
        parameter=list((parameter or {"lr": "0.1"}).items()), train_url=f"/b/{key}/",
        attempts=1, reconciled=False, latency_ms=5.0, ts=TS,
    )  # fmt: skip


def bad(key: str, index: int, **parameter: str) -> dict[str, Any]:
    return ledger.failed(
        key=key, index=index, error_code=None, error_message="reset", http_status=None,
        request_id=None, attempts=2, parameter=list(parameter.items()), ts=TS,
    )  # fmt: skip


def sent(key: str, index: int, attempt: int) -> dict[str, Any]:
    return ledger.submitted(key=key, index=index, attempt=attempt, train_url=f"/b/{key}/", ts=TS)


def test_pending_points_are_sent_with_no_outcome_after_it() -> None:
    """A point sent again after failing is pending with its old parameters; one never answered
    has none; neither shows a version or an error code."""
    state = fold([encode(r) for r in (
        started(), ok("a", 0, 21), bad("b", 1, lr="0.2"), sent("b", 1, 3), sent("c", 2, 1),
    )])  # fmt: skip
    assert point_rows(state) == [
        PointRow(0, "a", (("lr", "0.1"),), "succeeded", 21, None, None, 1),
        PointRow(1, "b", (("lr", "0.2"),), "pending", None, None, None, 3),
        PointRow(2, "c", (), "pending", None, None, None, 1),
    ]
    assert [row.key for row in point_rows(state, {"pending"})] == ["b", "c"]


def test_failures_are_coded_as_status_groups_them() -> None:
    """A failure without an error code is "HTTP <status>" or "transport", as `status` has it."""
    no_answer = bad("a", 0)
    refused = {**bad("b", 1), "http_status": 503}
    (first, second) = point_rows(fold([encode(r) for r in (started(2), no_answer, refused)]))
    assert (first.error_code, second.error_code) == ("transport", "HTTP 503")


def test_a_label_named_like_a_fixed_column_is_prefixed() -> None:
    """Parameter columns keep their labels, but for one that is also a fixed column's name."""
    assert parameter_columns(["lr", "status", "key", "param.key"]) == {
        "lr": "lr", "status": "param.status", "key": "param.key", "param.key": "param.param.key",
    }  # fmt: skip


def test_a_colliding_label_is_its_own_csv_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A swept "status" is written param.status, apart from the training status column."""
    path = tmp_path / "c.ledger.jsonl"
    path.write_bytes(b"".join(encode(r) for r in (started(1), ok("a", 0, 21, status="on"))))
    rows = list(csv.DictReader(io.StringIO(status_points(path, capsys, "--format", "csv")[1])))
    assert rows == [{"index": "0", "key": "a", "param.status": "on", "outcome": "succeeded",
                     "version_id": "21", "status": "", "error_code": "", "attempts": "1"}]


def test_an_old_ledger_without_the_extras_lists_its_points(
    swept: tuple[Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Failed lines without "parameter" (written before it was added) still list, without
    parameters; everything else is as before."""
    path, expected = swept
    old = tmp_path / "old.ledger.jsonl"
    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    for record in lines:
        for extra in ledger.RECORD_EXTRAS.get(record["event"], ()):
            record.pop(extra, None)
    old.write_bytes(b"".join(encode(r) for r in lines))
    code, out = status_points(old, capsys, "--format", "json")
    assert [json.loads(line) for line in out.splitlines()] == [
        {**row, "parameters": {}} if row["outcome"] == "failed" else row for row in expected
    ]
    assert code == 1


# --- what a watch records ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_status_records_of_a_watch_carry_index_and_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], anyio_backend: str
) -> None:
    """Each status line names the point's index and parameters (as its succeeded line does),
    and --points shows the last status recorded."""
    clock = FakeClock(1_800_000_000.0)
    config = EmulatorConfig(project_id=PROJECT, init_seconds=0, run_seconds=1)
    spec, path = write_spec(tmp_path / "w.json", a=2, b=2), tmp_path / "w.ledger.jsonl"
    async with run_emulator(config, clock=clock) as emu:
        options = RunOptions(spec=spec, endpoint=emu.url, ledger=path, rate=500, quiet=True)
        await run_sweep(options, credentials=NoCredentials(project_id=PROJECT))
        async with ModelArtsClient(emu.url, NoCredentials(project_id=PROJECT)) as client:
            result = await watch_ledger(
                path, client=client, interval=1.0, clock=clock, sleep=clock.sleep,
                limiter=AdaptiveRateLimiter(100, clock=clock, sleep=clock.sleep),
            )  # fmt: skip
    assert result.ok
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    succeeded = {r["key"]: r for r in records if r["event"] == "succeeded"}
    statuses = [r for r in records if r["event"] == "status"]
    assert {r["key"] for r in statuses} == succeeded.keys()
    for record in statuses:
        assert list(record) == [
            "event", *ledger.RECORD_FIELDS["status"], *ledger.RECORD_EXTRAS["status"], "ts"
        ]
        point = succeeded[record["key"]]
        assert (record["index"], record["parameter"]) == (point["index"], point["parameter"])
    assert read_ledger(path).statuses.keys() == succeeded.keys()
    code, out = status_points(path, capsys, "--format", "json")
    assert code == 0
    assert {row["key"]: row["status"] for row in map(json.loads, out.splitlines())} == {
        key: "COMPLETED" for key in succeeded
    }


# --- expand --json -------------------------------------------------------------------------------


def test_expand_json_lines_carry_the_points_index_and_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each line is the point's index and key, then its request body unchanged."""
    quickstart = str(SWEEPS / "quickstart.yaml")
    assert main(["expand", quickstart, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    points = list(iter_points(load_spec(quickstart)))
    assert [(line.pop("index"), line.pop("key")) for line in lines] == [
        (p.index, p.key) for p in points
    ]
    assert lines == [p.body for p in points]


def test_expand_json_keys_of_a_many_job_spec_are_the_ledgers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With several target jobs, a line's key is "<job>:<key>", as a run's ledger has it."""
    reversion, saved = str(SWEEPS / "reversion-jobs.yaml"), str(SWEEPS / "versions" / "job-10.json")
    assert main(["expand", reversion, "--from-file", saved, "--json", "--job-id", "11"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and all(line["key"].startswith("11:") for line in lines)
    assert [line["index"] for line in lines] == list(range(len(lines)))

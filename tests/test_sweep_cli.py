"""`batchsubmit expand`: the table, JSON Lines, --count, --limit, --rate and exit codes."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from batchsubmit.cli import main
from batchsubmit.commands.expand import duration
from batchsubmit.emulator import DEFAULT_PROJECT_ID, EmulatorConfig
from batchsubmit.sweep import iter_points, load_spec
from tests.fakes import body_with, cli, emulator_in_thread

QUICKSTART = str(Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml")


def test_expand_prints_a_table_with_total_and_time(capsys: pytest.CaptureFixture[str]) -> None:
    """The default output is a table of the points, the total and the time at submit.rate."""
    assert main(["expand", QUICKSTART]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    first = next(iter_points(load_spec(QUICKSTART)))
    assert first.key in out
    assert "learning_rate=0.1" in out
    assert "12 points, all valid; at 10 requests/s, submitting takes about 2s" in " ".join(
        out.split()
    )


def test_expand_limit_and_rate(capsys: pytest.CaptureFixture[str]) -> None:
    """--limit shows fewer rows (and says so); --rate overrides the spec's submit.rate."""
    assert main(["expand", QUICKSTART, "--limit", "2", "--rate", "0.1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    points = list(iter_points(load_spec(QUICKSTART)))
    assert points[1].key in out and points[2].key not in out
    assert "showing the first 2" in out
    assert "at 0.1 requests/s, submitting takes about 2m 0s" in out


def test_expand_json_prints_one_body_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints every full request body as one JSON object per line (after the point's
    index and key)."""
    assert main(["expand", QUICKSTART, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    points = list(iter_points(load_spec(QUICKSTART)))
    assert [json.loads(line) for line in lines] == [
        {"index": p.index, "key": p.key, **p.body} for p in points
    ]


def test_expand_json_limit(capsys: pytest.CaptureFixture[str]) -> None:
    """--json --limit N prints the first N bodies."""
    assert main(["expand", QUICKSTART, "--json", "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_expand_count_prints_the_number(capsys: pytest.CaptureFixture[str]) -> None:
    """--count prints only the number of points."""
    assert main(["expand", QUICKSTART, "--count"]) == 0
    assert capsys.readouterr().out == "12\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["expand"],
        ["expand", QUICKSTART, "--limit", "0"],
        ["expand", QUICKSTART, "--rate", "-1"],
        ["expand", QUICKSTART, "--count", "--json"],
    ],
)
def test_expand_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Missing SPEC, a bad number or conflicting modes are usage errors: exit 2."""
    assert main(argv) == 2
    assert "usage: batchsubmit expand" in capsys.readouterr().err


def test_expand_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    """--help explains what expand does and shows examples."""
    assert main(["expand", "--help"]) == 0
    out = capsys.readouterr().out
    assert "without touching the network" in out
    assert "examples:" in out and "--json" in out and "--count" in out


def test_expand_spec_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A spec error is printed as one line naming the file, and the exit code is 2."""
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    assert main(["expand", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"batchsubmit: error: {path}:")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (0.2, "1s"), (59, "59s"), (61, "1m 1s"), (7260, "2h 1m 0s")]
)
def test_duration_reads_well(seconds: float, text: str) -> None:
    """Durations are rounded up to whole seconds and shown as h/m/s."""
    assert duration(seconds) == text


SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
REVERSION = str(SWEEPS / "reversion-jobs.yaml")
SAVED = str(SWEEPS / "versions" / "job-10.json")


def test_expand_from_version_says_the_base_comes_from_the_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --from-file, a from_version spec shows its own partial body and says the rest
    comes from the server, and how to preview the merge offline."""
    assert main(["expand", REVERSION]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "base body comes from the server" in out
    assert "--from-file VERSION.json" in out
    assert '"dataset_version_id": "2ff0d6ba-c480-45ae-be41-09a8369bfc90"' in out
    assert '"pre_version_id"' not in out  # the partial body: no base yet
    assert "1 point per job x 3 jobs = 3 new versions" in out


def test_expand_from_file_previews_the_merged_body(capsys: pytest.CaptureFixture[str]) -> None:
    """--from-file merges the spec on a saved version detail: the full body, built on it."""
    assert main(["expand", REVERSION, "--from-file", SAVED]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "job 10 on version 31" in out
    assert '"pre_version_id": 31' in out and '"app_url": "/bucket/job-10/code/"' in out
    assert '"data_url"' not in out  # the spec's dataset replaced it
    assert "all valid" in out


def test_expand_from_file_json_and_count(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the merged bodies (notes go to stderr); --count counts every job's points."""
    assert main(["expand", REVERSION, "--from-file", SAVED, "--json", "--job-id", "11"]) == 0
    out, err = capsys.readouterr()
    (body,) = [json.loads(line) for line in out.splitlines()]
    assert body["config"]["pre_version_id"] == 31
    assert body["config"]["train_url"] == "/bucket/reversion/reversion-jobs/11/output/"
    assert "note: job 11" in err
    assert main(["expand", REVERSION, "--count"]) == 0
    assert capsys.readouterr().out == "3\n"
    assert main(["expand", REVERSION, "--count", "--job-id", "12"]) == 0
    assert capsys.readouterr().out == "1\n"


def test_expand_job_id_binds_a_plain_spec(capsys: pytest.CaptureFixture[str]) -> None:
    """--job-id shows the sweep of another job (its {job_id}); the table says which job."""
    assert main(["expand", QUICKSTART, "--job-id", "11", "--limit", "1"]) == 0
    assert "job 11" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["expand", QUICKSTART, "--from-file", SAVED], "has no from_version"),
        (["expand", REVERSION, "--from-file", QUICKSTART], "not a JSON version detail"),
        (["expand", REVERSION, "--from-file", str(SWEEPS / "nope.json")],
         "cannot read the version detail"),
        (["expand", QUICKSTART, "--endpoint", "http://127.0.0.1:1"], "has no from_version"),
        (["expand", REVERSION, "--endpoint", "emulator"], "start `batchsubmit emulator`"),
        (["expand", REVERSION, "--project-id", "p"], "--project-id goes with --endpoint"),
        (["expand", REVERSION, "--endpoint", "http://127.0.0.1:1", "--from-file", SAVED],
         "not allowed with argument"),
    ],
)
def test_expand_from_file_mistakes_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--from-file on a spec without from_version, or with a file that is no detail: exit 2."""
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_expand_from_file_invalid_merge_exits_2_naming_job_and_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A saved version that cannot carry the spec's changes: exit 2 naming job and version."""
    detail = json.loads(Path(SAVED).read_text())
    del detail["app_url"]
    saved = tmp_path / "v.json"
    saved.write_text(json.dumps(detail))
    assert main(["expand", REVERSION, "--from-file", str(saved)]) == 2
    err = capsys.readouterr().err
    assert "reversion-jobs.yaml" in err and "job 10 rebased on version 31" in err
    assert "app_url and boot_file_url go together" in err


def test_expand_endpoint_previews_the_merge_on_the_servers_version(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--endpoint fetches the version `latest` names from a real server (an emulator on a
    socket) and shows the body merged on it; it only reads: no version is created."""
    monkeypatch.setenv("MODELARTS_TOKEN", "t")
    for name in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"):
        monkeypatch.delenv(name, raising=False)
    base = body_with({
        "config.app_url": "/bkt/job10/code/", "config.boot_file_url": "/bkt/job10/code/train.py",
        "config.train_url": "/bkt/job10/out/",
    })
    with emulator_in_thread(EmulatorConfig(jobs={10: 20, 11: 21, 12: 22})) as emulator:
        request = urllib.request.Request(
            f"{emulator.url}/v1/{DEFAULT_PROJECT_ID}/training-jobs/10/versions",
            data=json.dumps(base).encode(), headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as reply:
            latest = json.load(reply)["version_id"]
        before = len(emulator.versions())
        code, out, err = cli(["expand", REVERSION, "--endpoint", emulator.url], capsys)
        assert len(emulator.versions()) == before
    assert code == 0, err
    out = " ".join(out.split())
    assert f"job 10 on version {latest}" in out
    assert f'"pre_version_id": {latest}' in out and '"app_url": "/bkt/job10/code/"' in out
    assert '"dataset_version_id": "2ff0d6ba-c480-45ae-be41-09a8369bfc90"' in out
    assert "all valid" in out


@pytest.mark.parametrize("flags", [["--count"], ["--limit", "1"], ["--json", "--limit", "1"]])
def test_expand_refuses_what_run_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    """A sweep over the 10,000,000 points a run may send: expand exits 2 at once, as run does,
    instead of counting it or preflighting it for ever."""
    spec = json.loads(json.dumps(body_with()))  # the contract's example body as the base
    path = tmp_path / "big.json"
    path.write_text(json.dumps({
        "name": "big", "target": {"endpoint": "emulator", "job_id": 10},
        "base": {"config": {**spec["config"], "train_url": "/b/o/{key}/"}},
        "grid": {"a": list(range(4000)), "b": list(range(3000))},
    }))
    code, out, err = cli(["expand", str(path), *flags], capsys)
    assert code == 2 and out == ""
    assert "12,000,000 points, more than the 10,000,000 a run may send" in err

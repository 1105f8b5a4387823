"""`batchsubmit expand`: the table, JSON Lines, --count, --limit, --rate and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchsubmit.cli import main
from batchsubmit.commands.expand import duration
from batchsubmit.sweep import iter_points, load_spec

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
    """--json prints every full request body as one JSON object per line."""
    assert main(["expand", QUICKSTART, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    bodies = [p.body for p in iter_points(load_spec(QUICKSTART))]
    assert [json.loads(line) for line in lines] == bodies


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

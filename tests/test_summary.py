"""The run summary (pure), its table, and ``batchsubmit status``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from structlog.testing import capture_logs

from batchsubmit import ledger
from batchsubmit.cli import main
from batchsubmit.commands.display import render_summary
from batchsubmit.ledger import encode, fold
from batchsubmit.summary import Summary, next_steps, summarize

T0 = "2026-11-26T10:00:00.000Z"


def at(seconds: float, day: int = 26) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"2026-11-{day}T10:{int(minutes):02d}:{secs:06.3f}Z"


def start(total: int = 10, ts: str = T0) -> dict[str, Any]:
    return ledger.run_started(sweep="lr-sweep", spec_sha256="ab", total=total, settings={}, ts=ts)


def sent(key: str, ts: str = T0, attempt: int = 1) -> dict[str, Any]:
    return ledger.submitted(key=key, index=0, attempt=attempt, train_url="u", ts=ts)


def ok(key: str, ts: str = T0, attempts: int = 1, reconciled: bool = False) -> dict[str, Any]:
    return ledger.succeeded(
        key=key, index=0, version_id=21, version_name="V0021", parameter=[("lr", "0.1")],
        train_url="u", attempts=attempts, reconciled=reconciled, latency_ms=50.0, ts=ts,
    )  # fmt: skip


def bad(
    key: str,
    code: str | None = "ModelArts.2763",
    status: int | None = 400,
    message: str = "flavor not found",
    ts: str = T0,
    attempts: int = 1,
) -> dict[str, Any]:
    return ledger.failed(
        key=key, index=0, error_code=code, error_message=message, http_status=status,
        request_id=None, attempts=attempts, ts=ts,
    )  # fmt: skip


def finish(interrupted: bool = False, ts: str = T0) -> dict[str, Any]:
    return ledger.run_finished(counts={}, interrupted=interrupted, ts=ts)


def summary_of(*records: dict[str, Any]) -> Summary:
    return summarize(fold(encode(r) for r in records))


def write(path: Path, *records: dict[str, Any]) -> Path:
    path.write_bytes(b"".join(encode(r) for r in records))
    return path


def all_done(n: int = 3) -> list[dict[str, Any]]:
    keys = [f"k{i}" for i in range(n)]
    return [start(total=n), *(sent(k) for k in keys), *(ok(k) for k in keys), finish()]


# --- summarize -----------------------------------------------------------------------------------


def test_counts_add_up_to_the_sweep_size() -> None:
    """succeeded + failed + pending + not started = total, each point counted once."""
    summary = summary_of(
        start(total=10),
        sent("a"), ok("a"), sent("b"), ok("b", reconciled=True), sent("c"), bad("c"),
        sent("d"),  # no outcome: unknown
        sent("e"), bad("e"), sent("e", attempt=2),  # re-sent after failing: unknown again
    )  # fmt: skip
    assert (summary.succeeded, summary.failed, summary.pending, summary.not_started) == (2, 1, 2, 5)
    assert summary.reconciled == 1 and summary.total == 10 and summary.sweep == "lr-sweep"
    assert summary.failures_by_code == {"ModelArts.2763": 1}


def test_training_statuses_count_the_last_status_of_each_current_version() -> None:
    """statuses counts succeeded points by the last watched status of their current version."""
    watched = [
        ledger.status(key=k, version_id=21, status=code, status_name=name, duration_ms=1, ts=T0)
        for k, code, name in (("k0", 8, "RUNNING"), ("k0", 10, "COMPLETED"), ("k1", 11, "FAILED"))
    ]
    stale = ledger.status(key="k2", version_id=99, status=10, status_name="COMPLETED",
                          duration_ms=1, ts=T0)  # fmt: skip
    summary = summary_of(*all_done(), *watched, stale)
    assert summary.statuses == {"COMPLETED": 1, "FAILED": 1}
    assert summary.finished_at == T0 and summary.complete
    text = rendered(summary)
    assert "training" in text and "1 COMPLETED, 1 FAILED" in text
    assert summary_of(*all_done()).statuses == {}


def test_not_started_never_goes_below_zero() -> None:
    """A spec that shrank (more outcomes than points) gives 0 not started, not a negative count."""
    summary = summary_of(start(total=1), ok("a"), ok("b"), ok("c"))
    assert summary.not_started == 0 and summary.succeeded == 3


def test_failures_are_grouped_by_code_then_http_status_then_transport() -> None:
    """A failure groups by its error code, else "HTTP <status>", else "transport", most first."""
    summary = summary_of(
        start(),
        bad("a", message="first"), bad("b", message="second"),
        bad("c", code=None, status=502, message="bad gateway"),
        bad("d", code=None, status=None, message="connection reset"),
        bad("e", code="", status=None, message="empty code"),
    )  # fmt: skip
    assert summary.failures_by_code == {"ModelArts.2763": 2, "HTTP 502": 1, "transport": 2}
    assert list(summary.failures_by_code) == ["ModelArts.2763", "transport", "HTTP 502"]
    assert summary.failure_examples == {
        "ModelArts.2763": "first", "HTTP 502": "bad gateway", "transport": "connection reset",
    }  # fmt: skip


def test_retries_are_the_attempts_beyond_the_first() -> None:
    """retries sums attempts - 1 over the points with an outcome."""
    summary = summary_of(start(), ok("a", attempts=3), bad("b", attempts=2), ok("c"))
    assert summary.retries == 3


def test_rate_counts_outcomes_from_the_first_submit_to_the_last_outcome() -> None:
    """achieved_rate is outcomes per second of sending; time taken spans the whole run."""
    records = [start(total=10, ts=at(0)), ok("old", ts=at(1))]  # reconciled before sending
    records += [sent(f"k{i}", ts=at(2 + i * 0.5)) for i in range(10)]
    records += [ok(f"k{i}", ts=at(2.5 + i * 0.5)) for i in range(10)]
    records.append(finish(ts=at(9)))
    summary = summary_of(*records)
    assert summary.achieved_rate == pytest.approx(10 / 5.0)
    assert summary.elapsed_s == pytest.approx(9.0)
    assert (summary.started_at, summary.finished_at) == (at(0), at(9))


def test_time_and_rate_leave_out_the_gap_between_runs() -> None:
    """A sweep resumed a day later is timed by its runs, not by the day in between."""
    summary = summary_of(
        start(ts=at(0)), sent("a", ts=at(1)), ok("a", ts=at(3)), finish(True, ts=at(4)),
        start(ts=at(0, day=27)), sent("b", ts=at(1, day=27)), ok("b", ts=at(3, day=27)),
        finish(ts=at(4, day=27)),
    )  # fmt: skip
    assert summary.elapsed_s == pytest.approx(8.0)
    assert summary.achieved_rate == pytest.approx(2 / 4.0)
    assert summary.runs == 2


def test_time_is_unknown_when_a_timestamp_is_not_one() -> None:
    """A ts that is not ISO-8601 makes time and rate unknown instead of failing the summary."""
    summary = summary_of(start(ts="yesterday"), sent("a", ts="noon"), ok("a", ts=at(1)))
    assert summary.elapsed_s is None and summary.achieved_rate is None


@pytest.mark.parametrize(
    ("tail", "interrupted"),
    [([finish(False)], False), ([finish(True)], True), ([], None)],
    ids=["finished", "interrupted", "killed"],
)
def test_interrupted_is_the_last_runs(tail: list[dict[str, Any]], interrupted: bool | None) -> None:
    """The last run's run_finished decides; a run without one (killed, running) is None."""
    summary = summary_of(start(), finish(True), start(), sent("a"), *tail)
    assert summary.interrupted is interrupted


def test_an_empty_ledger_summarizes_to_nothing() -> None:
    """No lines: no sweep, zero counts, unknown times, not complete."""
    summary = summarize(fold([]))
    assert summary == Summary(
        sweep=None, total=0, succeeded=0, failed=0, pending=0, not_started=0, reconciled=0,
        retries=0, failures_by_code={}, failure_examples={}, started_at=None, finished_at=None,
        elapsed_s=None, achieved_rate=None, interrupted=None, runs=0, torn_line=False,
    )  # fmt: skip
    assert not summary.complete


def test_complete_only_when_every_point_succeeded() -> None:
    """complete needs a run and nothing failed, unknown or not started."""
    assert summary_of(*all_done()).complete
    assert not summary_of(*all_done()[:-2]).complete  # k2 still unknown
    assert not summary_of(*all_done(), bad("k0")).complete
    assert not summary_of(start(total=4), ok("a")).complete


def test_as_dict_is_plain_json_with_complete() -> None:
    """as_dict round-trips through JSON and carries ``complete``."""
    data = summary_of(*all_done(), bad("x")).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["complete"] is False and data["failures_by_code"] == {"ModelArts.2763": 1}


# --- the table -----------------------------------------------------------------------------------


def rendered(summary: Summary) -> str:
    out = io.StringIO()
    render_summary(summary, Console(file=out, width=120, color_system=None))
    return out.getvalue()


def test_the_table_shows_counts_failures_rate_and_time() -> None:
    """The table carries the counts, each error code with its count and example, rate and time."""
    records = [start(total=5, ts=at(0)), sent("a", ts=at(1)), ok("a", ts=at(2), reconciled=True)]
    records += [sent("b", ts=at(2)), bad("b", ts=at(3), message="flavor gpu.x not found")]
    text = rendered(summary_of(*records, finish(ts=at(64))))
    for expected in (
        "sweep lr-sweep", "points", "succeeded", "1 found on the server", "failed",
        "not started", "ModelArts.2763", "flavor gpu.x not found",
        "1.0 points/s", "1m 4s", "finished",
    ):  # fmt: skip
        assert expected in text
    for zero in ("outcome unknown", "retries", "throttled"):  # rows of zeros are left out
        assert zero not in text


def test_the_table_prints_server_text_literally() -> None:
    """Error messages are shown as text, never read as rich markup."""
    text = rendered(summary_of(start(), bad("a", message="bad [bold]value[/bold] [x]")))
    assert "bad [bold]value[/bold] [x]" in text


def test_next_steps_say_what_to_run() -> None:
    """The summary ends with what to do: reconcile, retry failed, resume, or nothing."""
    steps = next_steps(summary_of(start(total=4), sent("a"), bad("b"), ok("c")))
    assert any("re-run the same command" in s and "server" in s for s in steps)
    assert any("--retry-failed" in s for s in steps)
    assert any("1 point(s) not started" in s for s in steps)
    assert next_steps(summary_of(*all_done())) == ["Every point succeeded."]


# --- batchsubmit status --------------------------------------------------------------------------


def test_status_exits_0_when_every_point_succeeded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished sweep: the table, and exit 0."""
    path = write(tmp_path / "s.jsonl", *all_done())
    assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sweep lr-sweep" in out and "Every point succeeded." in out


@pytest.mark.parametrize(
    "extra",
    [[bad("k0")], [sent("k1", attempt=2)], [start(total=4)]],
    ids=["failed", "unknown", "not-started"],
)
def test_status_exits_1_when_any_point_is_not_a_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[dict[str, Any]]
) -> None:
    """A failed, unknown or unstarted point makes status exit 1."""
    path = write(tmp_path / "s.jsonl", *all_done(), *extra)
    assert main(["status", str(path)]) == 1


def test_status_json_prints_one_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the summary as one JSON object on one line, and nothing else."""
    path = write(tmp_path / "s.jsonl", *all_done(), bad("k0"))
    assert main(["status", str(path), "--json"]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    data = json.loads(out)
    assert data == summarize(ledger.read_ledger(path)).as_dict()
    assert (data["succeeded"], data["failed"], data["complete"]) == (2, 1, False)


def test_status_of_a_missing_ledger_exits_2_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path with no ledger is an error (exit 2) that says where ledgers come from."""
    path = tmp_path / "nope.jsonl"
    assert main(["status", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: no such ledger" in err and "batchsubmit run" in err


def test_status_of_a_damaged_ledger_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad line mid-file is reported with its path and line number, exit 2."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(encode(start()) + b"oops\n" + encode(sent("a")))
    assert main(["status", str(path)]) == 2
    assert f"{path}:2: not a JSON line" in capsys.readouterr().err


def test_status_mentions_a_torn_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ledger that ends in a torn line still summarises, and says the line was ignored."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"".join(encode(r) for r in all_done()) + b'{"event":"subm')
    with capture_logs() as events:
        assert main(["status", str(path)]) == 0
    assert "A line torn by a crash was ignored" in capsys.readouterr().out
    assert [e["event"] for e in events] == ["batchsubmit.ledger.torn_line"]


def test_status_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    """``status --help`` explains the counts, the exit codes and gives examples."""
    assert main(["status", "--help"]) == 0
    out = capsys.readouterr().out
    for expected in ("outcome unknown", "exit codes: 0 every point succeeded", "--json", "jq"):
        assert expected in out
    flat = " ".join(out.split())
    assert all(name in flat for name in summary_of(*all_done()).as_dict())  # --json lists them


def test_a_slim_fold_summarises_like_a_full_one() -> None:
    """Resuming and summarising need no parameters or paths: a slim fold gives the same summary."""
    lines = [ledger.encode(r) for r in all_done(5)]
    slim = ledger.fold(lines, slim=True)
    assert summarize(slim) == summarize(ledger.fold(lines))
    assert all("parameter" not in r and "train_url" not in r for r in slim.outcomes.values())


def test_the_verdict_of_a_watched_sweep_speaks_of_its_trainings() -> None:
    """Every point submitted but a training failed: the verdict says so, not "every point
    succeeded"; with every training completed, it says that."""
    watched = [
        ledger.status(key=k, version_id=21, status=code, status_name=name, duration_ms=1, ts=T0)
        for k, code, name in (("k0", 10, "COMPLETED"), ("k1", 11, "FAILED"), ("k2", 8, "RUNNING"))
    ]
    steps = next_steps(summary_of(*all_done(), *watched))
    assert steps == [
        "Every point was submitted; training: 1 completed, 1 ended without completing, 1 still "
        "running when last seen (`status --points --succeeded` lists them, `watch` follows them "
        "on)."
    ]
    completed = [
        ledger.status(key=f"k{i}", version_id=21, status=10, status_name="COMPLETED",
                      duration_ms=1, ts=T0)
        for i in range(3)
    ]
    assert next_steps(summary_of(*all_done(), *completed)) == [
        "Every point succeeded, and every training completed (3)."
    ]


def test_a_halted_run_says_why_in_the_ledger_and_the_summary() -> None:
    """run_finished records why the failure-rate guard halted the run; the summary shows it."""
    halted = ledger.run_finished(counts={"throttled": 4}, interrupted=False,
                                 halted="more than 50% of the last 20 requests failed", ts=T0)
    summary = summary_of(start(total=2), sent("a"), bad("a"), halted)
    assert summary.halted == "more than 50% of the last 20 requests failed"
    assert summary.throttled == 4
    assert "The last run halted: more than 50% of the last 20 requests failed." in (
        next_steps(summary)
    )
    assert "halted (too many failures)" in rendered(summary)


def test_stopped_and_deleted_versions_are_counted() -> None:
    """Versions `batchsubmit stop`/`delete` acted on are counted (their current version only)
    and shown as rows of the table."""
    acted = [
        ledger.stopped(key="k0", version_id=21, job_id=10, ts=T0),
        ledger.stopped(key="k1", version_id=99, job_id=10, ts=T0),  # an older version: not now
        ledger.deleted(key="k2", version_id=21, job_id=10, ts=T0),
    ]
    summary = summary_of(*all_done(), *acted)
    assert (summary.stopped, summary.deleted) == (1, 1)
    text = rendered(summary)
    assert "by `batchsubmit stop`" in text and "by `batchsubmit delete`" in text

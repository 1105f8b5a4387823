"""Every numeric flag and spec key is checked against one table (batchsubmit.bounds): finite,
in range, a whole number where one is counted; exit 2 and nothing written or sent otherwise."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchsubmit import bounds
from batchsubmit.bounds import Bound
from batchsubmit.cli import main
from batchsubmit.errors import SpecError, UsageError
from batchsubmit.runner import RunRequest, plan_run
from batchsubmit.sweep import SweepSpec, load_spec

FLAGS: list[tuple[str, str, Bound]] = [
    ("run", "--rate", bounds.RATE),
    ("run", "--concurrency", bounds.CONCURRENCY),
    ("run", "--max-attempts", bounds.MAX_ATTEMPTS),
    ("run", "--timeout", bounds.TIMEOUT),
    ("run", "--settle", bounds.SETTLE),
    ("run", "--watch-interval", bounds.INTERVAL),
    ("run", "--job-id", bounds.JOB_ID),
    ("watch", "--interval", bounds.INTERVAL),
    ("watch", "--rate", bounds.RATE),
    ("expand", "--limit", bounds.LIMIT),
    ("expand", "--job-id", bounds.JOB_ID),
    ("expand", "--rate", bounds.RATE),
]
SPEC = {
    "name": "bounds", "target": {"endpoint": "http://127.0.0.1:9", "project_id": "p", "job_id": 10},
    "base": {"config": {
        "worker_server_num": 1, "app_url": "/b/a/", "boot_file_url": "/b/a/t.py",
        "data_url": "/b/d/", "spec_id": 1, "pre_version_id": 20, "train_url": "/b/o/{key}/",
    }},
    "grid": {"lr": [1, 2]},
}


def invalid_text(bound: Bound) -> st.SearchStrategy[str]:
    """Text a flag of these bounds must refuse."""
    texts = [st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "", "abc", "1e999"])]
    if bound.integer:
        low, high = int(bound.low), int(bound.high)
        texts += [st.integers(max_value=low - 1).map(str),
                  st.integers(min_value=high + 1).map(str), st.just(f"{low}.5")]
    else:
        texts += [
            st.floats(max_value=bound.low, exclude_max=True, allow_nan=False,
                      allow_infinity=False).map(repr),
            st.floats(min_value=bound.high, exclude_min=True, allow_nan=False,
                      allow_infinity=False).map(repr),
        ]
    return st.one_of(*texts)


@pytest.mark.parametrize(("command", "flag", "bound"), FLAGS, ids=[f"{c} {f}" for c, f, _ in FLAGS])
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_bad_numeric_flag_is_a_usage_error_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, flag: str, bound: Bound,
    data: st.DataObject,
) -> None:
    """Out of range, nan, inf or not a number: exit 2 naming the flag; no ledger, no request."""
    text = data.draw(invalid_text(bound))
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(SPEC))
    ledger = tmp_path / "l.jsonl"
    target = {"run": [str(spec), "--ledger", str(ledger)], "watch": [str(ledger)],
              "expand": [str(spec)]}[command]
    code = main([command, *target, f"{flag}={text}"])
    _, err = capsys.readouterr()
    assert code == 2, (flag, text, err)
    assert f"argument {flag}: must be" in err
    assert not ledger.exists()


@pytest.mark.parametrize("bound", [b for _, _, b in FLAGS], ids=[f for _, f, _ in FLAGS])
def test_the_edges_of_a_range_are_allowed(bound: Bound) -> None:
    """The least and the most a bound allows are accepted, as numbers and as flag text."""
    parse = bound.parser()
    for value in (bound.low, bound.high):
        text = str(int(value)) if bound.integer else repr(float(value))
        assert parse(text) == value
        assert bound.check(value) == value


@pytest.mark.parametrize(
    ("field", "value"),
    [("rate", 0), ("rate", float("nan")), ("rate", math.inf), ("concurrency", 0),
     ("concurrency", 1001), ("max_attempts", 0), ("timeout", 0), ("settle", -1),
     ("settle", math.inf), ("grace", float("nan")), ("job_id", 0)],
)
def test_the_python_api_checks_the_same_bounds(tmp_path: Path, field: str, value: float) -> None:
    """A value passed from Python meets the same table: UsageError naming the flag."""
    spec = SweepSpec.from_dict(SPEC)
    with pytest.raises(UsageError, match="must be"):
        plan_run(spec, RunRequest(**{field: value}), env={})


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [("rate", 0, "greater than or equal to 0.01"), ("rate", "nan", "finite"),
     ("concurrency", 1001, "less than or equal to 1000"), ("max_attempts", 0, "greater")],
)
def test_the_spec_keys_have_the_flags_bounds(
    tmp_path: Path, key: str, value: object, text: str
) -> None:
    """submit.rate, submit.concurrency and submit.max_attempts: the flags' bounds, in the spec."""
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps({**SPEC, "submit": {key: value}}).replace('"nan"', ".nan"))
    with pytest.raises(SpecError, match=text) as caught:
        load_spec(path)
    assert caught.value.field == f"submit.{key}"

"""Loading specs and the errors a wrong spec produces (batchsubmit.sweep.load_spec, preflight)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from batchsubmit.cli import main
from batchsubmit.errors import SpecError
from batchsubmit.models import brief
from batchsubmit.sweep import count_points, iter_points, load_spec, preflight

BASE = """\
name: demo
target:
  endpoint: emulator
  project_id: 0123456789abcdef0123456789abcdef
  job_id: 10
base:
  job_desc: "lr={learning_rate}"
  config:
    worker_server_num: 1
    app_url: /bucket/app/
    boot_file_url: /bucket/app/train.py
    data_url: /bucket/data/
    spec_id: 1
    engine_id: 1
    pre_version_id: 20
    train_url: /bucket/out/{key}/
grid:
  learning_rate: [0.1, 0.01]
  batch_size: [32, 64]
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_valid_spec_loads_with_its_metadata(tmp_path: Path) -> None:
    """A valid spec exposes name, path, sha256 of its bytes, target and submit defaults."""
    import hashlib

    path = write(tmp_path, BASE)
    spec = load_spec(path)
    assert spec.name == "demo"
    assert spec.path == path
    assert spec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert spec.target.endpoint == "emulator"
    assert spec.target.job_id == 10
    assert spec.submit.rate is None and spec.submit.concurrency is None
    assert count_points(spec) == 4


# Each kind of mistake: (name, the spec text, the field, a text the line contains, message part).
MISTAKES = [
    (
        "yaml-syntax",
        BASE.replace("batch_size: [32, 64]", "batch_size: [32, 64"),
        None,
        None,
        "YAML syntax error",
    ),
    (
        "unknown-key",
        BASE.replace("grid:", "gird:"),
        "gird",
        "gird:",
        "did you mean 'grid'",
    ),
    (
        "unknown-config-field",
        BASE.replace("train_url:", "trian_url:"),
        "base.config.trian_url",
        "trian_url:",
        "did you mean 'train_url'",
    ),
    (
        "missing-data-source",
        BASE.replace("    data_url: /bucket/data/\n", ""),
        "base.config",
        "config:",
        "no data source",
    ),
    (
        "two-data-sources",
        BASE.replace(
            "    data_url: /bucket/data/\n",
            "    data_url: /bucket/data/\n    dataset_id: d1\n    dataset_version_id: v1\n",
        ),
        "base.config",
        "config:",
        "more than one data source",
    ),
    (
        "job-desc-300",
        BASE.replace('job_desc: "lr={learning_rate}"', f'job_desc: "{"x" * 296}{{learning_rate}}"'),
        "base.job_desc",
        "job_desc:",
        "renders to 299 characters, more than the 256",
    ),
    (
        "duplicate-train-url",
        BASE.replace("train_url: /bucket/out/{key}/", "train_url: /bucket/out/same/"),
        "base.config.train_url",
        "train_url:",
        "also the train_url of point #0",
    ),
    (
        "unknown-placeholder",
        BASE.replace("train_url: /bucket/out/{key}/", "train_url: /bucket/out/{lr}/{key}/"),
        "base.config.train_url",
        "train_url:",
        "unknown placeholder {lr}: did you mean {learning_rate}?",
    ),
    (
        "null-value",
        BASE.replace("learning_rate: [0.1, 0.01]", "learning_rate:\n    - 0.1\n    - null"),
        "grid.learning_rate[1]",
        "- null",
        "null is not a parameter value",
    ),
]


def check(spec_path: Path) -> int:
    return preflight(load_spec(spec_path))


@pytest.mark.parametrize(
    ("text", "field", "line_text", "message"),
    [case[1:] for case in MISTAKES],
    ids=[case[0] for case in MISTAKES],
)
def test_each_mistake_raises_spec_error_naming_the_place(
    tmp_path: Path, text: str, field: str | None, line_text: str | None, message: str
) -> None:
    """Each kind of mistake raises SpecError with the file, the line, the field and the reason."""
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        check(path)
    error = caught.value
    assert error.path == str(path)
    assert message in str(error)
    assert error.line is not None
    if line_text is not None:
        assert error.line == line_of(text, line_text)
    if field is not None:
        assert error.field == field
        assert f"field {field}" in str(error)
    assert str(error).startswith(f"{path}:{error.line}: ")


@pytest.mark.parametrize(
    ("text", "message"), [(case[1], case[4]) for case in MISTAKES], ids=[c[0] for c in MISTAKES]
)
def test_each_mistake_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    """`batchsubmit expand` on a wrong spec exits 2 with a one-paragraph message, no traceback."""
    path = write(tmp_path, text)
    assert main(["expand", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"batchsubmit: error: {path}:")
    assert message in err
    assert "Traceback" not in err
    assert err.count("\n") == 1


def test_point_specific_errors_name_index_and_key(tmp_path: Path) -> None:
    """A body invalid for one point only names that point's index and key."""
    text = BASE.replace('job_desc: "lr={learning_rate}"', 'job_desc: "{batch_size}"').replace(
        "batch_size: [32, 64]", f"batch_size: [32, {'9' * 300}]"
    )
    path = write(tmp_path, text)
    spec = load_spec(path)  # point 0 is fine
    with pytest.raises(SpecError) as caught:
        preflight(spec)
    error = caught.value
    assert error.index == 1
    points = list(iter_points(spec, validate=False))
    assert error.key == points[1].key
    assert f"point #1 (key {points[1].key})" in str(error)
    assert error.field == "base.job_desc"


def test_duplicate_train_url_error_names_both_points(tmp_path: Path) -> None:
    """Colliding train_urls name the later point, the earlier one, and how to fix it."""
    text = BASE.replace(
        "train_url: /bucket/out/{key}/", "train_url: /out/{learning_rate}{batch_size}/"
    )
    text = text.replace("learning_rate: [0.1, 0.01]", "learning_rate: ['1', '11']")
    text = text.replace("batch_size: [32, 64]", "batch_size: ['1', '11']")
    spec = load_spec(write(tmp_path, text))
    assert not spec.plan.train_url_unique
    points = list(iter_points(spec, validate=False))
    with pytest.raises(SpecError) as caught:
        preflight(spec)
    error = caught.value
    assert error.index == 2 and error.key == points[2].key  # "11"+"1" == "1"+"11"
    assert f"point #1 (key {points[1].key})" in str(error)
    assert "put {key} in train_url" in str(error)


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (("learning_rate: [0.1, 0.01]", "learning_rate: [0.1, 0.1]"), "grid.learning_rate[1]",
         "listed twice"),
        (("learning_rate: [0.1, 0.01]", "learning_rate: [0.1, '0.1']"), "grid.learning_rate[1]",
         "listed twice"),
        (("learning_rate: [0.1, 0.01]", "learning_rate: []"), "grid.learning_rate",
         "no values"),
        (("grid:\n  learning_rate: [0.1, 0.01]\n  batch_size: [32, 64]\n", "submit: {rate: 1}\n"),
         None, "nothing to sweep"),
        (("batch_size: [32, 64]", "batch_size: [32, 64]\nzip:\n  batch_size: [1]"),
         "zip.batch_size", "already swept by grid.batch_size"),
        (("batch_size: [32, 64]", "key: [1, 2]"), "grid.key", "reserved"),
        (("batch_size: [32, 64]", "batch size: [1, 2]"), "grid.batch size", "whitespace"),
        (("batch_size: [32, 64]", "batch_size: [32, 64]\n  batch_size: [1]"), "grid.batch_size",
         "duplicate key 'batch_size'"),
        (("name: demo", "name: my sweep"), "name", "does not match"),
        (("endpoint: emulator", "endpoint: http://example.com"), "target.endpoint",
         "neither \"emulator\" nor an https:// URL"),
        (("job_id: 10", "job_id: ten"), "target.job_id", "must be an integer"),
        (("project_id: 0123456789abcdef0123456789abcdef", "project_id: 12345"),
         "target.project_id", "must be a string, got 12345 (quote it)"),
        (("batch_size: [32, 64]", "batch_size: [32, 64]\nexclude:\n  - {lr: 0.1}"), "exclude[0].lr",
         "not a swept label: did you mean 'learning_rate'?"),
        (("batch_size: [32, 64]", "batch_size: [32, 64]\nexclude:\n  - {batch_size: 16}"),
         "exclude[0].batch_size", "would never match"),
        (("batch_size: [32, 64]", "batch_size: [32, 64]\nexclude:\n  - {}"), "exclude[0]",
         "drops every point"),
        (("batch_size: [32, 64]", "batch_size: [32, 64]\nexclude:\n  - {learning_rate: 0.1}\n"
          "  - {learning_rate: 0.01}"), "exclude", "no points"),
        (("batch_size: [32, 64]", "batch_size: [32, 64]\nzip:\n  a: [1, 2]\n  b: [1]"), "zip.a",
         "equal lengths"),
        (("batch_size: [32, 64]", "batch_size: [32, 64]\nzip:\n  a: [1, 1]\n  b: [2, 2]"),
         "zip.a[1]", "repeats row 0"),
        (("train_url: /bucket/out/{key}/", "train_url: /bucket/out/{key}/{label}/"),
         "base.config.train_url", "unknown placeholder {label}"),
        (("train_url: /bucket/out/{key}/", "train_url: /bucket/out/{key:x}/"),
         "base.config.train_url", "placeholders are plain names"),
        (("train_url: /bucket/out/{key}/", "train_url: 5"), "base.config.train_url",
         "must be a string, got 5"),
        (("    spec_id: 1\n", ""), "base.config",
         "no resources: give spec_id (a public pool's resource spec) or pool_id"),
        (("worker_server_num: 1", "worker_server_num: '1'"), "base.config.worker_server_num",
         "must be an integer"),
    ],
)
def test_spec_mistakes_are_reported_at_their_field(
    tmp_path: Path, edit: tuple[str, str], field: str | None, message: str
) -> None:
    """Schema, label, exclude and template mistakes raise SpecError at the field that is wrong."""
    old, new = edit
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new))
    with pytest.raises(SpecError) as caught:
        check(path)
    assert message in str(caught.value)
    assert caught.value.field == field
    assert caught.value.path == str(path)


def test_random_space_smaller_than_samples_is_an_error(tmp_path: Path) -> None:
    """Asking for more distinct draws than a discrete space holds fails at load, not forever."""
    text = BASE + (
        "random:\n  samples: 5\n  space:\n    opt: {choice: [a, b]}\n    n: {randint: [1, 2]}\n"
    )
    with pytest.raises(SpecError, match="only 4 distinct combinations") as caught:
        load_spec(write(tmp_path, text))
    assert caught.value.field == "random.samples"


@pytest.mark.parametrize(
    ("dimension", "message"),
    [
        ("{uniform: [1, 0]}", "lo < hi"),
        ("{loguniform: [0, 1]}", "0 < lo < hi"),
        ("{randint: [3, 2]}", "lo <= hi"),
        ("{choice: [a, a]}", "twice"),
        ("{choice: [a, null]}", "null is not a parameter value"),
        ("{uniform: [0.1, 0.2], q: 1}", "no multiple of q"),
        ("{randint: [1, 2], q: 1}", "q quantises uniform/loguniform only"),
        ("{uniform: [0, 1], choice: [a]}", "exactly one distribution"),
        ("{gaussian: [0, 1]}", "unknown key 'gaussian'"),
        (f"{{uniform: [0, {10**400}]}}", "bounds must be finite numbers"),
        (f"{{loguniform: [1, {10**400}]}}", "… (401 characters)"),
        ("{uniform: [-1.0e308, 1.0e308]}", "wider than a float can hold"),
        ("{uniform: [0, 1], q: .inf}", "q must be a finite number"),
        ("{loguniform: [1.0e-300, 1.0e300], q: 1.0e-300}", "too small"),
        ("{uniform: [0, 1], q: 1.0e-19}", "raise q"),
        (f"{{randint: [0, {2**63}]}}", "64-bit integers"),
        (f"{{randint: [{-(2**63) - 1}, 0]}}", "64-bit integers"),
    ],
)
def test_bad_random_dimensions_are_errors(tmp_path: Path, dimension: str, message: str) -> None:
    """Impossible or ambiguous distributions are rejected at random.space.<label>."""
    text = BASE + f"random:\n  samples: 1\n  space:\n    x: {dimension}\n"
    with pytest.raises(SpecError, match=r"random\.space\.x") as caught:
        load_spec(write(tmp_path, text))
    assert message in str(caught.value)


def test_json_errors_carry_lines(tmp_path: Path) -> None:
    """A JSON spec's mistakes are reported with their line too."""
    data = {
        "name": "j",
        "target": {"endpoint": "emulator"},
        "base": {"config": {"worker_server_num": 1, "app_url": "/a/", "boot_file_url": "/a/b.py",
                            "data_url": "/d/", "spec_id": 1, "pre_version_id": 2,
                            "train_url": "/o/{key}/"}},
        "grid": {"lr": [0.1, None]},
    }
    text = json.dumps(data, indent=2)
    path = write(tmp_path, text, "spec.json")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.field == "grid.lr[1]"
    assert caught.value.line == line_of(text, "null")


def test_json_syntax_and_duplicate_keys(tmp_path: Path) -> None:
    """JSON syntax errors and duplicate keys are errors with a line, never last-one-wins."""
    with pytest.raises(SpecError, match="JSON syntax error") as caught:
        load_spec(write(tmp_path, '{\n  "name": "x",\n}', "bad.json"))
    assert caught.value.line == 3
    with pytest.raises(SpecError, match="duplicate key 'name'") as caught:
        load_spec(write(tmp_path, '{\n  "name": "x",\n  "name": "y"\n}', "dup.json"))
    assert caught.value.line == 3


def test_toml_errors_carry_lines(tmp_path: Path) -> None:
    """A TOML spec's mistakes are reported with the line of the key."""
    text = """\
    name = "t"
    [target]
    endpoint = "emulator"
    [base]
    job_desc = "{nope}"
    [base.config]
    worker_server_num = 1
    [grid]
    lr = [0.1]
    """
    path = write(tmp_path, text, "spec.toml")
    with pytest.raises(SpecError, match=r"unknown placeholder \{nope\}") as caught:
        load_spec(path)
    assert caught.value.line == 5
    with pytest.raises(SpecError, match="TOML syntax error") as caught:
        load_spec(write(tmp_path, 'name = "t"\n[target\n', "bad.toml"))
    assert caught.value.line == 2


def test_yaml_reads_numbers_and_words_as_yaml_1_2(tmp_path: Path) -> None:
    """1e-5 is a float, on/yes/no stay strings, 0123 is decimal, dates stay strings."""
    text = BASE.replace(
        "batch_size: [32, 64]", "batch_size: [1e-5, on, yes, no, 0123, 2024-01-01, 0x1F, true]"
    )
    spec = load_spec(write(tmp_path, text))
    values = [dict(p.values)["batch_size"] for p in iter_points(spec) if p.index < 8]
    assert values == ["1e-05", "on", "yes", "no", "123", "2024-01-01", "31", "true"]


def test_unsupported_suffix_and_missing_file(tmp_path: Path) -> None:
    """Only .yaml/.yml/.json/.toml are read; a missing file is a SpecError, not an OSError."""
    with pytest.raises(SpecError, match="unsupported file type"):
        load_spec(write(tmp_path, BASE, "spec.txt"))
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_spec(tmp_path / "absent.yaml")


def test_spec_that_is_not_a_mapping(tmp_path: Path) -> None:
    """An empty file or a top-level list is rejected with what a spec should look like."""
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(write(tmp_path, ""))
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(write(tmp_path, "- a\n- b\n"))


def test_randint_takes_the_whole_64_bit_range(tmp_path: Path) -> None:
    """randint bounds of -2**63 and 2**63 - 1 are accepted, and draw within them."""
    dimension = f"{{randint: [{-(2**63)}, {2**63 - 1}]}}"
    text = BASE + f"random:\n  samples: 3\n  space:\n    x: {dimension}\n"
    spec = load_spec(write(tmp_path, text))
    assert all(-(2**63) <= int(dict(p.values)["x"]) < 2**63 for p in iter_points(spec))


SIZE_BOUND = BASE.replace("batch_size: [32, 64]", "batch_size: [32, 64]\n  extra: [a, b, c]") + (
    "random:\n  samples: 1000000\n  space:\n    x: {uniform: [0, 1]}\n"
)


def test_a_random_search_of_at_most_ten_million_points_loads(tmp_path: Path) -> None:
    """12 cells, 2 excluded, x 10**6 samples: exactly the bound, counted by arithmetic."""
    text = SIZE_BOUND + "exclude:\n  - {extra: c, learning_rate: 0.1}\n"
    assert count_points(load_spec(write(tmp_path, text))) == 10_000_000


def test_a_random_search_beyond_ten_million_points_is_refused(tmp_path: Path) -> None:
    """12 cells x 10**6 samples: SpecError at random.samples naming the count and the bound,
    even with an exclude naming a random label (which --count would have to draw for)."""
    text = SIZE_BOUND + "exclude:\n  - {x: '0.5'}\n"
    with pytest.raises(SpecError, match=r"12,000,000 points.*10,000,000") as caught:
        load_spec(write(tmp_path, text))
    assert caught.value.field == "random.samples"
    assert caught.value.line == line_of(text, "samples:")


def test_samples_beyond_a_million_are_refused(tmp_path: Path) -> None:
    """random.samples is at most 1,000,000: the error names the field and the bound."""
    text = BASE + "random:\n  samples: 1000001\n  space:\n    x: {uniform: [0, 1]}\n"
    with pytest.raises(SpecError, match=r"at most 1,000,000.*got 1000001") as caught:
        load_spec(write(tmp_path, text))
    assert caught.value.field == "random.samples"


def test_brief_cuts_a_long_value_and_says_how_long_it_was() -> None:
    """Short values are their repr; long ones their first 80 characters, … and the length."""
    assert brief("abc") == "'abc'"
    assert brief([1] * 3) == "[1, 1, 1]"
    long = brief("x" * 1000)
    assert long == "'" + "x" * 79 + "… (1002 characters)"
    assert brief(10**5000).startswith("an integer of about 500")


def test_a_long_bad_value_is_quoted_briefly(tmp_path: Path) -> None:
    """The message quotes the start of a 100 000-character name, keeping the rest as it was."""
    text = BASE.replace("name: demo", "name: " + "x" * 100_000)
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, text))
    assert caught.value.field == "name"
    assert "'xxxxx" in str(caught.value) and "… (100002 characters) does not match" in str(
        caught.value
    )
    assert len(str(caught.value)) < 300

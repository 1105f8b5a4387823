"""Spec fuzzing: random and mutated spec files never crash `expand` or `run`, and never send.

The examples in sweeps/ are mutated at two levels: their parsed data (keys deleted, renamed or
retyped, values replaced by nulls, unicode, huge numbers, deep nesting, repeated list items) written
back as YAML, JSON or TOML, and their bytes (truncated, garbage injected, lines deleted, repeated
or swapped, a wrong extension). Whatever comes out, `batchsubmit expand` exits 0, or 2 with one
paragraph naming the file; `batchsubmit run` against a real emulator exits 2 for every spec that
`expand` refuses, without a single request reaching the emulator and without creating a ledger.
"""

from __future__ import annotations

import copy
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from batchsubmit.emulator import Emulator, EmulatorConfig
from batchsubmit.sweep.loader import SUFFIXES, KeyPath, read_spec
from tests.fakes import cli, emulator_in_thread

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
SEEDS = sorted(p for p in SWEEPS.iterdir() if p.suffix in SUFFIXES)
SEED_DATA = {path: read_spec(path).data for path in SEEDS}
SIDE_FILES = [SWEEPS / "reversion-jobs.txt"]  # a spec's job_ids file, relative to the spec
SEEDED_JOBS = {10: 20, 11: 30, 12: 40}  # the jobs the examples name, each with a first version
FUZZ = settings(
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- helpers shared with test_bad_ledger.py and test_security.py ---------------------------------


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """`main` configures structlog to the captured stderr of a test: undo that afterwards."""
    yield
    structlog.reset_defaults()


def spec_file(folder: Path, suffix: str, raw: bytes) -> Path:
    """Write a spec into ``folder``, beside copies of the files the examples refer to."""
    for side in SIDE_FILES:
        (folder / side.name).write_bytes(side.read_bytes())
    path = folder / f"spec{suffix}"
    path.write_bytes(raw)
    return path


def assert_refused(code: int, err: str, path: Path) -> None:
    """Exit 2 and one paragraph of stderr that begins by naming the spec file."""
    assert code == 2, err
    message = err.strip()
    assert message.startswith(f"batchsubmit: error: {path}"), message[:500]
    assert "\n\n" not in message, message[:500]


# --- the mutations -------------------------------------------------------------------------------

# (10**5000 is among EDGE_CASES below: Python will not write it as text)
HUGE_NUMBERS = [2**63, -(2**63) - 1, 10**30, -(10**30), 10**400, 1e308, -1e308]
ODD_TEXT = ["", " ", "\u202e\u0644\u0645", "\U0001d11e" * 3, "😀", "a\x00b", "\ud7ff", "ß" * 300]
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.sampled_from(HUGE_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(ODD_TEXT),
)
VALUES = st.one_of(
    LEAVES,
    st.lists(LEAVES, max_size=3),
    st.dictionaries(st.text(max_size=6), LEAVES, max_size=2),
)


def paths(node: Any, prefix: KeyPath = ()) -> Iterator[KeyPath]:
    """Every path below ``node`` (not the root itself)."""
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def parent_of(data: Any, path: KeyPath) -> Any:
    node = data
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutated_data(draw: st.DrawFn, data: Any) -> Any:
    """One structural mutation of parsed spec data."""
    data = copy.deepcopy(data)
    where = list(paths(data))
    if not where:
        return draw(VALUES)
    path = draw(st.sampled_from(where))
    parent, last = parent_of(data, path), path[-1]
    kind = draw(
        st.sampled_from(["delete", "retype", "null", "huge", "nest", "rename", "repeat", "unicode"])
    )
    if kind == "delete":
        del parent[last]
    elif kind == "retype":
        parent[last] = draw(VALUES)
    elif kind == "null":
        parent[last] = None
    elif kind == "huge":
        parent[last] = draw(st.sampled_from(HUGE_NUMBERS))
    elif kind == "nest":
        value = parent[last]
        for _ in range(draw(st.sampled_from([1, 2, 5, 40, 70, 120]))):
            value = [value] if draw(st.booleans()) else {"k": value}
        parent[last] = value
    elif kind == "rename" and isinstance(parent, dict):
        new = draw(st.sampled_from([str(last).upper(), f"{last}s", f"{last}_", "", "名前"]))
        parent[new] = parent.pop(last)
    elif kind == "repeat" and isinstance(parent, list):
        parent.insert(int(last), copy.deepcopy(parent[int(last)]))
    elif kind == "unicode":
        parent[last] = draw(st.sampled_from(ODD_TEXT)) + str(parent[last])
    return data


def toml_value(value: Any) -> str | None:
    """``value`` as an inline TOML value; None for a null (TOML has none: the entry is left out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        items = [t for t in map(toml_value, value) if t is not None]
        return "[" + ", ".join(items) + "]"
    pairs = [(toml_string(str(k)), toml_value(v)) for k, v in value.items()]
    return "{" + ", ".join(f"{k} = {v}" for k, v in pairs if v is not None) + "}"


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but TOML also wants DEL escaped."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def dump(data: Any, suffix: str, ascii_only: bool) -> bytes:
    """``data`` written as a spec file of type ``suffix``."""
    if suffix == ".json":
        return json.dumps(data, ensure_ascii=ascii_only, indent=2).encode()
    if suffix == ".toml":
        if not isinstance(data, dict):
            return (toml_value(data) or "").encode()
        pairs = [(toml_string(str(k)), toml_value(v)) for k, v in data.items()]
        return "".join(f"{k} = {v}\n" for k, v in pairs if v is not None).encode()
    return yaml.safe_dump(data, allow_unicode=not ascii_only, sort_keys=False).encode()


@st.composite
def mutated_bytes(draw: st.DrawFn, raw: bytes) -> bytes:
    """One byte-level mutation: truncation, garbage, a line deleted, repeated or swapped."""
    lines = raw.splitlines(keepends=True)
    kind = draw(st.sampled_from(["truncate", "garbage", "delete", "repeat", "swap", "empty"]))
    at = draw(st.integers(0, len(raw)))
    if kind == "truncate":
        return raw[:at]
    if kind == "garbage":
        junk = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"\x00", b"\xfe", b"{"]))
        return raw[:at] + junk + raw[at:]
    if kind == "empty" or not lines:
        return draw(st.sampled_from([b"", b"  \n\n", b"\xef\xbb\xbf", b"#", b"null", b"[]"]))
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(0, len(lines) - 1))
    if kind == "delete":
        del lines[i]
    elif kind == "repeat":
        lines.insert(i, lines[i])  # a duplicated key, most often
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


@st.composite
def spec_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name suffix, content) of a mutated example spec."""
    seed = draw(st.sampled_from(SEEDS))
    fmt = seed.suffix
    as_written = draw(st.booleans())
    if as_written:
        raw = seed.read_bytes()  # comments, layout and all: only its bytes will be mutated
    else:
        data = SEED_DATA[seed]
        for _ in range(draw(st.integers(1, 3))):
            data = draw(mutated_data(data))
        fmt = draw(st.sampled_from([fmt, fmt, ".yaml", ".json", ".toml"]))
        raw = dump(data, fmt, ascii_only=draw(st.booleans()))
    for _ in range(draw(st.integers(1 if as_written else 0, 2))):
        raw = draw(mutated_bytes(raw))
    wrong = [".yml", ".YAML", ".json", ".toml", ".txt", "", ".yaml.bak", ".jsonl"]
    suffix = draw(st.sampled_from([fmt] * 6 + wrong))
    return suffix, raw


# --- the properties ------------------------------------------------------------------------------


@settings(FUZZ, max_examples=250)
@given(spec=spec_files())
def test_expand_never_crashes_on_a_mutated_spec(
    spec: tuple[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """`expand` on any mutated spec exits 0, or 2 in one paragraph naming the file: no traceback."""
    suffix, raw = spec
    with tempfile.TemporaryDirectory() as folder:
        path = spec_file(Path(folder), suffix, raw)
        code, out, err = cli(["expand", str(path)], capsys)
    event(f"expand exits {code}")
    assert "Traceback" not in out + err
    assert code in (0, 2), err
    if code == 2:
        assert_refused(code, err, path)
        assert out == ""


@pytest.fixture(scope="module")
def open_emulator() -> Iterator[Emulator]:
    """One emulator (open auth, job 10 at version 20) for every fuzzed `run`."""
    with emulator_in_thread(EmulatorConfig(jobs=SEEDED_JOBS)) as emulator:
        yield emulator


@settings(FUZZ, max_examples=100)
@given(spec=spec_files())
def test_run_sends_nothing_for_a_spec_expand_refuses(
    spec: tuple[str, bytes],
    open_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`run` exits 2 in one paragraph, sends no request and writes no ledger for an invalid spec."""
    monkeypatch.setenv("MODELARTS_TOKEN", "fuzz-token")
    for name in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    suffix, raw = spec
    with tempfile.TemporaryDirectory() as folder:
        path, ledger = spec_file(Path(folder), suffix, raw), Path(folder) / "fuzz.ledger.jsonl"
        valid = cli(["expand", str(path), "--json", "--limit", "1"], capsys)[0] == 0
        before = open_emulator.counters["requests"]
        code, out, err = cli(
            ["run", str(path), "--endpoint", open_emulator.url, "--ledger", str(ledger),
             "--rate", "500", "--concurrency", "4", "--settle", "0", "--timeout", "5",
             "--max-attempts", "2", "--quiet"],
            capsys,
        )  # fmt: skip
        sent = open_emulator.counters["requests"] - before
        event(f"expand {'accepts' if valid else 'refuses'}; run exits {code}")  # for the statistics
        assert "Traceback" not in out + err
        if not valid:  # (the message may name a missing project id first, not the file)
            assert code == 2, err
            assert err.startswith("batchsubmit: error: ") and "\n\n" not in err.strip()
            assert sent == 0
            assert not ledger.exists()
        else:
            assert code in (0, 1, 2), err  # 1: the server refused points; 2: say, no project id


# --- the cases a fuzzer reaches rarely, each pinned once -----------------------------------------


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def _laughs() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def _replace(seed: str, old: str, new: str) -> Callable[[], str]:
    def make() -> str:
        text = (SWEEPS / seed).read_text()
        assert old in text
        return text.replace(old, new, 1)

    return make


EDGE_CASES: dict[str, tuple[str, Callable[[], str | bytes]]] = {
    "empty yaml": (".yaml", lambda: ""),
    "empty json": (".json", lambda: ""),
    "empty toml": (".toml", lambda: ""),
    "only a BOM": (".yaml", lambda: b"\xef\xbb\xbf"),
    "only comments": (".yaml", lambda: "# nothing here\n"),
    "not UTF-8": (".yaml", lambda: b"name: \xff\xfe\n"),
    "UTF-16": (".json", lambda: (SWEEPS / "custom-image.json").read_text().encode("utf-16")),
    "NUL bytes": (".yaml", lambda: b"name: a\x00b\n"),
    "no extension": ("", lambda: (SWEEPS / "quickstart.yaml").read_text()),
    "a .txt": (".txt", lambda: (SWEEPS / "quickstart.yaml").read_text()),
    "json named toml": (".toml", lambda: (SWEEPS / "custom-image.json").read_text()),
    "toml named json": (".json", lambda: (SWEEPS / "built-in-algorithm.toml").read_text()),
    "json nested 100000 deep": (".json", lambda: _deep(100_000)),
    "yaml nested 5000 deep": (".yaml", lambda: _deep(5000)),
    "toml nested 5000 deep": (".toml", lambda: f"name = {_deep(5000)}\n"),
    "config nested 500 deep": (
        ".json",
        _replace("custom-image.json", '"spec_id": 1', f'"spec_id": {_deep(500)}'),
    ),
    "yaml alias that refers to itself": (".yaml", lambda: "grid: &g {lr: [*g]}\n"),
    "billion laughs": (".yaml", _laughs),
    "integer of 5000 digits, yaml": (
        ".yaml",
        _replace("quickstart.yaml", "[32, 64, 128]", f"[32, 64, {'9' * 5000}]"),
    ),
    "integer of 5000 digits, json": (
        ".json",
        _replace("custom-image.json", "[4, 8, 16]", f"[4, 8, {'9' * 5000}]"),
    ),
    "integer of 5000 digits, toml": (
        ".toml",
        _replace("built-in-algorithm.toml", "[1e-2, 1e-3, 1e-4]", f"[1e-2, {'9' * 5000}]"),
    ),
    "float overflow": (".json", _replace("custom-image.json", "[4, 8, 16]", "[4, 8, 1e999]")),
    "yaml tag of a Python object": (
        ".yaml",
        lambda: "name: !!python/object/apply:os.system ['echo pwned']\n",
    ),
    "duplicate key in json": (
        ".json",
        _replace("custom-image.json", '"rate": 1', '"rate": 1, "rate": 2'),
    ),
}


@pytest.mark.parametrize(("suffix", "make"), EDGE_CASES.values(), ids=list(EDGE_CASES))
def test_a_hostile_spec_is_refused_in_one_paragraph(
    suffix: str,
    make: Callable[[], str | bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Empty, binary, mis-named, deeply nested, alias-bombed or overlong specs exit 2 cleanly."""
    content = make()
    path = tmp_path / f"spec{suffix}"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, out, err = cli(["expand", str(path)], capsys)
    assert "Traceback" not in out + err
    assert_refused(code, err, path)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_spec_path_that_is_not_a_file_is_refused(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spec path that does not exist, or is a directory, exits 2 naming it."""
    path = tmp_path / "spec.yaml"
    if kind == "directory":
        path.mkdir()
    code, _, err = cli(["expand", str(path)], capsys)
    assert_refused(code, err, path)


JOB_IDS_FILES: dict[str, tuple[str, bytes | None]] = {
    "a NUL in its name": ("jobs\x00.txt", None),
    "missing": ("no-such-jobs.txt", None),
    "a directory": (".", None),
    "not UTF-8": ("jobs.txt", b"10\n\xff\xfe\n"),
    "an id of 5000 digits": ("jobs.txt", b"10\n" + b"9" * 5000 + b"\n"),
    "no ids at all": ("jobs.txt", b"# nothing\n\n"),
}


@pytest.mark.parametrize(("name", "content"), JOB_IDS_FILES.values(), ids=list(JOB_IDS_FILES))
def test_a_bad_job_ids_file_is_refused_in_one_paragraph(
    name: str, content: bytes | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A target.job_ids file that is unreadable, binary or holds no usable ids exits 2 cleanly."""
    if content is not None:
        (tmp_path / name).write_bytes(content)
    text = (SWEEPS / "reversion-jobs.yaml").read_text()
    path = tmp_path / "spec.yaml"
    path.write_text(text.replace("job_ids: reversion-jobs.txt", f"job_ids: {json.dumps(name)}"))
    code, out, err = cli(["expand", str(path)], capsys)
    assert "Traceback" not in out + err
    assert code == 2, err
    assert err.startswith("batchsubmit: error: ") and "\n\n" not in err.strip()


def test_the_largest_random_sweep_is_counted_without_allocating_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`expand --count` of 2 x 10**6 random draws (the most samples a spec may ask for) answers at
    once: arithmetic, no draws."""
    text = (SWEEPS / "random-search.yaml").read_text()
    text = text.replace("samples: 10", f"samples: {10**6}")
    path = tmp_path / "spec.yaml"
    path.write_text(text[: text.index("exclude:")])  # an exclude naming a random label draws
    assert cli(["expand", str(path), "--count"], capsys)[1] == f"{2 * 10**6}\n"


@pytest.mark.parametrize("count", [False, True], ids=["expand", "expand --count"])
def test_a_random_sweep_beyond_the_bound_is_refused_at_load(
    count: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A million samples for each of 11 grid points is more than 10**7 points: exit 2 naming
    the count and the bound, before a single draw (the exclude names a random label)."""
    text = (SWEEPS / "random-search.yaml").read_text()
    text = text.replace("samples: 10", f"samples: {10**6}")
    optimizers = ", ".join(["adam", "sgd", *(f"opt{i}" for i in range(9))])
    text = text.replace("optimizer: [adam, sgd]", f"optimizer: [{optimizers}]")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    code, out, err = cli(["expand", str(path), *(["--count"] if count else [])], capsys)
    assert_refused(code, err, path)
    assert out == ""
    assert "11,000,000 points" in err and "10,000,000" in err and "random.samples" in err


def test_an_enormous_sweep_is_refused_quickly(tmp_path: Path) -> None:
    """A spec of 10**15 random draws is refused in seconds with exit 2, not expanded for ever."""
    path = tmp_path / "huge.yaml"
    path.write_text((SWEEPS / "random-search.yaml").read_text().replace("samples: 10", "samples: "
                    + str(10**15)))  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "batchsubmit", "expand", str(path)],
            capture_output=True, text=True, timeout=3,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("expand still running after 3 s")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"batchsubmit: error: {path}")


def _limit_memory() -> None:
    """In the child: 2 GiB of address space, so a runaway allocation fails instead of the host."""
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_an_absurd_concurrency_is_refused_or_capped(tmp_path: Path) -> None:
    """submit.concurrency: 10**30 is refused (exit 2) or capped (exit 0): memory never runs out."""
    path = tmp_path / "spec.yaml"
    text = (SWEEPS / "quickstart.yaml").read_text()
    path.write_text(text.replace("concurrency: 4 ", f"concurrency: {10**30} "))
    with emulator_in_thread(EmulatorConfig()) as emulator:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "batchsubmit", "run", str(path), "--endpoint",
                 emulator.url, "--ledger", str(tmp_path / "l.jsonl"), "--quiet", "--rate", "100"],
                capture_output=True, text=True, timeout=20, preexec_fn=_limit_memory,
                env={**os.environ, "MODELARTS_TOKEN": "t", "HUAWEICLOUD_SDK_AK": ""},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail("run still going after 20 s")
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode in (0, 2), done.stderr[-2000:]


LONG_VALUES = {
    "name, 100000 characters": ("name: quickstart", "name: " + "x" * 100_000),
    "spec_id, a string of 100000 digits": ("spec_id: 1\n", f"spec_id: '{'9' * 100_000}'\n"),
    "worker_server_num, a list of 30000": (
        "worker_server_num: 1\n",
        f"worker_server_num: {[1] * 30_000}\n",
    ),
}


@pytest.mark.parametrize(("old", "new"), LONG_VALUES.values(), ids=list(LONG_VALUES))
def test_an_error_quotes_a_long_bad_value_briefly(
    old: str, new: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error about a huge value quotes a piece of it: the message stays under 1000 chars."""
    path = tmp_path / "spec.yaml"
    text = (SWEEPS / "quickstart.yaml").read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    code, _, err = cli(["expand", str(path)], capsys)
    assert_refused(code, err, path)
    assert len(err) < 1000, f"{len(err)} characters"


OVERFLOWING_DIMENSIONS = {
    "uniform up to 10**400": f"{{uniform: [0, {10**400}]}}",
    "loguniform up to 10**400": f"{{loguniform: [1, {10**400}]}}",
    "randint up to 10**400": f"{{randint: [0, {10**400}]}}",
    "loguniform with q 1e-300": "{loguniform: [1.0e-300, 1.0e300], q: 1.0e-300}",
}


@pytest.mark.parametrize("dimension", OVERFLOWING_DIMENSIONS.values(), ids=OVERFLOWING_DIMENSIONS)
def test_a_random_dimension_beyond_a_float_is_refused(
    dimension: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A random.space range or step no float can hold is a spec error (exit 2), not a crash."""
    path = tmp_path / "spec.yaml"
    text = (SWEEPS / "random-search.yaml").read_text()
    path.write_text(text.replace("layers: {randint: [2, 8]}", f"layers: {dimension}"))
    code, out, err = cli(["expand", str(path)], capsys)
    assert "Traceback" not in out + err
    assert_refused(code, err, path)

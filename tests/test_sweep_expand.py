"""Expansion: order, keys, counting, exclusions, random search, uniqueness (batchsubmit.sweep)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batchsubmit.errors import SpecError
from batchsubmit.models import CreateVersionRequest
from batchsubmit.sweep import (
    Point,
    SweepSpec,
    count_points,
    iter_points,
    load_spec,
    point_key,
    preflight,
    render_value,
)
from batchsubmit.sweep.sampling import DigestSet

CONFIG: dict[str, Any] = {
    "worker_server_num": 1,
    "app_url": "/bucket/app/",
    "boot_file_url": "/bucket/app/train.py",
    "data_url": "/bucket/data/",
    "spec_id": 1,
    "engine_id": 1,
    "pre_version_id": 20,
    "train_url": "/bucket/out/{key}/",
}


def make(**sections: Any) -> dict[str, Any]:
    config = dict(CONFIG)
    config.update(sections.pop("config", {}))
    spec: dict[str, Any] = {
        "name": "t",
        "target": {"endpoint": "emulator", "job_id": 10},
        "base": {"config": config},
    }
    if "job_desc" in sections:
        spec["base"]["job_desc"] = sections.pop("job_desc")
    spec.update(sections)
    return spec


def load(data: dict[str, Any], directory: Path | None = None) -> SweepSpec:
    """Write ``data`` as a JSON spec and load it."""
    if directory is None:
        with tempfile.TemporaryDirectory() as tmp:
            return load(data, Path(tmp))
    path = directory / "spec.json"
    path.write_text(json.dumps(data))
    return load_spec(path)


def expand(spec: SweepSpec) -> list[Point]:
    return list(iter_points(spec, validate=False))


# ---------------------------------------------------------------------------------------------
# Order, parameters, bodies.


def test_grid_order_is_file_order_last_key_fastest() -> None:
    """The grid is a cartesian product in file order, the last key varying fastest."""
    spec = load(make(grid={"a": [1, 2], "b": ["x", "y", "z"]}))
    assert [p.values for p in expand(spec)] == [
        (("a", va), ("b", vb)) for va in ("1", "2") for vb in ("x", "y", "z")
    ]
    assert [p.index for p in expand(spec)] == list(range(6))


def test_zip_is_one_axis_in_section_order() -> None:
    """zip lists advance together as one axis, placed where the zip section sits in the file."""
    spec = load({**make(zip={"seed": [1, 2], "split": ["a", "b"]}), "grid": {"m": ["r", "v"]}})
    assert [dict(p.values) for p in expand(spec)] == [
        {"seed": "1", "split": "a", "m": "r"},
        {"seed": "1", "split": "a", "m": "v"},
        {"seed": "2", "split": "b", "m": "r"},
        {"seed": "2", "split": "b", "m": "v"},
    ]
    assert [label for label, _ in expand(spec)[0].values] == ["seed", "split", "m"]


def test_sweep_values_override_fixed_parameters_and_follow_them() -> None:
    """A swept label replaces the fixed parameter of that name; fixed labels come first."""
    spec = load(make(
        config={"parameter": [
            {"label": "epochs", "value": 10},
            {"label": "lr", "value": "0.5"},
            {"label": "opt", "value": "sgd"},
        ]},
        grid={"lr": [0.1]},
    ))
    point = expand(spec)[0]
    assert point.parameter == (("epochs", "10"), ("opt", "sgd"), ("lr", "0.1"))
    assert point.body["config"]["parameter"] == [
        {"label": label, "value": value} for label, value in point.parameter
    ]


def test_templates_fill_sweep_index_key_and_labels() -> None:
    """{sweep}, {index}, {key}, swept and fixed labels are filled in every string of the body."""
    spec = load(make(
        job_desc="{sweep} #{index} lr={lr} ep={epochs}",
        config={
            "parameter": [{"label": "epochs", "value": "3"}],
            "train_url": "/o/{sweep}/{key}/",
            "log_url": "/l/{lr}/{index}/",
            "data_url": None,
            "data_source": [{"data_url": "/d/{lr}/", "type": "obs"}],
        },
        grid={"lr": [0.1, 0.2]},
    ))
    point = expand(spec)[1]
    assert point.body["job_desc"] == "t #1 lr=0.2 ep=3"
    assert point.train_url == point.body["config"]["train_url"] == f"/o/t/{point.key}/"
    assert point.body["config"]["log_url"] == "/l/0.2/1/"
    assert point.body["config"]["data_source"] == [{"type": "obs", "data_url": "/d/0.2/"}]
    assert "data_url" not in point.body["config"]


def test_body_is_exactly_what_the_request_model_sends() -> None:
    """Each body equals CreateVersionRequest(...).to_wire(), byte for byte once serialised."""
    spec = load(make(
        job_desc="lr={lr}",
        config={"log_url": "/l/{key}/", "parameter": [{"label": "e", "value": "1"}]},
        grid={"lr": [0.1, 1e-05]},
        zip={"s": [1, 2], "t": [True, False]},
    ))
    for point in iter_points(spec):
        wire = CreateVersionRequest.model_validate(point.body).to_wire()
        assert json.dumps(point.body) == json.dumps(wire)


def test_points_are_frozen() -> None:
    """A Point cannot be modified after it is made."""
    point = expand(load(make(grid={"a": [1]})))[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.key = "x"  # type: ignore[misc]


def test_key_is_the_documented_hash_of_sorted_pairs() -> None:
    """key = 16 hex digits of BLAKE2b-64 over the canonical JSON of the sorted label-value pairs."""
    spec = load(make(grid={"b": ['q"uote', "ü"], "a": [1]}))
    for point in expand(spec):
        assert point.key == point_key(point.values)
        assert len(point.key) == 16


def test_expansion_is_lazy() -> None:
    """A 10^12-point sweep is counted and starts expanding at once, without materialising it."""
    spec = load(make(grid={f"p{i}": list(range(100)) for i in range(6)}))
    assert count_points(spec) == 10**12
    first = next(iter_points(spec))
    assert first.values == tuple((f"p{i}", "0") for i in range(6))


# ---------------------------------------------------------------------------------------------
# Random search.


def random_spec(grid: list[Any], space: dict[str, Any] | None = None) -> dict[str, Any]:
    space = space or {
        "wd": {"loguniform": [1e-6, 1e-2]},
        "drop": {"uniform": [0.0, 0.5], "q": 0.05},
        "layers": {"randint": [2, 8]},
        "act": {"choice": ["relu", "gelu"]},
        "width": {"uniform": [0, 100], "q": 10},
    }
    return make(grid={"opt": grid}, random={"samples": 6, "seed": 7, "space": space})


def test_random_draws_respect_their_distributions() -> None:
    """Draws stay in range, quantised values are clean multiples, integers stay integers."""
    points = expand(load(random_spec(["adam"])))
    assert len(points) == 6
    for point in points:
        values = dict(point.values)
        assert 1e-6 <= float(values["wd"]) <= 1e-2
        assert float(format(float(values["wd"]), ".6g")) == float(values["wd"])  # 6 digits
        assert values["drop"] in {render_value(round(i * 0.05, 2)) for i in range(11)}
        assert values["layers"] in {str(i) for i in range(2, 9)}
        assert values["act"] in {"relu", "gelu"}
        assert values["width"] in {str(i * 10) for i in range(11)}


def test_random_draws_belong_to_their_cell_not_its_position() -> None:
    """Adding or reordering grid values leaves every other cell's draws unchanged."""
    before = {p.key: p.values for p in expand(load(random_spec(["adam", "sgd"])))}
    after = {p.key: p.values for p in expand(load(random_spec(["rmsprop", "sgd", "adam"])))}
    assert set(before) < set(after)
    assert all(after[key] == values for key, values in before.items())


def test_random_draws_ignore_the_order_of_the_space() -> None:
    """Reordering random.space keys changes the order of labels, not the drawn values."""
    space = {"a": {"uniform": [0, 1]}, "b": {"randint": [0, 100]}}
    one = expand(load(random_spec(["x"], space)))
    two = expand(load(random_spec(["x"], dict(reversed(space.items())))))
    assert [p.key for p in one] == [p.key for p in two]
    assert [dict(p.values) for p in one] == [dict(p.values) for p in two]


def test_random_draws_within_a_cell_are_distinct() -> None:
    """A small discrete space yields distinct points: repeated draws are drawn again."""
    space = {"a": {"choice": ["x", "y"]}, "b": {"randint": [1, 2]}}
    points = expand(load(make(random={"samples": 4, "seed": 1, "space": space})))
    assert sorted(dict(p.values)["a"] + dict(p.values)["b"] for p in points) == [
        "x1", "x2", "y1", "y2"
    ]


def test_random_seed_changes_the_draws() -> None:
    """Another seed gives other draws; the same seed gives the same ones."""
    data = random_spec(["adam"])
    same = expand(load(data))
    data["random"]["seed"] = 8
    other = expand(load(data))
    assert [p.key for p in expand(load(random_spec(["adam"])))] == [p.key for p in same]
    assert {p.key for p in same}.isdisjoint({p.key for p in other})


# ---------------------------------------------------------------------------------------------
# Uniqueness.


@pytest.mark.parametrize(
    ("train_url", "proved"),
    [
        ("/o/{key}/", True),
        ("/o/{index}", True),
        ("/o/{sweep}/lr{lr}/bs{bs}/", True),
        ("/o/{lr}-{bs}", True),
        ("/o/{lr}{key}", False),  # {lr} is followed by a hex digit it may contain... or not
        ("/o/{lr}{bs}/", False),
        ("/o/{lr}/", False),
        ("/o/{bs}.{lr}/", False),  # "." occurs in the rendered floats of bs
        ("/o/fixed/", False),
    ],
)
def test_train_url_uniqueness_is_proved_only_when_sound(train_url: str, proved: bool) -> None:
    """train_url is proved unique when it names {key}/{index}/every label and decodes
    unambiguously; otherwise preflight tracks digests."""
    spec = load(make(grid={"lr": [0.1, 0.01], "bs": [1.5, 2.5]}, config={"train_url": train_url}))
    assert spec.plan.train_url_unique is proved


def test_preflight_counts_and_passes_a_valid_sweep() -> None:
    """preflight returns the number of points when every one is valid and unique."""
    spec = load(make(grid={"lr": [0.1, 0.01], "bs": [1, 2]}, config={"train_url": "/o/{lr}{bs}/"}))
    assert preflight(spec) == 4


def test_digest_set_is_a_set_that_grows() -> None:
    """DigestSet.add says whether a digest is new, zero included, across growth."""
    digests = DigestSet(expected=2)
    assert digests.add(0) and not digests.add(0)
    for i in range(1, 1000):
        assert digests.add(i * 2654435761 % 2**64)
    assert len(digests) == 1000
    assert not digests.add(7 * 2654435761 % 2**64)
    assert "size=1000" in repr(digests)


def test_huge_sample_counts_use_the_compact_set() -> None:
    """A cell with more than 65,536 samples keeps its draws in a DigestSet, with the same result."""
    from batchsubmit.sweep import expand as module

    data = make(random={"samples": 300, "seed": 3, "space": {"x": {"randint": [0, 10**6]}}})
    small = [p.key for p in expand(load(data))]
    saved, module._MANY_SAMPLES = module._MANY_SAMPLES, 10
    try:
        assert [p.key for p in expand(load(data))] == small
    finally:
        module._MANY_SAMPLES = saved


# ---------------------------------------------------------------------------------------------
# Properties.

LABELS = ["a", "b", "lr", "bs", "seed", "split", "opt", "x_1"]
SCALARS = st.one_of(
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=5),
)


def values_of(size: int = 4) -> st.SearchStrategy[list[Any]]:
    return st.lists(SCALARS, min_size=1, max_size=size, unique_by=render_value)


@st.composite
def sweeps(draw: st.DrawFn, with_excludes: bool = True) -> dict[str, Any]:
    labels = draw(st.permutations(LABELS))
    n_grid = draw(st.integers(1, 3))
    n_zip = draw(st.sampled_from([0, 2]))
    n_random = draw(st.integers(0, 2))
    grid_labels = labels[:n_grid]
    zip_labels = labels[n_grid:n_grid + n_zip]
    random_labels = labels[n_grid + n_zip:n_grid + n_zip + n_random]
    data = make(grid={label: draw(values_of()) for label in grid_labels})
    zip_rows: list[tuple[Any, ...]] = []
    if zip_labels:
        zip_rows = draw(st.lists(
            st.tuples(SCALARS, SCALARS), min_size=1, max_size=3,
            unique_by=lambda row: tuple(render_value(v) for v in row),
        ))
        data["zip"] = {label: [row[i] for row in zip_rows] for i, label in enumerate(zip_labels)}
    choices: dict[str, list[str]] = {}
    if random_labels:
        space: dict[str, Any] = {}
        for label in random_labels:
            kind = draw(st.sampled_from(["choice", "randint", "uniform", "loguniform", "quniform"]))
            if kind == "choice":
                choices[label] = draw(st.lists(st.sampled_from("pqrstu"), min_size=2, max_size=4,
                                               unique=True))
                space[label] = {"choice": choices[label]}
            elif kind == "randint":
                space[label] = {"randint": [0, 5]}
            elif kind == "uniform":
                space[label] = {"uniform": [-1.0, 1.0]}
            elif kind == "loguniform":
                space[label] = {"loguniform": [1e-4, 1.0]}
            else:
                space[label] = {"uniform": [0, 1], "q": 0.25}
        data["random"] = {"samples": draw(st.integers(1, 4)), "seed": draw(st.integers(0, 99)),
                          "space": space}
    if with_excludes:
        excludes = []
        for _ in range(draw(st.integers(0, 3))):
            entry: dict[str, Any] = {}
            for label in grid_labels:
                if draw(st.booleans()):
                    entry[label] = draw(st.sampled_from(data["grid"][label]))
            if zip_rows and bool(draw(st.booleans())):
                row = draw(st.sampled_from(zip_rows))
                for i, label in enumerate(zip_labels):
                    if draw(st.booleans()):
                        entry[label] = row[i]
            for label, options in choices.items():
                if draw(st.booleans()):
                    entry[label] = draw(st.sampled_from(options))
            if entry:
                excludes.append(entry)
        if excludes:
            data["exclude"] = excludes
    return data


def load_or_skip(data: dict[str, Any]) -> SweepSpec:
    try:
        return load(data)
    except SpecError as exc:  # everything excluded, or a random space smaller than samples
        assume("no points" not in str(exc) and "distinct combinations" not in str(exc))
        raise


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(sweeps())
def test_count_equals_the_number_of_points_expanded(data: dict[str, Any]) -> None:
    """count_points, computed without expanding, equals the number of points iter_points yields."""
    spec = load_or_skip(data)
    points = list(iter_points(spec))
    assert count_points(spec) == len(points) == preflight(spec)
    assert [p.index for p in points] == list(range(len(points)))


@PROPERTY
@given(sweeps(), st.randoms(use_true_random=False))
def test_keys_are_stable_under_reordering(data: dict[str, Any], rnd: Any) -> None:
    """Reordering grid keys, grid values, zip rows and random keys keeps every point's key."""
    spec = load_or_skip(data)
    shuffled = json.loads(json.dumps(data))
    grid = list(shuffled["grid"].items())
    rnd.shuffle(grid)
    shuffled["grid"] = {label: rnd.sample(values, len(values)) for label, values in grid}
    if "zip" in shuffled:
        labels = list(shuffled["zip"])
        rows = list(zip(*shuffled["zip"].values(), strict=True))
        rnd.shuffle(rows)
        shuffled["zip"] = {label: [row[i] for row in rows] for i, label in enumerate(labels)}
    if "random" in shuffled:
        space = list(shuffled["random"]["space"].items())
        rnd.shuffle(space)
        shuffled["random"]["space"] = dict(space)
    before = {frozenset(p.values): p.key for p in expand(spec)}
    after = {frozenset(p.values): p.key for p in expand(load(shuffled))}
    assert before == after
    assert all(key == point_key(values) for values, key in before.items())


@PROPERTY
@given(sweeps())
def test_rendering_is_deterministic(data: dict[str, Any]) -> None:
    """Loading and expanding a spec twice yields byte-identical bodies in the same order."""
    spec = load_or_skip(data)

    def render(s: SweepSpec) -> list[tuple[int, str, str]]:
        return [(p.index, p.key, json.dumps(p.body)) for p in iter_points(s)]

    assert render(spec) == render(load(data))


@PROPERTY
@given(sweeps())
def test_excludes_remove_exactly_the_matching_points(data: dict[str, Any]) -> None:
    """With excludes, the points are those of the full sweep that match no exclude, in order."""
    spec = load_or_skip(data)
    full = expand(load({k: v for k, v in data.items() if k != "exclude"}))
    excludes = [
        {label: render_value(v) for label, v in entry.items()} for entry in data.get("exclude", [])
    ]

    def excluded(point: Point) -> bool:
        values = dict(point.values)
        return any(all(values[k] == v for k, v in e.items()) for e in excludes)

    expected = [p.values for p in full if not excluded(p)]
    assert [p.values for p in expand(spec)] == expected


def test_count_with_overlapping_excludes_on_a_large_grid() -> None:
    """Overlapping excludes are counted once, by arithmetic, even on a million-point grid."""
    grid = {"a": list(range(100)), "b": list(range(100)), "c": list(range(100))}
    exclude = [{"a": 1}, {"a": 1, "b": 2}, {"b": 2, "c": 3}, {"c": 3}, {"a": 5, "c": 7}]
    spec = load(make(grid=grid, exclude=exclude))
    brute = sum(
        1
        for a, b, c in itertools.product(range(100), repeat=3)
        if not (a == 1 or (b == 2 and c == 3) or c == 3 or (a == 5 and c == 7))
    )
    assert count_points(spec) == brute


def test_repeats_are_found_in_order_of_the_later_index() -> None:
    """Preflight's duplicate finder reports each repeat as (first index, later index), in order."""
    from array import array

    from batchsubmit.sweep.preflight import _repeats

    assert list(_repeats(array("Q", [5, 1, 2, 3]))) == []
    assert list(_repeats(array("Q", [5, 1, 2, 1, 5, 1]))) == [(1, 3), (0, 4), (1, 5)]


def test_a_space_too_narrow_for_distinct_draws_stops_with_an_error() -> None:
    """A continuous range that rounds to too few values gives up with a SpecError, not a hang."""
    spec = make(random={"samples": 5, "seed": 0, "space": {"x": {"uniform": [1.0, 1.00001]}}})
    with pytest.raises(SpecError, match="distinct draws") as caught:
        preflight(load(spec))
    assert caught.value.field == "random.samples"

"""Per-point checks and the preflight built on them (batchsubmit.sweep.check, preflight).

Preflight validates the first body in full and, for every later point, only the strings the
point fills in; these tests pin that this accepts exactly the bodies the request model accepts
and fails with exactly the errors of validating every body in full (the path it replaced, kept
here as ``full_preflight``).
"""

from __future__ import annotations

import copy
import itertools
import json
import operator
import tempfile
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from batchsubmit.errors import SpecError
from batchsubmit.identity import normalise_train_url
from batchsubmit.models import CreateVersionRequest, DataSourceItem, VersionConfig
from batchsubmit.sweep import SweepSpec, iter_points, load_spec, preflight, rebase
from batchsubmit.sweep.body import PartialRequest
from batchsubmit.sweep.check import CONTENT_READ, compile_check, field_rule, longest
from batchsubmit.sweep.expand import expand_plan, point_at
from batchsubmit.sweep.loader import SUFFIXES
from batchsubmit.sweep.plan import Plan
from batchsubmit.sweep.preflight import _buckets, _duplicate_url, _scan

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
QUICK = settings(
    deadline=None, database=None, max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---------------------------------------------------------------------------------------------
# The path preflight replaced: every body rendered and validated in full, keys sorted once.


def _old_repeats(digests: array[int]) -> Iterator[tuple[int, int]]:
    ordered = sorted(digests)
    if not any(itertools.starmap(operator.eq, itertools.pairwise(ordered))):
        return
    repeated = {a for a, b in itertools.pairwise(ordered) if a == b}
    first: dict[int, int] = {}
    for j, digest in enumerate(digests):
        if digest in repeated:
            i = first.setdefault(digest, j)
            if i != j:
                yield i, j


def full_preflight(plan: Plan) -> int:
    """Preflight as it was before check.py: the reference the new one must equal."""
    from hashlib import blake2b

    train_url = plan.body.train_url
    if train_url is not None and train_url.constant is not None:
        first_two = list(itertools.islice(expand_plan(plan, True), 2))
        if len(first_two) == 2:
            raise _duplicate_url(plan, first_two[0], first_two[1])
    keys: array[int] = array("Q")
    urls: array[int] | None = None if plan.train_url_unique else array("Q")
    for point in expand_plan(plan, True):
        keys.append(int(point.key, 16))
        if urls is not None:
            url = normalise_train_url(point.train_url)
            urls.append(int.from_bytes(blake2b(url.encode(), digest_size=8).digest()))
    for i, j in _old_repeats(keys):
        first, second = point_at(plan, i), point_at(plan, j)
        raise plan.error(
            f"has the same key as point #{first.index} {dict(first.values)}, with different "
            "values: a 64-bit hash collision; change any value slightly",
            index=second.index,
            key=second.key,
        )
    for i, j in _old_repeats(urls) if urls is not None else ():
        first, second = point_at(plan, i), point_at(plan, j)
        if normalise_train_url(first.train_url) == normalise_train_url(second.train_url):
            raise _duplicate_url(plan, first, second)
    return len(keys)


def outcome(run: Any, plan: Plan) -> tuple[Any, ...]:
    """What a preflight returns or raises, in every detail an error carries."""
    try:
        return ("ok", run(plan))
    except SpecError as exc:
        return ("error", str(exc), exc.reason, exc.path, exc.line, exc.field, exc.index, exc.key)


def assert_same_as_full(plan: Plan) -> tuple[Any, ...]:
    new, old = outcome(preflight, plan), outcome(full_preflight, plan)
    assert new == old
    return new


# ---------------------------------------------------------------------------------------------
# Field rules against the request models.

VALID_BODIES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (CreateVersionRequest, {
        "job_desc": "lr=0.1",
        "config": {
            "worker_server_num": 1, "app_url": "/bucket/app/",
            "boot_file_url": "/bucket/app/train.py",
            "parameter": [{"label": "lr", "value": "0.1"}, {"label": "bs", "value": "32"}],
            "data_url": "/bucket/data/", "spec_id": 1, "engine_id": 1,
            "train_url": "/bucket/out/1/", "log_url": "/bucket/log/1/", "pre_version_id": 20,
        },
    }),
    (CreateVersionRequest, {
        "config": {
            "worker_server_num": 2, "model_id": 3, "dataset_id": "d1",
            "dataset_version_id": "v1", "pool_id": "pool-a", "train_url": "obs://b/o/",
            "pre_version_id": 5, "user_image_url": "swr/img:1", "user_command": "python x",
        },
    }),
    (CreateVersionRequest, {
        "job_desc": "",
        "config": {
            "worker_server_num": 1, "app_url": "/b/c", "boot_file_url": "/b/c/t.py",
            "data_source": [
                {"type": "obs", "data_url": "/b/d1/"}, {"type": "obs", "data_url": "/b/d2/"},
            ],
            "spec_id": 2, "train_url": "/b/o/", "pre_version_id": 1,
        },
    }),
    (CreateVersionRequest, {
        "config": {
            "worker_server_num": 1, "model_id": 1,
            "data_source": [{"type": "dataset", "dataset_id": "d", "dataset_version": "v"}],
            "spec_id": 2, "train_url": "/b/o/", "pre_version_id": 1,
        },
    }),
    (PartialRequest, {"job_desc": "x", "config": {"train_url": "/o/", "app_url": "/a/"}}),
    (PartialRequest, {"config": {"data_source": [{"type": "obs", "data_url": "/d/"}]}}),
]

ODD_TEXT = st.one_of(
    st.sampled_from([
        "", " ", "\t", "obs", "dataset", "OBS", "/bucket/app/", "/bucket/app", "/bucket/app/t.py",
        "/b/c/", "/b/c/t.py", "/b/ct.py", "x" * 256, "x" * 257, "é" * 256, "é" * 257,
        "pool-a", "😀",
    ]),
    st.text(max_size=8),
    st.text(min_size=250, max_size=260, alphabet="ab"),
)


def string_places(body: Any, loc: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Where a template or a swept value could put a string into this body."""
    if isinstance(body, str):
        return [loc]
    if isinstance(body, dict):
        return [p for k, v in body.items() for p in string_places(v, (*loc, k))]
    if isinstance(body, list):
        return [p for i, v in enumerate(body) for p in string_places(v, (*loc, i))]
    return []


def put(body: dict[str, Any], loc: tuple[str | int, ...], text: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node: Any = out
    for part in loc[:-1]:
        node = node[part]
    node[loc[-1]] = text
    return out


def model_errors(model: type[BaseModel], body: dict[str, Any]) -> list[Any] | None:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return exc.errors(include_url=False)
    return None


def test_the_example_bodies_are_valid() -> None:
    """The bodies the rules are tried on are themselves valid."""
    for model, body in VALID_BODIES:
        assert model_errors(model, body) is None, body


@QUICK
@given(case=st.sampled_from(VALID_BODIES), data=st.data())
def test_field_rules_accept_exactly_what_the_model_accepts(case: Any, data: Any) -> None:
    """For a string a point fills whose content no model validator reads, the field's rule
    accepts exactly the texts model_validate accepts there (the rest of the body being valid),
    and a text it refuses is refused by the model at that very field."""
    model, body = case
    loc = data.draw(st.sampled_from(string_places(body)))
    text = data.draw(ODD_TEXT)
    rule = field_rule(model, loc)
    errors = model_errors(model, put(body, loc, text))
    if rule.watched:
        return  # each new content of it is validated in full: the model decides
    accepted = True
    if rule.validate is not None:
        try:
            rule.validate(text)
        except ValidationError:
            accepted = False
    assert accepted == (errors is None), (loc, text, errors)
    if errors is not None:
        assert [tuple(e["loc"]) for e in errors] == [loc]


def test_content_read_lists_the_fields_the_validators_read() -> None:
    """Each field CONTENT_READ names changes the verdict of its model validator for some text;
    the models without an entry have no model validators (so none reads content)."""
    config = VALID_BODIES[0][1]
    assert model_errors(CreateVersionRequest, put(config, ("config", "app_url"), "")) is not None
    assert model_errors(
        CreateVersionRequest, put(config, ("config", "boot_file_url"), "/elsewhere.py")
    ) is not None
    pool = VALID_BODIES[1][1]
    assert model_errors(CreateVersionRequest, put(pool, ("config", "pool_id"), " ")) is not None
    mixed = put(VALID_BODIES[2][1], ("config", "data_source", 1, "type"), "dataset")
    assert model_errors(CreateVersionRequest, mixed) is not None
    assert set(CONTENT_READ) == {VersionConfig, DataSourceItem}
    for model in (CreateVersionRequest, PartialRequest):
        assert not model.__pydantic_decorators__.model_validators


def test_rules_come_from_the_models_fields() -> None:
    """job_desc carries its max_length, data_source types their Literal, plain strings none."""
    desc = field_rule(CreateVersionRequest, ("job_desc",))
    assert desc.validate is not None and not desc.watched
    desc.validate("x" * 256)
    with pytest.raises(ValidationError):
        desc.validate("x" * 257)
    kind = field_rule(CreateVersionRequest, ("config", "data_source", 0, "type"))
    assert kind.validate is not None and kind.watched
    url = field_rule(CreateVersionRequest, ("config", "train_url"))
    assert url.validate is None and not url.watched
    value = field_rule(CreateVersionRequest, ("config", "parameter", 3, "value"))
    assert value.validate is None and not value.watched
    assert field_rule(CreateVersionRequest, ("config", "app_url")).watched
    assert not field_rule(PartialRequest, ("config", "app_url")).watched  # no one-of rules yet
    unknown = field_rule(CreateVersionRequest, ("config", "nonsense"))
    assert unknown.watched  # a place the models do not know: validated in full


# ---------------------------------------------------------------------------------------------
# Preflight equals the full path.


def load(data: dict[str, Any]) -> SweepSpec | None:
    """``data`` written as a JSON spec and loaded; None when load_spec refuses it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(data))
        try:
            return load_spec(path)
        except SpecError:
            return None


# A first value that often makes point 0 valid (else load_spec refuses the spec), then odd ones.
FIRST = st.sampled_from(["/bucket/app/", "obs", "dataset", "p1", "x", "/bucket/app/t.py"])
VALUES = st.tuples(FIRST, st.lists(ODD_TEXT, max_size=3)).map(
    lambda t: list(dict.fromkeys([t[0], *t[1]]))
)
DESCS = [None, "plain", "{a}", "{a} {b}", "{a}{b}{a}", "{index}:{key}:{a}"]
CODE = [
    {"app_url": "/bucket/app/", "boot_file_url": "/bucket/app/train.py"},
    {"app_url": "{a}", "boot_file_url": "/bucket/app/t.py"},
    {"app_url": "/bucket/{a}/", "boot_file_url": "/bucket/{b}/t.py"},
    {"app_url": "/bucket/app/", "boot_file_url": "{b}"},
    {"model_id": 3},
]
DATA = [
    {"data_url": "/d/{b}/"},
    {"dataset_id": "{a}", "dataset_version_id": "v"},
    {"data_source": [{"type": "{a}", "data_url": "/d/"}]},
    {"data_source": [{"type": "obs", "data_url": "/d/{key}"}, {"type": "{b}", "data_url": "/e"}]},
    {"data_source": [{"type": "dataset", "dataset_id": "{a}", "dataset_version": "{b}"}]},
]
RESOURCES = [{"spec_id": 1}, {"pool_id": "{a}"}, {"pool_id": "pool-{b}"}]
TRAIN = ["/out/{key}/", "/out/{a}{b}/", "obs://out/{a}/", "/out/{a}//{b}", "/out/{index}/"]


@st.composite
def specs(draw: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"worker_server_num": 1, "pre_version_id": 20}
    for choices in (CODE, DATA, RESOURCES):
        config.update(draw(st.sampled_from(choices)))
    config["train_url"] = draw(st.sampled_from(TRAIN))
    if draw(st.booleans()):
        config["log_url"] = "/log/{a}/{key}"
    if draw(st.booleans()):
        config["parameter"] = [{"label": "f", "value": "{a}-{b}"}, {"label": "g", "value": 1}]
    base: dict[str, Any] = {"config": config}
    desc = draw(st.sampled_from(DESCS))
    if desc is not None:
        base["job_desc"] = desc
    grid = {"a": draw(VALUES), "b": draw(VALUES)}
    if draw(st.booleans()):
        grid["c"] = ["1", "2"]
    return {"name": "t", "target": {"endpoint": "emulator", "job_id": 10}, "base": base,
            "grid": grid}


@settings(deadline=None, database=None, max_examples=400,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=specs())
def test_preflight_equals_validating_every_body_in_full(data: dict[str, Any]) -> None:
    """On random specs whose swept values fill job_desc, code, data, pool and train_url
    templates, preflight returns the same count or raises the same error (message, file, line,
    field, point index and key) as rendering and validating every body in full."""
    spec = load(data)
    if spec is not None:
        assert_same_as_full(spec.plan)


def edit(**config: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "worker_server_num": 1, "app_url": "/bucket/app/", "boot_file_url": "/bucket/app/t.py",
        "data_url": "/d/", "spec_id": 1, "pre_version_id": 20, "train_url": "/out/{key}/",
    }
    base.update(config)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("config", "job_desc", "grid", "field", "index"),
    [
        ({}, "{a}", {"a": ["ok", "x" * 257]}, "base.job_desc", 1),
        ({"app_url": "{a}"}, None, {"a": ["/bucket/app/", "/bucket/other/"]},
         "base.config", 1),
        ({"app_url": "{a}", "boot_file_url": "{a}t.py"}, None,
         {"a": ["/a/", "/b/", "/c/", ""]}, "base.config", 3),
        ({"spec_id": None, "pool_id": "{a}"}, None, {"a": ["p", "q", "   "]}, "base.config", 2),
        ({"data_url": None, "data_source": [{"type": "{a}", "data_url": "/d/"}]}, None,
         {"a": ["obs", "dataset"]}, "base.config.data_source[0]", 1),
        ({"data_url": None, "data_source": [{"type": "{a}", "data_url": "/d/"}]}, None,
         {"a": ["obs", "OBS"]}, "base.config.data_source[0].type", 1),
        ({"train_url": "/out/{a}{b}/"}, "{a}", {"a": ["1", "11"], "b": ["1", "11"]},
         "base.config.train_url", 2),
        ({"train_url": "/out/{a}/{b}"}, None, {"a": ["x", "x/"], "b": ["1", "/1"]},
         "base.config.train_url", 1),
    ],
)
def test_preflight_errors_are_those_of_the_full_path(
    config: dict[str, Any], job_desc: str | None, grid: dict[str, Any], field: str, index: int
) -> None:
    """Each kind of per-point mistake names the same field and point as the full path."""
    data: dict[str, Any] = {
        "name": "t", "target": {"endpoint": "emulator", "job_id": 10},
        "base": {"config": edit(**config)}, "grid": {"b": ["1"], **grid},
    }
    if job_desc is not None:
        data["base"]["job_desc"] = job_desc
    spec = load(data)
    assert spec is not None
    result = assert_same_as_full(spec.plan)
    assert result[0] == "error" and result[5] == field and result[6] == index, result


def test_many_watched_combinations_are_relearnt_not_kept() -> None:
    """A watched string that differs at every point ({key} in app_url) is validated in full
    each time and the remembered combinations stay bounded; the outcome is still the full one."""
    data = {
        "name": "t", "target": {"endpoint": "emulator", "job_id": 10},
        "base": {"config": edit(app_url="/a/{key}/", boot_file_url="/a/{key}/t.py")},
        "grid": {"a": list(range(70)), "b": list(range(70))},
    }
    spec = load(data)
    assert spec is not None
    assert assert_same_as_full(spec.plan) == ("ok", 4900)


@pytest.mark.parametrize(
    "path", sorted(p for p in SWEEPS.iterdir() if p.suffix in SUFFIXES), ids=lambda p: p.name
)
def test_preflight_of_every_example_equals_the_full_path(path: Path) -> None:
    """The examples in sweeps/ (grid, zip, random, excludes, pools, from_version) preflight
    exactly as they did."""
    spec = load_spec(path)
    assert_same_as_full(spec.plan)


def test_rebased_plans_refuse_the_versions_train_url_at_the_same_point(tmp_path: Path) -> None:
    """A point that renders the base version's train_url is refused at that point, as before."""
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: rv\ntarget: {endpoint: emulator, job_id: 10}\n"
        "base:\n  from_version: latest\n  job_desc: 'lr {lr}'\n"
        "  config: {train_url: '/out/{lr}/'}\n"
        "grid: {lr: [a, b, c]}\n"
    )
    detail = {
        "version_id": 31, "job_id": 10, "pre_version_id": 20, "app_url": "/b/code/",
        "boot_file_url": "/b/code/t.py", "spec_id": 1, "worker_server_num": 1,
        "data_url": "/b/data/", "engine_id": 1, "train_url": "obs://out/b",
    }
    spec = load_spec(path)
    assert_same_as_full(spec.plan)  # partial: checked field by field
    rebased = rebase(spec, 10, detail)
    result = assert_same_as_full(rebased.plan)
    assert result[0] == "error" and result[6] == 1 and "builds on" in result[1]


def test_scan_keeps_every_key_as_its_64_bit_integer() -> None:
    """The buckets hold exactly the points' keys (as integers), so repeats are found as before."""
    data = {
        "name": "t", "target": {"endpoint": "emulator", "job_id": 10},
        "base": {"job_desc": "{a}", "config": edit(train_url="/o/{a}{b}/")},
        "grid": {"a": list(range(30)), "b": list(range(30))},
    }
    spec = load(data)
    assert spec is not None
    keys, urls = _buckets(), _buckets()
    assert _scan(spec.plan, keys, urls) == 900
    found = sorted(k for bucket in keys for k in bucket)
    assert found == sorted(int(p.key, 16) for p in iter_points(spec))
    assert sum(map(len, urls)) == 900


def test_a_plain_grid_needs_no_per_point_check() -> None:
    """When the points fill only plain strings (train_url, parameters), nothing is checked per
    point beyond the key."""
    data = {
        "name": "t", "target": {"endpoint": "emulator", "job_id": 10},
        "base": {"config": edit(log_url="/l/{key}")}, "grid": {"a": [1, 2], "b": [3]},
    }
    spec = load(data)
    assert spec is not None
    check = compile_check(spec.plan, CreateVersionRequest)
    assert not check.needed
    assert ("config", "train_url") in check.places and ("config", "log_url") in check.places


def test_a_length_no_point_can_exceed_is_proved_once() -> None:
    """job_desc's max_length is checked per point only when some point could exceed it: the
    longest value of each placeholder (16 for {key}, the digits of the last index) bounds it,
    and a drawn number leaves it unbounded."""

    def check_of(job_desc: str, **sections: Any) -> Any:
        data = {
            "name": "t", "target": {"endpoint": "emulator", "job_id": 10},
            "base": {"job_desc": job_desc, "config": edit()}, **sections,
        }
        spec = load(data)
        assert spec is not None
        return compile_check(spec.plan, CreateVersionRequest)

    assert longest_of("{a}-{key}-{index}", grid={"a": ["xy", "xyz"], "b": list(range(11))}) == (
        3 + 1 + 16 + 1 + 2
    )
    assert not check_of("{a} {key}", grid={"a": ["x" * 239]}).needed  # 239 + 1 + 16 = 256
    assert check_of("{a} {key}", grid={"a": ["x", "x" * 240]}).needed
    drawn = {"samples": 3, "seed": 1, "space": {"x": {"uniform": [0.0, 1.0]}}}
    assert check_of("{x}", random=drawn).needed
    chosen = {"samples": 2, "seed": 1, "space": {"x": {"choice": ["a", "b"]}}}
    assert not check_of("{x}", random=chosen).needed


def longest_of(fmt_source: str, **sections: Any) -> int | None:
    data = {
        "name": "t", "target": {"endpoint": "emulator", "job_id": 10},
        "base": {"job_desc": fmt_source, "config": edit()}, **sections,
    }
    spec = load(data)
    assert spec is not None and spec.plan.body.job_desc is not None
    return longest(spec.plan, spec.plan.body.job_desc.fmt)


def test_a_templated_data_source_type_is_checked_and_watched() -> None:
    """data_source[].type filled by a point has its Literal checked and its content watched."""
    data = {
        "name": "t", "target": {"endpoint": "emulator", "job_id": 10},
        "base": {"config": edit(data_url=None,
                                data_source=[{"type": "{a}", "data_url": "/d/{b}"}])},
        "grid": {"a": ["obs"], "b": ["1", "2"]},
    }
    spec = load(data)
    assert spec is not None
    check = compile_check(spec.plan, CreateVersionRequest)
    assert len(check.rules) == 1 and len(check.watched) == 1
    assert ("config", "data_source", 0, "data_url") in check.places

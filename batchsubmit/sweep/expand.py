"""Expansion: the lazy point generator, point keys, and counting without expanding.

Pure: a compiled :class:`~batchsubmit.sweep.plan.Plan` in, points out; nothing here does I/O.

A point's **key** is the first 16 hex digits (64 bits) of BLAKE2b over the canonical JSON of its
sorted ``[label, value]`` pairs (``[["batch_size","32"],["learning_rate","0.01"]]``, UTF-8, no
spaces): it depends on the values only, never on the position, so reordering the spec keeps keys.
64 bits rather than 48 keep an accidental collision out of reach (about 3e-8 for a million points,
and preflight would still catch it).

Equal points cannot arise: repeated grid values and zip rows are spec errors (``plan.py``), and a
random draw repeating an earlier draw of its cell is drawn again.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from batchsubmit.errors import SpecError
from batchsubmit.identity import normalise_train_url
from batchsubmit.models import (
    CreateVersionRequest,
    DataSourceItem,
    VersionConfig,
    describe_validation_error,
)
from batchsubmit.sweep.body import PartialRequest
from batchsubmit.sweep.lines import KeyPath, dotted
from batchsubmit.sweep.plan import KeyFormat, Match, Plan
from batchsubmit.sweep.sampling import DigestSet, Stream, cell_seed
from batchsubmit.sweep.schema import first_error, suggest
from batchsubmit.sweep.v2body import V2Body


class Planned(Protocol):
    """Anything compiled to a plan (a ``SweepSpec``): a protocol, so this module does not
    import ``spec``, which imports it."""

    @property
    def plan(self) -> Plan: ...

__all__ = [
    "MAX_POINTS",
    "Point",
    "check_size",
    "count_points",
    "iter_points",
    "point_key",
    "sendable_points",
]

# The most points a random search may have (see check_size): ten million is far beyond any sweep
# one submits, and small enough that drawing them all (to count, expand or preflight) ends in
# minutes.
MAX_POINTS = 10_000_000


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a sweep: its values, its wire parameters and its rendered request body."""

    index: int
    key: str
    values: tuple[tuple[str, str], ...]  # swept label -> rendered value, spec order
    parameter: tuple[tuple[str, str], ...]  # the wire parameter list: fixed first, then swept
    train_url: str
    body: dict[str, Any]  # the validated create-version body, as CreateVersionRequest.to_wire()
    # The body is fresh per point down to ``config`` and its ``parameter`` list; the parameter
    # items ({"label", "value"}) are shared between points. Treat bodies as read-only.


def point_key(values: Iterable[tuple[str, str]]) -> str:
    """The key of a point with these label-value pairs (the reference definition)."""
    canonical = json.dumps(
        sorted([label, value] for label, value in values), ensure_ascii=False, separators=(",", ":")
    )
    return blake2b(canonical.encode(), digest_size=8).hexdigest()


# ---------------------------------------------------------------------------------------------
# Values: cells of the grid x zip product, then random draws within each cell.

Pairs = tuple[tuple[str, str], ...]


def _flatten(rows: tuple[Pairs, ...]) -> Pairs:
    return tuple(itertools.chain.from_iterable(rows))


def _keep(it: Iterator[Pairs], matches: tuple[Match, ...]) -> Iterator[Pairs]:
    if len(matches) == 1:
        getter, pinned = matches[0].getter, matches[0].pinned
        return (values for values in it if getter(values) not in pinned)
    return (values for values in it if not any(m.getter(values) in m.pinned for m in matches))


def _cells(plan: Plan) -> Iterator[Pairs]:
    """The grid x zip product as (label, value) pairs, cell exclusions applied."""
    cells: Iterator[Pairs]
    if plan.flat:
        axes = [tuple((axis.labels[0], row[0]) for row in axis.rows) for axis in plan.axes]
        cells = itertools.product(*axes)
    else:
        axes_rows = [
            tuple(tuple(zip(axis.labels, row, strict=True)) for row in axis.rows)
            for axis in plan.axes
        ]
        cells = map(_flatten, itertools.product(*axes_rows))
    return _keep(cells, plan.cell_excludes) if plan.cell_excludes else cells


def _canonical(plan: Plan, fmt: KeyFormat, values: Pairs) -> str:
    escape = plan.escape
    if escape is None:
        return fmt.pairs.format(*values)
    return fmt.plain.format(*[escape.get(v, v) for _, v in values])


_MANY_SAMPLES = 1 << 16


def _cell_draws(plan: Plan, cell: Pairs) -> Iterator[Pairs]:
    """Every sample of one cell (before exclusions): distinct, seeded by the cell's values."""
    rp = plan.random
    assert rp is not None
    draw = Stream(cell_seed(rp.seed, _canonical(plan, rp.cell_key, cell))).next
    dims = tuple(d.draw for d in rp.dims)
    labels, to_spec = rp.labels, rp.to_spec
    head, tail = cell[: rp.at], cell[rp.at :]
    # Draws already made in this cell: a set, or a compact one when samples is huge.
    seen: set[int] = set()
    # Sized for at most 2**20 draws up front (16 MiB); it grows if more are made.
    seen_many = DigestSet(min(rp.samples, 1 << 20)) if rp.samples > _MANY_SAMPLES else None
    produced = attempts = 0
    while produced < rp.samples:
        attempts += 1
        if attempts > rp.attempts:
            raise plan.error(
                f"found only {produced} distinct draws of {rp.samples} after {rp.attempts} "
                "attempts: the space is too small for that many samples; lower samples",
                ("random", "samples"),
            )
        drawn = to_spec([d(draw()) for d in dims])
        values = head + tuple(zip(labels, drawn, strict=True)) + tail
        canonical = _canonical(plan, plan.key, values)
        digest = int.from_bytes(blake2b(canonical.encode(), digest_size=8).digest(), "big")
        if seen_many is not None:
            if not seen_many.add(digest):
                continue
        elif digest in seen:
            continue
        else:
            seen.add(digest)
        produced += 1
        yield values


def point_values(plan: Plan) -> Iterator[Pairs]:
    """The (label, value) pairs of every point, spec order, exclusions applied."""
    if plan.random is None:
        return _cells(plan)
    draws = itertools.chain.from_iterable(_cell_draws(plan, cell) for cell in _cells(plan))
    return _keep(draws, plan.point_excludes) if plan.point_excludes else draws


# ---------------------------------------------------------------------------------------------
# Points.


def plan_of(spec: Planned | Plan) -> Plan:
    return spec if isinstance(spec, Plan) else spec.plan


def iter_points(spec: Planned | Plan, *, validate: bool = True) -> Iterator[Point]:
    """The points of ``spec`` in index order, lazily; each body validated unless told not to.

    An invalid body raises SpecError naming the spec file, the field (with its line) and the
    point's index and key."""
    return expand_plan(plan_of(spec), validate)


# Point's generated __init__ (frozen) costs 2 us through object.__setattr__; the loop below sets
# the slots through their descriptors instead, which is what that __init__ amounts to.
_new = object.__new__
_set_index, _set_key, _set_values, _set_parameter, _set_train_url, _set_body = (
    Point.__dict__[name].__set__
    for name in ("index", "key", "values", "parameter", "train_url", "body")
)


def renderer(plan: Plan) -> Callable[[int, Pairs], Point]:
    """The function that renders the point at ``index`` with these values (no validation).

    Everything that does not depend on the point is computed here, once."""
    if isinstance(plan.body, V2Body):
        return _v2_renderer(plan, plan.body)
    body = plan.body
    escape = plan.escape
    key_pairs = plan.key.pairs.format
    key_plain = plan.key.plain.format
    const = body.config
    formats = tuple((name, fmt.format) for name, fmt in body.formats)
    nested = body.nested
    fixed_pairs: Pairs | None = None
    if all(t.constant is not None for _, t in body.fixed):
        fixed_pairs = tuple((label, t.constant or "") for label, t in body.fixed)
    fixed_formats = tuple((label, t.fmt.format) for label, t in body.fixed)
    # Parameter items of constant pairs are built once and shared by every body.
    items: dict[tuple[str, str], dict[str, str]] = {
        pair: {"label": pair[0], "value": pair[1]}
        for pair in itertools.chain(
            fixed_pairs or (),
            *[zip(axis.labels, row, strict=True) for axis in plan.axes for row in axis.rows],
        )
    }
    shared = fixed_pairs is not None and plan.random is None
    item = items.__getitem__
    job_desc = body.job_desc
    desc_const = job_desc.constant if job_desc is not None else None
    desc_fmt = job_desc.fmt.format if job_desc is not None and desc_const is None else None

    def render(index: int, values: Pairs) -> Point:
        if escape is None:
            canonical = key_pairs(*values)
        else:
            canonical = key_plain(*[escape.get(v, v) for _, v in values])
        key = blake2b(canonical.encode(), digest_size=8).hexdigest()
        args = (str(index), key, *values)
        if fixed_pairs is not None:
            parameter = fixed_pairs + values
        else:
            parameter = tuple((label, fmt(*args)) for label, fmt in fixed_formats) + values
        config = const.copy()
        for name, fmt in formats:
            config[name] = fmt(*args)
        for name, build in nested:
            config[name] = build(args)
        if shared:
            config["parameter"] = list(map(item, parameter))
        else:
            config["parameter"] = [
                items.get(pair) or {"label": pair[0], "value": pair[1]} for pair in parameter
            ]
        if desc_fmt is not None:
            wire = {"job_desc": desc_fmt(*args), "config": config}
        elif desc_const is not None:
            wire = {"job_desc": desc_const, "config": config}
        else:
            wire = {"config": config}
        point = _new(Point)
        _set_index(point, index)
        _set_key(point, key)
        _set_values(point, values)
        _set_parameter(point, parameter)
        _set_train_url(point, config.get("train_url", ""))  # "" only in a body refused anyway
        _set_body(point, wire)
        return point

    return render


def _v2_renderer(plan: Plan, body: V2Body) -> Callable[[int, Pairs], Point]:
    """The v2 twin of :func:`renderer`: the body built whole per point (v2 sweeps are sent one
    job per point, so they are far smaller than what the v1 loop is tuned for)."""
    build = body.build
    fixed = tuple((label, t.fmt.format) for label, t in body.fixed)
    name_fmt = body.name.fmt.format
    url = body.train_url
    url_fmt = url.fmt.format if url is not None else None

    def render(index: int, values: Pairs) -> Point:
        key = blake2b(_canonical(plan, plan.key, values).encode(), digest_size=8).hexdigest()
        args = (str(index), key, *values)
        parameter = tuple((label, fmt(*args)) for label, fmt in fixed) + values
        wire = build(args)
        wire["metadata"]["name"] = name_fmt(*args)
        wire["algorithm"]["parameters"] = [{"name": n, "value": v} for n, v in parameter]
        point = _new(Point)
        _set_index(point, index)
        _set_key(point, key)
        _set_values(point, values)
        _set_parameter(point, parameter)
        _set_train_url(point, url_fmt(*args) if url_fmt is not None else "")
        _set_body(point, wire)
        return point

    return render


def request_model(plan: Plan) -> type[BaseModel]:
    """The model a body of ``plan`` must pass. A from_version spec not yet rebased has a partial
    body: its fields are checked, the whole waits."""
    if isinstance(plan.body, V2Body):
        from batchsubmit.models_v2 import CreateTrainingJobRequest

        return CreateTrainingJobRequest
    return PartialRequest if plan.partial else CreateVersionRequest


def body_validator(plan: Plan) -> Callable[[dict[str, Any]], object]:
    """The request model's own validator, minus model_validate's Python wrapper."""
    return request_model(plan).__pydantic_validator__.validate_python


def taken_url(plan: Plan) -> str | None:
    """The normalised train_url no point may render: the version's a rebased plan builds on."""
    if plan.rebased is None or plan.rebased.train_url is None:
        return None
    return normalise_train_url(plan.rebased.train_url)


def taken_error(plan: Plan, train_url: str, index: int, key: str) -> SpecError:
    return plan.error(
        f"renders to {train_url!r}, the train_url of the version this one "
        "builds on (compared as normalised OBS paths): the "
        "new version would write over its outputs, and could not be told apart from "
        "it; give train_url a directory of its own, e.g. /bucket/out/{sweep}/{job_id}/",
        ("base", "config", "train_url"),
        index=index,
        key=key,
    )


def expand_plan(plan: Plan, validate: bool) -> Iterator[Point]:
    """The points of a plan; see :func:`iter_points`."""
    render = renderer(plan)
    if not validate:
        yield from map(render, itertools.count(), point_values(plan))
        return
    check = body_validator(plan)
    taken = taken_url(plan)
    for index, values in enumerate(point_values(plan)):
        point = render(index, values)
        try:
            check(point.body)
        except ValidationError as exc:
            raise body_error(plan, exc, index, point.key) from None
        if taken is not None and normalise_train_url(point.train_url) == taken:
            raise taken_error(plan, point.train_url, index, point.key)
        yield point


def _spec_path(plan: Plan, loc: tuple[str | int, ...]) -> KeyPath:
    """Where in the spec a field of the rendered body comes from."""
    if isinstance(plan.body, V2Body):
        return _v2_spec_path(plan, plan.body, loc)
    if loc[:1] == ("config",):
        if len(loc) >= 3 and loc[1] == "parameter" and isinstance(loc[2], int):
            fixed = plan.body.fixed_index
            if loc[2] < len(fixed):
                own = fixed[loc[2]]
                if own is None:  # a parameter of the version the spec is rebased on
                    return ("base", "config", "parameter")
                return ("base", "config", "parameter", own, *loc[3:])
            return plan.sources[plan.labels[loc[2] - len(fixed)]]
        return ("base", "config", *loc[1:])
    return ("base", *loc)


def _v2_spec_path(plan: Plan, body: V2Body, loc: tuple[str | int, ...]) -> KeyPath:
    if loc[:2] == ("algorithm", "parameters") and len(loc) >= 3 and isinstance(loc[2], int):
        fixed = body.fixed_index
        if loc[2] < len(fixed):
            return ("base", "algorithm", "parameters", fixed[loc[2]], *loc[3:])
        return plan.sources[plan.labels[loc[2] - len(fixed)]]
    if loc[:2] == ("metadata", "name"):
        return body.name_path
    return ("base", *loc)


def _pattern_message(plan: Plan, first: Any) -> str:
    shown = first["input"]
    pattern = first.get("ctx", {}).get("pattern", "")
    if isinstance(plan.body, V2Body) and tuple(first["loc"]) == ("metadata", "name"):
        return (
            f"the job name renders to {shown!r}, which is not 1 to 64 letters, digits, _ or -: "
            "values such as 0.01 cannot be part of it; build it from {sweep}, {index} and "
            "{key} (e.g. \"{sweep}-{index}-{key}\"), or leave metadata.name out for a derived one"
        )
    return f"renders to {shown!r}, which does not match {pattern}"


def body_error(plan: Plan, exc: ValidationError, index: int, key: str) -> SpecError:
    first, count = first_error(exc)
    loc = tuple(first["loc"])
    wire = dotted(loc) or "<body>"
    message = dict(describe_validation_error(exc)).get(wire, str(first["msg"]))
    kind = first["type"]
    if kind == "string_too_long":
        limit = first.get("ctx", {}).get("max_length")
        message = (
            f"renders to {len(first['input'])} characters, more than the {limit} the API allows "
            "for it: shorten it"
        )
    elif kind == "string_pattern_mismatch":
        message = _pattern_message(plan, first)
    elif kind == "extra_forbidden" and isinstance(plan.body, V2Body):
        from batchsubmit.models_v2 import fields_at

        allowed = fields_at(loc[:-1])
        close = suggest(str(loc[-1]), allowed)
        hint = f"did you mean {close!r}? " if close else ""
        message = f"unknown field {loc[-1]!r} of the v2 request body: {hint}allowed: " + ", ".join(
            allowed
        )
    elif kind == "extra_forbidden":
        allowed = tuple(DataSourceItem.model_fields if "data_source" in loc else
                        VersionConfig.model_fields if loc[:1] == ("config",) else
                        CreateVersionRequest.model_fields)
        close = suggest(str(loc[-1]), allowed)
        hint = f"did you mean {close!r}? " if close else ""
        message = f"unknown field {loc[-1]!r} of the request body: {hint}allowed: " + ", ".join(
            allowed
        )
    elif kind == "missing":
        message = f"required field {wire} is missing from the request body"
    if count > 1:
        message += f" (and {count - 1} more problem{'s' if count > 2 else ''})"
    return plan.error(message, _spec_path(plan, loc), index=index, key=key)


def point_at(plan: Plan, index: int) -> Point:
    """The point at ``index``, re-expanded from the start (for error messages only)."""
    return next(itertools.islice(expand_plan(plan, False), index, None))


# ---------------------------------------------------------------------------------------------
# Counting without expanding.


def _union_size(boxes: tuple[tuple[frozenset[int] | None, ...], ...], sizes: list[int]) -> int:
    """How many cells of the product lie in at least one box (each box pins some axes)."""
    n = len(sizes)
    memo: dict[tuple[int, frozenset[int]], int] = {}

    def count(axis: int, active: frozenset[int]) -> int:
        if not active:
            return 0
        if any(all(boxes[b][a] is None for a in range(axis, n)) for b in active):
            return math.prod(sizes[axis:])
        memo_key = (axis, active)
        if memo_key in memo:
            return memo[memo_key]
        a = next(a for a in range(axis, n) if any(boxes[b][a] is not None for b in active))
        free = frozenset(b for b in active if boxes[b][a] is None)
        by_value: dict[int, set[int]] = {}
        for b in active:
            for row in boxes[b][a] or ():
                by_value.setdefault(row, set()).add(b)
        groups: dict[frozenset[int], int] = {}
        for members in by_value.values():
            group = frozenset(members)
            groups[group] = groups.get(group, 0) + 1
        total = (sizes[a] - len(by_value)) * count(a + 1, free)
        for group, multiplicity in groups.items():
            total += multiplicity * count(a + 1, free | group)
        memo[memo_key] = result = math.prod(sizes[axis:a]) * total
        return result

    return count(0, frozenset(range(len(boxes))))


def _drawn_points(plan: Plan) -> int:
    """The points before the exclusions that name a random label: cells x samples, arithmetic."""
    sizes = [len(axis.rows) for axis in plan.axes]
    cells = math.prod(sizes) - _union_size(plan.boxes, sizes)
    return cells if plan.random is None else cells * plan.random.samples


def sendable_points(spec: Planned | Plan) -> int:
    """The number of points, or SpecError when it is more than a run may send
    (:data:`MAX_POINTS`): ``run`` and ``expand`` refuse the same sweeps."""
    points = count_points(spec)
    if points > MAX_POINTS:  # a grid may be bigger than anything worth sending
        raise SpecError(
            f"the sweep has {points:,} points, more than the {MAX_POINTS:,} a run may send: "
            "split it, or narrow the grid", path=plan_of(spec).where,
        )
    return points


def check_size(plan: Plan) -> None:
    """SpecError when a random search has more than :data:`MAX_POINTS` points, counted
    arithmetically (cells x samples, before exclusions naming a random label, which would need
    the draws): this bounds the draws of expanding, preflighting and counting (``count_points``
    draws at most that many).

    A sweep without ``random`` is not bounded here: it is counted by arithmetic alone and
    expanded lazily, point by point (a grid of 10**12 points counts at once)."""
    if plan.random is None:
        return
    if math.prod(len(axis.rows) for axis in plan.axes) * plan.random.samples <= MAX_POINTS:
        return  # (the usual case: no need to count the cells the exclusions remove)
    count = _drawn_points(plan)
    if count > MAX_POINTS:
        raise plan.error(
            f"the sweep has {count:,} points, more than the bound of {MAX_POINTS:,} a random "
            "search may have: lower samples or the number of grid values, or split the sweep "
            "into several specs",
            ("random", "samples"),
        )


def count_points(spec: Planned | Plan) -> int:
    """The number of points, without rendering any: arithmetic over the axes minus exclusions.

    Exclusions naming a random label need that label's draws, so only the cells they can touch
    have their draws generated (not rendered, not validated): at most :data:`MAX_POINTS` draws
    for a loaded spec (``check_size``)."""
    plan = plan_of(spec)
    total = _drawn_points(plan)
    if plan.random is None:
        return total
    if plan.point_excludes:
        cell_filters = plan.point_exclude_cells
        for cell in _cells(plan):
            if not any(m is None or m.getter(cell) in m.pinned for m in cell_filters):
                continue
            for values in _cell_draws(plan, cell):
                if any(m.getter(values) in m.pinned for m in plan.point_excludes):
                    total -= 1
    return total

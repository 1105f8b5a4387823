"""Per-point checks: what one point's body can get wrong that the first point's could not.

Every body of a plan has one shape: the same fields, lists of the same lengths, the same constant
values; from point to point only the strings that templates and swept values fill differ. So
once the first body has passed the request model in full, another body passes it exactly when

- each string the point fills passes its own field's rule, as the model declares it (type and
  constraints: ``job_desc``'s ``max_length``, ``data_source[].type``'s ``Literal``), and
- the model validators that read such a string's *content* (not only whether the field is given)
  pass on it: those of :mod:`batchsubmit.models` read the content of ``app_url``,
  ``boot_file_url``, ``pool_id`` and ``data_source[].type`` (:data:`CONTENT_READ`), and of every
  other field only whether it is given, which is the same for every point.

:func:`compile_check` turns a plan into a :class:`PointCheck`: the field rules of the strings a
point fills, each the field's own pydantic-core validator (built from the model's annotation and
metadata, not copied), and the formats of the strings whose content a model validator reads. A
rule that only bounds a length is dropped when the plan proves no point can exceed it (the
longest grid value of each placeholder, 16 for ``{key}``; a drawn number is not bounded). The
preflight loop checks the first by calling the rules, and the second by remembering the
combinations of those strings already seen in a body validated in full (they come from grid
values, so there are few): a new combination, or a string that fails its rule, has the point's
body validated in full, so every error is the model's own, word for word.

A model not listed in :data:`CONTENT_READ` that has model validators, or a field with field
validators, is taken to read the content of every field (each new combination validated in
full); a place the walk through the models cannot follow is treated the same way. Either is
never faster than validating in full, and never wrong. ``tests/test_sweep_check.py`` pins
:data:`CONTENT_READ` against the models with hypothesis.
"""

from __future__ import annotations

import math
import string
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import MaxLen
from pydantic import BaseModel, ConfigDict, Strict, TypeAdapter

from batchsubmit.models import DataSourceItem, VersionConfig
from batchsubmit.sweep.body import Body
from batchsubmit.sweep.plan import Plan

__all__ = [
    "CONTENT_READ",
    "FieldRule",
    "PointCheck",
    "compile_check",
    "field_rule",
    "longest",
    "uses_key",
]

Loc = tuple[str | int, ...]  # a place in the wire body: ("config", "data_source", 0, "type")

# The fields whose content (beyond whether they are given) the model validators of each request
# model read. VersionConfig._sources: app_url non-empty, boot_file_url inside app_url, pool_id
# not blank, data_source items of one type (the items' type: DataSourceItem's entry).
# DataSourceItem._pairing: the type decides which fields go with it.
CONTENT_READ: dict[type[BaseModel], frozenset[str]] = {
    VersionConfig: frozenset({"app_url", "boot_file_url", "pool_id"}),
    DataSourceItem: frozenset({"type"}),
}


@dataclass(frozen=True, slots=True)
class FieldRule:
    """What a string filled in at one place of the body must satisfy."""

    validate: Callable[[Any], object] | None  # the field's own validator; None: any string
    watched: bool  # a model validator reads its content
    max_length: int | None = None  # when ``validate`` checks a string's length and nothing else


_UNKNOWN = FieldRule(validate=None, watched=True)  # every new content validated in full


def _reads_content(model: type[BaseModel], name: str) -> bool:
    decorators = model.__pydantic_decorators__
    for validator in decorators.field_validators.values():
        if name in validator.info.fields or "*" in validator.info.fields:
            return True
    known = CONTENT_READ.get(model)
    if known is not None:
        return name in known
    return bool(decorators.model_validators)


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def field_rule(model: type[BaseModel], loc: Loc) -> FieldRule:
    """The rule for a string at ``loc`` of a body of ``model`` (a request model)."""
    current: object = model
    i = 0
    while True:
        part = loc[i] if i < len(loc) else None
        if not _is_model(current) or not isinstance(part, str):
            return _UNKNOWN
        owner = typing.cast(type[BaseModel], current)
        info = owner.model_fields.get(part)
        if info is None:
            return _UNKNOWN
        annotation = info.annotation
        i += 1
        if i == len(loc):
            break
        if typing.get_origin(annotation) is list and isinstance(loc[i], int):
            (annotation,) = typing.get_args(annotation)
            i += 1
            if i == len(loc):
                return _UNKNOWN  # a string as a whole item: not a place a body can be right
        current = annotation
    watched = _reads_content(owner, part)
    if annotation is str and all(isinstance(m, Strict) for m in info.metadata):
        return FieldRule(validate=None, watched=watched)
    if _is_model(annotation) or typing.get_origin(annotation) in (list, dict):
        return _UNKNOWN  # a string where a model or a list goes: the first point fails already
    constrained: Any = Annotated[annotation, *info.metadata] if info.metadata else annotation
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(
            constrained, config=ConfigDict(strict=bool(owner.model_config.get("strict")))
        )
    except Exception:  # a type TypeAdapter cannot take on its own: validate in full
        return _UNKNOWN
    lengths = [m.max_length for m in info.metadata if isinstance(m, MaxLen)]
    only_length = annotation is str and all(isinstance(m, Strict | MaxLen) for m in info.metadata)
    return FieldRule(
        validate=adapter.validator.validate_python,
        watched=watched,
        max_length=min(lengths) if only_length and lengths else None,
    )


def _longest(plan: Plan, position: int) -> int | None:
    """The most characters the template argument at ``position`` can have (None: unbounded)."""
    if position == 0:  # {index}: below the points before exclusions
        total = math.prod(len(axis.rows) for axis in plan.axes)
        total *= plan.random.samples if plan.random is not None else 1
        return len(str(max(total - 1, 0)))
    if position == 1:  # {key}: 16 hex digits
        return 16
    label = plan.labels[position - 2]
    for axis in plan.axes:
        if label in axis.labels:
            j = axis.labels.index(label)
            return max(len(row[j]) for row in axis.rows)
    for dim in plan.random.dims if plan.random is not None else ():
        if dim.label == label and dim.choices is not None:
            return max(map(len, dim.choices))
    return None  # a drawn number: no bound kept


def longest(plan: Plan, fmt: str) -> int | None:
    """The most characters ``fmt`` can render to over the points of ``plan`` (None: unbounded)."""
    total = 0
    for literal, name, _, _ in string.Formatter().parse(fmt):
        total += len(literal)
        if name is not None:
            most = _longest(plan, int(name.split("[", 1)[0]))
            if most is None:
                return None
            total += most
    return total


@dataclass(frozen=True, slots=True)
class PointCheck:
    """What the preflight loop checks per point, over the template arguments
    ``(index, key, *pairs)``; see the module docstring."""

    rules: tuple[tuple[Callable[..., str], Callable[[Any], object]], ...]  # (format, validate)
    watched: tuple[Callable[..., str], ...]  # formats of the strings model validators read
    places: tuple[Loc, ...]  # every place a point fills, for tests and repr
    formats: tuple[str, ...]  # the format strings of rules and watched (what they read)

    @property
    def needed(self) -> bool:
        """False when no string a point fills can make its body invalid."""
        return bool(self.rules or self.watched)


def varying(plan: Plan) -> list[tuple[Loc, str]]:
    """Every place a point fills in the wire body, with the format that fills it."""
    body = plan.body
    assert isinstance(body, Body), "the fast check is v1's: v2 bodies are validated whole"
    places: list[tuple[Loc, str]] = []
    if body.job_desc is not None and body.job_desc.constant is None:
        places.append((("job_desc",), body.job_desc.fmt))
    places.extend((("config", name), fmt) for name, fmt in body.formats)
    places.extend((loc, t.fmt) for loc, t in body.nested_slots)
    for i, (_, template) in enumerate(body.fixed):
        if template.constant is None:
            places.append((("config", "parameter", i, "value"), template.fmt))
    for j in range(len(plan.labels)):  # the swept values, after the fixed parameters
        places.append((("config", "parameter", len(body.fixed) + j, "value"), f"{{{2 + j}[1]}}"))
    return places


def compile_check(plan: Plan, model: type[BaseModel]) -> PointCheck:
    """The per-point check of ``plan``'s bodies against ``model``."""
    rules: list[tuple[Callable[..., str], Callable[[Any], object]]] = []
    watched: list[Callable[..., str]] = []
    formats: list[str] = []
    places = varying(plan)
    for loc, fmt in places:
        rule = field_rule(model, loc)
        if rule.max_length is not None and not rule.watched:
            most = longest(plan, fmt)
            if most is not None and most <= rule.max_length:
                continue  # proved here: no point renders it too long (job_desc, usually)
        if rule.validate is not None:
            rules.append((fmt.format, rule.validate))
        if rule.watched:
            watched.append(fmt.format)
        if rule.validate is not None or rule.watched:
            formats.append(fmt)
    return PointCheck(
        rules=tuple(rules),
        watched=tuple(watched),
        places=tuple(loc for loc, _ in places),
        formats=tuple(formats),
    )


def uses_key(formats: Iterable[str]) -> bool:
    """True when one of these positional formats reads the key (argument 1)."""
    return any(
        name is not None and name.split("[", 1)[0] == "1"
        for fmt in formats
        for _, name, _, _ in string.Formatter().parse(fmt)
    )

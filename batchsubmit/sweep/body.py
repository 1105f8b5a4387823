"""Compiling the request body of a spec: fixed parameters, templates, and the wire order.

The body under ``base`` is split once into a constant part, copied per point, and the few fields
that carry placeholders, compiled to positional format strings. Keys are put in the order
``CreateVersionRequest.to_wire()`` emits them and nulls are dropped as it drops them, so a rendered
body is byte-for-byte what the request model would send.

Placeholders: ``{sweep}``, ``{job_id}`` and fixed parameters are constants, filled in at
compile time; ``{index}``, ``{key}`` and swept labels are format fields over
``(index, key, *pairs)``. A spec bound to no job (several ``target.job_ids``, or none) renders
``{job_id}`` as that very text: the runner binds it to each job (``spec.bind``) before anything
is sent.

A spec rebased on a version (``rebase.py``) passes the version's parameters in as ``inherited``:
literal (never templates, never placeholders, exempt from the reserved names), merged by label with
the spec's own fixed parameters. A spec with ``from_version`` but not yet rebased is checked with
:data:`PartialRequest`: every field optional, the cross-field rules left for the merged body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic.fields import FieldInfo

from batchsubmit.errors import SpecError
from batchsubmit.models import CreateVersionRequest, DataSourceItem, VersionConfig
from batchsubmit.sweep.lines import KeyPath, LineMap, error_at
from batchsubmit.sweep.render import Template, compile_template, placeholders
from batchsubmit.sweep.render import render_value as render
from batchsubmit.sweep.schema import Base, suggest

__all__ = ["RESERVED", "Body", "PartialRequest", "compile_body", "merge_by_label"]

RESERVED = ("sweep", "index", "key", "job_id")
UNBOUND_JOB = "{job_id}"  # what {job_id} renders to in a spec bound to no job
_CONFIG_ORDER = {name: i for i, name in enumerate(VersionConfig.model_fields)}
_SOURCE_ORDER = {name: i for i, name in enumerate(DataSourceItem.model_fields)}

Args = tuple[object, ...]  # (index, key, *pairs): what templates are formatted with
Node = Callable[[Args], Any]


@dataclass(frozen=True, slots=True)
class Body:
    """The request body, split into a constant part and the parts rendered per point."""

    job_desc: Template | None
    config: dict[str, Any]  # constant fields, wire order; rendered fields hold a None stand-in
    formats: tuple[tuple[str, str], ...]  # (config field, positional format)
    nested: tuple[tuple[str, Node], ...]  # (config field, builder) for lists and mappings
    fixed: tuple[tuple[str, Template], ...]  # fixed parameters kept, wire order
    fixed_index: tuple[int | None, ...]  # their index in base.config.parameter; None: inherited
    train_url: Template | None
    uses_job_id: bool = False  # some template names {job_id}
    # The templates with slots inside ``nested``, at their place in the wire body
    # (``("config", "data_source", 0, "type")``): what a point can change there.
    nested_slots: tuple[tuple[tuple[str | int, ...], Template], ...] = ()


def _partial_request() -> type[BaseModel]:
    """CreateVersionRequest with every config field optional and no cross-field rules."""
    fields: dict[str, Any] = {
        name: (info.annotation, FieldInfo.merge_field_infos(info, default=None))
        for name, info in VersionConfig.model_fields.items()
    }
    config = create_model(
        "PartialVersionConfig", __config__=VersionConfig.model_config, **fields
    )
    desc = CreateVersionRequest.model_fields["job_desc"]
    outer: dict[str, Any] = {
        "job_desc": (desc.annotation, FieldInfo.merge_field_infos(desc)),
        "config": (config, ...),
    }
    return create_model(
        "PartialCreateVersionRequest",
        __config__=ConfigDict(**CreateVersionRequest.model_config),
        **outer,
    )


# The body of a spec whose base comes from a version: each field it gives is checked (name, type,
# and items of lists), none is required, and the one-of rules wait for the merged body.
PartialRequest = _partial_request()


def merge_by_label(
    base: Sequence[tuple[str, Any]], overlay: Sequence[tuple[str, Any]]
) -> list[tuple[str, Any]]:
    """``overlay`` merged into ``base`` by label: an overlay label replaces the base's value in the
    base's position (a label the base lists twice ends up once, there), new labels follow in
    overlay order."""
    replaced = dict(overlay)
    merged: dict[str, Any] = {}
    for label, value in base:
        merged[label] = replaced.get(label, value)
    for label, value in overlay:
        merged.setdefault(label, value)
    return list(merged.items())



class Located:
    """Errors and rendered values that point at the spec file's line for a key path."""

    where: str
    lines: LineMap

    def error(self, message: str, path: KeyPath) -> SpecError:
        return error_at(self.where, self.lines, message, path)

    def value(self, raw: object, path: KeyPath) -> str:
        try:
            return render(raw)
        except ValueError as exc:
            raise self.error(str(exc), path) from None


class BodyCompiler(Located):
    """Compiles ``base`` for a sweep whose swept labels (spec order) are ``labels``."""

    def __init__(
        self,
        name: str,
        labels: list[str],
        where: str,
        lines: LineMap,
        *,
        job_id: int | None = None,
        inherited: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.name, self.where, self.lines = name, where, lines
        self.job_id = job_id
        self.inherited = tuple(inherited)
        self.uses_job_id = False
        self.swept = set(labels)
        self.fixed_raw: list[tuple[str, str, int | None]] = []
        self.positions = {"index": "0", "key": "1"}
        self.positions.update({label: f"{2 + i}[1]" for i, label in enumerate(labels)})
        self.nested_slots: list[tuple[tuple[str | int, ...], Template]] = []


    def fixed(self, config: Mapping[str, Any]) -> None:
        raw = config.get("parameter")
        own: list[tuple[str, tuple[str, int | None]]] = []
        if raw is not None:
            own = self.own_fixed(raw)
        inherited = [(label, (_literal(value), None)) for label, value in self.inherited]
        for label, (value, i) in merge_by_label(inherited, own):
            if label not in self.swept:  # a swept label overrides the fixed one
                self.fixed_raw.append((label, value, i))

    def own_fixed(self, raw: object) -> list[tuple[str, tuple[str, int | None]]]:
        """The spec's own fixed parameters: (label, (value, index)), checked."""
        own: list[tuple[str, tuple[str, int | None]]] = []
        base: KeyPath = ("base", "config", "parameter")
        if not isinstance(raw, list):
            raise self.error("must be a list of {label: ..., value: ...}", base)
        seen: set[str] = set()
        for i, item in enumerate(raw):
            path = (*base, i)
            if not isinstance(item, dict):
                raise self.error("must be a mapping {label: ..., value: ...}", path)
            extra = [k for k in item if k not in ("label", "value")]
            if extra:
                raise self.error(f"unknown key {extra[0]!r}: a parameter has label and value", path)
            label = item.get("label")
            if not isinstance(label, str) or not label:
                raise self.error("label must be a non-empty string", (*path, "label"))
            if label in RESERVED:
                raise self.error(
                    f"label {label!r} is reserved for the {{{label}}} placeholder: rename it",
                    (*path, "label"),
                )
            if label in seen:
                raise self.error(f"label {label!r} is listed twice: keep one", (*path, "label"))
            seen.add(label)
            if "value" not in item:
                raise self.error("value is missing", path)
            own.append((label, (self.value(item["value"], (*path, "value")), i)))
        return own

    def templates(self) -> None:
        self.templated_fixed = {
            label for label, value, _ in self.fixed_raw if self.placeholder_names(value, ())
        }
        job = str(self.job_id) if self.job_id is not None else UNBOUND_JOB
        self.constants = {"sweep": self.name, "job_id": job}
        self.constants.update(
            {
                lbl: v
                for lbl, v, i in self.fixed_raw
                if lbl not in self.templated_fixed and i is not None  # inherited: no placeholder
            }
        )

    def placeholder_names(self, text: str, path: KeyPath) -> list[str]:
        try:
            return placeholders(text)
        except ValueError as exc:
            raise self.error(str(exc), path) from None

    def template(self, text: str, path: KeyPath) -> Template:
        if "job_id" in self.placeholder_names(text, path):
            self.uses_job_id = True
        try:
            return compile_template(text, positions=self.positions, constants=self.constants)
        except KeyError as exc:
            name = str(exc.args[0])
            if name in self.templated_fixed:
                raise self.error(
                    f"placeholder {{{name}}} refers to a fixed parameter that is itself a "
                    "template: spell its value out here instead",
                    path,
                ) from None
            known = ["sweep", *self.positions, *self.constants]
            known = list(dict.fromkeys(known))
            close = suggest(name, known)
            hint = f"did you mean {{{close}}}? " if close else ""
            raise self.error(
                f"unknown placeholder {{{name}}}: {hint}known placeholders: "
                + ", ".join(f"{{{k}}}" for k in known),
                path,
            ) from None

    def node(self, value: Any, path: KeyPath) -> Node:
        if isinstance(value, dict):
            order = _SOURCE_ORDER if path[-2:-1] == ("data_source",) else {}
            keys = sorted(
                (k for k, v in value.items() if v is not None),
                key=lambda k: order.get(k, len(order)),
            )
            items = [(k, self.node(value[k], (*path, k))) for k in keys]
            return lambda args: {k: build(args) for k, build in items}
        if isinstance(value, list):
            parts = [self.node(v, (*path, i)) for i, v in enumerate(value)]
            return lambda args: [build(args) for build in parts]
        if isinstance(value, str):
            compiled = self.template(value, path)
            if compiled.constant is not None:
                constant = compiled.constant
                return lambda args: constant
            self.nested_slots.append((path[1:], compiled))  # ("base", *wire) -> wire
            fmt = compiled.fmt.format
            return lambda args: fmt(*args)
        return lambda args: value

    def body(self, base: Base) -> Body:
        config_path: KeyPath = ("base", "config")
        job_desc = (
            self.template(base.job_desc, ("base", "job_desc"))
            if base.job_desc is not None else None
        )
        fixed = tuple(
            (
                label,
                self.template(
                    value,
                    ("base", "config", "parameter")
                    if i is None else ("base", "config", "parameter", i, "value"),
                ),
            )
            for label, value, i in self.fixed_raw
        )
        keys = sorted(
            (k for k, v in base.config.items() if v is not None or k == "parameter"),
            key=lambda k: _CONFIG_ORDER.get(k, len(_CONFIG_ORDER)),
        )
        if "parameter" not in keys:
            keys.append("parameter")
            keys.sort(key=lambda k: _CONFIG_ORDER.get(k, len(_CONFIG_ORDER)))
        config: dict[str, Any] = {}
        formats: list[tuple[str, str]] = []
        nested: list[tuple[str, Node]] = []
        train_url: Template | None = None
        for k in keys:
            value = base.config.get(k)
            config[k] = None
            if k == "parameter":
                continue
            path = (*config_path, k)
            if isinstance(value, str):
                compiled = self.template(value, path)
                if k == "train_url":
                    train_url = compiled
                if compiled.constant is not None:
                    config[k] = compiled.constant
                else:
                    formats.append((k, compiled.fmt))
            elif isinstance(value, dict | list):
                nested.append((k, self.node(value, path)))
            else:
                config[k] = value
        return Body(
            job_desc=job_desc,
            config=config,
            formats=tuple(formats),
            nested=tuple(nested),
            fixed=fixed,
            fixed_index=tuple(i for _, _, i in self.fixed_raw),
            train_url=train_url,
            uses_job_id=self.uses_job_id,
            nested_slots=tuple(self.nested_slots),
        )


def _literal(text: str) -> str:
    """``text`` as a template that renders to exactly ``text``."""
    return text.replace("{", "{{").replace("}", "}}")


def literal(value: Any) -> Any:
    """``value`` with every string in it made a literal template (for values from a version)."""
    if isinstance(value, str):
        return _literal(value)
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return value


def compile_body(
    base: Base,
    *,
    name: str,
    labels: list[str],
    where: str,
    lines: LineMap,
    job_id: int | None = None,
    inherited: Sequence[tuple[str, str]] = (),
) -> Body:
    """Compile ``base`` (fixed parameters, templates, wire order); SpecError at the field.

    ``job_id`` fills {job_id}; ``inherited`` are a version's parameters (literal values) that the
    spec's own fixed parameters are merged into by label."""
    compiler = BodyCompiler(name, labels, where, lines, job_id=job_id, inherited=inherited)
    compiler.fixed(base.config)
    compiler.templates()
    return compiler.body(base)

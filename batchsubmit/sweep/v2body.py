"""Compiling the v2 request body of a spec (``target.api: v2``): one training job per point.

The body under ``base`` is a v2 create-training-job body (``shared/spec/v2-training-jobs.md``
section 2) with ``{templates}`` in its strings, compiled once as v1's is (``body.py``): swept
values become ``algorithm.parameters`` items ``{name, value}``, merged by name with the base's
(a swept name replaces the base's item), as they become ``config.parameter`` for v1.

``metadata.name`` is the point's identity on the server (v2 has no idempotency token; a duplicate
name is refused), so it must render to ``^[A-Za-z0-9_-]{1,64}$`` and differ for every point
(preflight checks both). Without one, :func:`default_name` derives it from the sweep name and the
point key, always valid and unique per point. The point's ``train_url`` is the OBS url of the
output channel named ``train_url`` (else the first output): what the ledger records and what a
found job's echo is compared with, normalised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Protocol

from batchsubmit.sweep.body import RESERVED, BodyCompiler, Node
from batchsubmit.sweep.lines import KeyPath, LineMap
from batchsubmit.sweep.render import Template
from batchsubmit.sweep.schema import V2Base


class _Rendered(Protocol):
    """A rendered point (``expand.Point``, which imports this module)."""

    @property
    def body(self) -> dict[str, Any]: ...

__all__ = ["V2Body", "compile_v2_body", "default_name", "job_name"]

_NAME_MAX = 64
_KEY_CHARS = 16  # a point key: 16 hex digits


@dataclass(frozen=True, slots=True)
class V2Body:
    """The v2 body: a builder for everything but the parameters, and the per-point templates."""

    build: Node  # the wire body from (index, key, *pairs); ``algorithm.parameters`` added per point
    fixed: tuple[tuple[str, Template], ...]  # the base's parameters not swept: (name, value)
    fixed_index: tuple[int, ...]  # their index in base.algorithm.parameters
    name: Template  # metadata.name
    name_path: KeyPath  # where the name comes from in the spec (the base, for a derived one)
    train_url: Template | None  # the train_url output's obs_url (None: the body has no output)
    train_url_path: KeyPath
    uses_job_id: bool = False  # v2 has no job: {job_id} is no placeholder here
    nested_slots: tuple[tuple[tuple[str | int, ...], Template], ...] = ()

    @property
    def name_prefix(self) -> str:
        """The text every point's name starts with (what a search filters on; may be empty)."""
        return self.name.fmt.split("{", 1)[0] if self.name.constant is None else self.name.fmt


def job_name(point: _Rendered) -> str:
    """A v2 point's job name (``metadata.name``): its identity on the server."""
    name: str = point.body["metadata"]["name"]
    return name


def default_name(sweep: str) -> str:
    """The name template when the spec gives none: ``{sweep}-{key}``, or for a long sweep name
    its start, a digest of all of it and the key, so it always fits 64 characters."""
    if len(sweep) + 1 + _KEY_CHARS <= _NAME_MAX:
        return f"{sweep}-{{key}}"
    digest = blake2b(sweep.encode(), digest_size=4).hexdigest()
    head = sweep[: _NAME_MAX - 2 - len(digest) - _KEY_CHARS]
    return f"{head}-{digest}-{{key}}"


class V2Compiler(BodyCompiler):
    """Compiles a v2 ``base``; the templates and their errors are v1's (``BodyCompiler``)."""

    def v2_fixed(self, algorithm: Mapping[str, Any]) -> None:
        raw = algorithm.get("parameters")
        self.fixed_raw = []
        if raw is None:
            return
        base: KeyPath = ("base", "algorithm", "parameters")
        if not isinstance(raw, list):
            raise self.error("must be a list of {name: ..., value: ...}", base)
        seen: set[str] = set()
        for i, item in enumerate(raw):
            path = (*base, i)
            if not isinstance(item, dict):
                raise self.error("must be a mapping {name: ..., value: ...}", path)
            extra = [k for k in item if k not in ("name", "value")]
            if extra:
                raise self.error(
                    f"unknown key {extra[0]!r}: a parameter here has name and value "
                    "(the only keys a create needs)", path,
                )
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise self.error("name must be a non-empty string", (*path, "name"))
            if name in RESERVED:
                raise self.error(
                    f"name {name!r} is reserved for the {{{name}}} placeholder: rename it",
                    (*path, "name"),
                )
            if name in seen:
                raise self.error(f"name {name!r} is listed twice: keep one", (*path, "name"))
            seen.add(name)
            if "value" not in item:
                raise self.error("value is missing", path)
            if name not in self.swept:  # a swept name replaces the base's item
                self.fixed_raw.append((name, self.value(item["value"], (*path, "value")), i))

    def v2_body(self, base: V2Base, workspace_id: str | None) -> V2Body:
        self.constants.pop("job_id", None)  # v2 has no job: {job_id} is unknown here
        metadata = dict(base.metadata)
        name_text = metadata.get("name")
        name_path: KeyPath = ("base", "metadata", "name")
        if name_text is None:
            name_text, name_path = default_name(self.name), ("base",)
        elif not isinstance(name_text, str):
            raise self.error("must be a string: the job's name (templates allowed)", name_path)
        if "workspace_id" in metadata:  # one owner: the search must look where jobs are made
            raise self.error(
                "the workspace is target.workspace_id (the creates and every search of the "
                "sweep's jobs use it): move it there", ("base", "metadata", "workspace_id"),
            )
        if workspace_id is not None:
            metadata["workspace_id"] = workspace_id
        name = self.template(name_text, name_path)
        algorithm = {k: v for k, v in base.algorithm.items() if k != "parameters"}
        wire: dict[str, Any] = {"kind": base.kind, "metadata": {"name": name_text, **metadata},
                                "algorithm": algorithm, "spec": base.spec}  # fmt: skip
        if base.endpoints is not None:
            wire["endpoints"] = base.endpoints
        build = self.node(wire, ("base",))
        fixed = tuple(
            (label, self.template(value, ("base", "algorithm", "parameters", i or 0, "value")))
            for label, value, i in self.fixed_raw
        )
        train_url, url_path = self.train_url(base.algorithm.get("outputs"))
        return V2Body(
            build=build, fixed=fixed, fixed_index=tuple(int(i or 0) for _, _, i in self.fixed_raw),
            name=name, name_path=name_path, train_url=train_url, train_url_path=url_path,
            nested_slots=tuple(self.nested_slots),
        )

    def train_url(self, outputs: object) -> tuple[Template | None, KeyPath]:
        """The template of the point's train_url: the obs_url of the output named train_url,
        else of the first output (None when there is none to read)."""
        if not isinstance(outputs, list) or not outputs:
            return None, ("base", "algorithm", "outputs")
        named = [isinstance(o, dict) and o.get("name") == "train_url" for o in outputs]
        chosen = named.index(True) if True in named else 0
        path: KeyPath = ("base", "algorithm", "outputs", int(chosen), "remote", "obs", "obs_url")
        item: object = outputs[chosen]
        for part in path[4:]:
            item = item.get(part) if isinstance(item, dict) else None
        if not isinstance(item, str):
            return None, path  # the request model names what is wrong with it
        return self.template(item, path), path


def compile_v2_body(
    base: V2Base,
    *,
    name: str,
    labels: Sequence[str],
    where: str,
    lines: LineMap,
    workspace_id: str | None = None,
) -> V2Body:
    """Compile a v2 ``base`` (fixed parameters, templates, the name); SpecError at the field."""
    compiler = V2Compiler(name, list(labels), where, lines)
    compiler.v2_fixed(base.algorithm)
    compiler.templates()
    return compiler.v2_body(base, workspace_id)

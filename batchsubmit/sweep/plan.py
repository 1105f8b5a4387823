"""Compiling a validated spec file into a plan: everything the per-point loop needs, computed once.

Pure: data in, a frozen :class:`Plan` out (or a SpecError naming the file, line and field). The plan
holds the axes as tuples of already-rendered strings, exclusions as hashed lookups, the key format,
the random search, and the compiled request body (``body.py``).

Order of labels ("spec order"): the sections ``grid``, ``zip`` and ``random`` in the order the file
lists them, keys in file order within each. The grid x zip product follows the same order, the last
axis varying fastest; ``zip`` is one axis.
"""

from __future__ import annotations

import math
import operator
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batchsubmit.errors import SpecError
from batchsubmit.sweep.body import RESERVED, Body, Located, compile_body
from batchsubmit.sweep.lines import KeyPath, LineMap, dotted, error_at
from batchsubmit.sweep.render import Template, json_escape
from batchsubmit.sweep.sampling import Dim, compile_dimension
from batchsubmit.sweep.schema import SpecFile, V2Base, suggest
from batchsubmit.sweep.v2body import V2Body, compile_v2_body

__all__ = ["Axis", "KeyFormat", "Match", "Plan", "RandomPlan", "Rebased", "compile_plan"]

_LABEL = re.compile(r"^[^\s{}:!=]+$")
_DIGITS = frozenset("0123456789")

Pairs = tuple[tuple[str, str], ...]  # (label, value) pairs, spec order


@dataclass(frozen=True, slots=True)
class Axis:
    """One axis of the grid x zip product: a grid key, or all zip keys advanced together."""

    labels: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class KeyFormat:
    """Formats of the canonical JSON of sorted [label, value] pairs: ``pairs`` takes the point's
    (label, value) pairs; ``plain`` takes JSON-escaped value strings (used when a value needs
    escaping)."""

    pairs: str
    plain: str


@dataclass(frozen=True, slots=True)
class RandomPlan:
    """The random block: drawn per cell, inserted among the labels at position ``at``."""

    samples: int
    seed: int
    dims: tuple[Dim, ...]  # in label order: the order of the draws
    labels: tuple[str, ...]  # spec order
    to_spec: Callable[[list[str]], tuple[str, ...]]  # label order -> spec order
    at: int
    cell_key: KeyFormat  # canonical pairs of a cell, which seed its stream
    attempts: int  # draws per cell before giving up on finding `samples` distinct ones


@dataclass(frozen=True, slots=True)
class Match:
    """Exclusions sharing one set of labels: ``getter(values) in pinned`` means excluded."""

    getter: Callable[[Pairs], object]
    pinned: frozenset[object]


@dataclass(frozen=True, slots=True)
class Rebased:
    """What a plan rebased on a server version needs for its checks and its error messages."""

    job_id: int
    version_id: int
    inherited: tuple[str, ...]  # config fields whose value is the version's, wire order
    train_url: str | None  # the version's own train_url: no point may render it again

    def explain(self, message: str, path: KeyPath) -> str:
        """``message`` saying which job and version it is about, and what came from the version."""
        text = f"job {self.job_id} rebased on version {self.version_id}: {message}"
        if path[:2] != ("base", "config"):
            return text
        if len(path) == 2 and self.inherited:
            return text + f" (from version {self.version_id}: {', '.join(self.inherited)})"
        if len(path) > 2 and path[2] in self.inherited:
            return text + f" ({path[2]} is the value of version {self.version_id})"
        return text


@dataclass(frozen=True)
class Plan:
    """A compiled sweep."""

    where: str
    lines: LineMap
    sweep: str
    labels: tuple[str, ...]
    sources: Mapping[str, KeyPath]
    axes: tuple[Axis, ...]
    flat: bool  # no zip: the product's tuples are the values themselves
    random: RandomPlan | None
    key: KeyFormat
    escape: Mapping[str, str] | None
    cell_excludes: tuple[Match, ...]
    boxes: tuple[tuple[frozenset[int] | None, ...], ...]
    point_excludes: tuple[Match, ...]
    point_exclude_cells: tuple[Match | None, ...]
    body: Body | V2Body  # V2Body: target.api v2, a training job per point
    train_url_unique: bool
    job_id: int | None = None  # the job {job_id} renders (None: bound to no job)
    partial: bool = False  # from_version, not yet rebased: bodies are checked field by field
    rebased: Rebased | None = None

    def error(
        self, message: str, path: KeyPath = (), *, index: int | None = None, key: str | None = None
    ) -> SpecError:
        """A SpecError at ``path`` of this spec (file, line, field, point)."""
        if self.rebased is not None:
            message = self.rebased.explain(message, path)
        return error_at(self.where, self.lines, message, path, index=index, key=key)


def _key_format(labels: list[tuple[str, int]]) -> KeyFormat:
    def build(field: str) -> str:
        pairs = [
            '["' + json_escape(label) + '","{' + field.format(pos) + '}"]'
            for label, pos in sorted(labels)
        ]
        return "[" + ",".join(pairs) + "]"

    return KeyFormat(pairs=build("{}[1]"), plain=build("{}"))


def _grouped(constraints: list[dict[int, tuple[str, str]]]) -> tuple[Match, ...]:
    """Exclusions grouped by the positions they pin: one hashed lookup per group per point."""
    groups: dict[tuple[int, ...], set[object]] = {}
    for pins in constraints:
        signature = tuple(sorted(pins))
        value = tuple(pins[p] for p in signature)
        groups.setdefault(signature, set()).add(value[0] if len(value) == 1 else value)
    return tuple(
        Match(operator.itemgetter(*signature), frozenset(pinned))
        for signature, pinned in groups.items()
    )


class _Compiler(Located):
    def __init__(self, doc: SpecFile, data: Mapping[str, Any], where: str, lines: LineMap):
        self.doc, self.data, self.where, self.lines = doc, data, where, lines


    # -- labels and axes ------------------------------------------------------------------

    def sections(self) -> None:
        doc = self.doc
        order = [s for s in self.data if s in ("grid", "zip", "random") and self.data[s]]
        if not order and doc.base.from_version is None:  # re-versioning alone is one point a job
            raise self.error(
                "nothing to sweep: give at least one of grid, zip or random", ()
            )
        self.sources: dict[str, KeyPath] = {}
        self.labels: list[str] = []
        self.axes: list[Axis] = []
        self.dims: list[Dim] = []
        self.random_at = 0
        for section in order:
            if section == "grid":
                assert doc.grid is not None
                for label, values in doc.grid.items():
                    self.label(label, ("grid", label))
                    rows = [self.value(v, ("grid", label, i)) for i, v in enumerate(values)]
                    if not rows:
                        raise self.error("no values: list at least one", ("grid", label))
                    self.unique(rows, ("grid", label))
                    self.axes.append(Axis((label,), tuple((r,) for r in rows)))
            elif section == "zip":
                assert doc.zip is not None
                self.zip_axis(doc.zip)
            else:
                assert doc.random is not None
                self.random_at = len(self.labels)
                for label, dim in doc.random.space.items():
                    path: KeyPath = ("random", "space", label)
                    self.label(label, path)
                    try:
                        self.dims.append(compile_dimension(label, dim))
                    except ValueError as exc:
                        raise self.error(str(exc), path) from None

    def label(self, label: str, path: KeyPath) -> None:
        if label in self.sources:
            raise self.error(
                f"label {label!r} is already swept by {dotted(self.sources[label])}: "
                "a label belongs to one of grid, zip or random",
                path,
            )
        if label in RESERVED:
            raise self.error(
                f"label {label!r} is reserved for the {{{label}}} placeholder: rename it", path
            )
        if not _LABEL.match(label):
            raise self.error(
                f"label {label!r} has whitespace or one of {{ }} : ! =: use a plain name "
                "such as learning_rate",
                path,
            )
        self.sources[label] = path
        self.labels.append(label)

    def unique(self, rows: list[str], path: KeyPath) -> None:
        seen: dict[str, int] = {}
        for i, row in enumerate(rows):
            if row in seen:
                raise self.error(
                    f"value {row!r} is listed twice (items {seen[row]} and {i}, after rendering "
                    "to strings): the points would be identical; list each value once",
                    (*path, i),
                )
            seen[row] = i

    def zip_axis(self, spec: Mapping[str, list[Any]]) -> None:
        columns: list[list[str]] = []
        lengths = {label: len(values) for label, values in spec.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{label}: {n}" for label, n in lengths.items())
            raise self.error(
                f"zip lists must have equal lengths, got {shown}: they advance together",
                ("zip", next(iter(spec))),
            )
        for label, values in spec.items():
            self.label(label, ("zip", label))
            if not values:
                raise self.error("no values: list at least one", ("zip", label))
            columns.append([self.value(v, ("zip", label, i)) for i, v in enumerate(values)])
        rows = list(zip(*columns, strict=True))
        seen: dict[tuple[str, ...], int] = {}
        for i, row in enumerate(rows):
            if row in seen:
                raise self.error(
                    f"zip row {i} repeats row {seen[row]} {row}: the points would be identical",
                    ("zip", next(iter(spec)), i),
                )
            seen[row] = i
        self.axes.append(Axis(tuple(spec), tuple(rows)))

    # -- exclusions -----------------------------------------------------------------------

    def excludes(self) -> None:
        random_labels = {d.label for d in self.dims}
        cell_labels = [lbl for lbl in self.labels if lbl not in random_labels]
        cell_pos = {label: i for i, label in enumerate(cell_labels)}
        full_pos = {label: i for i, label in enumerate(self.labels)}
        dims = {d.label: d for d in self.dims}
        axis_of = {label: a for a, axis in enumerate(self.axes) for label in axis.labels}
        cells: list[dict[int, tuple[str, str]]] = []
        points: list[dict[int, tuple[str, str]]] = []
        point_cells: list[dict[int, tuple[str, str]]] = []
        boxes: list[tuple[frozenset[int] | None, ...]] = []
        for i, entry in enumerate(self.doc.exclude or []):
            path: KeyPath = ("exclude", i)
            if not entry:
                raise self.error("an empty exclude drops every point: name some labels", path)
            pins = self._exclude_pins(entry, path, full_pos, dims)
            box = self._exclude_box(pins, path)
            cell_pins = {cell_pos[lbl]: (lbl, v) for lbl, v in pins.items() if lbl in axis_of}
            if any(lbl in random_labels for lbl in pins):
                points.append({full_pos[lbl]: (lbl, v) for lbl, v in pins.items()})
                point_cells.append(cell_pins)
            else:
                cells.append(cell_pins)
                boxes.append(box)
        self.cell_excludes = _grouped(cells)
        self.boxes = tuple(boxes)
        self.point_excludes = _grouped(points)
        self.point_exclude_cells = tuple(
            _grouped([pins])[0] if pins else None for pins in point_cells
        )
        self.cell_labels = cell_labels

    def _exclude_pins(
        self, entry: Mapping[str, Any], path: KeyPath, full_pos: Mapping[str, int],
        dims: Mapping[str, Any],
    ) -> dict[str, str]:
        """An exclude's label -> rendered value; SpecError for a label or value it cannot match."""
        pins: dict[str, str] = {}
        for label, raw in entry.items():
            if label not in full_pos:
                close = suggest(label, self.labels)
                hint = f"did you mean {close!r}? " if close else ""
                raise self.error(
                    f"{label!r} is not a swept label: {hint}excludes name grid, zip or "
                    f"random keys ({', '.join(self.labels)})",
                    (*path, label),
                )
            pins[label] = self.value(raw, (*path, label))
            dim = dims.get(label)
            if dim is not None and dim.choices is not None and pins[label] not in dim.choices:
                raise self.error(
                    f"{pins[label]!r} is not one of the choices of {label}: "
                    "this exclude would never match",
                    (*path, label),
                )
        return pins

    def _exclude_box(
        self, pins: Mapping[str, str], path: KeyPath
    ) -> tuple[frozenset[int] | None, ...]:
        """Per axis, the rows an exclude pins (None: the axis is not named)."""
        box: list[frozenset[int] | None] = [None] * len(self.axes)
        for a, axis in enumerate(self.axes):
            named = [(j, lbl) for j, lbl in enumerate(axis.labels) if lbl in pins]
            if not named:
                continue
            rows = frozenset(
                r
                for r, row in enumerate(axis.rows)
                if all(row[j] == pins[lbl] for j, lbl in named)
            )
            if not rows:
                shown = ", ".join(f"{lbl}={pins[lbl]!r}" for _, lbl in named)
                raise self.error(
                    f"{shown} matches no {'zip row' if len(axis.labels) > 1 else 'grid value'}"
                    ": this exclude would never match; check the value",
                    (*path, named[0][1]),
                )
            box[a] = rows
        return tuple(box)

    # -- train_url uniqueness -------------------------------------------------------------

    def alphabet(self, position: int) -> frozenset[str] | None:
        """Characters the value at template position ``position`` can contain (None: any)."""
        if position == 0:
            return _DIGITS
        label = self.labels[position - 2]
        for axis in self.axes:
            if label in axis.labels:
                j = axis.labels.index(label)
                return frozenset("".join(row[j] for row in axis.rows))
        for dim in self.dims:
            if dim.label == label:
                return dim.alphabet
        return None

    def unique_by_construction(self, template: Template | None) -> bool:
        """True when distinct points (distinct keys) always render distinct strings: the
        template names {key}, {index} or every swept label, and its parts decode unambiguously
        (each varying part but the last is fixed-length or followed by a character it never
        contains)."""
        if template is None or template.constant is not None:
            return False
        parts = list(string.Formatter().parse(template.fmt))
        fields = [int(name.split("[")[0]) for _, name, _, _ in parts if name is not None]
        covered = bool({0, 1} & set(fields)) or set(range(2, 2 + len(self.labels))) <= set(fields)
        if not covered:
            return False
        literals = [literal for literal, _, _, _ in parts[1:]] + [""]
        for position, following in zip(fields, literals, strict=False):
            if position == 1:  # {key}: fixed length
                continue
            alphabet = self.alphabet(position)
            # A slash in a value could merge with its neighbours when the path is normalised
            # ("a/" + "/" and "a" + "/" are one OBS path), and so could a path that starts
            # with a value ("obs:" + "//b/..."): only the digest check sees through those.
            if alphabet is None or "/" in alphabet or (position == fields[0] and not parts[0][0]):
                return False
            if position != fields[-1] and (not following or following[0] in alphabet):
                return False
        return True


def compile_plan(
    doc: SpecFile,
    data: Mapping[str, Any],
    where: str,
    lines: LineMap,
    *,
    job_id: int | None = None,
    partial: bool = False,
    inherited: tuple[tuple[str, str], ...] = (),
    rebased: Rebased | None = None,
) -> Plan:
    """Compile a schema-valid spec into a :class:`Plan`; SpecError for whatever cannot work.

    ``job_id`` is the job {job_id} renders; ``partial`` marks a from_version spec not yet rebased;
    ``inherited`` and ``rebased`` come from ``rebase.py``."""
    c = _Compiler(doc, data, where, lines)
    c.sections()
    body: Body | V2Body
    if isinstance(doc.base, V2Base):
        body = compile_v2_body(
            doc.base, name=doc.name, labels=c.labels, where=where, lines=lines,
            workspace_id=doc.target.workspace_id,
        )
    else:
        body = compile_body(
            doc.base, name=doc.name, labels=c.labels, where=where, lines=lines, job_id=job_id,
            inherited=inherited,
        )
    c.excludes()
    random = _random_plan(doc, c)
    escapes = _escapes(c)
    return Plan(
        where=where,
        lines=lines,
        sweep=doc.name,
        labels=tuple(c.labels),
        sources=dict(c.sources),
        axes=tuple(c.axes),
        flat=all(len(axis.labels) == 1 for axis in c.axes),
        random=random,
        key=_key_format([(lbl, i) for i, lbl in enumerate(c.labels)]),
        escape=escapes or None,
        cell_excludes=c.cell_excludes,
        boxes=c.boxes,
        point_excludes=c.point_excludes,
        point_exclude_cells=c.point_exclude_cells,
        body=body,
        train_url_unique=c.unique_by_construction(body.train_url),
        job_id=job_id,
        partial=partial,
        rebased=rebased,
    )


def _random_plan(doc: SpecFile, c: _Compiler) -> RandomPlan | None:
    """The random search of the spec, if any: its dimensions in draw order, checked once."""
    if doc.random is None:
        return None
    dims = sorted(c.dims, key=lambda d: d.label)
    spec_order = [d.label for d in c.dims]
    drawn_order = [d.label for d in dims]
    if spec_order == drawn_order:
        to_spec: Callable[[list[str]], tuple[str, ...]] = tuple
    else:
        to_spec = operator.itemgetter(*[drawn_order.index(lbl) for lbl in spec_order])
    sizes = [d.size for d in dims]
    if all(s is not None for s in sizes):
        size = math.prod(s for s in sizes if s is not None)
        if size < doc.random.samples:
            raise c.error(
                f"{doc.random.samples} samples per point, but the space holds only {size} "
                "distinct combinations: lower samples or widen the space",
                ("random", "samples"),
            )
    cell_pos = [(lbl, i) for i, lbl in enumerate(c.cell_labels)]
    return RandomPlan(
        samples=doc.random.samples,
        seed=doc.random.seed,
        dims=tuple(dims),
        labels=tuple(spec_order),
        to_spec=to_spec,
        at=c.random_at,
        cell_key=_key_format(cell_pos),
        attempts=100 * doc.random.samples + 1000,
    )


def _escapes(c: _Compiler) -> dict[str, str]:
    """Values that JSON must escape, with their escaped text (most specs have none)."""
    escapes = {
        value: json_escape(value)
        for axis in c.axes
        for row in axis.rows
        for value in row
        if json_escape(value) != value
    }
    for dim in c.dims:
        for value in dim.choices or ():
            if json_escape(value) != value:
                escapes[value] = json_escape(value)
    return escapes

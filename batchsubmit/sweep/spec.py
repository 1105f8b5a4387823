"""Loading a sweep spec: read, validate against the schema, compile, and check one point.

:func:`load_spec` is the front door. What it returns is immutable and cheap to share; expanding it
(``iter_points``), counting it (``count_points``) and checking all of it (``preflight``) are
separate steps, because a million-point sweep should be counted in milliseconds and checked once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from batchsubmit.errors import SpecError
from batchsubmit.sweep.expand import iter_points
from batchsubmit.sweep.loader import read_spec
from batchsubmit.sweep.plan import Plan, compile_plan
from batchsubmit.sweep.schema import SpecFile, Submit, Target, spec_error_from_validation

__all__ = ["SweepSpec", "load_spec"]


@dataclass(frozen=True)
class SweepSpec:
    """A loaded, schema-valid, compiled sweep spec."""

    name: str
    path: Path
    sha256: str  # hex digest of the file's bytes: the ledger pins the spec it was made from
    target: Target
    submit: Submit
    document: SpecFile = field(repr=False)
    plan: Plan = field(repr=False)


def load_spec(path: str | Path) -> SweepSpec:
    """Parse and validate a spec file (.yaml, .yml, .json, .toml) into a :class:`SweepSpec`.

    Raises SpecError naming the file, the line and the field of the first problem. Besides the
    schema, this renders and validates the first point, so a misspelt or missing request field
    is caught here rather than at preflight."""
    raw = read_spec(path)
    where = str(raw.path)
    if not isinstance(raw.data, dict):
        raise SpecError(
            "the spec must be a mapping of keys (name, target, base, grid, ...), "
            f"got {type(raw.data).__name__ if raw.data is not None else 'an empty file'}",
            path=where,
            line=1,
        )
    try:
        document = SpecFile.model_validate(raw.data)
    except ValidationError as exc:
        raise spec_error_from_validation(exc, where=where, lines=raw.lines) from None
    plan = compile_plan(document, raw.data, where, raw.lines)
    first = next(iter_points(plan, validate=True), None)
    if first is None:
        raise plan.error("the sweep has no points: every combination is excluded", ("exclude",))
    return SweepSpec(
        name=document.name,
        path=raw.path,
        sha256=raw.sha256,
        target=document.target,
        submit=document.submit,
        document=document,
        plan=plan,
    )

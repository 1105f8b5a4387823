"""Loading a sweep spec: read, validate against the schema, compile, and check one point.

:func:`load_spec` is the front door. What it returns is immutable and cheap to share; expanding it
(``iter_points``), counting it (``count_points``) and checking all of it (``preflight``) are
separate steps, because a million-point sweep should be counted in milliseconds and checked once.

A spec is *bound* to one job when ``{job_id}`` can render: ``load_spec`` binds a spec that names
exactly one job, :func:`bind` binds any spec to the job given, ``rebase.rebase`` binds it to a job
and puts the job's version under it. A spec with several ``target.job_ids`` (or none) renders
``{job_id}`` as that very text until bound.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from batchsubmit.errors import SpecError
from batchsubmit.sweep.expand import check_size, iter_points
from batchsubmit.sweep.lines import LineMap, check_shape, error_at
from batchsubmit.sweep.loader import RawSpec, read_job_ids, read_spec
from batchsubmit.sweep.plan import Plan, compile_plan
from batchsubmit.sweep.render import placeholders
from batchsubmit.sweep.schema import (
    SpecFile,
    Submit,
    Target,
    V2Base,
    spec_error_from_validation,
)

__all__ = ["SweepSpec", "bind", "bound_target", "check_first_point", "load_spec"]


@dataclass(frozen=True)
class SweepSpec:
    """A loaded, schema-valid, compiled sweep spec."""

    name: str
    path: Path
    sha256: str  # hex digest of the file's bytes: the ledger pins the spec it was made from
    target: Target
    submit: Submit
    document: SpecFile = field(repr=False)  # the file's content, as written
    plan: Plan = field(repr=False)
    data: Mapping[str, Any] = field(repr=False, default_factory=dict)  # parsed, before the schema
    jobs_file: Path | None = None  # the file target.job_ids was read from, if any
    rebased_on: int | None = None  # the version the base was taken from (``rebase``)

    @property
    def from_version(self) -> int | Literal["latest"] | None:
        """``base.from_version``: the version each job's base is taken from, if any."""
        return self.document.base.from_version

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str | None = None) -> SweepSpec:
        """A spec from a mapping (a script's literal, parsed JSON): checked as :func:`load_spec`
        checks a file. ``name`` sets the spec's ``name``. Errors name the key path (``field
        base.config.spec_id``) where a file's would also name the line; a ``target.job_ids``
        file is read relative to the working directory."""
        if not isinstance(data, Mapping):
            raise SpecError(f"a spec is a mapping of keys, got {type(data).__name__}")
        content = dict(data) if name is None else {**data, "name": name}
        where = f"<spec {content.get('name', '?')!s}>"
        check_shape(content, where)
        try:
            encoded = json.dumps(content, sort_keys=True, ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            raise SpecError(f"the spec must hold JSON values only: {exc}", path=where) from None
        raw = RawSpec(Path(where), hashlib.sha256(encoded).hexdigest(), content, LineMap())
        return _from_raw(raw)


def _check_api(doc: SpecFile, where: str, lines: LineMap) -> None:
    """``base`` holds the body of the API ``target.api`` names."""
    v2 = isinstance(doc.base, V2Base)
    if v2 and doc.target.api != "v2":
        raise error_at(
            where, lines,
            "base is a v2 training-job body (algorithm, spec, metadata), but target.api is v1 "
            "(the default): write api: v2 under target, or give base.config (a v1 version's "
            "config)",
            ("base",),
        )
    if not v2 and doc.target.api == "v2":
        raise error_at(
            where, lines,
            "target.api is v2, but base is a v1 body (config, job_desc, from_version): give a "
            "v2 training-job body under base (kind, metadata, algorithm, spec)",
            ("target", "api"),
        )


def _check_jobs_and_versions(doc: SpecFile, where: str, lines: LineMap) -> None:
    """The rules that tie target.job_ids, base.from_version and base.config together."""
    _check_api(doc, where, lines)
    if isinstance(doc.base, V2Base):
        return
    config = doc.base.config
    jobs = doc.target.job_ids
    from_version = doc.base.from_version
    train_url = config.get("train_url")
    if from_version is not None:
        if config.get("pre_version_id") is not None:
            raise error_at(
                where, lines,
                f"pre_version_id comes from base.from_version ({from_version}): each new "
                "version builds on the version its base was taken from; drop pre_version_id",
                ("base", "config", "pre_version_id"),
            )
        if train_url is None:
            raise error_at(
                where, lines,
                "with from_version, give train_url of its own, e.g. "
                "/bucket/out/{sweep}/{job_id}/: the base version's train_url would have the new "
                "version write over its outputs, and it could not be told apart from it",
                ("base", "config"),
            )
    if len(jobs) < 2:
        return
    if from_version is None:
        raise error_at(
            where, lines,
            f"target.job_ids names {len(jobs)} jobs, but pre_version_id is a version of one job "
            "only: write base.from_version: latest (and drop pre_version_id), so that each job "
            "builds on its own newest version",
            ("target", "job_ids"),
        )
    if from_version != "latest":
        raise error_at(
            where, lines,
            f"version {from_version} belongs to one job, but target.job_ids names {len(jobs)}: "
            "write from_version: latest, so that each job builds on its own newest version",
            ("base", "from_version"),
        )
    if isinstance(train_url, str):
        try:
            named = placeholders(train_url)
        except ValueError:
            return  # the body compiler reports the malformed template with its hint
        if "job_id" not in named:
            raise error_at(
                where, lines,
                f"target.job_ids names {len(jobs)} jobs: put {{job_id}} in train_url (e.g. "
                "/bucket/out/{sweep}/{job_id}/), or the jobs' outputs overwrite each other",
                ("base", "config", "train_url"),
            )


def _resolve_jobs_file(data: Any, path: Path, lines: LineMap) -> tuple[Any, Path | None]:
    """``target.job_ids: FILE`` replaced by the ids the file lists."""
    target = data.get("target") if isinstance(data, dict) else None
    if not isinstance(target, dict) or not isinstance(target.get("job_ids"), str):
        return data, None
    jobs_file = path.parent / target["job_ids"]
    ids = read_job_ids(
        jobs_file, spec=str(path), line=lines.line(("target", "job_ids"))
    )
    return {**data, "target": {**target, "job_ids": list(ids)}}, jobs_file


def check_first_point(plan: Plan) -> None:
    """Render and validate the first point; SpecError if it is invalid or there is none."""
    if next(iter_points(plan, validate=True), None) is None:
        raise plan.error("the sweep has no points: every combination is excluded", ("exclude",))


def load_spec(path: str | Path) -> SweepSpec:
    """Parse and validate a spec file (.yaml, .yml, .json, .toml) into a :class:`SweepSpec`.

    Raises SpecError naming the file, the line and the field of the first problem. Besides the
    schema, this renders and validates the first point, so a misspelt or missing request field
    is caught here rather than at preflight, and refuses a random search of more than
    ``expand.MAX_POINTS`` (10 000 000) points. A spec with ``base.from_version`` has a partial
    body until it is rebased on a version (``rebase``): its fields are checked one by one here."""
    return _from_raw(read_spec(path))


def _from_raw(raw: RawSpec) -> SweepSpec:
    where = str(raw.path)
    if not isinstance(raw.data, dict):
        raise SpecError(
            "the spec must be a mapping of keys (name, target, base, grid, ...), "
            f"got {type(raw.data).__name__ if raw.data is not None else 'an empty file'}",
            path=where,
            line=1,
        )
    data, jobs_file = _resolve_jobs_file(raw.data, raw.path, raw.lines)
    try:
        document = SpecFile.model_validate(data)
    except ValidationError as exc:
        raise spec_error_from_validation(exc, where=where, lines=raw.lines) from None
    _check_jobs_and_versions(document, where, raw.lines)
    jobs = document.target.job_ids
    plan = compile_plan(
        document, data, where, raw.lines,
        job_id=jobs[0] if len(jobs) == 1 else None,
        partial=document.base.from_version is not None,
    )
    check_size(plan)
    check_first_point(plan)
    return SweepSpec(
        name=document.name,
        path=raw.path,
        sha256=raw.sha256,
        target=document.target,
        submit=document.submit,
        document=document,
        plan=plan,
        data=data,
        jobs_file=jobs_file,
    )


def bound_target(target: Target, job_id: int) -> Target:
    """``target`` naming the one job ``job_id``."""
    return target.model_copy(update={"job_id": job_id, "job_ids": (job_id,)})


def bind(spec: SweepSpec, job_id: int) -> SweepSpec:
    """``spec`` for the one job ``job_id``: {job_id} renders it, ``target.job_ids == (job_id,)``.

    For a spec without ``from_version`` this is the spec the runner sends to that job. A
    ``from_version`` spec stays partial (its base comes with ``rebase``). A spec already rebased
    belongs to its job: binding it to another raises SpecError."""
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 1:
        raise ValueError(f"a job id is a positive integer, got {job_id!r}")
    if spec.rebased_on is not None:
        if spec.target.job_id == job_id:
            return spec
        raise SpecError(
            f"this spec is rebased on version {spec.rebased_on} of job {spec.target.job_id}; "
            f"rebase it on a version of job {job_id} instead of binding it",
            path=str(spec.path),
        )
    plan = spec.plan
    if plan.body.uses_job_id and plan.job_id != job_id:
        plan = compile_plan(
            spec.document, spec.data, plan.where, plan.lines, job_id=job_id, partial=plan.partial
        )
        check_first_point(plan)
    elif plan.job_id != job_id:
        plan = dataclasses.replace(plan, job_id=job_id)
    return dataclasses.replace(spec, target=bound_target(spec.target, job_id), plan=plan)

"""The schema of a sweep spec file, and the translation of its validation errors into SpecError.

The key names are a contract (scripts and tests outside this repository use them): ``name``,
``target`` (``endpoint``, ``project_id``, ``job_id`` or ``job_ids``), ``base`` (``job_desc``,
``config``, ``from_version``), ``grid``, ``zip``, ``random``, ``exclude``, ``submit``. Unknown keys
are rejected everywhere. The request body under ``base`` is only checked for its outer shape here;
its fields are checked by the request models once rendered (see ``spec.py``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from batchsubmit.bounds import CONCURRENCY, MAX_ATTEMPTS, RATE
from batchsubmit.errors import SpecError
from batchsubmit.models import brief
from batchsubmit.sweep.lines import KeyPath, LineMap, dotted

__all__ = [
    "MAX_SAMPLES",
    "Base",
    "Dimension",
    "RandomSearch",
    "SpecFile",
    "Submit",
    "Target",
    "V2Base",
    "spec_error_from_validation",
    "suggest",
]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
MAX_CONCURRENCY = int(CONCURRENCY.high)  # requests in flight: the service throttles long before
_LOOPBACK = re.compile(r"^http://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?(?:/.*)?$")

Label = Annotated[str, Field(min_length=1, max_length=128)]
JobId = Annotated[int, Field(ge=1)]
Bounds = Annotated[list[int | float], Field(min_length=2, max_length=2)]
IntBounds = Annotated[list[int], Field(min_length=2, max_length=2)]


class Target(BaseModel):
    """Where the points are created: an endpoint, a project, and for v1 a training job.

    ``api: v1`` (the default) creates a version of one training job per point; ``api: v2`` a
    training job per point (``workspace_id`` optional), with no job id."""

    model_config = _STRICT

    endpoint: str
    project_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    job_id: JobId | None = None
    # Every job the spec re-versions, normalised: ``job_id: 10`` gives (10,), a list or a file of
    # ids (read by ``load_spec``, relative to the spec file) gives them in order, neither gives ()
    # (the command line's --job-id supplies the job then).
    job_ids: tuple[JobId, ...] = ()
    api: Literal["v1", "v2"] = "v1"
    workspace_id: Annotated[str, Field(pattern=r"^(0|[A-Za-z0-9]{32})$")] | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value == "emulator":
            return value
        if value.startswith("https://") and len(value) > len("https://"):
            return value.rstrip("/")
        if _LOOPBACK.match(value):
            return value.rstrip("/")
        raise ValueError(
            f"endpoint {brief(value)} is neither \"emulator\" nor an https:// URL: write emulator "
            "or e.g. https://modelarts.cn-north-4.myhuaweicloud.com "
            "(plain http:// only for 127.0.0.1/localhost)"
        )

    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        one, many = data.get("job_id"), data.get("job_ids")
        if one is not None and isinstance(many, list | tuple) and list(many) != [one]:
            raise ValueError(
                "give either job_id (one job) or job_ids (several), not both: "
                f"job_ids: {list(many)} names every job"
            )
        if many is None and isinstance(one, int) and not isinstance(one, bool):
            return {**data, "job_ids": (one,)}
        return data

    @field_validator("job_ids", mode="before")
    @classmethod
    def _job_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                f"{brief(value)} names a file of job ids, which load_spec reads (relative to the "
                "spec file); a Target built in code takes a list of ids"
            )
        if value is None:
            return ()
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError("no job ids: list at least one, or drop job_ids")
            return tuple(value)
        raise ValueError(
            f"job_ids is a list of job ids ([10, 11]) or the name of a file of them, got "
            f"{brief(value)}; for one job write job_id: {brief(value)}"
        )

    @field_validator("job_ids")
    @classmethod
    def _distinct_jobs(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        seen: dict[int, int] = {}
        for i, job in enumerate(value):
            if job in seen:
                raise ValueError(
                    f"job {job} is listed twice (items {seen[job]} and {i}): list each job once"
                )
            seen[job] = i
        return value

    @model_validator(mode="after")
    def _api_fields(self) -> Target:
        if self.api == "v2" and self.job_ids:
            raise ValueError(
                "api: v2 creates one training job per point, in no existing job: drop job_id "
                "/ job_ids (they name v1 jobs to add versions to)"
            )
        if self.api == "v1" and self.workspace_id is not None:
            raise ValueError("workspace_id is a v2 setting: drop it, or write api: v2")
        return self


class Submit(BaseModel):
    """Defaults for the submission engine; command-line flags override them."""

    model_config = _STRICT

    # The bounds of the flags that override them (batchsubmit.bounds: one table for both).
    rate: Annotated[
        float, Field(ge=RATE.low, le=RATE.high, allow_inf_nan=False)
    ] | None = None
    concurrency: Annotated[int, Field(ge=CONCURRENCY.low, le=CONCURRENCY.high)] | None = None
    max_attempts: Annotated[int, Field(ge=MAX_ATTEMPTS.low, le=MAX_ATTEMPTS.high)] | None = None


class Base(BaseModel):
    """The create-version request body every point starts from (templates allowed).

    With ``from_version`` (a version id, or ``latest``: the job's newest version) the body is that
    version's config as the server reports it, with ``config`` applied on top, so ``config`` may
    be partial; see ``rebase.py``."""

    model_config = _STRICT

    job_desc: str | None = None
    config: dict[str, Any]
    from_version: int | Literal["latest"] | None = None

    @field_validator("from_version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if value is None or value == "latest":
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise ValueError(
            f"from_version is a version id (a positive integer) or latest, got {brief(value)}"
        )


class V2Base(BaseModel):
    """A v2 create-training-job body every point starts from (templates allowed in strings).

    Only its outer keys are checked here; the rendered body is checked by the v2 request model.
    ``metadata.name`` is the point's identity on the server (a default is derived when absent)."""

    model_config = _STRICT

    kind: str = "job"
    metadata: dict[str, Any] = {}
    algorithm: dict[str, Any]
    spec: dict[str, Any]
    endpoints: dict[str, Any] | None = None

    @property
    def from_version(self) -> None:
        """v2 jobs build on no version (``base.from_version`` is v1's)."""
        return None


_V1_KEYS = frozenset(Base.model_fields)
_V2_KEYS = frozenset(V2Base.model_fields)


def _base_kind(value: Any) -> str:
    """Which body ``base`` holds: v1 (``config``, ...) or v2 (``algorithm``, ``spec``, ...)."""
    if isinstance(value, BaseModel):
        return "v2" if isinstance(value, V2Base) else "v1"
    if isinstance(value, dict) and not _V1_KEYS & value.keys() and _V2_KEYS & value.keys():
        return "v2"
    return "v1"


AnyBase = Annotated[
    Annotated[Base, Tag("v1")] | Annotated[V2Base, Tag("v2")], Discriminator(_base_kind)
]


class Dimension(BaseModel):
    """One dimension of a random search: exactly one distribution, ``q`` to quantise floats."""

    model_config = _STRICT

    uniform: Bounds | None = None
    loguniform: Bounds | None = None
    randint: IntBounds | None = None
    choice: Annotated[list[Any], Field(min_length=1)] | None = None
    q: Annotated[int | float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_distribution(self) -> Dimension:
        given = [
            name
            for name in ("uniform", "loguniform", "randint", "choice")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one distribution, got {len(given)}"
                + (f" ({', '.join(given)})" if given else "")
                + ": one of uniform: [lo, hi], loguniform: [lo, hi], randint: [lo, hi], "
                "choice: [a, b, ...]"
            )
        if self.q is not None and given[0] not in ("uniform", "loguniform"):
            raise ValueError(f"q quantises uniform/loguniform only: drop it from {given[0]}")
        if self.uniform is not None and not self.uniform[0] < self.uniform[1]:
            raise ValueError(f"uniform needs lo < hi, got {self.uniform}")
        if self.loguniform is not None and not 0 < self.loguniform[0] < self.loguniform[1]:
            raise ValueError(f"loguniform needs 0 < lo < hi, got {self.loguniform}")
        if self.randint is not None and not self.randint[0] <= self.randint[1]:
            raise ValueError(f"randint needs lo <= hi (both inclusive), got {self.randint}")
        return self


# The most draws per grid x zip point: with MAX_POINTS (expand.py), a bound on a sweep's size.
MAX_SAMPLES = 1_000_000


class RandomSearch(BaseModel):
    """Seeded sampling: every grid x zip point gets ``samples`` draws from ``space``
    (at most :data:`MAX_SAMPLES`)."""

    model_config = _STRICT

    samples: Annotated[int, Field(ge=1)]
    seed: int = 0
    space: Annotated[dict[Label, Dimension], Field(min_length=1)]

    @field_validator("samples")
    @classmethod
    def _bounded(cls, value: int) -> int:
        if value > MAX_SAMPLES:
            raise ValueError(
                f"samples is at most {MAX_SAMPLES:,} (the bound on draws per point), got "
                f"{brief(value)}: lower it"
            )
        return value


class SpecFile(BaseModel):
    """A whole sweep spec file."""

    model_config = _STRICT

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    target: Target
    base: AnyBase
    grid: Annotated[dict[Label, list[Any]], Field(min_length=1)] | None = None
    zip: Annotated[dict[Label, list[Any]], Field(min_length=1)] | None = None
    random: RandomSearch | None = None
    exclude: list[dict[Label, Any]] | None = None
    submit: Submit = Submit()


# Allowed keys per place, for "did you mean" hints on unknown keys.
_KEYS: dict[str, tuple[str, ...]] = {
    "": tuple(SpecFile.model_fields),
    "target": tuple(Target.model_fields),
    "submit": tuple(Submit.model_fields),
    "base": tuple(Base.model_fields),
    "base.v2": tuple(V2Base.model_fields),
    "random": tuple(RandomSearch.model_fields),
    "random.space.*": tuple(Dimension.model_fields),
}


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``name`` was most likely meant to be: a close spelling, the initials
    (``lr`` -> ``learning_rate``) or a prefix (``learn`` -> ``learning_rate``); None if none."""
    options = list(candidates)
    close = difflib.get_close_matches(name, options, n=1)
    if close:
        return close[0]
    lowered = name.lower()
    for option in options:
        initials = "".join(part[:1] for part in re.split(r"[_\-.]+", option.lower()) if part)
        if len(initials) > 1 and initials == lowered:
            return option
    prefixed = [option for option in options if option.lower().startswith(lowered)]
    return prefixed[0] if len(lowered) >= 3 and len(prefixed) == 1 else None


def unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    """'unknown key' with a did-you-mean hint and the allowed keys."""
    close = suggest(key, allowed)
    hint = f"did you mean {close!r}? " if close else ""
    return f"unknown key {key!r}: {hint}allowed here: {', '.join(allowed)}"


def first_error(exc: ValidationError) -> tuple[Any, int]:
    """The error to report (an unknown key before the "missing" it usually causes), and how
    many errors there are."""
    errors = exc.errors(include_url=False)
    ranked = sorted(errors, key=lambda err: err["type"] != "extra_forbidden")
    return ranked[0], len(errors)


def _allowed(loc: tuple[str | int, ...]) -> tuple[str, ...] | None:
    parent = loc[:-1]
    if parent == ("base", "v2"):
        return _KEYS["base.v2"]
    if len(parent) == 3 and parent[:2] == ("random", "space"):
        return _KEYS["random.space.*"]
    return _KEYS.get(".".join(str(p) for p in parent))


def _message(err: Any) -> str:
    kind, loc, inp = err["type"], err["loc"], err.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed(loc)
        key = str(loc[-1])
        return unknown_key_message(key, allowed) if allowed else f"unknown key {key!r}"
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing"
    if kind == "string_type":
        return f"must be a string, got {brief(inp)} (quote it)"
    if kind in ("int_type", "int_from_float"):
        return f"must be an integer, got {brief(inp)}"
    if kind == "float_type":
        return f"must be a number, got {brief(inp)}"
    if kind == "dict_type":
        return f"must be a mapping (key: value), got {type(inp).__name__}"
    if kind == "list_type":
        return f"must be a list, got {brief(inp)} (write [a, b, ...])"
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        return f"{brief(inp)} does not match {pattern}"
    if kind == "too_short" and isinstance(inp, dict | list) and not inp:
        return "must not be empty"
    message = str(err["msg"])
    return message.removeprefix("Value error, ")


def spec_error_from_validation(
    exc: ValidationError, *, where: str, lines: LineMap, prefix: KeyPath = ()
) -> SpecError:
    """The first schema error as a SpecError with field path and line; the count of the rest."""
    first, count = first_error(exc)
    loc: KeyPath = tuple(part for part in first["loc"] if part != "[key]")
    if loc[:1] == ("base",) and loc[1:2] in (("v1",), ("v2",)):  # the union's tag: no key
        loc = loc[:1] + loc[2:]
    if first["type"] in ("model_type", "dict_type") and not loc:
        return SpecError("the spec must be a mapping of keys (name, target, base, ...)", path=where)
    path = (*prefix, *loc)
    message = _message(first)
    if count > 1:
        message += f" (and {count - 1} more problem{'s' if count > 2 else ''})"
    return SpecError(
        message, path=where, line=lines.line(path), field=dotted(path) if path else None
    )

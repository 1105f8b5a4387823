"""Bases taken from the server: a version's config under a spec's ``base.config`` (from_version).

Pure: a version detail in (a plain dict as the API returns it, or ``Version.model_dump()``), a spec
out; fetching the detail is the runner's business. Three steps, each a function:

:func:`base_from_version`: the version's config as the create call accepts it.

1. Only the fields the create call takes are kept (:data:`CREATE_FIELDS`); status, times, names,
   ``engine_name`` and the like are dropped, and ``pre_version_id`` is the version's ``version_id``.
2. Unset values are dropped: null, blank strings, empty lists, and ids or counts of 0 or less (the
   service reports "none" as 0). Integers sent as text (``"1"``) are read as integers, as the
   response models read them. Within ``data_source`` items, null and blank values are dropped.
3. ``parameter``: items without a label are dropped, values become strings (null is ``""``), and
   a label listed twice keeps its last value, in its first position.
4. Data source, exactly one form: when the detail reports several complete forms (a service may
   echo the OBS path of a dataset as ``data_url``), ``data_source`` (a non-empty list) is kept,
   else ``dataset_id`` + ``dataset_version_id`` (both present), else ``data_url``; the fields of
   the other forms are dropped. With no complete form, what there is stays (a spec may complete a
   dataset pair); the merged body's check reports anything still missing.
5. Code source: ``app_url`` + ``boot_file_url`` and ``model_id`` are both kept when both are
   reported (the API allows both); rule 4 of :func:`merge_config` settles a switch.
6. Resources: a version of a dedicated pool keeps its ``pool_id``, and a ``spec_id`` it may also
   report is dropped (the create call takes one of them, U8); rule 4 of :func:`merge_config`
   settles a switch (``spec_id`` in the overlay moves the versions to a public pool).

:func:`merge_config`: the spec's ``base.config`` (the overlay) on top of that base.

1. An overlay field replaces the base's; mappings merge recursively; lists (``data_source``)
   are replaced whole, except ``parameter``.
2. ``null`` in the overlay removes the field (``log_url: null``: no log_url at all).
3. ``parameter`` merges by label: an overlay label replaces the version's value in the version's
   position; new labels follow, in overlay order; the point's swept labels then override both.
   ``parameter: null`` drops the version's parameters.
4. Exclusive forms: an overlay naming (non-null) any field of one data-source form drops the base's
   other forms, so ``dataset_version_id: v2`` alone keeps the version's ``dataset_id`` and moves it
   to v2, while ``data_url: ...`` replaces a dataset. Likewise ``model_id`` in the overlay drops the
   base's ``app_url``/``boot_file_url``, and either of those drops the base's ``model_id``;
   ``pool_id`` drops the base's ``spec_id``, and ``spec_id`` the base's ``pool_id``.
   ``engine_id`` belongs to neither side.

:func:`rebase`: the spec for one job, compiled on the merged body. The form the spec names is
chosen before rule 4 of :func:`base_from_version`, so a detail reporting both a dataset pair and
``data_url`` still lends its ``dataset_id`` to a spec that gives ``dataset_version_id``. The
version's values are literal text (a ``{`` in them is no placeholder) and its parameters are no
placeholders either: a spec's templates mean the same before and after rebasing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from batchsubmit.errors import SpecError
from batchsubmit.models import VersionConfig
from batchsubmit.sweep.body import literal, merge_by_label
from batchsubmit.sweep.plan import Rebased, compile_plan
from batchsubmit.sweep.spec import SweepSpec, bound_target, check_first_point

__all__ = ["CREATE_FIELDS", "base_from_version", "merge_config", "rebase"]

# The config fields of a version that the create call accepts (pre_version_id is set, not copied).
CREATE_FIELDS = (
    "worker_server_num",
    "app_url",
    "boot_file_url",
    "parameter",
    "data_url",
    "dataset_id",
    "dataset_version_id",
    "data_source",
    "spec_id",
    "pool_id",
    "engine_id",
    "model_id",
    "train_url",
    "log_url",
    "user_image_url",
    "user_command",
)
_INT_FIELDS = frozenset({"worker_server_num", "spec_id", "engine_id", "model_id"})
_DATA_FORMS: dict[str, tuple[str, ...]] = {
    "data_source": ("data_source",),
    "dataset": ("dataset_id", "dataset_version_id"),
    "data_url": ("data_url",),
}  # in the order rule 4 prefers them
_CODE_FORMS: dict[str, tuple[str, ...]] = {
    "app": ("app_url", "boot_file_url"),
    "model": ("model_id",),
}
_POOL_FORMS: dict[str, tuple[str, ...]] = {
    "pool": ("pool_id",),
    "public": ("spec_id",),
}  # in the order rule 6 prefers them
_WIRE_ORDER = {name: i for i, name in enumerate(VersionConfig.model_fields)}


def version_id_of(version: Mapping[str, Any]) -> int:
    """The ``version_id`` of a version detail; ValueError if it has none usable."""
    value = version.get("version_id")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"the version detail has no usable version_id (got {value!r}): is it a saved "
            "GET .../versions/{version_id} reply?"
        )
    return value


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value in ([], {})


def _as_int(value: Any) -> Any:
    """An integer field read tolerantly: "3" -> 3, 3.0 -> 3, 0 or less -> None (unset)."""
    if (isinstance(value, str) and value.strip().lstrip("-").isdigit()) or (
        isinstance(value, float) and value.is_integer()
    ):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value < 1:
        return None
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _parameters(items: Any) -> list[dict[str, str]]:
    if not isinstance(items, list):
        return []
    # dict(): a label listed twice keeps its last value, in its first position.
    merged = dict(
        (item["label"], _text(item.get("value")))
        for item in items
        if isinstance(item, Mapping) and isinstance(item.get("label"), str) and item["label"]
    )
    return [{"label": label, "value": value} for label, value in merged.items()]


def _data_source(items: Any) -> Any:
    if not isinstance(items, list):
        return items
    cleaned = [
        {k: v for k, v in item.items() if not _unset(v)} if isinstance(item, Mapping) else item
        for item in items
    ]
    return [item for item in cleaned if not _unset(item)]


def _named(config: Mapping[str, Any], forms: Mapping[str, tuple[str, ...]]) -> set[str]:
    """The forms of which ``config`` gives some field a (non-null) value."""
    return {
        form for form, fields in forms.items() if any(config.get(f) is not None for f in fields)
    }


def _drop_other_forms(
    config: dict[str, Any], keep: set[str], forms: Mapping[str, tuple[str, ...]]
) -> None:
    if keep:
        for form, fields in forms.items():
            if form not in keep:
                for name in fields:
                    config.pop(name, None)


def _base(version: Mapping[str, Any], data_form: set[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name in CREATE_FIELDS:
        value = version.get(name)
        if name in _INT_FIELDS:
            value = _as_int(value)
        elif name == "parameter":
            value = _parameters(value)
        elif name == "data_source":
            value = _data_source(value)
        if not _unset(value):
            config[name] = value
    if not data_form:  # rule 4: the first complete form
        complete = [
            form for form, fields in _DATA_FORMS.items() if all(f in config for f in fields)
        ]
        data_form = set(complete[:1])
    _drop_other_forms(config, data_form, _DATA_FORMS)
    pools = [form for form, fields in _POOL_FORMS.items() if all(f in config for f in fields)]
    _drop_other_forms(config, set(pools[:1]), _POOL_FORMS)  # rule 6
    config["pre_version_id"] = version_id_of(version)
    return config


def base_from_version(version: Mapping[str, Any]) -> dict[str, Any]:
    """The config of ``version`` (a detail: plain dict or ``Version.model_dump()``) as the create
    call accepts it, ``pre_version_id`` set to its ``version_id``; see the module docstring for
    the rules. ValueError if the detail has no usable ``version_id``."""
    return _base(version, set())


def _deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def merge_config(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` (a spec's ``base.config``) applied on top of ``base`` (a version's config, as
    :func:`base_from_version` gives it), as plain data; see the module docstring for the rules."""
    out = dict(base)
    _drop_other_forms(out, _named(overlay, _DATA_FORMS), _DATA_FORMS)
    _drop_other_forms(out, _named(overlay, _CODE_FORMS), _CODE_FORMS)
    _drop_other_forms(out, _named(overlay, _POOL_FORMS), _POOL_FORMS)
    out = _deep_merge(out, {k: v for k, v in overlay.items() if k != "parameter"})
    if "parameter" in overlay:
        own = overlay["parameter"]
        if own is None:
            out.pop("parameter", None)
        else:
            pairs = merge_by_label(
                [(p["label"], p) for p in out.get("parameter") or []],
                [(p["label"], p) for p in own],
            )
            out["parameter"] = [item for _, item in pairs]
    return out


def rebase(spec: SweepSpec, job_id: int, version: Mapping[str, Any]) -> SweepSpec:
    """``spec`` for job ``job_id``, its base the config of ``version`` (that job's version detail)
    with the spec's own ``base.config`` merged on top; ``target.job_ids == (job_id,)``.

    The result is compiled and checked like a loaded spec (first point now, every point with
    ``preflight``); a SpecError names the spec file, the job, the version and, for a field that
    came from the version, says so. No point may reuse the version's own train_url."""
    where = str(spec.path)
    doc = spec.document
    if doc.base.from_version is None:
        raise SpecError(
            "has no base.from_version, so there is no version to rebase it on: "
            "bind(spec, job_id) binds it to a job",
            path=where,
        )
    try:
        version_id = version_id_of(version)
    except ValueError as exc:
        raise SpecError(f"job {job_id}: {exc}", path=where) from None
    overlay = doc.base.config
    base = _base(version, _named(overlay, _DATA_FORMS))
    params = base.pop("parameter", [])
    inherited = () if "parameter" in overlay and overlay["parameter"] is None else tuple(
        (p["label"], p["value"]) for p in params
    )
    merged = merge_config(literal(base), {k: v for k, v in overlay.items() if k != "parameter"})
    if overlay.get("parameter") is not None:
        merged["parameter"] = overlay["parameter"]
    train_url = version.get("train_url")
    rebased = Rebased(
        job_id=job_id,
        version_id=version_id,
        inherited=tuple(
            sorted(
                (k for k in merged if k in base and k not in overlay),
                key=lambda k: _WIRE_ORDER.get(k, len(_WIRE_ORDER)),
            )
        ),
        train_url=train_url if isinstance(train_url, str) and train_url.strip() else None,
    )
    target = bound_target(doc.target, job_id)
    document = doc.model_copy(
        update={"base": doc.base.model_copy(update={"config": merged}), "target": target}
    )
    try:
        plan = compile_plan(
            document, spec.data, spec.plan.where, spec.plan.lines,
            job_id=job_id, inherited=inherited, rebased=rebased,
        )
    except SpecError as exc:
        raise SpecError(
            rebased.explain(exc.reason, ()), path=exc.path, line=exc.line, field=exc.field,
            index=exc.index, key=exc.key,
        ) from None
    check_first_point(plan)
    return dataclasses.replace(spec, target=target, plan=plan, rebased_on=version_id)

"""Sweep specs: a lazy, validated expander from a parameter grid to create-version bodies.

::

    spec = load_spec("sweeps/quickstart.yaml")   # parse + validate; SpecError(file, line, field)
    count_points(spec)                           # arithmetic, no expansion
    preflight(spec)                              # validate every point, check uniqueness
    for point in iter_points(spec):              # lazy, index order
        point.key, point.parameter, point.train_url, point.body

Many jobs and bases from the server (``target.job_ids``, ``base.from_version``)::

    spec.target.job_ids                          # (10, 11, 12): every job the spec names
    spec.from_version                            # 42, "latest" or None
    bind(spec, 11)                               # the spec for job 11: {job_id} renders 11
    rebase(spec, 11, detail)                     # job 11's version detail under base.config
    base_from_version(detail)                    # the create-acceptable config of a version

Modules: ``loader`` (files and line numbers, the only I/O), ``schema`` (the spec file's keys),
``render`` (the value-to-string rule, templates), ``sampling`` (random search), ``body`` and
``plan`` (compiling a spec once), ``expand`` (points, keys, counting), ``check`` (what one
point can get wrong), ``preflight`` (checking every point), ``spec`` (load_spec, bind),
``rebase`` (a version's config as the base).
"""

from batchsubmit.sweep.expand import Point, count_points, iter_points, point_key
from batchsubmit.sweep.preflight import preflight
from batchsubmit.sweep.rebase import CREATE_FIELDS, base_from_version, merge_config, rebase
from batchsubmit.sweep.render import render_value
from batchsubmit.sweep.schema import Submit, Target
from batchsubmit.sweep.spec import SweepSpec, bind, load_spec

__all__ = [
    "CREATE_FIELDS",
    "Point",
    "Submit",
    "SweepSpec",
    "Target",
    "base_from_version",
    "bind",
    "count_points",
    "iter_points",
    "load_spec",
    "merge_config",
    "point_key",
    "preflight",
    "rebase",
    "render_value",
]

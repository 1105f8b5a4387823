"""Sweep specs: a lazy, validated expander from a parameter grid to create-version bodies.

::

    spec = load_spec("sweeps/quickstart.yaml")   # parse + validate; SpecError(file, line, field)
    count_points(spec)                           # arithmetic, no expansion
    preflight(spec)                              # render + validate every point, check uniqueness
    for point in iter_points(spec):              # lazy, index order
        point.key, point.parameter, point.train_url, point.body

Modules: ``loader`` (files and line numbers, the only I/O), ``schema`` (the spec file's keys),
``render`` (the value-to-string rule, templates), ``sampling`` (random search), ``body`` and
``plan`` (compiling a spec once), ``expand`` (points, keys, counting), ``preflight`` (checking
every point), ``spec`` (load_spec).
"""

from batchsubmit.sweep.expand import Point, count_points, iter_points, point_key
from batchsubmit.sweep.preflight import preflight
from batchsubmit.sweep.render import render_value
from batchsubmit.sweep.schema import Submit, Target
from batchsubmit.sweep.spec import SweepSpec, load_spec

__all__ = [
    "Point",
    "Submit",
    "SweepSpec",
    "Target",
    "count_points",
    "iter_points",
    "load_spec",
    "point_key",
    "preflight",
    "render_value",
]

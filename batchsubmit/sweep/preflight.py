"""Preflight: every point rendered and validated, keys and train_urls unique, before any send.

Uniqueness is checked without keeping the points or their strings. Keys are kept as 64-bit integers
in an ``array('Q')`` (8 bytes a point) and sorted once at the end: equal points cannot arise (see
``expand.py``), so a repeat would be a hash collision, which would make the engine take two points
for one. ``train_url`` is proved unique once, at compile time, when its template names ``{key}``,
``{index}`` or every swept label and decodes unambiguously (``plan.unique_by_construction``);
otherwise the 8-byte BLAKE2b digests of its normalised forms (``/b/x/`` and ``obs://b/x`` are
one path on the server: :mod:`batchsubmit.identity`) are checked the same way, and a repeat is
confirmed by re-rendering both points, so the error names both. A train_url with no placeholder
at all fails at once, on the second point.
"""

from __future__ import annotations

import itertools
import operator
from array import array
from collections.abc import Iterator
from hashlib import blake2b
from typing import TYPE_CHECKING

from batchsubmit.errors import SpecError
from batchsubmit.identity import normalise_train_url
from batchsubmit.sweep.expand import Point, expand_plan, plan_of, point_at
from batchsubmit.sweep.plan import Plan

if TYPE_CHECKING:
    from batchsubmit.sweep.spec import SweepSpec

__all__ = ["preflight"]


def _repeats(digests: array[int]) -> Iterator[tuple[int, int]]:
    """(first index, later index) of every repeated digest, in order of the later index.

    One sort tells whether there is any repeat (the sorted list is transient); only then are the
    repeated values collected and the digests walked, remembering only those values."""
    ordered = sorted(digests)
    if not any(itertools.starmap(operator.eq, itertools.pairwise(ordered))):
        return
    repeated = {a for a, b in itertools.pairwise(ordered) if a == b}
    del ordered
    first: dict[int, int] = {}
    for j, digest in enumerate(digests):
        if digest in repeated:
            i = first.setdefault(digest, j)
            if i != j:
                yield i, j


def preflight(spec: SweepSpec | Plan) -> int:
    """Render and validate every point and check keys and train_urls are unique; the count.

    The first invalid body raises SpecError naming the spec file, the field (with its line) and
    the point's index and key; then duplicates are looked for, and a duplicate train_url or key
    names both points."""
    plan = plan_of(spec)
    train_url = plan.body.train_url
    if train_url is not None and train_url.constant is not None:
        first_two = list(itertools.islice(expand_plan(plan, True), 2))
        if len(first_two) == 2:
            raise _duplicate_url(plan, first_two[0], first_two[1])
    keys: array[int] = array("Q")
    urls: array[int] | None = None if plan.train_url_unique else array("Q")
    add_key = keys.append
    if urls is None:
        for point in expand_plan(plan, True):
            add_key(int(point.key, 16))
    else:
        add_url = urls.append
        for point in expand_plan(plan, True):
            add_key(int(point.key, 16))
            url = normalise_train_url(point.train_url)
            add_url(int.from_bytes(blake2b(url.encode(), digest_size=8).digest()))
    for i, j in _repeats(keys):
        first, second = point_at(plan, i), point_at(plan, j)
        raise plan.error(
            f"has the same key as point #{first.index} {dict(first.values)}, with different "
            "values: a 64-bit hash collision; change any value slightly",
            index=second.index,
            key=second.key,
        )
    for i, j in _repeats(urls) if urls is not None else ():
        first, second = point_at(plan, i), point_at(plan, j)
        if normalise_train_url(first.train_url) == normalise_train_url(second.train_url):
            raise _duplicate_url(plan, first, second)
    return len(keys)


def _duplicate_url(plan: Plan, first: Point, second: Point) -> SpecError:
    return plan.error(
        f"train_url {second.train_url!r} is also the train_url of point #{first.index} "
        + ("" if first.train_url == second.train_url else f"({first.train_url!r}: one OBS path) ")
        + f"(key {first.key}): their outputs would overwrite each other; put {{key}} in train_url",
        ("base", "config", "train_url"),
        index=second.index,
        key=second.key,
    )

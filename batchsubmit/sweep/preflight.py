"""Preflight: every point valid, keys and train_urls unique, before any send.

Validity: the first point's body is rendered and validated in full; every later point has only
what it fills in checked (``check.py``: the strings its templates and swept values produce, by
their fields' own rules), and is rendered and validated in full only when such a check fails or
a string a model validator reads takes a new value. The errors are those of validating every body
in full (``expand_plan(plan, True)``), point for point; a body is built only for those points.

Uniqueness is checked without keeping the points or their strings. Keys are kept as 64-bit integers
in 16 ``array('Q')`` by their top bits (8 bytes a point) and each part is checked for repeats at
the end, so the transient set of Python ints is a sixteenth of the keys: equal points cannot arise
(see ``expand.py``), so a repeat would be a hash collision, which would make the engine take two
points for one. ``train_url`` is proved unique once, at compile time, when its template names
``{key}``, ``{index}`` or every swept label and decodes unambiguously
(``plan.unique_by_construction``); otherwise the 8-byte BLAKE2b digests of its normalised forms
(``/b/x/`` and ``obs://b/x`` are one path on the server: :mod:`batchsubmit.identity`) are
checked the same way. A repeat is located by expanding again, and confirmed by re-rendering both
points, so the error names both. A train_url with no placeholder at all fails at once, on the
second point.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from hashlib import blake2b

from pydantic import ValidationError

from batchsubmit.errors import SpecError
from batchsubmit.identity import normalise_train_url
from batchsubmit.sweep.check import compile_check, uses_key
from batchsubmit.sweep.expand import (
    Pairs,
    Planned,
    Point,
    body_error,
    body_validator,
    expand_plan,
    plan_of,
    point_at,
    point_values,
    renderer,
    request_model,
    taken_error,
    taken_url,
)
from batchsubmit.sweep.plan import Plan
from batchsubmit.sweep.v2body import V2Body, job_name

__all__ = ["preflight"]


# Digests are kept in 16 arrays by their top 4 bits, so that each can be checked for repeats on
# its own: the transient set of Python ints is a sixteenth of what one set (or sort) would be.
_SHIFT = 60
_BUCKETS = 16
_CACHE = 4096  # combinations of watched strings remembered (check.py); then forgotten, and relearnt


def _buckets() -> list[array[int]]:
    return [array("Q") for _ in range(_BUCKETS)]


def _repeated(buckets: list[array[int]]) -> set[int]:
    """The digests that occur more than once (almost always none: then no set outlives a bucket)."""
    out: set[int] = set()
    for bucket in buckets:
        if len(set(bucket)) != len(bucket):
            seen: set[int] = set()
            for digest in bucket:
                if digest in seen:
                    out.add(digest)
                seen.add(digest)
    return out


def _repeats(digests: Iterable[int], repeated: set[int] | None = None) -> Iterator[tuple[int, int]]:
    """(first index, later index) of every repeated digest, in order of the later index.

    ``repeated`` (the digests that occur more than once), when not given, is found first, holding
    the digests in 16 parts (so ``digests`` must then be a sequence); only those values are then
    remembered while walking the digests."""
    if repeated is None:
        assert isinstance(digests, Sequence)
        parts = _buckets()
        for digest in digests:
            parts[digest >> _SHIFT].append(digest)
        repeated = _repeated(parts)
        del parts
    if not repeated:
        return
    first: dict[int, int] = {}
    for j, digest in enumerate(digests):
        if digest in repeated:
            i = first.setdefault(digest, j)
            if i != j:
                yield i, j


def _url_digest(url: str) -> int:
    return int.from_bytes(blake2b(normalise_train_url(url).encode(), digest_size=8).digest())


def _scan(plan: Plan, keys: list[array[int]], urls: list[array[int]] | None) -> int:
    """Check every point, adding its key (and train_url digest) to the buckets; the count.

    The first point is rendered and validated in full; every later one has its key computed and
    only the strings it fills checked (``check.py``), and is rendered and validated in full only
    when a check fails or a watched combination is new, so errors are those of
    ``expand_plan(plan, True)``, point for point."""
    body = plan.body
    check = compile_check(plan, request_model(plan))
    render = renderer(plan)
    validate = body_validator(plan)
    taken = taken_url(plan)
    escape = plan.escape
    key_pairs = plan.key.pairs.format
    key_plain = plan.key.plain.format
    add_key = [bucket.append for bucket in keys]
    add_url = [bucket.append for bucket in urls] if urls is not None else None
    url_template = body.train_url
    url_const = url_template.constant if url_template is not None else None
    url_fmt = url_template.fmt.format if url_template is not None and url_const is None else None
    needs_url = add_url is not None or taken is not None
    by_render = needs_url and url_template is None  # no train_url template: render each point
    per_point = check.needed or needs_url  # anything to do for a point besides its key
    rules = check.rules
    watched = check.watched
    single = watched[0] if len(watched) == 1 else None
    accepted: set[object] = set()
    # The key as text is made only for templates that read it; errors re-render the point.
    url_reads = (url_template.fmt,) if needs_url and url_template is not None else ()
    hex_key = uses_key(check.formats + url_reads)

    def full(index: int, values: Pairs) -> Point:
        point = render(index, values)
        try:
            validate(point.body)
        except ValidationError as exc:
            raise body_error(plan, exc, index, point.key) from None
        return point

    index = -1
    for index, values in enumerate(point_values(plan)):
        if escape is None:
            canonical = key_pairs(*values)
        else:
            canonical = key_plain(*[escape.get(v, v) for _, v in values])
        digest = blake2b(canonical.encode(), digest_size=8).digest()
        number = int.from_bytes(digest)
        add_key[number >> _SHIFT](number)
        if by_render:
            train_url = full(index, values).train_url
        elif per_point or index == 0:
            args = (str(index), digest.hex() if hex_key else "", *values)
            ok = index > 0
            for fmt, rule in rules:
                try:
                    rule(fmt(*args))
                except ValidationError:
                    ok = False
                    break
            seen: object = None
            if watched:
                seen = single(*args) if single is not None else tuple(f(*args) for f in watched)
                if seen not in accepted:
                    ok = False
            if not ok:
                full(index, values)
                if watched:
                    if len(accepted) >= _CACHE:
                        accepted.clear()
                    accepted.add(seen)
            train_url = url_fmt(*args) if url_fmt is not None else url_const or ""
        else:
            continue
        if taken is not None and normalise_train_url(train_url) == taken:
            raise taken_error(plan, train_url, index, digest.hex())
        if add_url is not None:
            url = _url_digest(train_url)
            add_url[url >> _SHIFT](url)
    return index + 1


def preflight(spec: Planned | Plan) -> int:
    """Validate every point and check keys and train_urls are unique; the count.

    The first invalid body raises SpecError naming the spec file, the field (with its line) and
    the point's index and key; then duplicates are looked for, and a duplicate train_url or key
    names both points. Only the first body is validated in full: for the others, only what the
    point fills in (``check.py``), with the same errors."""
    plan = plan_of(spec)
    if isinstance(plan.body, V2Body):
        return _preflight_v2(plan, plan.body)
    train_url = plan.body.train_url
    if train_url is not None and train_url.constant is not None:
        first_two = list(itertools.islice(expand_plan(plan, True), 2))
        if len(first_two) == 2:
            raise _duplicate_url(plan, first_two[0], first_two[1])
    keys = _buckets()
    urls = None if plan.train_url_unique else _buckets()
    count = _scan(plan, keys, urls)
    repeated = _repeated(keys)
    del keys
    if repeated:
        key_ints = (int(point.key, 16) for point in expand_plan(plan, False))
        for i, j in _repeats(key_ints, repeated):
            first, second = point_at(plan, i), point_at(plan, j)
            raise plan.error(
                f"has the same key as point #{first.index} {dict(first.values)}, with different "
                "values: a 64-bit hash collision; change any value slightly",
                index=second.index,
                key=second.key,
            )
    repeated = _repeated(urls) if urls is not None else set()
    del urls
    if repeated:
        url_ints = (_url_digest(point.train_url) for point in expand_plan(plan, False))
        for i, j in _repeats(url_ints, repeated):
            first, second = point_at(plan, i), point_at(plan, j)
            if normalise_train_url(first.train_url) == normalise_train_url(second.train_url):
                raise _duplicate_url(plan, first, second)
    return count


def _duplicate_url(plan: Plan, first: Point, second: Point) -> SpecError:
    return plan.error(
        f"train_url {second.train_url!r} is also the train_url of point #{first.index} "
        + ("" if first.train_url == second.train_url else f"({first.train_url!r}: one OBS path) ")
        + f"(key {first.key}): their outputs would overwrite each other; put {{key}} in train_url",
        ("base", "config", "train_url"),
        index=second.index,
        key=second.key,
    )


def _name_digest(name: str) -> int:
    # Case-folded: a server that compares names without case (v2 section 7) would take two
    # names differing in case for one, and refuse the second as a duplicate.
    return int.from_bytes(blake2b(name.casefold().encode(), digest_size=8).digest())


def _preflight_v2(plan: Plan, body: V2Body) -> int:
    """v2: every body validated in full; keys, job names and train_urls unique."""
    digest_of: dict[str, Callable[[Point], int]] = {  # -1: nothing to compare (no train_url)
        "key": lambda p: int(p.key, 16),
        "name": lambda p: _name_digest(job_name(p)),
        "train_url": lambda p: _url_digest(p.train_url) if p.train_url else -1,
    }
    buckets = {what: _buckets() for what in digest_of}
    count = 0
    for point in expand_plan(plan, True):
        count += 1
        for what, digest in digest_of.items():
            number = digest(point)
            if number >= 0:
                buckets[what][number >> _SHIFT].append(number)
    for what, digest in digest_of.items():
        repeated = _repeated(buckets[what])
        if not repeated:
            continue
        for i, j in _repeats(map(digest, expand_plan(plan, False)), repeated):
            raise _v2_duplicate(plan, body, what, point_at(plan, i), point_at(plan, j))
    return count


def _v2_duplicate(plan: Plan, body: V2Body, what: str, first: Point, second: Point) -> SpecError:
    if what == "name":
        name, other = job_name(second), job_name(first)
        same = "" if name == other else f" ({other!r}: equal but for case)"
        return plan.error(
            f"the job name {name!r} is also the name of point #{first.index}{same} (key "
            f"{first.key}): a name is a point's identity on the server, so each point needs its "
            "own; put {key} or {index} in metadata.name",
            body.name_path, index=second.index, key=second.key,
        )
    if what == "train_url":
        return plan.error(
            f"train_url {second.train_url!r} is also the train_url of point #{first.index} "
            f"(key {first.key}): their outputs would overwrite each other; put {{key}} in it",
            body.train_url_path, index=second.index, key=second.key,
        )
    return plan.error(
        f"has the same key as point #{first.index} {dict(first.values)}, with different "
        "values: a 64-bit hash collision; change any value slightly",
        index=second.index, key=second.key,
    )

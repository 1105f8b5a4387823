"""The v2 search (v2-training-jobs.md, section 4): its body rules, filters and the two pagings.

``offset`` is a page index or a record offset (the sources disagree: the ``v2_offset`` switch),
``limit`` is 1..50 (out of range: 400 ``ModelArts.2816`` or clamped), ``like`` is a substring,
a substring ignoring case, or SQL LIKE with ``_`` and ``%`` as wildcards (``v2_like``).
Filter keys and operators are those of the documentation's example; ``not`` excludes. Codes:
``2789`` a bad filter item, ``2807`` / ``2808`` / ``2809`` unknown key / operator / value, ``2790``
a bad sort, ``2825`` a wrong JSON type, ``2816`` offset or limit out of range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from batchsubmit.emulator.v2_constants import V2_MAX_LIMIT
from batchsubmit.emulator.v2_state import TrainingJob
from batchsubmit.emulator.v2_validation import (
    V2Rejection,
    object_with,
    out_of_range,
    strings,
    wrong_type,
)

SEARCH = ("offset", "limit", "sort_by", "order", "group_by", "filters", "workspace_id",
          "train_type", "tags", "host_ips", "unified_jobs")  # fmt: skip
FILTER_OPERATORS = {"name": ("like",), "algorithm_name": ("like",), "phase": ("in", "not"),
                    "kind": ("in", "not"), "user_id": ("in",), "runtime_type": ("in",),
                    "create_time": ("between",)}  # fmt: skip
SORT_KEYS = ("create_time", "name")


@dataclass(frozen=True, slots=True)
class Search:
    """A search body that passed every rule; ``limit`` already defaulted (and clamped)."""

    offset: int
    limit: int
    sort_by: str
    order: str
    group_by: str
    workspace_id: str | None
    filters: tuple[tuple[str, str, tuple[str, ...]], ...]


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(key, "integer", value)
    return value


def validate_search(body: dict[str, Any], *, default_limit: int, clamp: bool) -> Search:
    """The search rules of section 4; a limit outside 1..50 is clamped or 2816."""
    object_with(body, "body", SEARCH)
    offset, limit = _int(body, "offset", 0), _int(body, "limit", default_limit)
    if offset < 0:
        raise out_of_range(f"offset must be >= 0, got {offset}")
    if not 1 <= limit <= V2_MAX_LIMIT:
        if not clamp:
            raise out_of_range(f"limit must be 1..{V2_MAX_LIMIT}, got {limit}")
        limit = min(max(limit, 1), V2_MAX_LIMIT)
    strings(body, ("sort_by", "order", "group_by", "workspace_id"), "body")
    sort_by, order = body.get("sort_by", "create_time"), body.get("order", "desc")
    if sort_by not in SORT_KEYS or order not in ("asc", "desc"):
        raise V2Rejection(
            400,
            "ModelArts.2790",
            f"unsupported sort {sort_by!r} {order!r}: sort_by is one of {', '.join(SORT_KEYS)}, "
            'order "asc" or "desc"',
        )
    raw_filters = body.get("filters", [])
    if not isinstance(raw_filters, list):
        raise wrong_type("filters", "array", raw_filters)
    filters = tuple(_filter(item, index) for index, item in enumerate(raw_filters))
    return Search(offset, limit, sort_by, order, body.get("group_by", ""),
                  body.get("workspace_id"), filters)  # fmt: skip


def _filter(item: object, index: int) -> tuple[str, str, tuple[str, ...]]:
    where = f"filters[{index}]"
    if not isinstance(item, dict) or sorted(item) != ["key", "operator", "value"]:
        raise V2Rejection(
            400, "ModelArts.2789", f"{where} must be {{key, operator, value: [strings]}}"
        )
    key, operator, values = item["key"], item["operator"], item["value"]
    if key not in FILTER_OPERATORS:
        raise V2Rejection(
            400,
            "ModelArts.2807",
            f"{where}.key {key!r} is not one of " + ", ".join(FILTER_OPERATORS),
        )
    if operator not in FILTER_OPERATORS[key]:
        raise V2Rejection(
            400,
            "ModelArts.2808",
            f"{where}.operator {operator!r} is not supported for key {key!r}; use "
            + " or ".join(FILTER_OPERATORS[key]),
        )
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise V2Rejection(400, "ModelArts.2809", f"{where}.value must be an array of strings")
    bounds_ok = all(not v or (v.isascii() and v.isdigit()) for v in values)
    if operator == "between" and (len(values) != 2 or not bounds_ok):
        raise V2Rejection(
            400, "ModelArts.2809", f'{where}.value must be [from, to]: milliseconds or ""'
        )
    return key, operator, tuple(values)


def like(name: str, pattern: str, mode: str) -> bool:
    """The search's ``like``: substring, substring ignoring case, or SQL LIKE (``_``, ``%``)."""
    if mode == "contains":
        return pattern in name
    if mode == "contains-ignore-case":
        return pattern.casefold() in name.casefold()
    wild = "".join(
        ".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern
    )
    return re.search(wild, name, re.DOTALL) is not None


def matches(job: TrainingJob, where: tuple[str, str, tuple[str, ...]], now: int, mode: str) -> bool:
    """Whether a job passes one filter (one user here, so user_id and runtime_type pass all)."""
    key, operator, values = where
    if key == "name":
        return any(like(job.name, value, mode) for value in values)
    if key == "algorithm_name":
        name = str(job.body["algorithm"].get("name", ""))
        return any(like(name, value, mode) for value in values)
    if key in ("phase", "kind"):
        field = job.phase(now) if key == "phase" else job.body["kind"]
        return (field in values) == (operator == "in")
    if key == "create_time":
        low, high = (int(v) if v else None for v in values)
        return (low is None or job.create_time >= low) and (high is None or job.create_time <= high)
    return True


def page(query: Search, items: list[TrainingJob], offset_mode: str) -> list[TrainingJob]:
    """One page of the sorted matches: ``offset`` is a page index or a record offset."""
    start = query.offset * query.limit if offset_mode == "page" else query.offset
    return items[start : start + query.limit]

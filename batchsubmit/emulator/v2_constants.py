"""The choices of the v2 emulator's switches, importing nothing but ``typing``.

Each switch is one point where the v2 contract is silent (shared/spec/v2-training-jobs.md,
section 7); the CLI registers its flags from these tuples and ``EmulatorConfig`` types its fields
with the same literals, so a choice is spelled in one place.
"""

from __future__ import annotations

from typing import Literal, get_args

V2Offset = Literal["page", "record"]
V2Count = Literal["matching", "page"]
V2NameReuse = Literal["never", "after_delete", "immediately"]
V2NameCase = Literal["sensitive", "insensitive"]
V2NameScope = Literal["workspace", "project"]
V2LimitRange = Literal["reject", "clamp"]
V2Like = Literal["contains", "contains-ignore-case", "sql-like"]

V2_OFFSETS: tuple[str, ...] = get_args(V2Offset)
V2_COUNTS: tuple[str, ...] = get_args(V2Count)
V2_NAME_REUSES: tuple[str, ...] = get_args(V2NameReuse)
V2_NAME_CASES: tuple[str, ...] = get_args(V2NameCase)
V2_NAME_SCOPES: tuple[str, ...] = get_args(V2NameScope)
V2_LIMIT_RANGES: tuple[str, ...] = get_args(V2LimitRange)
V2_LIKES: tuple[str, ...] = get_args(V2Like)
V2_MAX_LIMIT = 50  # search: limit is 1..50 (section 4)

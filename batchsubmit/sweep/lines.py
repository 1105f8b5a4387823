"""Where things are in a spec: key paths, their line numbers, and the shape limits of the data.

Shared by the file reader (``loader``) and the YAML parser (``yaml12``), which both build a
:class:`LineMap`; neither imports the other's module for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchsubmit.errors import SpecError

__all__ = [
    "ALIAS_ALLOWANCE",
    "MAX_DEPTH",
    "KeyPath",
    "LineMap",
    "check_shape",
    "dotted",
    "duplicate_key",
    "error_at",
]

KeyPath = tuple[str | int, ...]
MAX_DEPTH = 64  # levels of nesting; a spec needs about six
ALIAS_ALLOWANCE = 100_000  # values YAML aliases may add beyond the file's own (one a character)


def dotted(path: KeyPath) -> str:
    """``("grid", "lr", 2)`` -> ``"grid.lr[2]"``: the field path as error messages show it."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else part
    return out


class LineMap:
    """Line numbers of the keys of one spec file; a path not found falls back to its parent."""

    def __init__(
        self,
        lines: dict[KeyPath, int] | None = None,
        finder: Callable[[KeyPath], int | None] | None = None,
    ) -> None:
        self._lines = lines or {}
        self._finder = finder

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its nearest ancestor that has one; None if unknown."""
        for end in range(len(path), 0, -1):
            prefix = path[:end]
            if self._finder is not None:
                found = self._finder(prefix)
                if found is not None:
                    return found
            elif prefix in self._lines:
                return self._lines[prefix]
        return None


def error_at(
    where: str,
    lines: LineMap,
    message: str,
    path: KeyPath = (),
    *,
    index: int | None = None,
    key: str | None = None,
) -> SpecError:
    """A SpecError at ``path`` of the spec file ``where``: its line, field and point."""
    return SpecError(
        message,
        path=where,
        line=lines.line(path) if path else None,
        field=dotted(path) if path else None,
        index=index,
        key=key,
    )


def check_shape(data: Any, where: str, *, max_values: int | None = None) -> None:
    """Refuse data nested deeper than MAX_DEPTH, or (YAML aliases) of more than ``max_values``
    values counting every use of an alias, before anything walks it recursively."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    values = 0
    while stack:
        node, depth = stack.pop()
        values += 1
        if max_values is not None and values > max_values:
            raise SpecError(
                f"YAML aliases expand the spec to more than {max_values} values: write the "
                "values out, or repeat fewer of them with aliases",
                path=where,
            )
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if children and depth >= MAX_DEPTH:
            alias = " (or a YAML alias refers to itself)" if max_values is not None else ""
            raise SpecError(
                f"nested too deeply: a spec needs a few levels, at most {MAX_DEPTH}{alias}",
                path=where,
            )
        stack.extend((child, depth + 1) for child in children)



def duplicate_key(key: str, first: int, line: int, where: str, path: KeyPath) -> SpecError:
    """The same key twice in one mapping: both YAML and JSON would silently keep the last."""
    return SpecError(
        f"duplicate key {key!r} (first on line {first}): keep one of them",
        path=where, line=line, field=dotted((*path, key)),
    )

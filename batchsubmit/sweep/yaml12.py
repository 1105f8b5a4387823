"""YAML specs, read with the YAML 1.2 core schema and the line of every key.

The 1.2 core schema rather than PyYAML's YAML 1.1 default: ``1e-5`` is a float (1.1 makes it a
string), ``yes``/``no``/``on``/``off`` stay strings (1.1 makes them booleans), ``0123`` is the
integer 123 (not octal) and dates stay strings. A module of its own so that only a YAML spec pays
for importing PyYAML.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from batchsubmit.errors import SpecError
from batchsubmit.sweep.lines import (
    ALIAS_ALLOWANCE,
    MAX_DEPTH,
    KeyPath,
    LineMap,
    check_shape,
    duplicate_key,
)

__all__ = ["parse_yaml"]




class _Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's scalars (see the module docstring)."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        """Refuse deep ``[[[...`` at once: the scanner's time grows with the square of the depth."""
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"nested more than {MAX_DEPTH} levels deep", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp",
        )
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    try:
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)
    except ValueError:  # more digits than Python converts (4300): no field takes such a number
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {len(text)} digits is too long to read", node.start_mark
        ) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def parse_yaml(text: str, where: str) -> tuple[Any, LineMap]:
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a control character, found before parsing starts
        raise SpecError(
            f"YAML error: character U+{exc.character:04X} is not allowed in YAML: {exc.reason}",
            path=where,
            line=text.count("\n", 0, exc.position) + 1,
        ) from exc
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            context = exc.context
            if exc.context_mark is not None and exc.context_mark is not mark:
                context += f" that starts on line {exc.context_mark.line + 1}"
            problem += f" ({context})"
        raise SpecError(
            f"YAML syntax error: {problem}",
            path=where,
            line=mark.line + 1 if mark is not None else None,
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", path=where) from exc
    finally:
        loader.dispose()
    check_shape(data, where, max_values=len(text) + ALIAS_ALLOWANCE)
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _walk_yaml(node, (), lines, where, set())
    return data, LineMap(lines)


def _walk_yaml(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], where: str, active: set[int]
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in active:  # a recursive alias: nothing more to learn below it
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if key in seen:
                raise duplicate_key(key, seen[key], line, where, path)
            seen[key] = line
            lines.setdefault((*path, key), line)
            _walk_yaml(value_node, (*path, key), lines, where, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk_yaml(item, (*path, index), lines, where, active)
    active.discard(id(node))

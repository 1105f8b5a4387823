"""Reading a spec file: YAML, JSON or TOML into plain data, plus where each key sits in the file.

The only module of the sweep package that does I/O. Each format is parsed into the same plain
data (dicts, lists, str, int, float, bool, None) and a :class:`LineMap` from key paths such as
``("grid", "learning_rate", 2)`` to 1-based line numbers, so every later error can point at a line.

YAML is read with the YAML 1.2 core schema (:mod:`batchsubmit.sweep.yaml12`). Duplicate keys are an
error in every format, never a silent "last one wins".
"""

from __future__ import annotations

import bisect
import hashlib
import json
import json.decoder
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchsubmit.errors import SpecError
from batchsubmit.sweep.lines import (
    MAX_DEPTH,
    KeyPath,
    LineMap,
    check_shape,
    dotted,
    duplicate_key,
    error_at,
)

__all__ = [
    "SUFFIXES",
    "KeyPath",
    "LineMap",
    "RawSpec",
    "dotted",
    "error_at",
    "read_job_ids",
    "read_spec",
]

SUFFIXES = (".yaml", ".yml", ".json", ".toml")


@dataclass(frozen=True, slots=True)
class RawSpec:
    """A parsed spec file before schema validation."""

    path: Path
    sha256: str
    data: Any
    lines: LineMap


def read_spec(path: str | Path) -> RawSpec:
    """Read and parse a spec file; SpecError on an unreadable file or a syntax error."""
    path = Path(path)
    where = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SpecError(
            f"unsupported file type {path.suffix or '(none)'!r}: "
            "name the spec *.yaml, *.yml, *.json or *.toml",
            path=where,
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read the spec: {exc.strerror or exc}", path=where) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError("the spec is not UTF-8 text", path=where, line=line) from exc
    try:
        if suffix == ".json":
            data, lines = _parse_json(text, where)
        elif suffix == ".toml":
            data, lines = _parse_toml(text, where)
        else:
            from batchsubmit.sweep.yaml12 import parse_yaml  # only YAML specs pay its import

            data, lines = parse_yaml(text, where)
    except RecursionError:  # a parser's own recursion, before check_shape could look
        raise SpecError(
            f"nested too deeply: a spec needs a few levels, at most {MAX_DEPTH}", path=where
        ) from None
    except ValueError as exc:  # not a syntax error: a number of more than 4300 digits, say
        reason = str(exc).split(";")[0]  # without Python's advice to call set_int_max_str_digits
        raise SpecError(f"cannot read a value of the spec: {reason}", path=where) from None
    return RawSpec(path=path, sha256=hashlib.sha256(raw).hexdigest(), data=data, lines=lines)


_JOB_ID = re.compile(r"^[0-9]{1,19}$")  # a 64-bit id at most (and never too long for int())


def read_job_ids(path: Path, *, spec: str, line: int | None) -> tuple[int, ...]:
    """The job ids of a ``target.job_ids`` file: one id per line, ``#`` comments, blank lines.

    A bad line raises SpecError naming the file and the line; an unreadable file names the spec
    file (``spec``) and the line of its ``job_ids`` key."""
    where = str(path)
    try:
        raw_bytes = path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = (exc.strerror if isinstance(exc, OSError) else None) or exc
        raise SpecError(
            f"cannot read the job ids file {where!r}: {reason} (its path is relative to the "
            "spec file)",
            path=spec,
            line=line,
            field="target.job_ids",
        ) from exc
    try:
        text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError("the job ids file is not UTF-8 text", path=where) from exc
    ids: list[int] = []
    first: dict[int, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        if not _JOB_ID.match(entry) or int(entry) < 1:
            raise SpecError(
                f"{entry!r} is not a job id: write one positive integer per line "
                "(# starts a comment)",
                path=where,
                line=number,
            )
        job = int(entry)
        if job in first:
            raise SpecError(
                f"job {job} is listed twice (first on line {first[job]}): list each job once",
                path=where,
                line=number,
            )
        first[job] = number
        ids.append(job)
    if not ids:
        raise SpecError("no job ids in the file: write one job id per line", path=where)
    return tuple(ids)


# ---------------------------------------------------------------------------------------------
# JSON: the standard parser for the values, a small scanner for the lines.

_WS = re.compile(r"[ \t\n\r]*")


def _parse_json(text: str, where: str) -> tuple[Any, LineMap]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"JSON syntax error: {exc.msg}", path=where, line=exc.lineno) from exc
    check_shape(data, where)
    lines: dict[KeyPath, int] = {}
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    decoder = json.JSONDecoder()

    def line_of(pos: int) -> int:
        return bisect.bisect_right(starts, pos)

    def scan(pos: int, path: KeyPath) -> int:
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        lines.setdefault(path, line_of(pos))
        char = text[pos]
        if char not in "{[":
            return int(decoder.raw_decode(text, pos)[1])
        closing = "}" if char == "{" else "]"
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        if text[pos] == closing:
            return pos + 1
        seen: dict[str, int] = {}
        index = 0
        while True:
            pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
            if char == "{":
                line = line_of(pos)
                key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
                if key in seen:
                    raise duplicate_key(key, seen[key], line, where, path)
                seen[key] = line
                lines[(*path, key)] = line
                pos = _WS.match(text, pos).end() + 1  # type: ignore[union-attr]  # the ':'
                pos = scan(pos, (*path, key))
            else:
                pos = scan(pos, (*path, index))
                index += 1
            pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
            if text[pos] == ",":
                pos += 1
                continue
            return pos + 1

    scan(0, ())
    return data, LineMap(lines)


# ---------------------------------------------------------------------------------------------
# TOML: tomllib for the values; lines found by reading table headers and assignments.

_TOML_LINE = re.compile(r"line (\d+)")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_ASSIGN = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")
_KEY_PART = re.compile(_PART)


def _toml_key(text: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _KEY_PART.findall(text))


def _parse_toml(text: str, where: str) -> tuple[Any, LineMap]:
    import tomllib  # only a TOML spec needs it (~3 ms of a YAML run's start)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise SpecError(
            f"TOML syntax error: {message}",
            path=where,
            line=int(found.group(1)) if found else None,
        ) from exc
    check_shape(data, where)
    entries: list[tuple[tuple[str, ...], int]] = []
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _toml_key(header.group(1))
            entries.append((table, number))
            continue
        assign = _ASSIGN.match(line)
        if assign:
            entries.append(((*table, *_toml_key(assign.group(1))), number))

    def find(path: KeyPath) -> int | None:
        keys = tuple(part for part in path if isinstance(part, str))
        if len(keys) != len(path):  # an array item: fall back to the array's own line
            return None
        for key, number in entries:
            if key == keys:
                return number
        return None

    return data, LineMap(finder=find)

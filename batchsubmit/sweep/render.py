"""The deterministic value-to-string rule, and templates compiled once into format strings.

On the wire every parameter value is a string, and the same point must always yield the same bytes
(points are matched by them), so there is exactly one rule, :func:`render_value`:

====================  ===========================  ==========================================
value in the spec     on the wire                  note
====================  ===========================  ==========================================
``32``                ``"32"``                     integers in decimal
``0.01``, ``1e-5``    ``"0.01"``, ``"1e-05"``      floats: Python's shortest round-trip repr
``2.0``               ``"2.0"``                    a float stays a float; write ``2`` for "2"
``true``/``false``    ``"true"``/``"false"``       lower case, whatever the file format
``adam``              ``"adam"``                   strings as given
``null``              error                        quote it to send the text "null"
====================  ===========================  ==========================================

Templates (``job_desc``, string fields of ``config``) use ``{name}`` placeholders and ``{{``/``}}``
for literal braces. A template is compiled once into a positional :meth:`str.format` string whose
constant placeholders (``{sweep}``, fixed parameters) are already filled in, so rendering a point is
one ``format`` call.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Template", "compile_template", "json_escape", "placeholders", "render_value"]


def render_value(value: object) -> str:
    """The wire string of a spec value; ValueError (with a hint) for null and non-scalars."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise ValueError(f"{value!r} is not valid Unicode (a lone surrogate)") from None
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number: use a finite float")
        return repr(value)
    if value is None:
        raise ValueError(
            "null is not a parameter value: give a string, number or boolean "
            '(write "null" in quotes to send the text null)'
        )
    kinds: dict[type, str] = {dict: "a mapping", list: "a list"}
    kind = kinds.get(type(value), type(value).__name__)
    raise ValueError(
        f"{kind} is not a parameter value: give a string, number or boolean "
        "(quote it to send it as text)"
    )


def json_escape(text: str) -> str:
    """``text`` as it appears between the quotes of a JSON string (UTF-8, not \\u-escaped)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


_FORMATTER = string.Formatter()


def placeholders(text: str) -> list[str]:
    """The placeholder names of a template, in order; ValueError on malformed braces."""
    names: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise ValueError(
            f"malformed template {text!r} ({exc}): write {{name}} for a placeholder "
            "and {{ or }} for a literal brace"
        ) from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name:
            raise ValueError(f"empty placeholder {{}} in {text!r}: write {{<label>}}")
        if spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ValueError(
                f"placeholder {{{shown}}} in {text!r} takes a format: placeholders are plain "
                f"names, write {{{name}}}"
            )
        names.append(name)
    return names


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template: ``fmt.format(*args)`` renders it; ``constant`` when it has no slots."""

    source: str
    fmt: str
    slots: frozenset[str]
    constant: str | None


def _escape(literal: str) -> str:
    return literal.replace("{", "{{").replace("}", "}}")


def compile_template(
    text: str, *, positions: Mapping[str, str], constants: Mapping[str, str]
) -> Template:
    """Compile ``text``: names in ``constants`` are filled in now, names in ``positions`` become
    the format fields given there (``"1"``, ``"2[1]"``); any other name raises KeyError(name)."""
    placeholders(text)  # validates the syntax with a helpful message
    fmt: list[str] = []
    slots: set[str] = set()
    for literal, name, _spec, _conversion in _FORMATTER.parse(text):
        fmt.append(_escape(literal))
        if name is None:
            continue
        if name in constants:
            fmt.append(_escape(constants[name]))
        elif name in positions:
            fmt.append("{" + positions[name] + "}")
            slots.add(name)
        else:
            raise KeyError(name)
    compiled = "".join(fmt)
    constant = None if slots else compiled.format()
    return Template(source=text, fmt=compiled, slots=frozenset(slots), constant=constant)

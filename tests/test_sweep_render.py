"""The value-to-string rule and template compilation (batchsubmit.sweep.render)."""

from __future__ import annotations

import datetime
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchsubmit.sweep.render import compile_template, placeholders, render_value


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (32, "32"),
        (-7, "-7"),
        (0, "0"),
        (10**20, "100000000000000000000"),
        (0.01, "0.01"),
        (1e-05, "1e-05"),
        (0.1 + 0.2, "0.30000000000000004"),
        (2.0, "2.0"),
        (1e16, "1e+16"),
        (True, "true"),
        (False, "false"),
        ("adam", "adam"),
        ("0.010", "0.010"),
        ("", ""),
        ("日本語", "日本語"),
    ],
)
def test_render_value_rules(value: object, wire: str) -> None:
    """Integers in decimal, floats shortest round-trip, booleans lower case, strings as given."""
    assert render_value(value) == wire


def test_render_null_is_an_error_with_a_hint() -> None:
    """null is rejected, and the message says how to send the text instead."""
    with pytest.raises(ValueError, match=r"null is not a parameter value.*quotes"):
        render_value(None)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_render_non_finite_float_is_an_error(value: float) -> None:
    """inf and nan have no portable meaning for a training script, so they are rejected."""
    with pytest.raises(ValueError, match="not a finite number"):
        render_value(value)


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, datetime.date(2024, 1, 1), "\ud800"])
def test_render_non_scalars_are_errors(value: object) -> None:
    """Lists, mappings, dates and broken Unicode are not parameter values."""
    with pytest.raises(ValueError):
        render_value(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_rendered_floats_round_trip(value: float) -> None:
    """A rendered float reads back as exactly the same float."""
    assert float(render_value(value)) == value


@given(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                 st.text(alphabet=st.characters(exclude_categories=["Cs"]))))
def test_rendering_is_deterministic(value: object) -> None:
    """The same value always renders to the same string (points are matched by their bytes)."""
    assert render_value(value) == render_value(value)


def test_template_fills_constants_and_keeps_slots() -> None:
    """Constants are baked in at compile time; the rest become positional format fields."""
    template = compile_template(
        "/out/{sweep}/{lr}/{key}/{{literal}}",
        positions={"key": "1", "lr": "2[1]"},
        constants={"sweep": "my-sweep"},
    )
    assert template.slots == {"key", "lr"}
    assert template.fmt.format("0", "abc", ("lr", "0.1")) == "/out/my-sweep/0.1/abc/{literal}"


def test_template_without_slots_is_constant() -> None:
    """A template naming only constants renders once, at compile time."""
    template = compile_template("a {sweep} {{b}}", positions={}, constants={"sweep": "s"})
    assert template.constant == "a s {b}"


def test_template_unknown_placeholder_raises_key_error() -> None:
    """An unknown name raises KeyError carrying the name, for the caller's message."""
    with pytest.raises(KeyError, match="lr"):
        compile_template("{lr}", positions={}, constants={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{lr", "malformed template"),
        ("lr}", "malformed template"),
        ("{}", "empty placeholder"),
        ("{lr:.3f}", "placeholders are plain names"),
        ("{lr!r}", "placeholders are plain names"),
    ],
)
def test_malformed_templates_explain_the_syntax(text: str, message: str) -> None:
    """Bad braces, empty names and format specs are rejected with the syntax to use."""
    with pytest.raises(ValueError, match=message):
        placeholders(text)

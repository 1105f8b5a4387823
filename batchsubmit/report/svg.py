"""Small pure functions that write SVG markup: elements, scales, axes with ticks, bars, cells.

Everything is a string; every attribute value and every piece of text goes through
:func:`html.escape`, so a label from the ledger can never open a tag. The output is well-formed
XML (a test parses it), inline in the HTML page, styled by the page's CSS classes.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from batchsubmit.report.data import nice_step

__all__ = [
    "Scale",
    "axis_bottom",
    "axis_left",
    "bar",
    "cell",
    "element",
    "esc",
    "fmt_number",
    "line",
    "rounded",
    "svg",
    "text",
    "ticks",
]


def esc(value: object) -> str:
    """Text or an attribute value, escaped for HTML and XML alike."""
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def element(tag: str, content: str = "", /, **attrs: object) -> str:
    """``<tag a="1">content</tag>`` (self-closed when empty); ``class_`` -> ``class``,
    ``text_anchor`` -> ``text-anchor``; None values are left out. ``content`` is markup."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None:
            continue
        name = name.rstrip("_").replace("_", "-")
        shown = _num(value) if isinstance(value, float) else str(value)
        parts.append(f'{name}="{esc(shown)}"')
    opening = " ".join(parts)
    return f"<{opening}>{content}</{tag}>" if content else f"<{opening}/>"


def svg(width: float, height: float, body: Iterable[str], *, label: str) -> str:
    """An inline SVG picture with an accessible label."""
    return element(
        "svg", "".join(body), width=float(width), height=float(height),
        viewBox=f"0 0 {_num(width)} {_num(height)}", role="img", aria_label=label,
    )  # fmt: skip


def title(text: str) -> str:
    """A tooltip for the enclosing element."""
    return element("title", esc(text))


def text(x: float, y: float, content: str, *, anchor: str = "start", **attrs: object) -> str:
    """A piece of text (escaped)."""
    return element("text", esc(content), x=float(x), y=float(y), text_anchor=anchor, **attrs)


def line(x1: float, y1: float, x2: float, y2: float, **attrs: object) -> str:
    return element("line", x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2), **attrs)


def bar(x: float, y: float, width: float, height: float, **attrs: object) -> str:
    """A rectangle; a negative size is drawn as empty rather than refused by the browser."""
    return element(
        "rect", x=float(x), y=float(y), width=float(max(0.0, width)),
        height=float(max(0.0, height)), **attrs,
    )  # fmt: skip


def cell(
    x: float, y: float, width: float, height: float, fill: str, tooltip: str | None,
    **attrs: object,
) -> str:  # fmt: skip
    """A heat-map cell: a filled rectangle, with a tooltip unless None."""
    return element(
        "rect", title(tooltip) if tooltip is not None else "", x=float(x), y=float(y),
        width=float(max(0.0, width)),
        height=float(max(0.0, height)), fill=fill, **attrs,
    )  # fmt: skip


# --- scales and axes -----------------------------------------------------------------------------


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high] (1, 2, 2.5, 5 x 10^k apart)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    step = nice_step((high - low) / max(1, count))
    first = math.ceil(low / step - 1e-9) * step
    out = []
    value = first
    while value <= high + step * 1e-9:
        out.append(round(value, 10))
        value += step
    return out


def rounded(high: float, count: int = 5, *, whole: bool = False) -> tuple[float, list[float]]:
    """An axis from 0 to ``high`` rounded up to a tick: (the rounded top, its ticks).

    ``whole``: the ticks are whole numbers (an axis of counts).
    """
    if not math.isfinite(high) or high <= 0:
        return 1.0, [0.0, 1.0]
    step = nice_step(high / max(1, count))
    if whole and step != int(step):
        step = 1.0 if step < 1 else 5.0 * step / 2.5  # 2.5 -> 5
    top = math.ceil(high / step - 1e-9) * step
    return top, [round(i * step, 10) for i in range(round(top / step) + 1)]


@dataclass(frozen=True)
class Scale:
    """A linear map from a domain (data) to a range (pixels)."""

    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, value: float) -> float:
        if self.d1 == self.d0:
            return self.r0
        return self.r0 + (value - self.d0) * (self.r1 - self.r0) / (self.d1 - self.d0)


def fmt_number(value: float) -> str:
    """A tick label: 1200 -> 1.2k, 0.25 -> 0.25, 3.0 -> 3."""
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}".rstrip("0").rstrip(".") + "k"
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def axis_bottom(
    scale: Scale,
    y: float,
    values: Sequence[float],
    *,
    label: str = "",
    fmt: Callable[[float], str] = fmt_number,
) -> str:
    """A horizontal axis at ``y``: the baseline, a tick and a label per value, an axis title."""
    out = [line(scale.r0, y, scale.r1, y, class_="axis")]
    for value in values:
        x = scale(value)
        out.append(line(x, y, x, y + 4, class_="axis"))
        out.append(text(x, y + 16, fmt(value), anchor="middle", class_="tick"))
    if label:
        out.append(text((scale.r0 + scale.r1) / 2, y + 34, label, anchor="middle", class_="label"))
    return element("g", "".join(out))


def axis_left(
    scale: Scale,
    x: float,
    values: Sequence[float],
    *,
    label: str = "",
    fmt: Callable[[float], str] = fmt_number,
    grid_to: float | None = None,
) -> str:
    """A vertical axis at ``x``: ticks with labels, faint grid lines to ``grid_to``, a title."""
    out = [line(x, scale.r0, x, scale.r1, class_="axis")]
    for value in values:
        y = scale(value)
        out.append(line(x - 4, y, x, y, class_="axis"))
        if grid_to is not None:
            out.append(line(x, y, grid_to, y, class_="grid"))
        out.append(text(x - 7, y + 4, fmt(value), anchor="end", class_="tick"))
    if label:
        middle = (scale.r0 + scale.r1) / 2
        out.append(
            text(
                x - 40, middle, label, anchor="middle", class_="label",
                transform=f"rotate(-90 {_num(x - 40)} {_num(middle)})",
            )
        )  # fmt: skip
    return element("g", "".join(out))

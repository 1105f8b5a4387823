"""Seeded random search: distributions, and a random stream defined by hashing alone.

Determinism is the point. Each grid x zip point ("cell") gets its own stream, seeded from the spec's
``seed`` and the cell's canonical label-value pairs, not from its position: reordering grid keys or
values, or adding a value, leaves the draws of every other cell as they were. The stream is
counter-mode BLAKE2b (8 uniform 64-bit words per block, the top 53 bits make a float in [0, 1)), so
it does not depend on the Python version's ``random`` module. Dimensions are drawn in label order,
so reordering ``space`` changes nothing either.

Continuous draws are rounded to 6 significant digits (``0.000316228``, not
``0.00031622776601683794``): that is ample for a hyperparameter, it reads well in a path, and it
keeps the rendered value the same on every platform even where ``exp``/``log`` differ in the last
bit.

``randint: [lo, hi]`` includes both ends. ``q`` draws a multiple of ``q`` within ``[lo, hi]``
(uniformly for ``uniform``, log-uniformly rounded for ``loguniform``); with an integer ``q`` and
integer bounds the value is an integer.

Bounds, so that every draw is plain float or 64-bit arithmetic (anything else is a ValueError
that the plan reports as a SpecError at the dimension): ``randint`` bounds are 64-bit signed
integers (``-2**63`` to ``2**63 - 1``); ``uniform``/``loguniform`` bounds are finite floats (an
integer beyond a float's range is refused) whose difference is finite too; ``q`` is finite and
``[lo, hi]`` holds at most ``2**63`` multiples of it, none of index beyond a 64-bit integer.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from hashlib import blake2b

from batchsubmit.models import brief
from batchsubmit.sweep.render import render_value
from batchsubmit.sweep.schema import Dimension

__all__ = ["SIGNIFICANT_DIGITS", "DigestSet", "Dim", "Stream", "cell_seed", "compile_dimension"]

SIGNIFICANT_DIGITS = 6
_UNPACK = struct.Struct("<8Q").unpack
_SCALE = 2.0**-53
_NUMERIC = frozenset("0123456789.-+e")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Stream:
    """Uniform floats in [0, 1) from BLAKE2b(seed, counter) blocks."""

    __slots__ = ("_buffer", "_counter", "_seed")

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buffer: list[int] = []

    def __repr__(self) -> str:
        return f"<Stream seed={self._seed.hex()} block={self._counter}>"

    def next(self) -> float:
        """The next uniform float."""
        buffer = self._buffer
        if not buffer:
            block = blake2b(self._seed + self._counter.to_bytes(8, "little"), digest_size=64)
            self._counter += 1
            buffer.extend(_UNPACK(block.digest()))
        return (buffer.pop() >> 11) * _SCALE


def cell_seed(seed: int, cell_canonical: str) -> bytes:
    """The 16-byte seed of one cell's stream."""
    key = str(seed).encode()[:64]
    return blake2b(cell_canonical.encode(), key=key, digest_size=16, person=b"batchsubmit").digest()


@dataclass(frozen=True, slots=True)
class Dim:
    """A compiled dimension: ``draw(u)`` maps a uniform float to the rendered value."""

    label: str
    draw: Callable[[float], str]
    size: int | None  # number of distinct values; None for a continuous range
    alphabet: frozenset[str]  # every character a rendered value may contain
    choices: frozenset[str] | None  # the rendered values of a choice


def _round(x: float, lo: float, hi: float) -> float:
    value = float(f"{x:.{SIGNIFICANT_DIGITS}g}")
    return min(max(value, lo), hi)


def _check_finite(bounds: list[int | float]) -> None:
    """ValueError for a bound beyond a float's range, inf or nan, or too wide a range."""
    try:
        lo, hi = (float(v) for v in bounds)
    except OverflowError:  # an int beyond a float
        lo = hi = math.inf
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(
            f"bounds must be finite numbers (at most {sys.float_info.max:.4g} in size), "
            f"got [{brief(bounds[0])}, {brief(bounds[1])}]"
        )
    if not math.isfinite(hi - lo):
        raise ValueError(
            f"the range [{lo!r}, {hi!r}] is wider than a float can hold: narrow it"
        )


def _steps(lo: float, hi: float, q: float) -> tuple[int, int]:
    if isinstance(q, float) and not math.isfinite(q):
        raise ValueError(f"q must be a finite number, got {q!r}")
    dq = Decimal(repr(q))
    first = int((Decimal(repr(lo)) / dq).to_integral_value(rounding=ROUND_CEILING))
    last = int((Decimal(repr(hi)) / dq).to_integral_value(rounding=ROUND_FLOOR))
    if first > last:
        raise ValueError(f"no multiple of q={brief(q)} lies within [{lo!r}, {hi!r}]: lower q")
    if not (first >= INT64_MIN and last <= INT64_MAX and last - first < 2**63):
        raise ValueError(
            f"q={q!r} is too small for [{lo!r}, {hi!r}]: it makes multiples of q beyond "
            "2**63 in size or count; raise q"
        )
    return first, last


def _quantiser(q: float, integral: bool) -> Callable[[int], str]:
    if integral:
        iq = int(q)
        return lambda n: str(n * iq)
    exponent = Decimal(repr(q)).as_tuple().exponent
    decimals = max(0, -exponent) if isinstance(exponent, int) else 0
    return lambda n: repr(round(n * q, decimals))


def compile_dimension(label: str, dim: Dimension) -> Dim:
    """Compile one ``random.space`` entry; ValueError for a value or range that cannot work."""
    if dim.choice is not None:
        rendered = tuple(render_value(v) for v in dim.choice)
        if len(set(rendered)) != len(rendered):
            dup = next(v for v in rendered if rendered.count(v) > 1)
            raise ValueError(f"choice lists {dup!r} twice: list each value once")
        n = len(rendered)
        return Dim(
            label,
            lambda u: rendered[int(u * n)],
            n,
            frozenset("".join(rendered)),
            frozenset(rendered),
        )
    if dim.randint is not None:
        lo_i, hi_i = dim.randint
        if not (lo_i >= INT64_MIN and hi_i <= INT64_MAX):
            raise ValueError(
                "randint bounds must be 64-bit integers (-2**63 to 2**63 - 1), "
                f"got [{brief(lo_i)}, {brief(hi_i)}]"
            )
        span = hi_i - lo_i + 1
        return Dim(label, lambda u: str(lo_i + int(u * span)), span, _NUMERIC, None)
    log = dim.loguniform is not None
    bounds = dim.loguniform if dim.loguniform is not None else dim.uniform
    assert bounds is not None  # the schema guarantees exactly one distribution
    _check_finite(bounds)
    lo, hi = bounds
    log_lo, log_span = (math.log(lo), math.log(hi) - math.log(lo)) if log else (0.0, 0.0)
    if dim.q is None:
        if log:
            return Dim(
                label, lambda u: repr(_round(math.exp(log_lo + log_span * u), lo, hi)),
                None, _NUMERIC, None,
            )
        return Dim(label, lambda u: repr(_round(lo + (hi - lo) * u, lo, hi)), None, _NUMERIC, None)
    q = dim.q
    first, last = _steps(lo, hi, q)
    integral = all(isinstance(v, int) for v in (q, *bounds))
    value_of = _quantiser(q, integral)
    count = last - first + 1
    if log:
        def draw_log(u: float) -> str:
            n = round(math.exp(log_lo + log_span * u) / q)
            return value_of(min(max(n, first), last))

        return Dim(label, draw_log, count, _NUMERIC, None)
    return Dim(label, lambda u: value_of(first + int(u * count)), count, _NUMERIC, None)


class DigestSet:
    """A set of 64-bit digests in an open-addressing ``array('Q')``: 16 bytes an entry at most,
    for the draws of a cell with very many samples (a Python set of ints costs about 70)."""

    __slots__ = ("_has_zero", "_limit", "_mask", "_size", "_slots")

    def __init__(self, expected: int = 0) -> None:
        capacity = 16
        while capacity < 2 * expected:
            capacity *= 2
        self._allocate(capacity)
        self._has_zero = False

    def _allocate(self, capacity: int) -> None:
        self._slots = array("Q", bytes(8 * capacity))  # 0 marks an empty slot
        self._mask = capacity - 1
        self._limit = capacity * 3 // 4
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"<DigestSet size={self._size} capacity={self._mask + 1}>"

    def add(self, digest: int) -> bool:
        """Insert ``digest``; True when it was not there yet."""
        if digest == 0:
            new = not self._has_zero
            self._has_zero = True
            self._size += new
            return new
        slots, mask = self._slots, self._mask
        slot = digest & mask
        while True:
            found = slots[slot]
            if found == 0:
                slots[slot] = digest
                self._size += 1
                if self._size > self._limit:
                    self._grow()
                return True
            if found == digest:
                return False
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old = [digest for digest in self._slots if digest]
        size = self._size
        self._allocate(2 * (self._mask + 1))
        for digest in old:
            self.add(digest)
        self._size = size

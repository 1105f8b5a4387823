"""How a point is recognised on the server, whatever the server echoes back.

The service promises no byte-for-byte echo (``shared/spec/real-service-unknowns.md`` U1-U3), so
nothing here compares raw text:

- **Identity** is the point's ``train_url`` in a normalised form (:func:`normalise_train_url`):
  ``obs://bucket/a/`` and ``/bucket/a`` are one path; doubled and trailing slashes are dropped;
  case and everything else are kept. The spec loader guarantees one normalised train_url per point.
- **Confirmation** is the ``parameter`` list, compared as labels to values (:func:`disagreements`):
  order does not matter; numbers compare as numbers (``"0.010"``, ``0.01`` and ``"1e-2"`` are
  equal); ``"true"``/``true`` likewise; a null value is an empty one; labels the server added are
  tolerated, but every label the point sent must come back with an equal value.

A version on a point's train_url whose parameters disagree is not the point's version, and is not
silently adopted either: :class:`~batchsubmit.errors.IdentityConflictError` says which.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation

__all__ = ["disagreements", "normalise_train_url", "same_value"]

_SLASHES = re.compile(r"/{2,}")
_OBS = "obs://"


def normalise_train_url(url: str) -> str:
    """The canonical form of an OBS path: ``/bucket/dir``, no scheme, no doubled or final slash.

    >>> normalise_train_url("obs://bucket//out/p1/")
    '/bucket/out/p1'
    """
    text = url.strip()
    if text[: len(_OBS)].lower() == _OBS:
        text = text[len(_OBS) :]
    text = _SLASHES.sub("/", "/" + text)
    return text.rstrip("/") or "/"


def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _boolean(text: str) -> bool | None:
    low = text.strip().lower()
    return True if low == "true" else False if low == "false" else None


def same_value(sent: str, listed: str) -> bool:
    """True when a listed parameter value is the value that was sent, read as the server may
    rewrite it: numbers by value (to double precision when either has a fraction), booleans by
    truth, anything else exactly."""
    if sent == listed:
        return True
    a, b = _number(sent), _number(listed)
    if a is not None and b is not None:
        if a == b:
            return True
        integral = a == a.to_integral_value() and b == b.to_integral_value()
        return not integral and float(a) == float(b)  # a float echo keeps ~17 digits
    x, y = _boolean(sent), _boolean(listed)
    return x is not None and x == y


def disagreements(
    sent: Sequence[tuple[str, str]], listed: Iterable[tuple[str, str]]
) -> list[str]:
    """What in ``listed`` (a version's parameters) contradicts ``sent`` (a point's): one phrase
    per label, empty when the version confirms the point. Extra listed labels are tolerated."""
    values: dict[str, list[str]] = {}
    for label, value in listed:
        values.setdefault(label, []).append(value)
    out: list[str] = []
    for label, value in sent:
        there = values.get(label)
        if there is None:
            out.append(f"{label} missing there (sent {value!r})")
        elif not all(same_value(value, other) for other in there):
            shown = there[0] if len(there) == 1 else there
            out.append(f"{label}={shown!r} there, {value!r} in this point")
    return out

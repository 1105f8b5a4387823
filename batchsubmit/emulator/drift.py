"""How list and detail may drift from what was sent (real-service-unknowns.md, U1..U4).

Pure functions of a rendered version and the config, so each drift is tested without a server.
None of them touches the stored version: ground truth (``Emulator.versions()``) keeps exactly what
the create request sent.
"""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

from batchsubmit.emulator.config import EmulatorConfig

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_BOOLEANS = {"true": True, "false": False}
URL_FIELDS = ("train_url", "log_url")


def echo_value(value: Any) -> Any:
    """U1: a string that is a finite JSON number becomes that number, "true"/"false" booleans.

    ``"0.010"`` -> ``0.01``, ``"32"`` -> ``32``, ``"1e-2"`` -> ``0.01``; ``"007"``, ``" 1"``,
    ``"1e999"`` (not finite) and every other string stay as they are.
    """
    if not isinstance(value, str):
        return value
    if value in _BOOLEANS:
        return _BOOLEANS[value]
    if not _JSON_NUMBER.fullmatch(value):
        return value
    number = json.loads(value)
    if isinstance(number, float) and not math.isfinite(number):
        return value
    return number


def shuffled(items: list[Any], seed: int) -> list[Any]:
    """U2: the items in an order fixed by ``seed``, never the given order when there are >= 2."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    if len(order) >= 2 and order == sorted(order):
        order.reverse()
    return [items[i] for i in order]


def with_added(params: list[Any], added: tuple[tuple[str, str], ...]) -> list[Any]:
    """U2: the service's own labels appended; a label the request sent keeps the sent value."""
    sent = {item.get("label") for item in params if isinstance(item, dict)}
    return [*params, *({"label": k, "value": v} for k, v in added if k not in sent)]


def normalise_obs_path(path: Any) -> Any:
    """U3: ``/bucket/a/b/`` -> ``obs://bucket/a/b``; ``obs://bucket/a/`` -> ``obs://bucket/a``.

    Anything else (a relative path, another scheme, not a string) is left as it is.
    """
    if not isinstance(path, str):
        return path
    if path.startswith("obs://"):
        rest = path.removeprefix("obs://")
    elif path.startswith("/"):
        rest = path.lstrip("/")
    else:
        return path
    return "obs://" + (rest.rstrip("/") or rest)


def drift_version(rendered: dict[str, Any], config: EmulatorConfig) -> dict[str, Any]:
    """A rendered version as the configured service would return it (a new dict)."""
    out = dict(rendered)
    params = [dict(item) for item in out.get("parameter") or []]
    if config.add_params:
        params = with_added(params, config.add_params)
    if config.shuffle_params:
        params = shuffled(params, seed=int(out["version_id"]))
    if config.echo_numbers:
        for item in params:
            if "value" in item:
                item["value"] = echo_value(item["value"])
    out["parameter"] = params
    if config.normalise_train_url:
        for name in URL_FIELDS:
            out[name] = normalise_obs_path(out.get(name))
    return out


def page_bounds(page: int, per_page: int, config: EmulatorConfig) -> tuple[int, int | None]:
    """U4: [start, stop) of the versions a list-versions page serves (stop None = to the end).

    ``page`` 0 is "no paging": everything, or the first ``max_per_page``. Otherwise a page holds
    s = min(per_page, max_per_page) versions, starting at (page-1)*s ("served") or at
    (page-1)*per_page ("requested": the cap cuts a page computed with the asked size).
    """
    cap = config.max_per_page
    if page == 0:
        return 0, cap
    served = per_page if cap is None else min(per_page, cap)
    step = served if config.page_offsets == "served" else per_page
    start = (page - 1) * step
    return start, start + served

"""Names the emulator's settings and the ``batchsubmit emulator`` flags share, importing nothing.

The CLI registers its flags from these (``typing`` only, no pydantic or aiohttp), and
:class:`~batchsubmit.emulator.config.EmulatorConfig` types its fields with the same literals, so a
choice is spelled in one place.
"""

from __future__ import annotations

from typing import Literal, get_args

DEFAULT_PROJECT_ID = "0123456789abcdef0123456789abcdef"

GatewayKind = Literal["bucket", "fixed-window", "sliding-window"]
GatewayPrefix = Literal["APIG", "APIGW"]
PolicyPeriod = Literal["second", "minute"]
PageOffsets = Literal["served", "requested"]
ErrorField = Literal["error_message", "error_msg"]

GATEWAY_KINDS: tuple[str, ...] = get_args(GatewayKind)
GATEWAY_PREFIXES: tuple[str, ...] = get_args(GatewayPrefix)
POLICY_PERIODS: tuple[str, ...] = get_args(PolicyPeriod)
PAGE_OFFSETS: tuple[str, ...] = get_args(PageOffsets)
ERROR_FIELDS: tuple[str, ...] = get_args(ErrorField)
PERIOD_SECONDS: dict[str, float] = {"second": 1.0, "minute": 60.0}

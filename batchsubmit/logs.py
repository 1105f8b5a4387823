"""structlog set-up for the command line. Library code only calls ``structlog.get_logger()``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging"]

_SECRET_KEYS = frozenset({"sk", "secret", "token", "authorization", "x-auth-token", "password"})


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: a field named like a secret never reaches a log line."""
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


def configure_logging(
    *,
    fmt: str = "console",
    level: int = logging.INFO,
    log_file: str | None = None,
    stream: TextIO | None = None,
) -> TextIO | None:
    """Send events to stderr (console or JSON) or, with ``log_file``, to that file (mode 0600).

    Returns the file opened for ``log_file`` so the caller can close it.
    """
    opened: TextIO | None = None
    if log_file:
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        opened = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        out: TextIO = opened
    else:
        out = stream or sys.stderr
    renderer: Any
    tail: list[Any] = []
    if fmt == "json":
        # A traceback as plain text: never the frames' local variables, which can hold a secret.
        tail = [structlog.processors.format_exc_info]
        renderer = structlog.processors.JSONRenderer()
    else:
        colors = out.isatty() and opened is None
        # Never rich's default, which shows every frame's locals: an SK passed to a signer.
        formatter = (
            structlog.dev.RichTracebackFormatter(show_locals=False)
            if colors
            else structlog.dev.plain_traceback
        )
        renderer = structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=formatter)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            *tail,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    return opened

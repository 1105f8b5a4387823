"""structlog set-up for the command line. Library code only calls ``structlog.get_logger()``."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, TextIO, cast

import structlog

__all__ = ["configure_logging", "logging_for_command"]

_SECRET_KEYS = frozenset({"sk", "secret", "token", "authorization", "x-auth-token", "password"})


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: a field named like a secret never reaches a log line."""
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


class _CurrentStderr(io.TextIOBase):
    """Whatever ``sys.stderr`` is when an event is written, not when logging was set up
    (a replaced stream, e.g. a test's captured one, may be closed by then)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


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
        out: TextIO | io.TextIOBase = opened
    else:
        out = stream or _CurrentStderr()
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
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, out)),
        cache_logger_on_first_use=False,
    )
    return opened


@contextlib.contextmanager
def logging_for_command(
    *, fmt: str = "console", level: int = logging.INFO, log_file: str | None = None
) -> Iterator[None]:
    """Log as a command asked, for the command's duration; then close the file and restore the
    configuration before it, so nothing is left writing to a closed file."""
    before = structlog.get_config()
    opened = configure_logging(fmt=fmt, level=level, log_file=log_file)
    try:
        yield
    finally:
        structlog.configure(**before)
        if opened is not None:
            opened.close()

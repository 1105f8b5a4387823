"""structlog set-up for the command line. Library code only calls ``structlog.get_logger()``.

Importing this module imports structlog without rich's traceback machinery (rich.traceback,
rich.pretty and pygments: ~50 ms of every command's start): structlog would import it at once
whenever rich is installed, for a traceback that is seldom printed. A traceback on a terminal is
still rich's, imported when one is printed (:func:`_rich_traceback`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from structlog.typing import ExcInfo

__all__ = ["configure_logging", "ensure_configured", "logging_for_command"]

#: What structlog imports when it finds rich (structlog.dev: rich.console and rich.traceback,
#: which imports pygments; structlog.tracebacks: rich.pretty), blocked while structlog is imported.
_RICH_AT_STRUCTLOG_IMPORT = ("rich", "rich.console", "rich.traceback", "rich.pretty")


@contextlib.contextmanager
def _without_rich() -> Iterator[None]:
    """While structlog is first imported, rich's modules not yet imported look absent to it.

    structlog then takes rich for not installed: its *default* exception formatter is the plain
    one and it holds no reference to rich; nothing else changes (we pass our own formatter).
    Once structlog is imported, rich imports as usual.
    """
    blocked = [name for name in _RICH_AT_STRUCTLOG_IMPORT if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # None: "import name" fails
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


with _without_rich():
    import structlog

_SECRET_KEYS = frozenset({"sk", "secret", "token", "authorization", "x-auth-token", "password"})


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: a field named like a secret never reaches a log line."""
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


def _drop_none(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A console line shows what is there: ``error_code=None`` says nothing."""
    for key in [k for k, v in event.items() if v is None]:
        del event[key]
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
        # NO_COLOR (https://no-color.org): any non-empty value turns colours off.
        colors = out.isatty() and opened is None and not os.environ.get("NO_COLOR")
        formatter = _rich_traceback if colors else structlog.dev.plain_traceback
        renderer = structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=formatter)
        tail = [_drop_none]
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


def ensure_configured() -> None:
    """Console events on stderr, unless logging is configured already (tests capture events
    with structlog.testing)."""
    if not structlog.is_configured():
        configure_logging()


def _rich_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    """rich's traceback, as structlog's ``RichTracebackFormatter(show_locals=False)`` draws it,
    imported only when one is printed. Never rich's default of every frame's locals: an SK
    passed to a signer."""
    from rich.console import Console
    from rich.traceback import Traceback

    sio.write("\n")
    traceback = Traceback.from_exception(
        *exc_info, width=None, code_width=88, word_wrap=True, show_locals=False
    )
    Console(file=sio, color_system="truecolor", width=None).print(traceback)


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

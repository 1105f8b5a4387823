"""Where the library's log events go: structlog's configuration if the application made one,
else the standard library's ``logging`` (silent below WARNING unless the application says).

A library must not print: unconfigured, structlog writes every event, debug ones included, to
stdout. So every module logs through :func:`get_logger`, which asks, per event, whether structlog
is configured (the command line configures it, as may a host application) and otherwise hands
the event to ``logging.getLogger(name)``, where the host's logging settings apply.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = ["get_logger"]


class _Events:
    """A logger that picks its destination when an event is logged, not when it is created."""

    __slots__ = ("_name", "_quiet", "_structlog")

    def __init__(self, name: str) -> None:
        self._name = name
        self._structlog = structlog.get_logger(name)
        self._quiet = structlog.wrap_logger(
            logging.getLogger(name),
            processors=[
                structlog.stdlib.filter_by_level,
                structlog.processors.add_log_level,
                structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
            ],
            wrapper_class=structlog.stdlib.BoundLogger,
        )

    def __getattr__(self, method: str) -> Any:
        target = self._structlog if structlog.is_configured() else self._quiet
        return getattr(target, method)

    def __repr__(self) -> str:
        return f"<events {self._name!r}>"


def get_logger(name: str) -> Any:
    """The logger of one module (``batchsubmit.engine``, ...): ``log.info("event", k=v)``."""
    return _Events(name)

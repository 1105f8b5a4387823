"""The subcommands of the ``batchsubmit`` command line, one module each, and their exit codes.

Only the command line speaks in exit codes; the core returns data and raises errors.
"""

from __future__ import annotations

import enum
import os
import sys

__all__ = ["PROCESS_ENDS_WITH_COMMAND", "ExitCode", "silence_stdout"]

#: Set by the ``batchsubmit`` executable (``cli.console``): the process ends when the command
#: does, so what is kept whole only for an in-process caller afterwards (aiohttp's CA store,
#: ``commands/tls.py``) is left undone.
PROCESS_ENDS_WITH_COMMAND = False


class ExitCode(enum.IntEnum):
    """What a ``batchsubmit`` process exits with (the README documents them)."""

    OK = 0  # every point succeeded (every training completed, for watch)
    FAILED = 1  # some points failed or were left pending (or trainings ended otherwise)
    USAGE = 2  # spec, usage or credential error: nothing was sent
    UNREACHABLE = 3  # no usable answer from the service before anything was sent
    INTERRUPTED = 130  # Ctrl-C / SIGTERM: run the same command again to resume


def silence_stdout() -> None:
    """After a BrokenPipeError (``batchsubmit expand ... | head``): send the rest of stdout, and
    the interpreter's last flush, to /dev/null instead of a second traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass

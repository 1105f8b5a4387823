"""The command line: a thin shell that parses flags, calls a command, and returns an exit code.

Each subcommand lives in ``batchsubmit/commands/<name>.py`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int`` as the parser default. Registering imports
only the standard library: a command imports what it needs (aiohttp, pydantic, rich, PyYAML,
structlog) when it runs, so ``--version`` and ``--help`` start at once.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from batchsubmit import __version__, commands
from batchsubmit.commands import ExitCode
from batchsubmit.errors import BatchSubmitError, TransportError

COMMANDS = ("expand", "run", "status", "watch", "stop", "delete", "report", "emulator")

DESCRIPTION = """\
Submit hyperparameter sweeps to a ModelArts training job, fast and exactly once.

A sweep spec (YAML, JSON or TOML) names a training job, a base create-version request and a
parameter grid. `expand` shows what would be sent; `run` sends it, within a rate limit, recording
every outcome in an append-only ledger that a re-run resumes from; `status`, `watch` and `report`
read that ledger (counts, trainings followed to the end, an HTML page); `emulator` serves a local
ModelArts v1 API to try it all against.

exit codes: 0 all succeeded, 1 some points failed, 2 spec/usage/credential error, 3 the service
could not be reached (nothing was sent), 130 interrupted
"""

EPILOG = """examples (no cloud account needed):
  batchsubmit expand sweeps/quickstart.yaml                     # what would be sent
  batchsubmit run sweeps/quickstart.yaml                        # send it to the embedded emulator
  batchsubmit status quickstart.ledger.jsonl --points           # one row per point
  batchsubmit watch quickstart.ledger.jsonl --interval 5        # follow the trainings
  batchsubmit report quickstart.ledger.jsonl -o report.html     # one HTML page
  batchsubmit COMMAND --help                                    # each command's flags, examples
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchsubmit",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchsubmit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"batchsubmit.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet must not break the others
            if exc.name != f"batchsubmit.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def console() -> NoReturn:
    """The ``batchsubmit`` command: :func:`main`, then exit without a last garbage collection.

    At exit the interpreter collects every object still alive (aiohttp's, pydantic's, ...):
    about 0.1 s of each command for memory the OS takes back anyway. Every file is closed by now.
    """
    commands.PROCESS_ENDS_WITH_COMMAND = True
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (see DESCRIPTION)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return ExitCode.USAGE
    from batchsubmit.logs import ensure_configured  # structlog: only for a command that runs

    ensure_configured()  # events go to stderr, never into a command's stdout
    try:
        return int(args.func(args))
    except BatchSubmitError as exc:
        return _refused(exc)
    except BaseExceptionGroup as group:  # a task group's failure: report the first of ours
        ours = group.subgroup(lambda e: isinstance(e, BatchSubmitError))
        if ours is None:
            raise
        first: BaseException = ours
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        assert isinstance(first, BatchSubmitError)
        return _refused(first)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def _refused(error: BatchSubmitError) -> ExitCode:
    """Print a command's error; the exit code: 3 when the service could not be reached (no
    usable answer, nothing was sent), 2 for every other refusal before sending."""
    print(f"batchsubmit: error: {error}", file=sys.stderr)
    return ExitCode.UNREACHABLE if isinstance(error, TransportError) else ExitCode.USAGE

"""Start-up: a command imports what it uses when it runs; the parser and logging set-up stay light.

Each check runs in a fresh interpreter (the test process has imported everything long before),
and asserts on the modules imported, never on a time (benchmarks/bench_startup.py times them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: What registering a parser must not import: the libraries behind the commands that run.
HEAVY = ("aiohttp", "pydantic", "rich", "yaml", "pygments")

#: Prints, as the last line of stdout, the heavy modules imported by then.
_REPORT = """
import json, sys
heavy = set(json.loads(sys.argv[1]))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def imported_by(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The modules of the ``heavy`` packages imported in a fresh interpreter after ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\n{_REPORT}", json.dumps(heavy)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    modules: list[str] = json.loads(out.stdout.splitlines()[-1])
    return modules


def test_building_the_parser_imports_no_heavy_library() -> None:
    """Registering every command's parser imports no aiohttp, pydantic, rich, PyYAML or pygments."""
    assert imported_by("from batchsubmit.cli import build_parser\nbuild_parser()") == []


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], ["run", "--help"], ["expand", "--help"], ["status", "--help"],
     ["watch", "--help"], ["stop", "--help"], ["delete", "--help"], ["report", "--help"],
     ["emulator", "--help"]],
    ids=" ".join,
)  # fmt: skip
def test_version_and_help_import_no_heavy_library(argv: list[str]) -> None:
    """`batchsubmit --version` and each command's --help import none of the heavy libraries."""
    code = f"from batchsubmit.cli import main\nassert main({argv!r}) == 0"
    assert imported_by(code) == []


def test_a_usage_error_imports_no_heavy_library() -> None:
    """A flag the command does not know exits 2 before anything heavy is imported."""
    code = "from batchsubmit.cli import main\nassert main(['run', 'x.yaml', '--no-such']) == 2"
    assert imported_by(code) == []


def test_logging_set_up_imports_no_rich_traceback_machinery() -> None:
    """configure_logging and a logged line import no rich (tracebacks, pretty) and no pygments."""
    code = (
        "import io\nfrom batchsubmit.logs import configure_logging\nimport structlog\n"
        "out = io.StringIO()\nconfigure_logging(stream=out)\n"
        "structlog.get_logger().info('batchsubmit.test.line', point='p1')\n"
        "assert 'batchsubmit.test.line' in out.getvalue() and 'point=p1' in out.getvalue()"
    )
    assert imported_by(code, ("rich", "pygments")) == []


def test_a_traceback_on_a_terminal_is_richs_imported_when_printed() -> None:
    """On a terminal, log.exception still draws rich's traceback: rich is imported for it then."""
    code = (
        "import io, sys\nfrom batchsubmit.logs import configure_logging\nimport structlog\n"
        "class Tty(io.StringIO):\n    def isatty(self): return True\n"
        "out = Tty()\nconfigure_logging(stream=out)\n"
        "assert 'rich.traceback' not in sys.modules\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n"
        "    structlog.get_logger().exception('batchsubmit.test.failed')\n"
        "assert 'Traceback' in out.getvalue() and 'ZeroDivisionError' in out.getvalue()\n"
        "assert '\\u256d' in out.getvalue()  # rich's box, not the plain formatter"
    )
    assert "rich.traceback" in imported_by(code, ("rich",))


def test_the_watch_commands_default_interval_is_the_watch_loops() -> None:
    """`watch --interval`'s default, written out for a light parser, is watch.DEFAULT_INTERVAL."""
    from batchsubmit import watch
    from batchsubmit.commands import watch as command

    assert command.DEFAULT_INTERVAL == watch.DEFAULT_INTERVAL

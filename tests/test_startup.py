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


def test_runs_aiohttp_import_leaves_the_ca_store_to_load_when_tls_is_used() -> None:
    """Imported for `run`, aiohttp's default contexts load no CA store (the verified one trusts
    none, so it fails closed) until load_deferred_ca_store, which loads aiohttp's usual one."""
    code = (
        "import ssl\n"
        "from batchsubmit.commands.tls import ca_store_deferred, load_deferred_ca_store\n"
        "with ca_store_deferred():\n    import aiohttp.connector as c\n"
        "assert 'set_default_verify_paths' not in vars(ssl.SSLContext)\n"
        "verified, unverified = c._SSL_CONTEXT_VERIFIED, c._SSL_CONTEXT_UNVERIFIED\n"
        "assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname\n"
        "assert verified.cert_store_stats()['x509_ca'] == 0\n"
        "load_deferred_ca_store()\n"
        "usual = ssl.create_default_context().cert_store_stats()\n"
        "assert verified.cert_store_stats() == unverified.cert_store_stats() == usual\n"
    )
    assert "aiohttp.connector" in imported_by(code, ("aiohttp",))


@pytest.mark.parametrize(
    ("endpoint", "tls"),
    [("emulator", False), ("http://127.0.0.1:8080", False), (" HTTP://h:1/ ", False),
     ("https://modelarts.cn-north-4.myhuaweicloud.com", True), ("HTTPS://h", True),
     ("modelarts.example.com", True), ("", True)],
)  # fmt: skip
def test_the_ca_store_is_loaded_unless_the_endpoint_is_plain_http(endpoint: str, tls: bool) -> None:
    """Only http:// and the embedded emulator go without TLS: any other endpoint may use it."""
    from batchsubmit.commands.tls import may_use_tls

    assert may_use_tls(endpoint) is tls


def test_a_quiet_run_imports_no_rich_and_collects_garbage_after_its_start(tmp_path: Path) -> None:
    """`run --quiet` draws nothing, so imports no rich; the collector paused for its start-up
    runs again afterwards, nothing left frozen, also when the run stops before sending."""
    ledger = tmp_path / "quickstart.ledger.jsonl"
    code = (
        "import gc\nfrom batchsubmit.cli import main\n"
        f"assert main(['run', 'sweeps/quickstart.yaml', '--ledger', {str(ledger)!r}, "
        "'--rate', '100', '--quiet']) == 0\n"
        "assert gc.isenabled() and gc.get_freeze_count() == 0\n"
        "assert main(['run', 'no-such-spec.yaml', '--quiet']) == 2\n"
        "assert gc.isenabled() and gc.get_freeze_count() == 0"
    )
    assert imported_by(code, ("rich", "pygments")) == []
    assert ledger.read_text().count('"event":"succeeded"') == 12


def test_a_run_sends_its_first_request_before_importing_rich(tmp_path: Path) -> None:
    """A run's progress bar is made at the first stats snapshot: the first connection is opened
    before rich is imported (the spec parsed and checked, with PyYAML and pydantic, by then)."""
    ledger = tmp_path / "quickstart.ledger.jsonl"
    code = (
        "import sys\nfrom batchsubmit.cli import main\nat_connect = []\n"
        "def hook(event, args):\n"
        "    if event == 'socket.connect' and not at_connect:\n"
        "        at_connect.append(sorted(m for m in ('rich', 'yaml', 'pydantic') "
        "if m in sys.modules))\n"
        "sys.addaudithook(hook)\n"
        f"assert main(['run', 'sweeps/quickstart.yaml', '--ledger', {str(ledger)!r}, "
        "'--rate', '100']) == 0\n"
        "assert at_connect == [['pydantic', 'yaml']], at_connect\n"
    )
    assert "rich.console" in imported_by(code, ("rich",))  # for the bar and the summary after


@pytest.mark.parametrize("executable", [True, False])
def test_the_ca_store_a_plain_http_run_never_used_is_loaded_only_for_an_in_process_caller(
    tmp_path: Path, executable: bool
) -> None:
    """The `batchsubmit` executable ends with its command: a CA store the run never needed is
    left unloaded (~0.09 s of every http:// run). Called in process (cli.main), the command
    leaves aiohttp's contexts whole for what the caller does next."""
    ledger = tmp_path / "quickstart.ledger.jsonl"
    argv = ["batchsubmit", "run", "sweeps/quickstart.yaml", "--ledger", str(ledger), "--rate",
            "100", "--quiet"]
    call = "console()" if executable else "sys.exit(main())"
    code = (
        "import atexit, sys\nfrom batchsubmit.cli import console, main\n"
        "from batchsubmit.commands import tls\n"
        "atexit.register(lambda: print('owed', len(tls._owed)))\n"
        f"sys.argv = {argv!r}\n{call}\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == ("owed 2" if executable else "owed 0")

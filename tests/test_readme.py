"""The README and sweeps/README.md run as written: every `batchsubmit` command of their shell
blocks, in order, in a fresh copy of the repository's sweeps (no credentials, no cloud), and the
README's Python example. A block after ``<!-- not run by tests/test_readme.py: ... -->`` is left
out (it needs a cloud account, or minutes)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parent.parent
BLOCK = re.compile(r"(<!-- not run by tests/test_readme\.py[^>]*-->\s*)?```(sh|python)\n(.*?)```",
                   re.S)
ENV = {**os.environ, "MODELARTS_TOKEN": "", "HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": "",
       "HUAWEICLOUD_SDK_PROJECT_ID": "", "NO_COLOR": "1"}


def blocks(path: Path, language: str) -> list[str]:
    """The code blocks of one language that the tests run, in order."""
    text = path.read_text(encoding="utf-8")
    return [body for skip, lang, body in BLOCK.findall(text) if lang == language and not skip]


def commands(path: Path) -> list[list[str]]:
    """The `batchsubmit ...` lines of the shell blocks, comments dropped, as argument lists."""
    out = []
    for body in blocks(path, "sh"):
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["batchsubmit"]:
                out.append(words[1:])
    return out


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory holding a copy of the repository's sweeps, as a fresh clone has them."""
    shutil.copytree(ROOT / "sweeps", tmp_path / "sweeps")
    return tmp_path


def test_the_readmes_name_commands_to_run() -> None:
    """The parse finds the commands (a test that runs nothing would prove nothing)."""
    assert len(commands(ROOT / "README.md")) >= 8
    assert len(commands(ROOT / "sweeps" / "README.md")) >= 4
    assert blocks(ROOT / "README.md", "python")


@pytest.mark.parametrize("readme", ["README.md", "sweeps/README.md"])
def test_every_command_runs_as_written(workdir: Path, readme: str) -> None:
    """Each command exits 0 (an `emulator` line serves in the background for the lines after
    it, and is stopped at the end)."""
    servers: list[subprocess.Popen[str]] = []
    try:
        for args in commands(ROOT / readme):
            command = [sys.executable, "-m", "batchsubmit", *args]
            if args[0] == "emulator":
                server = subprocess.Popen(command, cwd=workdir, env=ENV, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                servers.append(server)
                assert server.stdout is not None
                assert "listening on" in server.stdout.readline()  # it serves from now on
                continue
            done = subprocess.run(command, cwd=workdir, env=ENV, capture_output=True, text=True,
                                  timeout=120, check=False)
            assert done.returncode == 0, f"batchsubmit {shlex.join(args)}\n{done.stderr[-2000:]}"
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
            if server.stdout is not None:
                server.stdout.close()


def test_the_python_example_runs_as_written(workdir: Path) -> None:
    """The README's Python blocks run in a fresh interpreter and raise nothing."""
    for body in blocks(ROOT / "README.md", "python"):
        done = subprocess.run([sys.executable, "-c", body], cwd=workdir, env=ENV,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{body}\n{done.stderr[-2000:]}"

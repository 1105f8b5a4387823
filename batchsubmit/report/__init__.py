"""``batchsubmit report``: one self-contained HTML page about a sweep, for people who would rather
look than read.

Pure parts: :mod:`~batchsubmit.report.data` takes the numbers out of the ledger,
:mod:`~batchsubmit.report.svg` and :mod:`~batchsubmit.report.charts` draw them as inline SVG, and
:mod:`~batchsubmit.report.page` lays out the page (inline CSS, no script, nothing fetched).
:func:`write_report` is the I/O shell::

    data = write_report("lr-sweep.ledger.jsonl", "report.html", spec="sweeps/lr.yaml")
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from batchsubmit.errors import LedgerError
from batchsubmit.ledger import timestamp
from batchsubmit.report.data import ReportData, extract
from batchsubmit.report.page import render_html

__all__ = ["ReportData", "extract", "render_html", "write_report"]

MODE = 0o600  # the report's file mode: the ledger's (batchsubmit.ledger.writer creates it 0600)


def write_report(
    ledger: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    spec: str | os.PathLike[str] | None = None,
    generated_at: str | None = None,
) -> ReportData:
    """Read the ledger (and the spec's points, to place failed points), write the page atomically,
    mode 0600 like the ledger whatever the umask.

    Raises LedgerError for a missing or damaged ledger, SpecError for a bad spec.
    """
    where = os.fspath(ledger)
    points = None
    if spec is not None:
        from batchsubmit.sweep import iter_points, load_spec

        swept = iter_points(load_spec(Path(spec)), validate=False)
        points = [(p.key, p.index, p.parameter) for p in swept]
    try:
        with open(where, "rb") as file:
            data = extract(file, path=where, spec_points=points)
    except FileNotFoundError:
        raise LedgerError(
            "no such ledger; `batchsubmit run` writes one (--ledger PATH, by default "
            "<sweep name>.ledger.jsonl in the directory it ran in)",
            path=where,
        ) from None
    except IsADirectoryError:
        raise LedgerError("that is a directory: pass the ledger file", path=where) from None
    except OSError as exc:
        raise LedgerError(f"cannot read the ledger: {exc.strerror or exc}", path=where) from None
    page = render_html(data, generated_at=generated_at or timestamp())
    target = Path(output)
    # mkstemp creates the file 0600 whatever the umask; fchmod says so in case a platform
    # differs: the page shows what the ledger holds, so it is as private as the ledger.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return data

"""The results ledger: an append-only, crash-safe JSON Lines file, one record per line.

Scripts outside this repository read it, so the record shapes are a contract (issue 4)::

    {"event": "run_started", "sweep", "spec_sha256", "total", "settings", "ts"}
    {"event": "submitted", "key", "index", "attempt", "train_url", "ts"}  (durable before sending)
    {"event": "succeeded", "key", "index", "version_id", "version_name", "parameter", "train_url",
     "attempts", "reconciled", "latency_ms", "ts"}
    {"event": "failed", "key", "index", "error_code", "error_message", "http_status", "request_id",
     "attempts", "parameter", "ts"}   (parameter: added later; older ledgers lack it)
    {"event": "run_finished", "counts", "interrupted", "halted", "ts"}   (halted: added later)
    {"event": "status", "key", "version_id", "status", "status_name", "duration_ms", "ts"}
    {"event": "stopped", "key", "version_id", "job_id", "ts"}
    {"event": "deleted", "key", "version_id", "job_id", "ts"}

A ``status`` line (issue 5) is written by ``batchsubmit watch`` when a created version's training
status changes; it belongs to no run, so it leaves the runs' spans and times alone. So do the
``stopped`` and ``deleted`` lines (issue 13) that ``batchsubmit stop --yes`` and ``delete --yes``
write when the server accepted the stop (or deletion) of a point's version: a re-run skips those.

The pure core builds records (:func:`run_started` ... :func:`run_finished`) and encodes them
(``records.py``), and folds a ledger into a :class:`LedgerState` (:func:`fold`,
:func:`read_ledger`; ``fold.py``). :class:`LedgerWriter` (``writer.py``) is the thin async shell
that appends lines durably, concurrent writers sharing one ``write`` + ``fsync`` (group commit).

Crash safety: a batch of lines goes out in one ``os.write`` on an ``O_APPEND`` descriptor, and
``LedgerWriter.write`` returns only once it is fsynced. A crash can tear only the last line, which
no caller was ever told was written; the reader ignores a torn line with a warning, and the next
writer starts a fresh line after it (so a torn line may later sit mid-file: it is recognised by
being an unfinished JSON object).
"""

from batchsubmit.ledger.fold import (
    LedgerState,
    RunSpan,
    StatusEntry,
    fold,
    object_id,
    read_ledger,
)
from batchsubmit.ledger.records import (
    RECORD_EXTRAS,
    RECORD_FIELDS,
    RECORD_FIELDS_V2,
    check_record,
    deleted,
    encode,
    failed,
    job_status,
    run_finished,
    run_started,
    status,
    stopped,
    submitted,
    succeeded,
    timestamp,
    timestamp_ms,
)
from batchsubmit.ledger.settings import RunSettings
from batchsubmit.ledger.writer import LedgerWriter

__all__ = [
    "RECORD_EXTRAS",
    "RECORD_FIELDS",
    "RECORD_FIELDS_V2",
    "LedgerState",
    "LedgerWriter",
    "RunSettings",
    "RunSpan",
    "StatusEntry",
    "check_record",
    "deleted",
    "encode",
    "failed",
    "fold",
    "job_status",
    "object_id",
    "read_ledger",
    "run_finished",
    "run_started",
    "status",
    "stopped",
    "submitted",
    "succeeded",
    "timestamp",
    "timestamp_ms",
]

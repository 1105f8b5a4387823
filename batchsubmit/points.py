"""One row per point a ledger knows: the joblog behind ``batchsubmit status --points``. Pure.

:func:`point_rows` folds a :class:`~batchsubmit.ledger.LedgerState` into frozen
:class:`PointRow` values, sorted by index (then key); the command line renders them as a table,
JSON Lines, CSV or TSV (``commands/status.py``). A point is known once the ledger has a
``submitted`` or an outcome line for its key; points never sent are not rows.

Each row holds the point's ``outcome`` as the ledger's fold has it (``pending``: sent, outcome
unknown, whatever an earlier outcome said), the ``version_id`` of a succeeded point, the last
training ``status`` name ``batchsubmit watch`` recorded for that version (None: never watched),
the ``error_code`` of a failed point (grouped as ``status`` groups failures: the service's code,
else ``HTTP <status>``, else ``transport``), the ``attempts`` seen for it, and its
``parameters``: from its last outcome line (``failed`` lines written before they gained
``parameter``, and points sent but never answered, have none).

Parameters become columns named by their label (:func:`parameter_columns`); a label that would
take the name of a fixed column (``key``, ``status``, ...) is written ``param.<label>`` instead.

A v2 ledger's rows (``api`` "v2") carry the ``training_job_id`` and ``job_name`` of a succeeded
point in place of ``version_id``, and the last *phase* ``watch`` recorded (``Completed``...) as
their status: their columns are :data:`FIELDS_V2` (:func:`fields_of`), ``phase`` for ``status``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from batchsubmit.ledger import LedgerState
from batchsubmit.ledger.records import Outcome
from batchsubmit.summary import failure_code

__all__ = [
    "FIELDS",
    "FIELDS_V2",
    "OUTCOMES",
    "PARAM_PREFIX",
    "PointRow",
    "fields_of",
    "parameter_columns",
    "parameter_labels",
    "parameter_pairs",
    "point_rows",
]

#: The fixed columns, in order; the parameter columns go between ``key`` and ``outcome``.
FIELDS: Final = ("index", "key", "outcome", "version_id", "status", "error_code", "attempts")
#: The fixed columns of a v2 ledger's rows.
FIELDS_V2: Final = (
    "index", "key", "outcome", "training_job_id", "job_name", "phase", "error_code", "attempts",
)
OUTCOMES: Final[tuple[Outcome, ...]] = ("succeeded", "failed", "pending")
PARAM_PREFIX: Final = "param."  # before a label that would collide with a fixed column

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PointRow:
    """What the ledger says about one point."""

    index: int
    key: str
    parameters: tuple[Pair, ...]  # (label, value) in the order the point sent them
    outcome: Outcome
    version_id: int | None  # succeeded points only
    status: str | None  # the last training status recorded by `batchsubmit watch`, if any
    error_code: str | None  # failed points only: code, "HTTP <status>" or "transport"
    attempts: int  # the highest attempt the ledger records for the point
    training_job_id: str | None = None  # v2, succeeded points only
    job_name: str | None = None  # v2, succeeded points only
    api: str = "v1"  # the ledger's: "v2" rows have training jobs and phases

    def as_dict(self) -> dict[str, Any]:
        """The row as one JSON object: the fixed fields, ``parameters`` as label -> value
        (for v2: ``training_job_id``, ``job_name`` and ``phase`` in place of ``version_id``
        and ``status``)."""
        if self.api == "v2":
            return {
                "index": self.index,
                "key": self.key,
                "parameters": dict(self.parameters),
                "outcome": self.outcome,
                "training_job_id": self.training_job_id,
                "job_name": self.job_name,
                "phase": self.status,
                "error_code": self.error_code,
                "attempts": self.attempts,
            }
        return {
            "index": self.index,
            "key": self.key,
            "parameters": dict(self.parameters),
            "outcome": self.outcome,
            "version_id": self.version_id,
            "status": self.status,
            "error_code": self.error_code,
            "attempts": self.attempts,
        }


def parameter_pairs(parameter: object, memo: dict[Pair, Pair] | None = None) -> tuple[Pair, ...]:
    """A record's ``parameter`` list as (label, value) pairs; malformed entries are left out.

    ``memo`` shares one tuple per distinct pair among the points of a large ledger.
    """
    if not isinstance(parameter, list):
        return ()
    out = []
    for entry in parameter:
        if isinstance(entry, dict) and isinstance(entry.get("label"), str) and "value" in entry:
            pair = (entry["label"], str(entry["value"]))
            out.append(pair if memo is None else memo.setdefault(pair, pair))
    return tuple(out)


def fields_of(api: str) -> tuple[str, ...]:
    """The fixed columns of a ledger of that API (``"v1"``: :data:`FIELDS`)."""
    return FIELDS_V2 if api == "v2" else FIELDS


def point_rows(state: LedgerState, outcomes: Collection[str] | None = None) -> list[PointRow]:
    """Every point the ledger knows, by index then key; only those with ``outcomes`` if given."""
    memo: dict[Pair, Pair] = {}
    rows = []
    api = state.settings.api if state.settings is not None else "v1"
    for key in state.outcomes.keys() | state.pending.keys():
        outcome = state.status(key)
        if outcome is None or (outcomes is not None and outcome not in outcomes):
            continue
        rows.append(_row(state, key, outcome, memo, api))
    rows.sort(key=lambda row: (row.index, row.key))
    return rows


def _row(
    state: LedgerState, key: str, outcome: Outcome, memo: dict[Pair, Pair], api: str
) -> PointRow:
    record = state.outcomes.get(key)  # when pending: the outcome before it was sent again
    sent = state.pending.get(key)
    index = (sent or record or {}).get("index", -1)
    entry = state.training_status(key)
    created = record if outcome == "succeeded" and record else {}
    return PointRow(
        index=index,
        key=key,
        parameters=parameter_pairs(record.get("parameter") if record else None, memo),
        outcome=outcome,
        version_id=created.get("version_id"),
        status=entry.status_name if entry is not None else None,
        error_code=failure_code(record) if outcome == "failed" and record else None,
        attempts=state.attempts.get(key, 0),
        training_job_id=created.get("training_job_id"),
        job_name=created.get("job_name"),
        api=api,
    )


def parameter_labels(rows: Iterable[PointRow]) -> list[str]:
    """Every parameter label of the rows, in the order they first appear."""
    seen: dict[str, None] = {}
    for row in rows:
        for label, _ in row.parameters:
            seen.setdefault(label, None)
    return list(seen)


def parameter_columns(labels: Iterable[str], api: str = "v1") -> Mapping[str, str]:
    """Label -> its column name: the label itself, or ``param.<label>`` when that would collide
    with a fixed column (or with another column already named so)."""
    taken = set(fields_of(api))
    columns: dict[str, str] = {}
    for label in labels:
        name = label
        while name in taken:
            name = PARAM_PREFIX + name
        taken.add(name)
        columns[label] = name
    return columns

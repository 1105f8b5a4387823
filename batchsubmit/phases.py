"""What a training status means, for both APIs: the one owner of "terminal", "success" and
"stopped" that ``watch``, ``status``, ``report`` and ``stop`` ask. Pure.

A v1 version's status is an int code (:class:`~batchsubmit.models.JobStatus`); a v2 training
job's is its phase, a string (``v2-training-jobs.md`` section 5): Completed is the only success,
Failed and Abnormal are failures, Terminated is stopped (by a user or ``auto_stop``); Creating,
Pending, Running, Terminating are active, and so is a phase this version does not know. A
ledger's ``status_name`` is either kind's name: v1 names are upper case (``COMPLETED``), v2
phases capitalised (``Completed``), so the two never collide.
"""

from __future__ import annotations

from typing import Final, Literal

from batchsubmit.models import JobStatus

__all__ = [
    "ACTIVE_PHASES",
    "FAILED_PHASES",
    "STOPPED_PHASES",
    "SUCCESS_PHASE",
    "TERMINAL_PHASES",
    "Verdict",
    "is_known_phase",
    "is_success",
    "is_terminal",
    "name_of",
    "verdict",
    "verdict_of_name",
]

Verdict = Literal["succeeded", "failed", "stopped", "active"]

#: Phases after which a job changes no more (section 5, our reading); Completed the one success.
TERMINAL_PHASES: Final = frozenset({"Completed", "Failed", "Terminated", "Abnormal"})
SUCCESS_PHASE: Final = "Completed"
STOPPED_PHASES: Final = frozenset({"Terminated"})
FAILED_PHASES: Final = TERMINAL_PHASES - {SUCCESS_PHASE} - STOPPED_PHASES  # Failed, Abnormal
ACTIVE_PHASES: Final = frozenset({"Creating", "Pending", "Running", "Terminating"})


def name_of(status: int | str) -> str:
    """``RUNNING`` for the v1 code 8 (``STATUS_<code>`` when unknown); a v2 phase as it is."""
    return status if isinstance(status, str) else JobStatus.name_of(status)


def is_terminal(status: int | str) -> bool:
    """The status will not change any more (an unknown code or phase: assumed not final)."""
    if isinstance(status, str):
        return status in TERMINAL_PHASES
    return JobStatus.is_terminal_code(status)


def is_success(status: int | str) -> bool:
    """A terminal status that means the training finished well."""
    if isinstance(status, str):
        return status == SUCCESS_PHASE
    return JobStatus.is_success_code(status)


def is_known_phase(phase: str) -> bool:
    """A v2 phase of the contract's table (an unknown one is treated as active, and logged)."""
    return phase in TERMINAL_PHASES or phase in ACTIVE_PHASES


def verdict(status: int | str) -> Verdict:
    """How a training stands: v1 terminal statuses other than a success are failures (KILLED
    too, as v1 always counted them); a v2 Terminated job is ``stopped``."""
    if is_success(status):
        return "succeeded"
    if isinstance(status, str) and status in STOPPED_PHASES:
        return "stopped"
    return "failed" if is_terminal(status) else "active"


def verdict_of_name(name: str) -> Verdict:
    """:func:`verdict` of a recorded ``status_name``: a v1 name, a v2 phase, or neither
    (``STATUS_99``, a phase from the future: active)."""
    member = JobStatus.__members__.get(name)
    if member is not None:
        return verdict(int(member))
    return verdict(name)

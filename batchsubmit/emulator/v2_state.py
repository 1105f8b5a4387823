"""The v2 emulator's memory: training jobs (one per sweep point), their phases, their names.

As for a v1 version, a job's whole life is fixed when it is created (when search and detail
start to show it, how long it is Creating, Pending and Running, whether it ends Completed, Failed
or Abnormal), so its phase at any instant is a pure function of the clock. Terminate and delete
record an instant; the phase, the visibility and whether the name is free follow from it.
Ground truth keeps every job ever created, hidden by lag or deleted too, with the body as sent.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

CREATING, PENDING, RUNNING, TERMINATING = "Creating", "Pending", "Running", "Terminating"
COMPLETED, FAILED, TERMINATED, ABNORMAL = "Completed", "Failed", "Terminated", "Abnormal"
ACTIVE = frozenset({CREATING, PENDING, RUNNING, TERMINATING})
TERMINABLE = frozenset({CREATING, PENDING, RUNNING})
SECONDARY = {
    CREATING: "Creating",
    PENDING: "Queuing",
    RUNNING: "Running",
    TERMINATING: "Terminating",
    COMPLETED: "Completed",
    FAILED: "Failed",
    TERMINATED: "Terminated",
    ABNORMAL: "CreateFailed",
}


@dataclass(frozen=True, slots=True)
class JobLife:
    """How a new job will live: decided by the app from the config and its seeded RNG."""

    lag_ms: int  # search and detail show it from create_time + lag_ms
    creating_ms: int
    pending_ms: int
    running_ms: int
    outcome: str  # COMPLETED, FAILED (after running) or ABNORMAL (at the end of Creating)


@dataclass(slots=True)
class TrainingJob:
    """One v2 training job: the body as sent, its id, its fixed life and what was done to it."""

    job_id: str  # metadata.id, a UUID string
    seq: int  # creation order, for ground truth
    name: str
    workspace_id: str
    body: dict[str, Any]  # the create request exactly as sent
    create_time: int  # ms since the epoch
    visible_at: int
    creating_ms: int
    pending_ms: int
    running_ms: int
    outcome: str
    request_id: str | None = None
    ambiguous: str | None = None  # the fault kind that hid this creation's reply, if any
    terminated_at: int | None = None
    terminating_ms: int = 0
    deleted_at: int | None = None
    delete_lag_ms: int = 0

    @property
    def natural_end(self) -> int:
        """When it would end untouched (ms): after Creating if Abnormal, else after Running."""
        if self.outcome == ABNORMAL:
            return self.create_time + self.creating_ms
        return self.create_time + self.creating_ms + self.pending_ms + self.running_ms

    def phase(self, now: int) -> str:
        """``status.phase`` at ``now`` (ms)."""
        stop = self.terminated_at
        if stop is not None and stop < self.natural_end and now >= stop:
            return TERMINATING if now < stop + self.terminating_ms else TERMINATED
        elapsed = now - self.create_time
        if elapsed < self.creating_ms:
            return CREATING
        if self.outcome == ABNORMAL:
            return ABNORMAL
        if elapsed < self.creating_ms + self.pending_ms:
            return PENDING
        if elapsed < self.creating_ms + self.pending_ms + self.running_ms:
            return RUNNING
        return self.outcome

    def start_time(self, now: int) -> int:
        """When it started Running (ms), or 0 if it has not (yet, or ever)."""
        start = self.create_time + self.creating_ms + self.pending_ms
        stopped_before = self.terminated_at is not None and self.terminated_at < start
        if self.outcome == ABNORMAL or now < start or stopped_before:
            return 0
        return start

    def duration(self, now: int) -> int:
        """Milliseconds spent Running so far."""
        start = self.start_time(now)
        if not start:
            return 0
        end = min(now, start + self.running_ms)
        if self.terminated_at is not None:
            end = min(end, self.terminated_at)
        return max(0, end - start)

    def gone(self, now: int) -> bool:
        """Whether a delete has finished: no call finds it any more (2775)."""
        return self.deleted_at is not None and now >= self.deleted_at + self.delete_lag_ms

    def visible(self, now: int) -> bool:
        """Whether search and detail show it: past its search lag, not gone after a delete."""
        return now >= self.visible_at and not self.gone(now)

    def holds_name(self, now: int, reuse: str) -> bool:
        """Whether its name still blocks a new job's (``reuse``: the v2_name_reuse switch)."""
        if self.deleted_at is None or reuse == "never":
            return True
        return reuse != "immediately" and not self.gone(now)

    def render(self, now: int) -> dict[str, Any]:
        """The job object as create, detail, search and terminate return it (section 2)."""
        body = self.body
        metadata: dict[str, Any] = copy.deepcopy(body["metadata"])
        metadata.update(id=self.job_id, workspace_id=self.workspace_id)
        metadata.update(create_time=self.create_time, user_name="")
        spec: dict[str, Any] = copy.deepcopy(body["spec"])
        resource = spec["resource"]
        resource.setdefault("node_count", 1)
        resource.setdefault("policy", "regular")
        phase = self.phase(now)
        out: dict[str, Any] = {
            "kind": body["kind"],
            "metadata": metadata,
            "status": {
                "phase": phase,
                "secondary_phase": SECONDARY[phase],
                "duration": self.duration(now),
                "start_time": self.start_time(now),
                "tasks": [f"worker-{i}" for i in range(resource["node_count"])],
                "node_count_metrics": None,
                "task_statuses": [],
                "running_records": [],
            },
            "algorithm": copy.deepcopy(body["algorithm"]),
            "spec": spec,
        }
        if "endpoints" in body:
            out["endpoints"] = copy.deepcopy(body["endpoints"])
        return out

    def ground_truth(self, now: int) -> dict[str, Any]:
        """Everything known about the job, for tests and /_admin/state."""
        return {
            "id": self.job_id,
            "name": self.name,
            "workspace_id": self.workspace_id,
            "phase": self.phase(now),
            "create_time": self.create_time,
            "visible_at": self.visible_at,
            "visible": self.visible(now),
            "deleted": self.deleted_at is not None,
            "deleted_at": self.deleted_at,
            "terminated_at": self.terminated_at,
            "outcome": self.outcome,
            "request_id": self.request_id,
            "ambiguous": self.ambiguous,
            "body": copy.deepcopy(self.body),
        }


class V2Jobs:
    """Every v2 job by id, in creation order; persisted under the state file's ``v2_jobs`` key."""

    def __init__(self) -> None:
        self.by_id: dict[str, TrainingJob] = {}
        self._by_name: dict[str, list[TrainingJob]] = {}  # keyed by name.casefold()

    def __len__(self) -> int:
        return len(self.by_id)

    def ordered(self) -> list[TrainingJob]:
        """All jobs, oldest first."""
        return sorted(self.by_id.values(), key=lambda job: job.seq)

    def named(self, name: str) -> list[TrainingJob]:
        """Jobs whose name equals ``name`` ignoring case (callers narrow it further)."""
        return self._by_name.get(name.casefold(), [])

    def _index(self, job: TrainingJob) -> None:
        self.by_id[job.job_id] = job
        self._by_name.setdefault(job.name.casefold(), []).append(job)

    def add(
        self, job_id: str, body: dict[str, Any], now: int, life: JobLife, request_id: str
    ) -> TrainingJob:
        """Record a new job created from ``body`` (kept as sent) at ``now``."""
        metadata = body["metadata"]
        job = TrainingJob(
            job_id=job_id,
            seq=len(self.by_id) + 1,
            name=metadata["name"],
            workspace_id=metadata.get("workspace_id", "0"),
            body=copy.deepcopy(body),
            create_time=now,
            visible_at=now + life.lag_ms,
            creating_ms=life.creating_ms,
            pending_ms=life.pending_ms,
            running_ms=life.running_ms,
            outcome=life.outcome,
            request_id=request_id,
        )
        self._index(job)
        return job

    def to_json(self) -> list[dict[str, Any]]:
        """The jobs as JSON-ready dicts (the state file's ``v2_jobs``)."""
        return [asdict(job) for job in self.ordered()]

    @classmethod
    def from_json(cls, rows: list[dict[str, Any]]) -> V2Jobs:
        """The inverse of :meth:`to_json`."""
        jobs = cls()
        for raw in rows:
            jobs._index(TrainingJob(**raw))
        return jobs

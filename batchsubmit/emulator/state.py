"""The emulator's memory: jobs, versions, ids, simulated status, and the optional state file.

A version's whole life is fixed when it is created (when it becomes visible to lists, how long it
initialises and runs, whether it ends COMPLETED or FAILED), so its status at any instant is a pure
function of the clock: tests step a fake clock instead of waiting. Ground truth (every version
ever created, visible or not, deleted or not) is kept for tests to compare a client's ledger with.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from batchsubmit.emulator.v2_state import V2Jobs

INIT, RUNNING, COMPLETED, FAILED, KILLED = 1, 8, 10, 11, 12
STATE_FORMAT = "batchsubmit-emulator-state/1"
ENGINES = {
    1: ("TensorFlow", "TF-1.8.0-python2.7"),
    2: ("MXNet", "MXNet-1.2.1-python2.7"),
    3: ("Caffe", "Caffe-1.0.0-python2.7"),
    4: ("Spark_MLlib", "Spark-2.3.2-python2.7"),
    5: ("PyTorch", "PyTorch-1.8.0-python3.7"),
}
VERSION_CONFIG_FIELDS = (
    "app_url",
    "boot_file_url",
    "parameter",
    "spec_id",
    "pool_id",
    "worker_server_num",
    "data_url",
    "dataset_id",
    "dataset_version_id",
    "data_source",
    "model_id",
    "engine_id",
    "train_url",
    "log_url",
    "user_image_url",
    "user_command",
)


@dataclass(slots=True)
class Version:
    """One training-job version, with its simulated life decided at creation."""

    version_id: int
    job_id: int
    version_name: str
    pre_version_id: int | None
    job_desc: str | None
    config: dict[str, Any]
    create_time: int  # ms since the epoch
    visible_at: int  # ms: lists and detail show the version from then on
    init_ms: int
    run_ms: int
    outcome: int  # COMPLETED or FAILED, reached at create_time + init_ms + run_ms
    stopped_at: int | None = None
    deleted: bool = False
    request_id: str | None = None
    ambiguous: str | None = None  # the fault kind that hid this creation's reply, if any

    def status(self, now: int) -> int:
        """The status code at ``now`` (ms)."""
        end = self.create_time + self.init_ms + self.run_ms
        if self.stopped_at is not None and self.stopped_at < end:
            return KILLED
        elapsed = now - self.create_time
        if elapsed < self.init_ms:
            return INIT
        if elapsed < self.init_ms + self.run_ms:
            return RUNNING
        return self.outcome

    def start_time(self, now: int) -> int:
        """When it left INIT (ms), or 0 if it has not (yet)."""
        start = self.create_time + self.init_ms
        if now < start or (self.stopped_at is not None and self.stopped_at < start):
            return 0
        return start

    def duration(self, now: int) -> int:
        """Milliseconds spent running so far."""
        start = self.start_time(now)
        if not start:
            return 0
        end = min(now, start + self.run_ms)
        if self.stopped_at is not None:
            end = min(end, self.stopped_at)
        return max(0, end - start)

    def visible(self, now: int) -> bool:
        """Whether lists and detail show it at ``now``."""
        return not self.deleted and now >= self.visible_at

    def render(self, now: int) -> dict[str, Any]:
        """The version as list and detail return it."""
        engine_id = self.config.get("engine_id", 1 if "app_url" in self.config else None)
        engine: tuple[str | None, str | None] = (None, None)
        if engine_id is not None:
            engine = ENGINES.get(engine_id, ("Custom", f"engine-{engine_id}"))
        out: dict[str, Any] = {
            "version_id": self.version_id,
            "version_name": self.version_name,
            "pre_version_id": self.pre_version_id,
            "status": self.status(now),
            "create_time": self.create_time,
            "duration": self.duration(now),
            "start_time": self.start_time(now),
        }
        for name in VERSION_CONFIG_FIELDS:
            out[name] = self.config.get(name)
        out["parameter"] = self.config.get("parameter", [])
        out["engine_id"] = engine_id
        out["engine_name"], out["engine_version"] = engine
        return out

    def ground_truth(self, now: int) -> dict[str, Any]:
        """Everything known about the version, for tests and /_admin/state."""
        out: dict[str, Any] = dict.fromkeys(VERSION_CONFIG_FIELDS)
        out["parameter"] = []
        out.update(self.config)
        out.update(
            version_id=self.version_id,
            job_id=self.job_id,
            version_name=self.version_name,
            pre_version_id=self.pre_version_id,
            job_desc=self.job_desc,
            status=self.status(now),
            create_time=self.create_time,
            visible_at=self.visible_at,
            deleted=self.deleted,
            request_id=self.request_id,
            ambiguous=self.ambiguous,
        )
        return out


@dataclass(slots=True)
class Job:
    """A training job: a name, a description and an ordered list of version ids."""

    job_id: int
    job_name: str
    job_desc: str | None
    create_time: int
    version_ids: list[int] = field(default_factory=list)
    versions_created: int = 0  # names V0001.. are never reused, even after a delete


@dataclass(frozen=True, slots=True)
class Life:
    """How a new version will live: decided by the app from the config and its seeded RNG."""

    lag_ms: int
    init_ms: int
    run_ms: int
    outcome: int


class State:
    """Jobs and versions in memory, with a global id counter above every id ever used."""

    def __init__(self) -> None:
        self.jobs: dict[int, Job] = {}
        self.versions: dict[int, Version] = {}
        self.v2 = V2Jobs()  # the v2 API's training jobs (v2_state.py)
        self.next_id = 1
        self.revision = 0  # bumped on every change; the saver compares it with the saved one

    @classmethod
    def seeded(cls, jobs: dict[int, int], now: int) -> State:
        """Jobs ``job-<id>`` each with one COMPLETED version V0001 of the given id."""
        state = cls()
        for job_id, version_id in sorted(jobs.items()):
            job = Job(job_id, f"job-{job_id}", None, now)
            state.jobs[job_id] = job
            config = {
                "worker_server_num": 1,
                "app_url": f"/bucket/job-{job_id}/code/",
                "boot_file_url": f"/bucket/job-{job_id}/code/train.py",
                "data_url": f"/bucket/job-{job_id}/data/",
                "spec_id": 1,
                "engine_id": 1,
                "train_url": f"/bucket/job-{job_id}/output/V0001/",
                "parameter": [],
            }
            life = Life(0, 0, 0, COMPLETED)
            state._add_version(job, None, None, config, now, life, None, version_id=version_id)
        state.next_id = max([*jobs, *jobs.values(), 0]) + 1
        return state

    def _take_id(self) -> int:
        new_id = self.next_id
        self.next_id += 1
        return new_id

    def _add_version(
        self,
        job: Job,
        pre_version_id: int | None,
        job_desc: str | None,
        config: dict[str, Any],
        now: int,
        life: Life,
        request_id: str | None,
        *,
        version_id: int | None = None,
    ) -> Version:
        job.versions_created += 1
        version = Version(
            version_id=self._take_id() if version_id is None else version_id,
            job_id=job.job_id,
            version_name=f"V{job.versions_created:04d}",
            pre_version_id=pre_version_id,
            job_desc=job_desc,
            config=config,
            create_time=now,
            visible_at=now + life.lag_ms,
            init_ms=life.init_ms,
            run_ms=life.run_ms,
            outcome=life.outcome,
            request_id=request_id,
        )
        self.versions[version.version_id] = version
        job.version_ids.append(version.version_id)
        self.revision += 1
        return version

    def create_job(
        self, name: str, desc: str | None, config: dict[str, Any], now: int, life: Life, rid: str
    ) -> tuple[Job, Version]:
        """A new job with its first version V0001."""
        job = Job(self._take_id(), name, desc, now)
        self.jobs[job.job_id] = job
        version = self._add_version(job, None, desc, config, now, life, rid)
        return job, version

    def create_version(
        self, job: Job, desc: str | None, config: dict[str, Any], now: int, life: Life, rid: str
    ) -> Version:
        """A new version of ``job``; a given job_desc also becomes the job's description."""
        if desc is not None:
            job.job_desc = desc
        return self._add_version(job, config["pre_version_id"], desc, config, now, life, rid)

    def live_versions(self, job_id: int) -> list[Version]:
        """Versions of a job that are not deleted, visible or not (oldest first)."""
        versions = (self.versions[v] for v in self.jobs[job_id].version_ids)
        return [v for v in versions if not v.deleted]

    def visible_versions(self, job_id: int, now: int) -> list[Version]:
        """What list-versions shows: not deleted, past their lag, newest first."""
        versions = (self.versions[v] for v in reversed(self.jobs[job_id].version_ids))
        return [v for v in versions if v.visible(now)]

    def stop(self, version: Version, now: int) -> None:
        """Kill a version that has not ended; stopping an ended one changes nothing."""
        if version.stopped_at is None and version.status(now) in (INIT, RUNNING):
            version.stopped_at = now
            self.revision += 1

    def delete(self, version: Version) -> None:
        """Hide a version from lists for good; ground truth keeps it, marked deleted."""
        version.deleted = True
        self.revision += 1

    # --- persistence ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Everything needed to resume after a restart."""
        return {
            "format": STATE_FORMAT,
            "next_id": self.next_id,
            "jobs": [asdict(job) for job in self.jobs.values()],
            "versions": [asdict(version) for version in self.versions.values()],
            "v2_jobs": self.v2.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        """The inverse of :meth:`to_json`; ValueError on a file of another format.

        ``v2_jobs`` is optional: a file written before the v2 API existed loads with none.
        """
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"not an emulator state file (format {data.get('format')!r})")
        state = cls()
        state.next_id = int(data["next_id"])
        for raw in data["jobs"]:
            job = Job(**raw)
            state.jobs[job.job_id] = job
        for raw in data["versions"]:
            version = Version(**raw)
            state.versions[version.version_id] = version
        state.v2 = V2Jobs.from_json(data.get("v2_jobs", []))
        return state

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, fsynced, then renamed."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self.to_json(), out, separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> State:
        """Read a state file written by :meth:`save`; ValueError names the path if damaged."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: damaged emulator state file: {exc}") from exc

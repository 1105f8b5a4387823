"""Handlers of the v2 training-job endpoints (v2-training-jobs.md); the gate in ``app.py`` has run.

One training job per sweep point: create (201), search, detail, terminate (202), delete (202).
Reads (search, detail) see a job only after its search lag and until its delete lag ends; writes
see the truth at once. The duplicate-name check (400 ``ModelArts.2751``) follows the section-7
switches: uniqueness scope, case, reuse after delete and a race window. Creates get the same
faults as v1's: a 500 before anything is created, and ambiguous commits (500, reset, stall)
after the job exists. Failures answer ``{error_code, error_msg[, error_solution]}`` (section 6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from batchsubmit.emulator.api import REQUEST_ID
from batchsubmit.emulator.config import EmulatorConfig
from batchsubmit.emulator.state import State
from batchsubmit.emulator.v2_search import matches, page, validate_search
from batchsubmit.emulator.v2_state import ACTIVE, TERMINABLE, JobLife, TrainingJob
from batchsubmit.emulator.v2_validation import V2Rejection, validate_action, validate_create
from batchsubmit.emulator.validation import Rejection, parse_json_object
from batchsubmit.events import get_logger

log = get_logger("batchsubmit.emulator")

JOBS = "/v2/{project_id}/training-jobs"
SEARCHES = "/v2/{project_id}/training-job-searches"
JOB = JOBS + "/{training_job_id}"
V2_COUNTERS = ("v2_creates", "v2_searches", "v2_details", "v2_terminates", "v2_deletes")


class V2Host(Protocol):
    """What the v2 handlers need of the emulator (``app.Emulator``)."""

    state: State

    @property
    def config(self) -> EmulatorConfig: ...
    def now_ms(self) -> int: ...
    def count(self, name: str, n: int = 1) -> None: ...
    def changed(self) -> None: ...
    def new_v2_id(self) -> str: ...
    def new_v2_life(self) -> JobLife: ...
    def inject_500(self, request: web.Request, *, create: bool) -> None: ...
    async def hide_reply(
        self, request: web.Request, mark: Callable[[str], None], error_500: Exception,
        **fields: object,
    ) -> None: ...


def v2_error_response(rejection: Rejection, request_id: str) -> web.Response:
    """The v2 failure body (no ``is_success``); gateway errors keep the gateway's shape."""
    body: dict[str, Any] = {"error_code": rejection.error_code, "error_msg": rejection.message}
    if rejection.gateway:
        body["request_id"] = request_id
    elif isinstance(rejection, V2Rejection) and rejection.solution is not None:
        body["error_solution"] = rejection.solution
    return web.json_response(body, status=rejection.status)


class V2Api:
    """The /v2/{project_id}/training-jobs endpoints, bound to one emulator."""

    def __init__(self, emulator: V2Host) -> None:
        self.emu = emulator

    def register(self, router: web.UrlDispatcher) -> None:
        """Add every route; the collection paths also accept a trailing slash."""
        for path in (JOBS, JOBS + "/"):
            router.add_post(path, self.create)
        for path in (SEARCHES, SEARCHES + "/"):
            router.add_post(path, self.search)
        router.add_get(JOB, self.detail)
        router.add_delete(JOB, self.delete)
        router.add_post(JOB + "/actions", self.terminate)

    # --- create -------------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        """Create a job: validate, refuse a taken name or a full quota, create, maybe hide it."""
        emu = self.emu
        emu.inject_500(request, create=True)
        body = validate_create(parse_json_object(await request.read()))
        now = emu.now_ms()
        metadata = body["metadata"]
        name, workspace = metadata["name"], metadata.get("workspace_id", "0")
        if self._name_taken(name, workspace, now):
            raise V2Rejection(
                400,
                "ModelArts.2751",
                f"Duplicate training job (name {name}).",
                solution="Change training job name.",
            )
        self._check_quota(now)
        job = emu.state.v2.add(emu.new_v2_id(), body, now, emu.new_v2_life(), request[REQUEST_ID])
        emu.state.revision += 1
        emu.count("v2_creates")
        emu.changed()
        log.debug("batchsubmit.emulator.v2_job_created", job_id=job.job_id, name=name)
        reply = web.json_response(job.render(now), status=201)
        await emu.hide_reply(
            request, lambda kind: setattr(job, "ambiguous", kind),
            V2Rejection(500, "ModelArts.0010", "internal error"), training_job_id=job.job_id,
        )
        return reply

    def _name_taken(self, name: str, workspace: str, now: int) -> bool:
        """Whether a job holds the name, by the scope, case, reuse and race-window switches."""
        config = self.emu.config
        window = round(config.v2_race_window * 1000)
        for job in self.emu.state.v2.named(name):
            if config.v2_name_case == "sensitive" and job.name != name:
                continue
            if config.v2_name_scope == "workspace" and job.workspace_id != workspace:
                continue
            if now - job.create_time < window:  # not yet committed when this create checked
                continue
            if job.holds_name(now, config.v2_name_reuse):
                return True
        return False

    def _check_quota(self, now: int) -> None:
        quota = self.emu.config.v2_quota
        if quota is None:
            return
        active = sum(
            1
            for job in self.emu.state.v2.by_id.values()
            if not job.gone(now) and job.phase(now) in ACTIVE
        )
        if active >= quota:
            raise V2Rejection(
                400,
                "ModelArts.2815",
                f"Exceed quota limit of resource(training jobs: {active} active of {quota}).",
                solution="Wait for running jobs to end, or terminate some.",
            )

    # --- reads --------------------------------------------------------------------------------
    async def search(self, request: web.Request) -> web.Response:
        """Visible jobs filtered, sorted (ties by id) and paged by the offset and count switches."""
        emu, config = self.emu, self.emu.config
        emu.inject_500(request, create=False)
        query = validate_search(
            parse_json_object(await request.read()),
            default_limit=config.v2_default_limit,
            clamp=config.v2_limit_range == "clamp",
        )
        emu.count("v2_searches")
        now = emu.now_ms()
        scope = [
            job
            for job in emu.state.v2.by_id.values()
            if job.visible(now) and query.workspace_id in (None, job.workspace_id)
        ]
        found = sorted(
            (
                job
                for job in scope
                if all(matches(job, f, now, config.v2_like) for f in query.filters)
            ),
            key=lambda job: job.job_id,
        )
        if query.sort_by == "name":
            found.sort(key=lambda job: job.name, reverse=query.order == "desc")
        else:
            found.sort(key=lambda job: job.create_time, reverse=query.order == "desc")
        items = page(query, found, config.v2_offset)
        return web.json_response(
            {
                "total": len(scope),
                "count": len(found) if config.v2_count == "matching" else len(items),
                "limit": query.limit,
                "offset": query.offset,
                "sort_by": query.sort_by,
                "order": query.order,
                "group_by": query.group_by,
                "workspace_id": query.workspace_id or "0",
                "ai_project": "default-ai-project",
                "items": [job.render(now) for job in items],
            }
        )

    def _job(self, request: web.Request, *, visible_only: bool) -> TrainingJob:
        job_id = request.match_info["training_job_id"]
        job = self.emu.state.v2.by_id.get(job_id)
        now = self.emu.now_ms()
        if job is None or job.gone(now) or (visible_only and not job.visible(now)):
            raise V2Rejection(400, "ModelArts.2775", f"Training job (ID: {job_id}) not found.")
        return job

    async def detail(self, request: web.Request) -> web.Response:
        """One visible job object."""
        self.emu.inject_500(request, create=False)
        job = self._job(request, visible_only=True)
        self.emu.count("v2_details")
        return web.json_response(job.render(self.emu.now_ms()))

    # --- writes -------------------------------------------------------------------------------
    async def terminate(self, request: web.Request) -> web.Response:
        """Terminate a Creating, Pending or Running job (202, Terminating); else 409 2796."""
        emu = self.emu
        validate_action(parse_json_object(await request.read()))
        job = self._job(request, visible_only=False)
        now = emu.now_ms()
        phase = job.phase(now)
        if phase not in TERMINABLE:
            raise V2Rejection(
                409,
                "ModelArts.2796",
                f"NotAllowedToTerminate: training job {job.job_id} is {phase}; only Creating, "
                "Pending or Running jobs can be terminated",
            )
        self._stop(job, now)
        emu.count("v2_terminates")
        emu.changed()
        return web.json_response(job.render(now), status=202)

    def _stop(self, job: TrainingJob, now: int) -> None:
        job.terminated_at = now
        job.terminating_ms = round(self.emu.config.v2_terminating_seconds * 1000)
        self.emu.state.revision += 1

    async def delete(self, request: web.Request) -> web.Response:
        """Delete (202, empty body): an active job is terminated; gone after the delete lag."""
        emu = self.emu
        job = self._job(request, visible_only=False)
        now = emu.now_ms()
        if job.deleted_at is None:
            if job.phase(now) in TERMINABLE:
                self._stop(job, now)
            job.deleted_at = now
            job.delete_lag_ms = round(emu.config.v2_delete_lag * 1000)
            emu.state.revision += 1
            emu.changed()
        emu.count("v2_deletes")
        return web.Response(status=202)

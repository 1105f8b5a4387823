"""Handlers of the v1 training-job endpoints; the gate in ``app.py`` has already run.

Reads (list, detail) see a version only after its list lag; writes (create with a
pre_version_id, stop, delete) see the truth at once, as an eventually consistent service would.
Job existence is checked after body validation, so a bad body to an unknown job is a 400 about
the body. What reads return passes through ``drift.py`` (numbers, order, added labels, OBS paths,
page caps), so the emulator can disagree with the client the way the real service may.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from batchsubmit.emulator.config import EmulatorConfig
from batchsubmit.emulator.drift import drift_version, page_bounds
from batchsubmit.emulator.state import Job, Life, State, Version
from batchsubmit.emulator.validation import (
    MAX_DESC,
    Rejection,
    invalid_argument,
    invalid_value,
    parse_json_object,
    validate_job_body,
    validate_version_body,
)
from batchsubmit.events import get_logger

log = get_logger("batchsubmit.emulator")


class Host(Protocol):
    """What the handlers need of the emulator (``app.Emulator``): its state, settings, clock,
    counters and fault dice. A protocol, so this module does not import ``app``."""

    state: State

    @property
    def config(self) -> EmulatorConfig: ...
    def now_ms(self) -> int: ...
    def count(self, name: str, n: int = 1) -> None: ...
    def changed(self) -> None: ...
    def new_life(self) -> Life: ...
    def inject_500(self, request: web.Request, *, create: bool) -> None: ...
    async def hide_reply(
        self, request: web.Request, mark: Callable[[str], None], error_500: Exception,
        **fields: object,
    ) -> None: ...


REQUEST_ID = web.RequestKey("request_id", str)
JOBS = "/v1/{project_id}/training-jobs"
VERSIONS = JOBS + "/{job_id}/versions"
VERSION = VERSIONS + "/{version_id}"
JOB_QUOTA = 1000
_INT = re.compile(r"-?[0-9]+")


def reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP RST and no reply (SO_LINGER 0, then abort)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    if not _INT.fullmatch(raw):
        raise invalid_argument(f"query {name}={raw!r} must be an integer; write e.g. {name}={low}")
    value = int(raw)
    if not low <= value <= high:
        raise invalid_value(f"query {name}={value} is out of range; use {low}..{high}")
    return value


def _path_id(request: web.Request, name: str, code: str, what: str) -> int:
    raw = request.match_info[name]
    if not _INT.fullmatch(raw):
        raise Rejection(400, code, f"{what} {raw!r} not found: {name} must be an integer")
    return int(raw)


class V1Api:
    """The /v1/{project_id}/training-jobs endpoints, bound to one emulator."""

    def __init__(self, emulator: Host) -> None:
        self.emu = emulator

    def register(self, router: web.UrlDispatcher) -> None:
        """Add every route; the collection paths also accept a trailing slash."""
        for path in (JOBS, JOBS + "/"):
            router.add_post(path, self.create_job)
            router.add_get(path, self.list_jobs)
        router.add_put(JOBS + "/{job_id}", self.update_job)
        for path in (VERSIONS, VERSIONS + "/"):
            router.add_post(path, self.create_version)
            router.add_get(path, self.list_versions)
        router.add_get(VERSION, self.detail)
        router.add_delete(VERSION, self.delete)
        router.add_post(VERSION + "/stop", self.stop)

    # --- lookups ------------------------------------------------------------------------------
    def _job(self, request: web.Request) -> Job:
        job_id = _path_id(request, "job_id", "ModelArts.2775", "training job")
        job = self.emu.state.jobs.get(job_id)
        if job is None:
            raise Rejection(
                400, "ModelArts.2775", f"training job {job_id} not found; list jobs to find its id"
            )
        return job

    def _version(self, request: web.Request, job: Job, *, visible_only: bool) -> Version:
        version_id = _path_id(request, "version_id", "ModelArts.4851", "version")
        version = self.emu.state.versions.get(version_id)
        if (
            version is None
            or version.job_id != job.job_id
            or version.deleted
            or (visible_only and not version.visible(self.emu.now_ms()))
        ):
            raise Rejection(
                400, "ModelArts.4851", f"version {version_id} of job {job.job_id} not found"
            )
        return version

    # --- creates ------------------------------------------------------------------------------
    async def create_version(self, request: web.Request) -> web.Response:
        """Create a version: validate, create, then maybe hide the outcome (ambiguous fault)."""
        emu = self.emu
        _path_id(request, "job_id", "ModelArts.2775", "training job")
        emu.inject_500(request, create=True)
        body = validate_version_body(
            parse_json_object(await request.read()), strict=emu.config.strict
        )
        job = self._job(request)
        pre_id = body.config["pre_version_id"]
        pre = emu.state.versions.get(pre_id)
        if pre is None or pre.job_id != job.job_id or pre.deleted:
            raise Rejection(
                400,
                "ModelArts.4851",
                f"config.pre_version_id {pre_id} is not a version of job {job.job_id}; use a "
                f"version_id from GET .../training-jobs/{job.job_id}/versions",
            )
        limit = emu.config.max_versions_per_job
        if limit is not None and len(emu.state.live_versions(job.job_id)) >= limit:
            raise Rejection(
                400,
                "ModelArts.0118",
                f"job {job.job_id} already has {limit} versions, the quota; delete old versions",
            )
        now = emu.now_ms()
        version = emu.state.create_version(
            job, body.job_desc, body.config, now, emu.new_life(), request[REQUEST_ID]
        )
        emu.count("creates")
        emu.changed()
        log.debug(
            "batchsubmit.emulator.version_created",
            job_id=job.job_id,
            version_id=version.version_id,
            request_id=request[REQUEST_ID],
        )
        reply = web.json_response(self._created(job, version, now))
        await emu.hide_reply(
            request, lambda kind: setattr(version, "ambiguous", kind),
            Rejection(500, "ModelArts.0010", "internal error"), version_id=version.version_id,
        )
        return reply

    @staticmethod
    def _created(job: Job, version: Version, now: int) -> dict[str, Any]:
        return {
            "is_success": True,
            "job_id": job.job_id,
            "job_name": job.job_name,
            "status": version.status(now),
            "create_time": version.create_time,
            "version_id": version.version_id,
            "version_name": version.version_name,
        }

    async def create_job(self, request: web.Request) -> web.Response:
        """Create a job with its first version V0001."""
        emu = self.emu
        emu.inject_500(request, create=True)
        body = validate_job_body(parse_json_object(await request.read()), strict=emu.config.strict)
        for job in emu.state.jobs.values():
            if job.job_name == body.job_name:
                raise invalid_value(
                    f"job_name {body.job_name!r} is taken by job {job.job_id}; choose another"
                )
        if len(emu.state.jobs) >= JOB_QUOTA:
            raise Rejection(400, "ModelArts.0118", f"the quota of {JOB_QUOTA} jobs is reached")
        now = emu.now_ms()
        job, version = emu.state.create_job(
            body.job_name, body.job_desc, body.config, now, emu.new_life(), request[REQUEST_ID]
        )
        emu.count("jobs_created")
        emu.changed()
        return web.json_response(self._created(job, version, now))

    async def update_job(self, request: web.Request) -> web.Response:
        """Change a job's description."""
        job = self._job(request)
        body = parse_json_object(await request.read())
        extra = sorted(set(body) - {"job_desc"})
        if extra:
            raise invalid_argument(f"unknown field {extra[0]}; only job_desc can be updated")
        desc = body.get("job_desc")
        if not isinstance(desc, str):
            raise invalid_argument("job_desc is required and must be a JSON string")
        if len(desc) > MAX_DESC:
            raise invalid_value(f"job_desc has {len(desc)} characters; shorten it to <= {MAX_DESC}")
        job.job_desc = desc
        self.emu.state.revision += 1
        self.emu.changed()
        return web.json_response({"is_success": True})

    # --- reads --------------------------------------------------------------------------------
    async def list_jobs(self, request: web.Request) -> web.Response:
        """Jobs newest first, ``page`` 1.. of ``per_page``; ``search_content`` filters names."""
        emu = self.emu
        emu.inject_500(request, create=False)
        per_page = _query_int(request, "per_page", 10, 1, 1000)
        page = _query_int(request, "page", 1, 1, 65535)
        search = request.query.get("search_content", "")
        emu.count("lists")
        now = emu.now_ms()
        jobs = sorted(
            (job for job in emu.state.jobs.values() if search in job.job_name),
            key=lambda job: (job.create_time, job.job_id),
            reverse=True,
        )
        rows = []
        for job in jobs[(page - 1) * per_page : page * per_page]:
            visible = emu.state.visible_versions(job.job_id, now)
            latest = visible[0] if visible else None
            rows.append(
                {
                    "job_id": job.job_id,
                    "job_name": job.job_name,
                    "version_id": latest.version_id if latest else None,
                    "status": latest.status(now) if latest else 0,
                    "create_time": job.create_time,
                    "duration": latest.duration(now) if latest else 0,
                    "job_desc": job.job_desc,
                    "version_count": len(visible),
                }
            )
        total = len(emu.state.jobs)
        return web.json_response(
            {
                "is_success": True,
                "job_total_count": total,
                "job_count_limit": max(0, JOB_QUOTA - total),
                "quotas": JOB_QUOTA,
                "jobs": rows,
            }
        )

    def _render(self, version: Version, now: int) -> dict[str, Any]:
        return drift_version(version.render(now), self.emu.config)

    async def list_versions(self, request: web.Request) -> web.Response:
        """Visible versions newest first; page 0 (default) = all, page 1 = the first page.

        ``max_per_page`` caps every page, page 0 too; ``version_count`` counts all visible.
        """
        emu = self.emu
        emu.inject_500(request, create=False)
        per_page = _query_int(request, "per_page", 10, 1, 1000)
        page = _query_int(request, "page", 0, 0, 65535)
        job = self._job(request)
        emu.count("lists")
        now = emu.now_ms()
        visible = emu.state.visible_versions(job.job_id, now)
        start, stop = page_bounds(page, per_page, emu.config)
        return web.json_response(
            {
                "is_success": True,
                "job_id": job.job_id,
                "job_name": job.job_name,
                "job_desc": job.job_desc,
                "version_count": len(visible),
                "versions": [self._render(version, now) for version in visible[start:stop]],
            }
        )

    async def detail(self, request: web.Request) -> web.Response:
        """One visible version as a flat object."""
        emu = self.emu
        emu.inject_500(request, create=False)
        job = self._job(request)
        version = self._version(request, job, visible_only=True)
        emu.count("details")
        body = {"is_success": True, "job_id": job.job_id, "job_name": job.job_name}
        body.update(self._render(version, emu.now_ms()))
        return web.json_response(body)

    # --- other writes -------------------------------------------------------------------------
    async def stop(self, request: web.Request) -> web.Response:
        """Kill a version that is initialising or running; an ended one is left as it is."""
        job = self._job(request)
        version = self._version(request, job, visible_only=False)
        self.emu.state.stop(version, self.emu.now_ms())
        self.emu.count("stops")
        self.emu.changed()
        return web.json_response({"is_success": True})

    async def delete(self, request: web.Request) -> web.Response:
        """Delete a version: gone from lists and detail, kept (marked) in ground truth."""
        job = self._job(request)
        version = self._version(request, job, visible_only=False)
        self.emu.state.delete(version)
        self.emu.count("deletes")
        self.emu.changed()
        return web.json_response({"is_success": True})

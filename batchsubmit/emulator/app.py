"""The emulator object: state, counters, faults, and the aiohttp application serving them.

Every API request passes one gate, in the gateway's order: authentication, project check,
throttling, latency; handlers (``api.py`` for v1, ``v2.py`` for v2) then inject 500s and
ambiguous outcomes. Failures are answered in the configured drift (``error_response``: gateway
prefix, message field, 4xx as 200); under ``/v2/`` in the v2 shape (``v2_error_response``). All
randomness comes from one RNG seeded by the config, so a fault run can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from batchsubmit.emulator.api import REQUEST_ID, V1Api, reset_connection
from batchsubmit.emulator.config import EmulatorConfig
from batchsubmit.emulator.signature import SignatureError, verify
from batchsubmit.emulator.state import COMPLETED, FAILED, Life, State
from batchsubmit.emulator.throttle import Throttle
from batchsubmit.emulator.v2 import V2_COUNTERS, V2Api, v2_error_response
from batchsubmit.emulator.v2_state import ABNORMAL, JobLife
from batchsubmit.emulator.v2_state import COMPLETED as V2_COMPLETED
from batchsubmit.emulator.v2_state import FAILED as V2_FAILED
from batchsubmit.emulator.validation import Rejection, parse_json_object
from batchsubmit.events import get_logger

log = get_logger("batchsubmit.emulator")

COUNTER_NAMES = (
    "requests",
    "creates",
    "jobs_created",
    "throttled",
    "faults_500",
    "ambiguous",
    "ambiguous_500",
    "ambiguous_reset",
    "ambiguous_stall",
    "auth_failures",
    "rejected",
    "lists",
    "details",
    "stops",
    "deletes",
    *V2_COUNTERS,
)
NOT_FOUND_MSG = "The API does not exist or has not been published in the environment"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    rejection: Rejection,
    request_id: str,
    *,
    error_field: str = "error_message",
    errors_200: bool = False,
) -> web.Response:
    """The JSON failure body: APIG shape for gateway errors, v1 shape for the service's.

    The service's own body names its message ``error_field`` (U7); with ``errors_200`` its 4xx
    answers carry HTTP 200, the body unchanged (U6). Gateway errors keep status and shape.
    """
    body: dict[str, Any]
    status = rejection.status
    if rejection.gateway:
        body = {
            "error_code": rejection.error_code,
            "error_msg": rejection.message,
            "request_id": request_id,
        }
    else:
        body = {
            "is_success": False,
            "error_code": rejection.error_code,
            error_field: rejection.message,
        }
        if errors_200 and 400 <= status < 500:
            status = 200
    return web.json_response(body, status=status)


class Emulator:
    """A stateful fake of the ModelArts v1 and v2 training-job APIs; serve ``.app`` or use
    run_emulator. Ground truth: ``versions()`` (v1) and ``v2_jobs()`` (v2).

    ``clock`` (epoch seconds) drives create times, status progression, list lag, the X-Sdk-Date
    window and the token buckets, so tests can step time instead of sleeping.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._config = config or EmulatorConfig()
        self._clock = clock
        self._rng = random.Random(self._config.seed)
        self._throttle = Throttle(clock)
        self._throttle.configure(self._config.throttle_policy)
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._url: str | None = None
        self._closing = asyncio.Event()
        path = self._config.state_file
        if path is not None and path.exists():
            self.state = State.load(path)
            self._saved_revision = self.state.revision
        else:
            self.state = State.seeded(self._config.jobs, self.now_ms())
            self._saved_revision = -1
        self.app = self._build_app()

    # --- public API ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:8642``."""
        if self._url is None:
            raise RuntimeError("the emulator is not serving; start it with run_emulator()")
        return self._url

    @property
    def config(self) -> EmulatorConfig:
        """The settings in force now (``set_faults`` replaces them)."""
        return self._config

    @property
    def counters(self) -> dict[str, int]:
        """A snapshot of the request counters (creates = versions actually created)."""
        return dict(self._counters)

    def versions(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """Ground truth: every version ever created (hidden by lag or deleted too), by id."""
        now = self.now_ms()
        return [
            version.ground_truth(now)
            for _, version in sorted(self.state.versions.items())
            if job_id is None or version.job_id == job_id
        ]

    def v2_jobs(self) -> list[dict[str, Any]]:
        """Ground truth of the v2 API: every training job ever created (hidden by search lag,
        deleted, or created by an ambiguous commit too), oldest first, with the body as sent."""
        now = self.now_ms()
        return [job.ground_truth(now) for job in self.state.v2.ordered()]

    def set_faults(self, **changes: Any) -> EmulatorConfig:
        """Change runtime knobs (faults, throttling, lag, timing); returns the new config."""
        self._config = self._config.with_changes(**changes)
        self._throttle.configure(self._config.throttle_policy)
        log.info("batchsubmit.emulator.faults_changed", changes=sorted(changes))
        return self._config

    def reset(self) -> None:
        """Back to the seeded jobs, zero counters, full buckets (state file rewritten)."""
        self.state = State.seeded(self._config.jobs, self.now_ms())
        self._saved_revision = -1
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._throttle.reset()
        self.changed()

    def save_state(self) -> None:
        """Write the state file now if anything changed since the last save."""
        path = self._config.state_file
        if path is not None and self.state.revision != self._saved_revision:
            self.state.save(path)
            self._saved_revision = self.state.revision

    def bind(self, url: str | None) -> None:
        """Record (or clear) the base URL the server listens on."""
        self._url = url

    def __repr__(self) -> str:
        return (
            f"Emulator(url={self._url!r}, jobs={len(self.state.jobs)}, "
            f"versions={len(self.state.versions)}, {self._throttle!r})"
        )

    # --- helpers for the handlers -------------------------------------------------------------
    def now_ms(self) -> int:
        """The emulator clock in milliseconds since the epoch."""
        return int(self._clock() * 1000)

    def count(self, name: str, n: int = 1) -> None:
        """Add to a counter."""
        self._counters[name] = self._counters.get(name, 0) + n

    def changed(self) -> None:
        """State changed: save now when saving on every change, else the saver will."""
        if self._config.state_save_interval == 0:
            self.save_state()

    def gateway_code(self, number: str) -> str:
        """A gateway error code with the configured prefix (G1): ``APIGW.0308`` or ``APIG.0308``."""
        return f"{self._config.gateway_prefix}.{number}"

    def roll(self, share: float) -> bool:
        """True with probability ``share``; consumes no randomness when share is 0."""
        return share > 0 and self._rng.random() < share

    def new_life(self) -> Life:
        """Lag, timing and outcome of a version being created now."""
        config = self._config
        outcome = FAILED if self.roll(config.failure_share) else COMPLETED
        return Life(
            lag_ms=round(config.list_lag * 1000),
            init_ms=round(config.init_seconds * 1000),
            run_ms=round(config.run_seconds * 1000),
            outcome=outcome,
        )

    def new_v2_id(self) -> str:
        """A fresh v2 job id: a UUID (version 4) drawn from the seeded RNG, never one in use."""
        while True:
            job_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            if job_id not in self.state.v2.by_id:
                return job_id

    def new_v2_life(self) -> JobLife:
        """Search lag, phase timeline and final phase of a v2 job being created now."""
        config = self._config
        outcome, rest = V2_COMPLETED, 1 - config.failure_share  # shares of all jobs, not of rest
        if self.roll(config.failure_share):
            outcome = V2_FAILED
        elif rest > 0 and self.roll(config.abnormal_share / rest):
            outcome = ABNORMAL
        return JobLife(
            lag_ms=round(config.search_lag * 1000),
            creating_ms=round(config.v2_creating_seconds * 1000),
            pending_ms=round(config.v2_pending_seconds * 1000),
            running_ms=round(config.v2_running_seconds * 1000),
            outcome=outcome,
        )

    def inject_500(self, request: web.Request, *, create: bool) -> None:
        """Maybe fail before anything happens (creates always eligible, reads if configured)."""
        if (create or self._config.faults_on_lists) and self.roll(self._config.error_500_share):
            self.count("faults_500")
            log.info("batchsubmit.emulator.fault_500", path=request.path)
            raise Rejection(500, "ModelArts.0010", "internal error")

    def ambiguous_kind(self) -> str | None:
        """After a create: the kind of ambiguous outcome to inject, or None for a clean reply."""
        if not self.roll(self._config.ambiguous_share):
            return None
        return self._rng.choice(sorted(self._config.ambiguous_kinds))

    async def hide_reply(
        self,
        request: web.Request,
        mark: Callable[[str], None],
        error_500: Exception,
        **fields: object,
    ) -> None:
        """After a create (v1 version or v2 job): maybe hide its reply, an *ambiguous* outcome.

        ``mark`` records the kind on the created object (ground truth); ``error_500`` is the
        API's own 500 body. Returns when the reply may go: none, or a stall that ended."""
        kind = self.ambiguous_kind()
        if kind is None:
            return
        mark(kind)
        self.state.revision += 1
        self.changed()
        self.count("ambiguous")
        self.count(f"ambiguous_{kind}")
        log.info("batchsubmit.emulator.fault_ambiguous", kind=kind, **fields)
        if kind == "500":
            raise error_500
        if kind == "reset":
            reset_connection(request)
        else:
            await self.stall(request)

    async def stall(self, request: web.Request) -> None:
        """Hold the reply for stall_seconds; at shutdown, drop the connection instead."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self._config.stall_seconds)
        if self._closing.is_set():
            reset_connection(request)

    # --- the gate -----------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = uuid.uuid4().hex
        request[REQUEST_ID] = request_id
        admin = request.path.startswith("/_admin/")
        if not admin:
            self.count("requests")
        try:
            if request.match_info.http_exception is not None:
                raise Rejection(404, self.gateway_code("0101"), NOT_FOUND_MSG, gateway=True)
            if not admin:
                await self._gate(request)
            response = await handler(request)
        except Rejection as rejection:
            if rejection.status == 401:
                self.count("auth_failures")
            elif rejection.status == 429:
                self.count("throttled")
            elif rejection.status < 500:
                self.count("rejected")
            response = self._error_response(rejection, request, admin=admin)
            response.headers.update(rejection.headers)
        except web.HTTPException as exc:  # e.g. 413 from aiohttp itself
            response = self._error_response(
                Rejection(exc.status, "ModelArts.0101", exc.reason), request, admin=admin
            )
        except ConnectionResetError:  # the client went away mid-request (killed, timed out)
            log.info("batchsubmit.emulator.client_gone", path=request.path)
            raise
        except Exception:  # an emulator bug: still answer in the API's shape, and say so
            log.exception("batchsubmit.emulator.handler_crashed", path=request.path)
            response = self._error_response(
                Rejection(500, "ModelArts.0010", "internal error (emulator bug)"),
                request,
                admin=admin,
            )
        response.headers["X-Request-Id"] = request_id
        return response

    def _error_response(
        self, rejection: Rejection, request: web.Request, *, admin: bool
    ) -> web.Response:
        """The API's failure in the configured drift; /_admin answers are never drifted, v2
        answers have the v2 shape (section 6 of v2-training-jobs.md; U6/U7 are v1's)."""
        request_id = request[REQUEST_ID]
        if request.path.startswith("/v2/"):
            return v2_error_response(rejection, request_id)
        if admin:
            return error_response(rejection, request_id)
        return error_response(
            rejection,
            request_id,
            error_field=self._config.error_field,
            errors_200=self._config.errors_200,
        )

    async def _gate(self, request: web.Request) -> None:
        """Authenticate, check the project, throttle, then wait the configured latency."""
        config = self._config
        if config.auth == "token":
            self._check_token(request)
        elif config.auth == "aksk":
            await self._check_signature(request)
        project_id = request.match_info.get("project_id", "")
        header_project = request.headers.get("X-Project-Id")
        for given in (project_id, header_project):
            if given is not None and given != config.project_id:
                raise Rejection(
                    403,
                    "ModelArts.0210",
                    f"project id {given!r} does not match this emulator's project "
                    f"{config.project_id!r}; use that one in the path and X-Project-Id",
                )
        wait = self._throttle.check(project_id)
        if wait is not None:
            log.debug("batchsubmit.emulator.throttled", path=request.path, wait=wait)
            retry_after = str(max(1, math.ceil(wait)))  # delay-seconds is an integer (RFC 9110)
            raise Rejection(
                429,
                self.gateway_code("0308"),
                config.throttle_message(),
                gateway=True,
                headers={"Retry-After": retry_after} if config.retry_after else None,
            )
        delay = self._latency_seconds()
        if delay > 0:
            await asyncio.sleep(delay)

    def _check_token(self, request: web.Request) -> None:
        token = request.headers.get("X-Auth-Token")
        if not token:
            raise Rejection(401, "ModelArts.0201", "X-Auth-Token header is missing; send a token")
        if token not in {secret.get_secret_value() for secret in self._config.tokens}:
            log.info("batchsubmit.emulator.auth_failed", reason="unknown token")
            raise Rejection(401, "ModelArts.0203", "the token is invalid; get a new one from IAM")

    async def _check_signature(self, request: web.Request) -> None:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        raw_path, _, raw_query = request.raw_path.partition("?")
        keys = self._config.access_keys
        try:
            verify(
                method=request.method,
                raw_path=raw_path,
                raw_query=raw_query,
                headers=headers,
                body=await request.read(),
                secret_for=lambda ak: keys[ak].get_secret_value() if ak in keys else None,
                now=self._clock(),
                window_seconds=self._config.date_window_seconds,
            )
        except SignatureError as exc:
            log.info("batchsubmit.emulator.auth_failed", reason=str(exc))
            raise Rejection(
                401,
                self.gateway_code("0301"),
                f"Incorrect IAM authentication information: {exc}",
                gateway=True,
            ) from None

    def _latency_seconds(self) -> float:
        config = self._config
        extra = 0.0
        if config.latency_jitter_ms > 0:
            if config.latency_distribution == "uniform":
                extra = self._rng.uniform(0, config.latency_jitter_ms)
            else:
                extra = self._rng.expovariate(1 / config.latency_jitter_ms)
        return (config.latency_ms + extra) / 1000

    # --- the application ----------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        V1Api(self).register(app.router)
        V2Api(self).register(app.router)
        if self._config.admin:
            app.router.add_get("/_admin/state", self._admin_state)
            app.router.add_post("/_admin/faults", self._admin_faults)
            app.router.add_post("/_admin/reset", self._admin_reset)
        app.on_shutdown.append(self._on_shutdown)
        app.cleanup_ctx.append(self._lifecycle)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._closing.set()  # wake stalled handlers so shutdown does not wait stall_seconds

    async def _lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        """Save the state file periodically while serving, and once more at the end."""
        self._closing = asyncio.Event()
        self.save_state()
        saver = None
        interval = self._config.state_save_interval
        if self._config.state_file is not None and interval > 0:
            saver = asyncio.create_task(self._save_loop(interval))
        yield
        if saver is not None:
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
        self.save_state()

    async def _save_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.save_state()
            except OSError as exc:  # keep serving; the final save at shutdown will raise
                log.error("batchsubmit.emulator.state_save_failed", error=str(exc))

    async def _admin_state(self, _request: web.Request) -> web.Response:
        jobs = [
            {"job_id": job.job_id, "job_name": job.job_name, "version_ids": job.version_ids}
            for job in self.state.jobs.values()
        ]
        return web.json_response(
            {
                "is_success": True,
                "versions": self.versions(),
                "jobs": jobs,
                "v2_jobs": self.v2_jobs(),
                "counters": self.counters,
                "config": self._config.public_view(),
            }
        )

    async def _admin_faults(self, request: web.Request) -> web.Response:
        changes = parse_json_object(await request.read())
        try:
            config = self.set_faults(**changes)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise Rejection(400, "ModelArts.0107", str(exc)) from None
        return web.json_response({"is_success": True, "config": config.public_view()})

    async def _admin_reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"is_success": True})

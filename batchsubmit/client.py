"""Async client of the ModelArts training-job APIs: v1 (versions of a job) and v2 (jobs).

The only module that talks aiohttp, and so the one place where aiohttp's exceptions and the
server's error bodies are translated into :mod:`batchsubmit.errors` (see ``_send``).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError
from yarl import URL

from batchsubmit.auth import Credentials, canonical_query
from batchsubmit.errors import (
    APIError,
    AuthError,
    BatchSubmitError,
    NameTakenError,
    NotSentError,
    OutcomeUnknownError,
    QuotaExceededError,
    ServerError,
    ThrottledError,
    UsageError,
)
from batchsubmit.limiter import AdaptiveRateLimiter
from batchsubmit.models import (
    CreateVersionRequest,
    CreateVersionResponse,
    ErrorBody,
    Version,
    VersionDetail,
    VersionList,
)
from batchsubmit.paging import MAX_PER_PAGE, walk_versions

if TYPE_CHECKING:  # the v2 models load with the first v2 call: a v1 run never builds them
    from batchsubmit.models_v2 import JobSearchPage, TrainingJob

__all__ = ["MAX_PER_PAGE", "ModelArtsClient", "classify_error", "encode_body"]

M = TypeVar("M", bound=BaseModel)

_UNDECODABLE = object()  # marks a reply body that is not JSON
_MAX_BODY = 8 * 1024 * 1024  # a reply larger than this is not an API answer

_THROTTLE_CODES = frozenset(
    {"APIG.0308", "APIGW.0308", "ModelArts.2799", "ModelArts.4206", "ModelArts.6101"}
)
_AUTH_CODES = frozenset(
    {"APIG.0301", "APIGW.0301"} | {f"ModelArts.{n:04d}" for n in range(201, 213)}
)
# A 5xx of these kinds may come from behind the service, after the version was created. For v2
# the contract adds 503 (ModelArts.4302 gateway forwarding, 4503 backend timeout: section 6).
_AMBIGUOUS_STATUSES = frozenset({500, 502, 504})
_AMBIGUOUS_STATUSES_V2 = frozenset({500, 502, 503, 504})


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for a JSON body: compact and deterministic."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000" parses naive; HTTP dates are UTC
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, min(seconds, 3600.0))


def classify_error(
    status: int,
    payload: Any,
    headers: Mapping[str, str],
    *,
    may_have_created: bool,
    api: str = "v1",
) -> APIError:
    """Turn a failed answer (any status with a failure body) into the matching error class;
    ``api`` the API that answered (v2's codes and 503s mean what the v2 contract says)."""
    body = ErrorBody.model_validate(payload) if isinstance(payload, dict) else ErrorBody()
    code = body.error_code
    message = body.error_message or (
        "no error message: is the endpoint a ModelArts API (https://modelarts.<region>."
        "myhuaweicloud.com, or a `batchsubmit emulator`)?" if status == 404 and code is None
        else f"HTTP {status} without an error message"
    )
    request_id = headers.get("X-Request-Id") or body.request_id
    if status == 429 or code in _THROTTLE_CODES:
        return ThrottledError(
            message,
            http_status=status,
            error_code=code,
            request_id=request_id,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    if status == 401 or code in _AUTH_CODES:
        return AuthError(message, http_status=status, error_code=code, request_id=request_id)
    if api == "v2" and code in NameTakenError.codes:
        return NameTakenError(message, http_status=status, error_code=code, request_id=request_id)
    if api == "v2" and code in QuotaExceededError.codes:
        return QuotaExceededError(
            message, http_status=status, error_code=code, request_id=request_id
        )
    if status >= 500:
        return ServerError(
            message,
            http_status=status,
            error_code=code,
            request_id=request_id,
            outcome_unknown=may_have_created and status in (
                _AMBIGUOUS_STATUSES_V2 if api == "v2" else _AMBIGUOUS_STATUSES
            ),
        )
    return APIError(message, http_status=status, error_code=code, request_id=request_id)


async def _read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes (a runaway reply)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None  # what came so far is dropped now, not joined
        chunks.append(chunk)
    return b"".join(chunks)


# Raised before a byte of the request left: a refused or failed connection (DNS, TLS, the pinned
# certificate), a connect timeout, or a URL that cannot be requested at all.
_NOT_SENT = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerFingerprintMismatch,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)


def _is_false(value: Any) -> bool:
    """``is_success`` says no: ``false``, or the string ``"false"`` some gateways send."""
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


def _endpoint_url(endpoint: str) -> URL:
    """The base URL, checked now rather than failing every request later."""
    hint = "write it as https://modelarts.<region>.myhuaweicloud.com (or http://127.0.0.1:<port>)"
    try:
        url = URL(endpoint.strip().rstrip("/"))
        host = url.host
    except ValueError:
        raise UsageError(f"endpoint {endpoint!r} is not a URL: {hint}") from None
    if url.scheme not in ("http", "https") or not host:
        raise UsageError(f"endpoint {endpoint!r} is not an http(s) URL with a host: {hint}")
    return url


class ModelArtsClient:
    """One aiohttp session against one endpoint and project; safe to share between tasks."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        concurrency: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        read_limiter: AdaptiveRateLimiter | None = None,
    ) -> None:
        self._base = _endpoint_url(endpoint)
        # Reads (list, detail) are paced here; creates are paced by their caller, which needs
        # each send time to account for throttling and latency.
        self._read_limiter = read_limiter
        self._credentials = credentials
        self._now = now
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        # Leave room beside the creates for reconciliation's list calls.
        self._pool_size = max(1, concurrency) + 2
        self._session: aiohttp.ClientSession | None = None

    @property
    def project_id(self) -> str:
        return self._credentials.project_id

    def __repr__(self) -> str:
        return f"ModelArtsClient({str(self._base)!r}, {self._credentials!r})"

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, raise_for_status=False
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # -- the API ----------------------------------------------------------------------------

    async def create_version(
        self, job_id: int, body: CreateVersionRequest | Mapping[str, Any]
    ) -> CreateVersionResponse:
        """Create one version. Not idempotent: an OutcomeUnknownError means it may exist."""
        wire = body.to_wire() if isinstance(body, CreateVersionRequest) else body
        payload = await self._send(
            "POST", f"training-jobs/{job_id}/versions", body=encode_body(wire)
        )
        return self._parse(CreateVersionResponse, payload, may_have_created=True)

    async def list_versions_page(
        self, job_id: int, *, page: int = 1, per_page: int = MAX_PER_PAGE
    ) -> VersionList:
        """One page of a job's versions (page counts from 1)."""
        payload = await self._read(
            f"training-jobs/{job_id}/versions",
            query={"page": page, "per_page": min(per_page, MAX_PER_PAGE)},
        )
        return self._parse(VersionList, payload, may_have_created=False)

    def list_versions(
        self, job_id: int, *, per_page: int = MAX_PER_PAGE
    ) -> AsyncIterator[Version]:
        """Every version of a job, each once (:func:`batchsubmit.paging.walk_versions`: on to
        an empty page or ``version_count``; IncompleteListingError when that cannot be done)."""

        def fetch(page: int, size: int) -> Awaitable[VersionList]:
            return self.list_versions_page(job_id, page=page, per_page=size)

        return walk_versions(fetch, per_page=per_page, what=f"job {job_id}'s versions")

    async def get_version(self, job_id: int, version_id: int) -> VersionDetail:
        """The detail of one version."""
        payload = await self._read(f"training-jobs/{job_id}/versions/{version_id}")
        return self._parse(VersionDetail, payload, may_have_created=False)

    async def stop_version(self, job_id: int, version_id: int) -> None:
        """Stop one version (``POST .../versions/{version_id}/stop``, answered ``{}``).

        Safe to send again: stopping a version that has ended changes nothing (or is refused)."""
        await self._send("POST", f"training-jobs/{job_id}/versions/{version_id}/stop")

    async def delete_version(self, job_id: int, version_id: int) -> None:
        """Delete one version (``DELETE .../versions/{version_id}``, answered ``{}``)."""
        await self._send("DELETE", f"training-jobs/{job_id}/versions/{version_id}")

    # -- the v2 API: one training job per point -------------------------------------------

    async def create_training_job(self, body: Mapping[str, Any]) -> TrainingJob:
        """Create one v2 training job (201). Not idempotent: OutcomeUnknownError means it may
        exist; NameTakenError (ModelArts.2751) that a job of that name does."""
        from batchsubmit.models_v2 import TrainingJob

        payload = await self._send("POST", "training-jobs", body=encode_body(body), api="v2")
        return self._parse(TrainingJob, payload, may_have_created=True)

    async def search_training_jobs(self, query: Mapping[str, Any]) -> JobSearchPage:
        """One page of a v2 job search (a POST that only reads)."""
        payload = await self._read(
            "training-job-searches", method="POST", body=encode_body(query), api="v2"
        )
        from batchsubmit.models_v2 import JobSearchPage

        return self._parse(JobSearchPage, payload, may_have_created=False)

    async def get_training_job(self, training_job_id: str) -> TrainingJob:
        from batchsubmit.models_v2 import TrainingJob

        payload = await self._read(f"training-jobs/{training_job_id}", api="v2")
        return self._parse(TrainingJob, payload, may_have_created=False)

    async def terminate_training_job(self, training_job_id: str) -> None:
        """Terminate one v2 job (202); 409 ModelArts.2796 when it has already ended."""
        await self._send(
            "POST", f"training-jobs/{training_job_id}/actions",
            body=encode_body({"action_type": "terminate"}), api="v2", creates=False,
        )

    async def delete_training_job(self, training_job_id: str) -> None:
        """Delete one v2 job (202, asynchronous on the server)."""
        await self._send("DELETE", f"training-jobs/{training_job_id}", api="v2")

    async def _read(
        self, path: str, *, query: Mapping[str, str | int] | None = None, method: str = "GET",
        body: bytes = b"", api: str = "v1",
    ) -> Any:
        def send() -> Awaitable[Any]:
            return self._send(method, path, query=query, body=body, api=api, creates=False)

        limiter = self._read_limiter
        if limiter is None:
            return await send()
        sent_at = await limiter.acquire()
        try:
            payload = await send()
        except ThrottledError as exc:
            limiter.on_throttled(exc, sent_at=sent_at)
            raise
        limiter.on_success()
        return payload

    # -- the transport boundary -------------------------------------------------------------

    def _parse(self, model: type[M], payload: Any, *, may_have_created: bool) -> M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            what = f"a {model.__name__} reply that breaks the contract ({exc.error_count()} errors)"
            if may_have_created:
                raise OutcomeUnknownError(
                    f"{what}: the version may have been created"
                ) from exc
            raise OutcomeUnknownError(what) from exc

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: bytes = b"",
        api: str = "v1",
        creates: bool | None = None,
    ) -> Any:
        """Send one request; return the decoded success body or raise the classified error.

        ``creates``: whether the request may create something (so an unanswered one leaves an
        outcome unknown); by default every POST may."""
        if self._session is None:
            raise RuntimeError("use the client as `async with ModelArtsClient(...) as client`")
        url = f"{self._base}/{api}/{self._credentials.project_id}/{path}"
        if query:
            url += "?" + canonical_query(query)
        headers = {"Content-Type": "application/json"} if body else {}
        headers = self._credentials.headers_for(method, url, headers, body, self._now())
        sent = False
        try:
            async with self._session.request(
                method, URL(url, encoded=True), headers=headers, data=body or None,
                allow_redirects=False,
            ) as response:
                sent = True
                size = response.content_length
                raw: bytes | None
                # Case-insensitive: aiohttp spells known names its own way ("X-Request-ID").
                reply_headers = response.headers
                if (
                    size is not None and size <= _MAX_BODY
                    and "Content-Encoding" not in reply_headers  # may inflate past the cap
                    and "Transfer-Encoding" not in reply_headers  # its length would win
                ):
                    raw = await response.read()  # the usual reply: small, of a known length
                else:
                    raw = await _read_capped(response.content, _MAX_BODY)
                status = response.status
        except aiohttp.RedirectClientError as exc:  # a reply came (redirects are not followed)
            raise self._unknown(method, path, exc, sent=True, creates=creates) from exc
        except _NOT_SENT as exc:
            raise NotSentError(
                f"could not reach {self._base} ({type(exc).__name__}: {exc}) for {method} "
                f"{path}: nothing was sent; check the endpoint (--endpoint, target.endpoint) "
                "and that the service, or the `batchsubmit emulator`, is listening there"
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:  # the rest: after it may have left
            raise self._unknown(method, path, exc, sent=sent, creates=creates) from exc
        if raw is None:
            raise self._unknown(
                method, path, f"reply larger than {_MAX_BODY} bytes", sent=True, creates=creates
            )
        return self._decode(method, path, status, raw, reply_headers, creates=creates, api=api)

    def _decode(
        self, method: str, path: str, status: int, raw: bytes, headers: Mapping[str, str],
        *, creates: bool | None = None, api: str = "v1",
    ) -> Any:
        """The success body of a reply, or the classified error it carries."""
        may_have_created = method == "POST" if creates is None else creates
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = _UNDECODABLE
        if 200 <= status < 300 and payload is not _UNDECODABLE:
            if isinstance(payload, dict) and _is_false(payload.get("is_success")):
                raise classify_error(
                    status, payload, headers, may_have_created=may_have_created, api=api
                )
            return payload
        if 200 <= status < 300:
            snippet = raw[:80].decode("utf-8", "replace")
            raise self._unknown(
                method, path, f"undecodable {status} reply {snippet!r}", sent=True, creates=creates
            )
        raise classify_error(status, payload, headers, may_have_created=may_have_created, api=api)

    @staticmethod
    def _unknown(
        method: str, path: str, cause: object, *, sent: bool, creates: bool | None = None
    ) -> BatchSubmitError:
        if isinstance(cause, BaseException):
            cause = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        if not (method == "POST" if creates is None else creates):
            return OutcomeUnknownError(f"{method} {path}: no usable answer ({cause})")
        return OutcomeUnknownError(
            f"{method} {path}: no usable answer after the request was "
            f"{'sent' if sent else 'possibly sent'} ({cause}); what it creates may exist"
        )



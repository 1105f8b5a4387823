"""The one exception tree of batchsubmit.

Every error the package raises derives from :class:`BatchSubmitError`. What to do about an error
(give up on the point, retry it, reconcile it against the server first, or stop the whole run) is a
property of the error, :attr:`BatchSubmitError.disposition`, so the pool never needs an if-chain::

    BatchSubmitError                 base; carries the API's error_code when there is one
    ├── SpecError                    the sweep spec is wrong (file, line, field); never retried
    ├── UsageError                   bad flags, missing or unusable credentials; nothing was sent
    ├── LedgerError                  the ledger is damaged or unwritable (path, line)
    ├── IdentityConflictError        an object holds the point's identity (v1: train_url, v2:
    │                                job name) with other parameters, or a name we never sent:
    │                                not ours, never adopted; the point fails, nothing is sent
    ├── FailedPointsError            (batchsubmit.api) raise_for_failures: some points failed or
    │                                are pending; carries the SubmitResult
    ├── APIError                     the server answered no (http_status, error_code, request_id)
    │   ├── ThrottledError           429, APIG(W).0308, ModelArts.2799|4206|6101; has retry_after
    │   ├── AuthError                401, APIG(W).0301, ModelArts.02xx: stops the run, no retry
    │   ├── NameTakenError           v2 400 ModelArts.2751: the job name exists; ours after an
    │                                earlier attempt (adopted by name), else an identity conflict
    │   ├── QuotaExceededError       v2 ModelArts.2815|2833: active jobs at quota; the run
    │                                stops sending, the point stays pending for the next run
    │   └── ServerError              5xx: 500/502/504 after a POST leave the outcome unknown
    └── TransportError               no usable answer
        ├── NotSentError             refused / DNS failure: the request never left; safe to retry
        ├── IncompleteListingError   a walk of a job's versions could not be finished: it proves
        │                            nothing absent (read again; a point in doubt stays pending)
        └── OutcomeUnknownError      timeout, reset, undecodable reply after the request was sent:
                                     the version may exist, so reconcile before any retry

aiohttp's exceptions are translated into this tree in exactly one place, ``batchsubmit.client``.
"""

from __future__ import annotations

import enum
import re
from typing import ClassVar


class Disposition(enum.Enum):
    """What the engine does with a point whose attempt raised this error."""

    FAIL = "fail"  # permanent for this point: record it, go on with the others
    RETRY = "retry"  # nothing happened on the server: back off and send again
    RECONCILE = "reconcile"  # the version may exist: look for it before sending again
    ABORT = "abort"  # nothing else can succeed either (credentials, ledger): stop the run


class BatchSubmitError(Exception):
    """Base of every batchsubmit error."""

    _disposition: ClassVar[Disposition] = Disposition.FAIL

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code

    @property
    def disposition(self) -> Disposition:
        """Fail the point, retry it, reconcile it first, or stop the run."""
        return self._disposition

    def __str__(self) -> str:
        return self.message


class SpecError(BatchSubmitError):
    """The sweep spec (or a body rendered from it) is invalid; nothing was sent."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        index: int | None = None,
        key: str | None = None,
    ) -> None:
        where = []
        if path:
            where.append(f"{path}:{line}" if line else path)
        if field:
            where.append(f"field {field}")
        if index is not None:
            where.append(f"point #{index}" + (f" (key {key})" if key else ""))
        full = f"{': '.join(where)}: {message}" if where else message
        super().__init__(full)
        self.reason = message
        self.path = path
        self.line = line
        self.field = field
        self.index = index
        self.key = key


class UsageError(BatchSubmitError):
    """Bad command-line usage or credentials; raised before anything is sent."""

    _disposition = Disposition.ABORT


class LedgerError(BatchSubmitError):
    """The ledger cannot be read (damaged line) or written (disk full, permissions)."""

    _disposition = Disposition.ABORT

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path = path
        self.line = line


class APIError(BatchSubmitError):
    """The server answered, and the answer was no."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        error_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.http_status = http_status
        self.error_message = message
        self.request_id = request_id

    def __str__(self) -> str:
        code = f" {self.error_code}" if self.error_code else ""
        rid = f" (request_id {self.request_id})" if self.request_id else ""
        return f"HTTP {self.http_status}{code}: {self.message}{rid}"


class ThrottledError(APIError):
    """The gateway or the service asked us to slow down."""

    _disposition = Disposition.RETRY

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 429,
        error_code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, http_status=http_status, error_code=error_code, request_id=request_id
        )
        self.retry_after = retry_after

    @property
    def announced_policy(self) -> tuple[float, float] | None:
        """(requests, period in seconds) of the gateway policy the message names
        ("...,limit:40,time:1 second" is (40, 1.0); "time:1 minute", (N, 60.0)); else None."""
        match = _POLICY.search(self.message)
        if match is None:
            return None
        count, period = float(match["limit"]), float(match["time"]) * _UNIT_SECONDS[match["unit"]]
        return (count, period) if count > 0 and period > 0 else None

    @property
    def announced_limit(self) -> float | None:
        """Requests/s of the gateway policy the message names, if it names one."""
        policy = self.announced_policy
        return None if policy is None else policy[0] / policy[1]


_POLICY = re.compile(
    r"limit:\s*(?P<limit>\d+(?:\.\d+)?)\s*,\s*time:\s*(?P<time>\d+(?:\.\d+)?)\s*"
    r"(?P<unit>second|minute|hour|day)"
)
_UNIT_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


class AuthError(APIError):
    """Credentials were refused. Retrying would lock the AK for 5 minutes, so the run stops."""

    _disposition = Disposition.ABORT

    hint: ClassVar[str] = (
        "check HUAWEICLOUD_SDK_AK / HUAWEICLOUD_SDK_SK (or MODELARTS_TOKEN), the project id, "
        "and that this machine's clock is within 15 minutes of UTC"
    )


class ServerError(APIError):
    """A 5xx answer. After a POST it may have come after the version was created."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        error_code: str | None = None,
        request_id: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(
            message, http_status=http_status, error_code=error_code, request_id=request_id
        )
        self.outcome_unknown = outcome_unknown

    @property
    def disposition(self) -> Disposition:
        """Reconcile when the POST may have landed; otherwise nothing happened: retry."""
        return Disposition.RECONCILE if self.outcome_unknown else Disposition.RETRY


class IdentityConflictError(BatchSubmitError):
    """The point's train_url belongs to a version whose parameters disagree with the point's.

    Not the point's version (so not adopted), and creating another one there would write over its
    outputs: the point fails, and the message names the versions and what differs."""

    code: ClassVar[str] = "batchsubmit.identity_conflict"

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=self.code)


class NameTakenError(APIError):
    """The server refuses the create because the object's unique name is taken (v2: 400
    ``ModelArts.2751``). After an earlier attempt of ours it means that attempt landed: the
    engine adopts the object found by that name; on a first send it is someone else's object
    and the point fails as an identity conflict."""

    codes: ClassVar[frozenset[str]] = frozenset({"ModelArts.2751"})


class QuotaExceededError(APIError):
    """A quota of active jobs is used up (v2: ``ModelArts.2815`` too many active jobs, ``2833``
    too many free-flavor jobs): it frees itself as jobs end. Nothing was created, and sending
    more now would only be refused too: the run stops sending, the point stays pending, and the
    next run (once jobs have finished or the quota was raised) sends it and the rest. (``0118``,
    a quota that does not free itself, such as v1's versions per job, fails the point.)"""

    codes: ClassVar[frozenset[str]] = frozenset({"ModelArts.2815", "ModelArts.2833"})


class TransportError(BatchSubmitError):
    """No usable answer from the server."""


class IncompleteListingError(TransportError):
    """A walk of a job's versions ended before it could prove it saw them all."""

    _disposition = Disposition.RETRY


class NotSentError(TransportError):
    """The request never reached the server (refused, DNS): sending it again is safe."""

    _disposition = Disposition.RETRY


class OutcomeUnknownError(TransportError):
    """The request was sent but no usable answer came back: the version may exist."""

    _disposition = Disposition.RECONCILE

"""Every knob of the emulator in one frozen, validated model.

The emulator exists to make a client meet the API's bad days on purpose, so faults, throttling,
lag and timing are all settings here rather than code paths; defaults are the good day (open
auth, no faults, no throttling). The *drift* knobs make it disagree with a literal reading of the
documentation the way the real service may (shared/spec/real-service-unknowns.md: U1..U9 for the
v1 API, G1..G5 for the gateway); by default it echoes what was sent, byte for byte. The v2 knobs
(:data:`V2_KNOBS`) answer the points v2-training-jobs.md leaves open (its section 7). Fields
listed in :data:`RUNTIME_KNOBS` may be changed while the server runs (``Emulator.set_faults``,
``POST /_admin/faults``); the rest fix the server's identity. ``jobs`` seeds a fresh state only:
an existing ``state_file`` is loaded instead.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from batchsubmit.emulator.constants import (
    DEFAULT_PROJECT_ID,
    PERIOD_SECONDS,
    ErrorField,
    GatewayKind,
    GatewayPrefix,
    PageOffsets,
    PolicyPeriod,
)
from batchsubmit.emulator.throttle import Policy
from batchsubmit.emulator.v2_constants import (
    V2_MAX_LIMIT,
    V2Count,
    V2Like,
    V2LimitRange,
    V2NameCase,
    V2NameReuse,
    V2NameScope,
    V2Offset,
)

__all__ = ["AMBIGUOUS_KINDS", "DEFAULT_PROJECT_ID", "RUNTIME_KNOBS", "EmulatorConfig"]
AmbiguousKind = Literal["500", "reset", "stall"]
AMBIGUOUS_KINDS: frozenset[AmbiguousKind] = frozenset({"500", "reset", "stall"})


class EmulatorConfig(BaseModel):
    """Settings of one emulator instance; immutable, so a change is a new, re-validated copy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- where and who -------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    project_id: str = DEFAULT_PROJECT_ID
    auth: Literal["open", "token", "aksk"] = "open"
    tokens: tuple[SecretStr, ...] = ()
    access_keys: dict[str, SecretStr] = Field(default_factory=dict, description="AK -> SK")
    date_window_seconds: float = Field(default=900.0, gt=0, description="allowed X-Sdk-Date skew")

    # --- seeded state ----------------------------------------------------------------------
    jobs: dict[int, int] = Field(
        default_factory=lambda: {10: 20}, description="job_id -> id of its first version"
    )
    state_file: Path | None = None
    state_save_interval: float = Field(
        default=1.0,
        ge=0,
        description="seconds between saves of a changed state; 0 = on every change",
    )
    admin: bool = False
    seed: int = 0

    # --- runtime knobs: limits ---------------------------------------------------------------
    max_versions_per_job: int | None = Field(default=None, ge=1)
    rate: float | None = Field(
        default=None, gt=0, description="requests/s per project; None = no limit"
    )
    burst: int | None = Field(default=None, ge=1, description="bucket size; None = ceil(rate)")
    gateway: GatewayKind = Field(default="bucket", description="how the gateway counts (G5)")
    policy_period: PolicyPeriod = Field(
        default="second", description="the policy's period: 'limit:L,time:1 second|minute' (G3)"
    )
    announce_limit: bool = Field(default=True, description="the 429 message names its policy")
    shared_rate: float = Field(
        default=0.0, ge=0, description="another client's requests/s under the same policy"
    )
    retry_after: bool = Field(default=False, description="send Retry-After on 429 (G2)")
    gateway_prefix: GatewayPrefix = Field(
        default="APIGW", description="prefix of gateway error codes: APIGW.0308 or APIG.0308 (G1)"
    )

    # --- runtime knobs: how the service drifts from the documentation ----------------------
    echo_numbers: bool = Field(default=False, description="parameter values back as numbers (U1)")
    shuffle_params: bool = Field(default=False, description="parameters back reordered (U2)")
    add_params: tuple[tuple[str, str], ...] = Field(
        default=(), description="(label, value) pairs the service adds to every version (U2)"
    )
    normalise_train_url: bool = Field(
        default=False, description="train_url/log_url back as obs://bucket/path (U3)"
    )
    max_per_page: int | None = Field(
        default=None, ge=1, description="list-versions serves at most this many per page (U4)"
    )
    page_offsets: PageOffsets = Field(
        default="served", description="page p starts at (p-1)*served or (p-1)*per_page (U4)"
    )
    errors_200: bool = Field(default=False, description="business 4xx answered as 200 (U6)")
    error_field: ErrorField = Field(
        default="error_message", description="name of the failure message field (U7)"
    )
    strict: bool = Field(
        default=True,
        description="refuse model_id beside app_url/boot_file_url and pool_id beside spec_id (U9)",
    )

    # --- runtime knobs: faults ---------------------------------------------------------------
    latency_ms: float = Field(default=0.0, ge=0)
    latency_jitter_ms: float = Field(default=0.0, ge=0)
    latency_distribution: Literal["uniform", "exponential"] = "uniform"
    error_500_share: float = Field(default=0.0, ge=0, le=1)
    ambiguous_share: float = Field(default=0.0, ge=0, le=1)
    ambiguous_kinds: frozenset[AmbiguousKind] = AMBIGUOUS_KINDS
    stall_seconds: float = Field(default=30.0, ge=0)
    faults_on_lists: bool = False
    list_lag: float = Field(default=0.0, ge=0, description="seconds before a new version is listed")

    # --- runtime knobs: simulated job life ---------------------------------------------------
    init_seconds: float = Field(default=2.0, ge=0)
    run_seconds: float = Field(default=10.0, ge=0)
    failure_share: float = Field(
        default=0.0, ge=0, le=1, description="v1 ends FAILED, v2 ends Failed after Running"
    )

    # --- runtime knobs: the v2 API (v2-training-jobs.md, section 7: where the docs are silent) --
    search_lag: float = Field(
        default=0.0, ge=0, description="seconds before a new v2 job shows in search and detail"
    )
    v2_offset: V2Offset = Field(default="page", description="search offset: page index or record")
    v2_count: V2Count = Field(
        default="matching", description="search count: jobs matching the filters, or on this page"
    )
    v2_default_limit: int = Field(default=10, ge=1, le=V2_MAX_LIMIT)
    v2_limit_range: V2LimitRange = Field(
        default="reject", description="a limit outside 1..50: 400 ModelArts.2816, or clamped"
    )
    v2_like: V2Like = Field(default="contains", description="how the name filter's like matches")
    v2_name_scope: V2NameScope = Field(default="workspace", description="where names are unique")
    v2_name_case: V2NameCase = Field(default="sensitive", description="duplicate-name comparison")
    v2_name_reuse: V2NameReuse = Field(
        default="after_delete", description="when a deleted job's name may be used again"
    )
    v2_race_window: float = Field(
        default=0.0,
        ge=0,
        description="creates of one name less than this many seconds apart are both accepted",
    )
    v2_quota: int | None = Field(
        default=None, ge=1, description="active v2 jobs before 400 ModelArts.2815; None = no quota"
    )
    v2_delete_lag: float = Field(
        default=60.0, ge=0, description="seconds a deleted v2 job stays visible"
    )
    v2_creating_seconds: float = Field(default=1.0, ge=0)
    v2_pending_seconds: float = Field(default=1.0, ge=0)
    v2_running_seconds: float = Field(default=10.0, ge=0)
    v2_terminating_seconds: float = Field(default=1.0, ge=0)
    abnormal_share: float = Field(
        default=0.0, ge=0, le=1, description="v2 jobs ending Abnormal (CreateFailed) after Creating"
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> EmulatorConfig:
        """Refuse settings that would make every request fail for a reason nobody asked for."""
        if self.auth == "token" and not self.tokens:
            raise ValueError("auth='token' needs at least one entry in tokens")
        if self.auth == "aksk" and not self.access_keys:
            raise ValueError("auth='aksk' needs at least one AK -> SK pair in access_keys")
        if not self.ambiguous_kinds:
            raise ValueError("ambiguous_kinds must name at least one of 500, reset, stall")
        for job_id, version_id in self.jobs.items():
            if job_id < 1 or version_id < 1:
                raise ValueError("jobs: job and version ids must be >= 1")
        if len(set(self.jobs.values())) != len(self.jobs):
            raise ValueError("jobs: each seeded job needs its own initial version id")
        labels = [label for label, _ in self.add_params]
        if any(not label for label in labels) or len(set(labels)) != len(labels):
            raise ValueError("add_params: each label must be non-empty and given once")
        if self.failure_share + self.abnormal_share > 1:
            raise ValueError("failure_share + abnormal_share must not exceed 1")
        if self.shared_rate and self.rate is None:
            raise ValueError("shared_rate (--shared-rate) shares a policy: it needs --rate")
        return self

    @property
    def bucket_size(self) -> int:
        """Burst capacity of the token bucket (defaults to one second's worth of requests)."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.rate or 1))

    @property
    def window_seconds(self) -> float:
        """Length of the policy's period: 1 s, or 60 s for a "1 minute" policy."""
        return PERIOD_SECONDS[self.policy_period]

    @property
    def window_limit(self) -> int:
        """Requests per period: ceil(rate) a second, or rate*60 rounded a minute (at least 1)."""
        rate = self.rate or 1
        if self.policy_period == "minute":
            return max(1, round(rate * 60))
        return max(1, math.ceil(rate))

    @property
    def throttle_policy(self) -> Policy | None:
        """What the gateway enforces, or None without a rate."""
        if self.rate is None:
            return None
        return Policy(
            kind=self.gateway,
            rate=self.rate,
            capacity=self.bucket_size,
            limit=self.window_limit,
            window=self.window_seconds,
            shared=self.shared_rate,
        )

    def throttle_message(self) -> str:
        """The 429's message: the policy it announces, or none (announce_limit=False)."""
        text = "The throttling threshold has been reached"
        if not self.announce_limit:
            return text
        minute = self.policy_period == "minute"
        limit = str(self.window_limit) if minute else f"{self.rate or 0:g}"
        return f"{text}: policy user over ratelimit,limit:{limit},time:1 {self.policy_period}"

    def with_changes(self, **changes: Any) -> EmulatorConfig:
        """A validated copy with runtime knobs changed; identity fields are refused."""
        fixed = sorted(set(changes) - RUNTIME_KNOBS)
        if fixed:
            raise ValueError(
                f"cannot change {', '.join(fixed)} at runtime; changeable: "
                + ", ".join(sorted(RUNTIME_KNOBS))
            )
        merged = self.model_dump()
        merged.update(changes)
        # model_dump unwraps nothing secret-wise: SecretStr values survive as SecretStr objects
        return EmulatorConfig.model_validate(merged)

    def public_view(self) -> dict[str, Any]:
        """The settings as JSON, secrets left out (for /_admin/state and logs)."""
        data = self.model_dump(mode="json", exclude={"tokens", "access_keys"})
        data["tokens"] = len(self.tokens)
        data["access_keys"] = len(self.access_keys)
        data["ambiguous_kinds"] = sorted(self.ambiguous_kinds)
        return data


DRIFT_KNOBS: frozenset[str] = frozenset(
    {
        "echo_numbers",
        "shuffle_params",
        "add_params",
        "normalise_train_url",
        "max_per_page",
        "page_offsets",
        "errors_200",
        "error_field",
        "strict",
        "gateway",
        "gateway_prefix",
        "policy_period",
        "announce_limit",
    }
)


V2_KNOBS: frozenset[str] = frozenset(
    {
        "search_lag",
        "v2_offset",
        "v2_count",
        "v2_default_limit",
        "v2_limit_range",
        "v2_like",
        "v2_name_scope",
        "v2_name_case",
        "v2_name_reuse",
        "v2_race_window",
        "v2_quota",
        "v2_delete_lag",
        "v2_creating_seconds",
        "v2_pending_seconds",
        "v2_running_seconds",
        "v2_terminating_seconds",
        "abnormal_share",
    }
)


RUNTIME_KNOBS: frozenset[str] = frozenset(
    {
        "max_versions_per_job",
        "rate",
        "burst",
        "shared_rate",
        "retry_after",
        "latency_ms",
        "latency_jitter_ms",
        "latency_distribution",
        "error_500_share",
        "ambiguous_share",
        "ambiguous_kinds",
        "stall_seconds",
        "faults_on_lists",
        "list_lag",
        "init_seconds",
        "run_seconds",
        "failure_share",
        *V2_KNOBS,
        *DRIFT_KNOBS,
    }
)

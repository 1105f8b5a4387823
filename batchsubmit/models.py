"""Request and response models of the ModelArts v1 training-job API.

Strict in, tolerant out: a request body we send must satisfy every rule of the create-version
contract (``shared/spec/create-training-job-version.md``) before it leaves the machine, while a
response is accepted with the small deviations the real service is known for (numbers as strings,
empty ``version_name``, unknown fields, ``error_msg`` for ``error_message``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from batchsubmit.identity import disagreements, normalise_train_url

__all__ = [
    "CreateVersionRequest",
    "CreateVersionResponse",
    "DataSourceItem",
    "ErrorBody",
    "JobStatus",
    "Parameter",
    "Version",
    "VersionConfig",
    "VersionList",
    "describe_validation_error",
]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
_TOLERANT = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)

PositiveId = Annotated[StrictInt, Field(ge=1)]

# Optional request fields: omitted is fine, an explicit JSON null is not (the API types them
# String/Long/Array, and the service answers ModelArts.0101 to a null). So the runtime type has no
# None in it, and the default None is never validated; the checker sees the Optional it reads.
_T = TypeVar("_T")
if TYPE_CHECKING:
    OptStr: TypeAlias = str | None
    OptId: TypeAlias = int | None
    OptDesc: TypeAlias = str | None
    OptList: TypeAlias = list[_T] | None
else:
    OptStr = StrictStr
    OptId = PositiveId
    OptDesc = Annotated[StrictStr, Field(max_length=256)]
    OptList = list


class Parameter(BaseModel):
    """One run parameter; on the wire both halves are strings (``"0.01"``, not ``0.01``)."""

    model_config = _STRICT

    label: OptStr = None
    value: OptStr = None


class DataSourceItem(BaseModel):
    """One entry of ``config.data_source``: an OBS path or a dataset version, never both."""

    model_config = _STRICT

    type: Literal["obs", "dataset"]
    data_url: OptStr = None
    dataset_id: OptStr = None
    dataset_version: OptStr = None

    @model_validator(mode="after")
    def _pairing(self) -> DataSourceItem:
        has_dataset = self.dataset_id is not None or self.dataset_version is not None
        if self.type == "obs":
            if self.data_url is None:
                raise ValueError('type "obs" needs data_url (an OBS path such as "/bucket/data/")')
            if has_dataset:
                raise ValueError(
                    'type "obs" takes data_url only: drop dataset_id/dataset_version, '
                    'or use type "dataset"'
                )
        else:
            if self.dataset_id is None or self.dataset_version is None:
                raise ValueError('type "dataset" needs both dataset_id and dataset_version')
            if self.data_url is not None:
                raise ValueError(
                    'type "dataset" takes dataset_id + dataset_version only: drop data_url, '
                    'or use type "obs"'
                )
        return self


class VersionConfig(BaseModel):
    """``config`` of a create-version request (table 3 of the contract)."""

    model_config = _STRICT

    worker_server_num: PositiveId
    app_url: OptStr = None
    boot_file_url: OptStr = None
    parameter: OptList[Parameter] = None
    data_url: OptStr = None
    dataset_id: OptStr = None
    dataset_version_id: OptStr = None
    data_source: OptList[DataSourceItem] = None
    spec_id: OptId = None  # a public pool's resource spec; or pool_id, never both (U8)
    pool_id: OptStr = None  # a dedicated resource pool
    engine_id: OptId = None
    model_id: OptId = None
    train_url: StrictStr
    log_url: OptStr = None
    pre_version_id: PositiveId
    user_image_url: OptStr = None
    user_command: OptStr = None

    @model_validator(mode="after")
    def _sources(self) -> VersionConfig:
        self._check_code_source()
        self._check_data_source()
        self._check_resources()
        return self

    def _check_resources(self) -> None:
        if self.spec_id is None and self.pool_id is None:
            raise ValueError(
                "no resources: give spec_id (a public pool's resource spec) "
                "or pool_id (a dedicated resource pool)"
            )
        if self.spec_id is not None and self.pool_id is not None:
            raise ValueError(
                "spec_id and pool_id together: keep spec_id for a public pool, "
                "or pool_id for a dedicated one"
            )
        if self.pool_id is not None and not self.pool_id.strip():
            raise ValueError('pool_id is empty: give the dedicated pool\'s id, or use spec_id')

    def _check_code_source(self) -> None:
        has_app, has_boot = self.app_url is not None, self.boot_file_url is not None
        if has_app != has_boot:
            missing = "boot_file_url" if has_app else "app_url"
            raise ValueError(
                f"app_url and boot_file_url go together: add {missing} "
                "(or drop both and give model_id)"
            )
        if not has_app and self.model_id is None:
            raise ValueError(
                "no code source: give app_url + boot_file_url (+ engine_id), "
                "or model_id for a built-in algorithm"
            )
        if has_app:
            app = self.app_url or ""
            boot = self.boot_file_url or ""
            if not app:
                raise ValueError(
                    'app_url is empty: give the code directory, e.g. "/bucket/code/"'
                )
            prefix = app if app.endswith("/") else app + "/"
            if not boot.startswith(prefix) or len(boot) <= len(prefix):
                raise ValueError(
                    f"boot_file_url {boot!r} must lie inside app_url {app!r}, "
                    f"e.g. {prefix + 'train.py'!r}"
                )

    def _check_data_source(self) -> None:
        dataset_pair = self.dataset_id is not None or self.dataset_version_id is not None
        if dataset_pair and (self.dataset_id is None or self.dataset_version_id is None):
            missing = "dataset_version_id" if self.dataset_id is not None else "dataset_id"
            raise ValueError(f"dataset_id and dataset_version_id go together: add {missing}")
        forms = [
            name
            for name, present in (
                ("data_url", self.data_url is not None),
                ("dataset_id + dataset_version_id", dataset_pair),
                ("data_source", self.data_source is not None),
            )
            if present
        ]
        if not forms:
            raise ValueError(
                "no data source: give exactly one of data_url, "
                "dataset_id + dataset_version_id, or data_source"
            )
        if len(forms) > 1:
            raise ValueError(
                f"more than one data source ({' and '.join(forms)}): keep exactly one of them"
            )
        if self.data_source is not None:
            if not self.data_source:
                raise ValueError("data_source is empty: list at least one item, or drop it")
            types = {item.type for item in self.data_source}
            if len(types) > 1:
                raise ValueError(
                    'data_source mixes type "obs" and type "dataset": use one type for all items'
                )


class CreateVersionRequest(BaseModel):
    """Body of ``POST /v1/{project_id}/training-jobs/{job_id}/versions``."""

    model_config = _STRICT

    job_desc: OptDesc = None
    config: VersionConfig

    def to_wire(self) -> dict[str, Any]:
        """The JSON object to send: fields left unset are omitted, not sent as null."""
        return self.model_dump(exclude_none=True)


BRIEF_LIMIT = 80


def brief(value: object, limit: int = BRIEF_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters (then ``…`` and the full
    length), so a bad value of 100 000 characters is quoted by its start, not in full."""
    try:
        text = repr(value)
    except ValueError:  # an int of more digits than Python writes out (sys.int_info)
        if isinstance(value, int):
            return f"an integer of about {int(abs(value).bit_length() * 0.30103) + 1} digits"
        return f"a {type(value).__name__}"
    except RecursionError:
        return f"a deeply nested {type(value).__name__}"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def describe_validation_error(exc: ValidationError, *, prefix: str = "") -> list[tuple[str, str]]:
    """(field path, message) per error, paths dotted like ``config.parameter[2].value``."""
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        path = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path = f"{path}.{part}" if path else str(part)
        message = err["msg"]
        if err["type"].endswith("_type") and err.get("input", ...) is None:
            message = "must not be null: give a value, or leave the field out if it is optional"
        elif err["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        elif err["type"] == "extra_forbidden":
            message = "unknown field: remove it (check the spelling against the API contract)"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "int_type":
            message = f"must be an integer, got {brief(err.get('input'))}"
        elif err["type"] == "string_type":
            message = f"must be a string, got {brief(err.get('input'))} (quote it)"
        out.append((path or "<body>", message))
    return out


# ---------------------------------------------------------------------------------------------
# Responses: tolerant.


class JobStatus(enum.IntEnum):
    """Run status of a job version (``status``); unknown future codes stay plain ints."""

    UNKNOWN = 0
    INIT = 1
    IMAGE_CREATING = 2
    IMAGE_FAILED = 3
    SUBMIT_TRYING = 4
    SUBMIT_FAILED = 5
    DELETE_FAILED = 6
    WAITING = 7
    RUNNING = 8
    KILLING = 9
    COMPLETED = 10
    FAILED = 11
    KILLED = 12
    CANCELED = 13
    LOST = 14
    SCALING = 15
    SUBMIT_MODEL_FAILED = 16
    DEPLOY_SERVICE_FAILED = 17
    CHECK_INIT = 18
    CHECK_RUNNING = 19
    CHECK_RUNNING_COMPLETED = 20
    CHECK_FAILED = 21
    MOUNT_FAILED = 22

    @property
    def terminal(self) -> bool:
        """True when the version will not change status any more."""
        return self in _TERMINAL

    @staticmethod
    def name_of(code: int) -> str:
        """``RUNNING`` for 8; a code this version does not know is ``STATUS_<code>``."""
        try:
            return JobStatus(code).name
        except ValueError:
            return f"STATUS_{code}"

    @staticmethod
    def is_terminal_code(code: int) -> bool:
        """The status will not change any more (an unknown code is assumed not to be final)."""
        try:
            return JobStatus(code).terminal
        except ValueError:
            return False

    @staticmethod
    def is_success_code(code: int) -> bool:
        """A terminal status that means the training finished well."""
        try:
            return JobStatus(code).succeeded
        except ValueError:
            return False

    @property
    def succeeded(self) -> bool:
        """True for the terminal statuses that mean the training finished well."""
        return self in (JobStatus.COMPLETED, JobStatus.CHECK_RUNNING_COMPLETED)


_TERMINAL = frozenset(
    JobStatus(code) for code in (3, 5, 6, 10, 11, 12, 13, 14, 16, 17, 20, 21, 22)
)


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _version_id(value: Any) -> Any:
    """A version id must be a real id: a boolean or an id below 1 is a broken reply, not 1 or 0."""
    if isinstance(value, bool):
        raise ValueError("a version id is a positive integer, not a boolean")
    return value


PositiveInt = Annotated[int, Field(ge=1)]

# A version's id and name, as every response model reads them.
VersionId = Annotated[PositiveInt, BeforeValidator(_version_id)]
VersionName = Annotated[str, BeforeValidator(lambda value: "" if value is None else value)]


def _param_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


class _Response(BaseModel):
    model_config = _TOLERANT

    is_success: bool = True


class ErrorBody(_Response):
    """A failure body, ModelArts' or the API gateway's."""

    is_success: bool = False
    error_code: str | None = None
    error_message: str | None = Field(
        default=None, validation_alias=AliasChoices("error_message", "error_msg")
    )
    request_id: str | None = None


class CreateVersionResponse(_Response):
    """Success body of create-version. ``version_id`` is the one field we cannot do without."""

    version_id: VersionId
    version_name: VersionName = ""
    job_id: int | None = None
    job_name: str | None = None
    status: int | None = None
    create_time: int | None = None

    @field_validator("job_id", "status", "create_time", mode="before")
    @classmethod
    def _blank_int(cls, value: Any) -> Any:
        return _blank_to_none(value)


class Version(BaseModel):
    """A version as list-versions and version-detail return it."""

    model_config = _TOLERANT

    version_id: VersionId
    version_name: VersionName = ""
    pre_version_id: int | None = None
    status: int = 0
    create_time: int | None = None
    duration: int | None = None
    start_time: int | None = None
    app_url: str | None = None
    boot_file_url: str | None = None
    parameter: list[Parameter] = Field(default_factory=list)
    spec_id: int | None = None
    pool_id: str | None = None
    worker_server_num: int | None = None
    data_url: str | None = None
    dataset_id: str | None = None
    dataset_version_id: str | None = None
    data_source: list[dict[str, Any]] | None = None
    model_id: int | None = None
    engine_id: int | None = None
    engine_name: str | None = None
    engine_version: str | None = None
    train_url: str | None = None
    log_url: str | None = None
    user_image_url: str | None = None
    user_command: str | None = None

    @field_validator("pool_id", mode="before")
    @classmethod
    def _pool_id(cls, value: Any) -> Any:
        value = _blank_to_none(value)
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return str(value) if numeric else value

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        return 0 if _blank_to_none(value) is None else value

    @field_validator("parameter", mode="before")
    @classmethod
    def _params(cls, value: Any) -> Any:
        if value is None:
            return []
        # Tolerate numbers where strings belong, so matching compares like with like; a null
        # half is an absent half (Parameter, a request model, refuses an explicit null).
        return [
            {
                k: _param_text(v)
                for k, v in item.items()
                if k in ("label", "value") and v is not None
            }
            if isinstance(item, dict) else item
            for item in value
        ]

    @field_validator(
        "pre_version_id", "create_time", "duration", "start_time", "spec_id",
        "worker_server_num", "model_id", "engine_id", mode="before",
    )
    @classmethod
    def _blank_int(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @property
    def job_status(self) -> JobStatus | None:
        """The status as a :class:`JobStatus`, or None for a code this version doesn't know."""
        try:
            return JobStatus(self.status)
        except ValueError:
            return None

    @property
    def parameter_pairs(self) -> list[tuple[str, str]]:
        """The parameters as (label, value) text pairs, a missing half as ``""``."""
        return [(p.label or "", p.value or "") for p in self.parameter]

    def matches(self, train_url: str, parameter: Sequence[tuple[str, str]]) -> bool:
        """True when this version is the one a point with this train_url and parameters created,
        compared as :mod:`batchsubmit.identity` says (normalised path, parameters by value)."""
        return (
            self.train_url is not None
            and normalise_train_url(self.train_url) == normalise_train_url(train_url)
            and not disagreements(parameter, self.parameter_pairs)
        )


class VersionList(_Response):
    """One page of list-versions."""

    job_id: int | None = None
    job_name: str | None = None
    job_desc: str | None = None
    version_count: int | None = None
    versions: list[Version] = Field(default_factory=list)

    @field_validator("job_id", "version_count", mode="before")
    @classmethod
    def _blank_int(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("versions", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class VersionDetail(Version):
    """Version detail: one flat object, a version plus the job's id and name."""

    is_success: bool = True
    job_id: int | None = None
    job_name: str | None = None

    @field_validator("job_id", mode="before")
    @classmethod
    def _blank_job_id(cls, value: Any) -> Any:
        return _blank_to_none(value)

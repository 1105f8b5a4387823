"""Request and response models of the ModelArts v2 training-job API (one job per sweep point).

Strict in, tolerant out, as for v1 (``models.py``): a body we send satisfies every rule the
contract states (``shared/spec/v2-training-jobs.md`` sections 2 and 6) before it leaves the
machine; a job the server returns is read for the few fields we use, whatever else it carries
(the echo is enriched and not a copy of what was sent: section 2, "never match a job by its echo").

Where the sources disagree (section 9.3) the stricter reading wins for what we send: ``algorithm``,
``spec`` and ``spec.resource.flavor_id`` are required (Terraform requires them; no job runs without
code and a flavor), and a dataset input gives both ``id`` and ``version_id``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

__all__ = [
    "JOB_NAME",
    "CreateTrainingJobRequest",
    "JobSearchPage",
    "TrainingJob",
    "TrainingJobMetadata",
    "fields_at",
]

JOB_NAME = r"^[A-Za-z0-9_-]{1,64}$"  # metadata.name: the point's identity on the server
WORKSPACE_ID = r"^(0|[A-Za-z0-9]{32})$"
KINDS = ("job", "visualization_job", "federated_pool_job", "edge_job", "hetero_job", "mrs_job",
         "autosearch_job", "diag_job")  # fmt: skip

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)
_TOLERANT = ConfigDict(extra="ignore", defer_build=True)  # built on first use: start-up

Text = Annotated[StrictStr, Field(min_length=1)]
Env = Annotated[StrictStr, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=8192)]


class Metadata(BaseModel):
    model_config = _STRICT

    name: Annotated[StrictStr, Field(pattern=JOB_NAME)]
    workspace_id: Annotated[StrictStr, Field(pattern=WORKSPACE_ID)] | None = None
    description: Annotated[StrictStr, Field(max_length=256)] | None = None
    annotations: dict[StrictStr, StrictStr] | None = None
    training_experiment_reference: dict[str, Any] | None = None  # Huawei only


class Engine(BaseModel):
    model_config = _STRICT

    engine_id: Text | None = None
    engine_name: Text | None = None
    engine_version: Text | None = None
    image_url: Text | None = None
    install_sys_packages: StrictBool | None = None
    image_repo_id: Text | None = None  # Huawei only

    @model_validator(mode="after")
    def _one_engine(self) -> Engine:
        given = [
            name for name, ok in (
                ("engine_id", self.engine_id is not None),
                ("engine_name + engine_version",
                 self.engine_name is not None or self.engine_version is not None),
                ("image_url", self.image_url is not None),
            ) if ok
        ]  # fmt: skip
        if len(given) != 1:
            raise ValueError(
                "give exactly one of engine_id, engine_name with engine_version, or image_url"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if (self.engine_name is None) != (self.engine_version is None):
            raise ValueError("engine_name and engine_version go together: give both")
        return self


class Parameter(BaseModel):
    model_config = _STRICT

    name: Text
    value: StrictStr  # strings on the wire, as for v1
    description: StrictStr | None = None
    constraint: dict[str, Any] | None = None
    i18n_description: dict[str, Any] | None = None


class ObsPath(BaseModel):
    model_config = _STRICT

    obs_url: Text


class Dataset(BaseModel):
    model_config = _STRICT

    id: Text
    version_id: Text


class InputRemote(BaseModel):
    model_config = _STRICT

    obs: ObsPath | None = None
    dataset: Dataset | None = None

    @model_validator(mode="after")
    def _one_remote(self) -> InputRemote:
        if (self.obs is None) == (self.dataset is None):
            raise ValueError("an input's remote is exactly one of obs: {obs_url} or dataset")
        return self


class OutputRemote(BaseModel):
    model_config = _STRICT

    obs: ObsPath


class Input(BaseModel):
    model_config = _STRICT

    name: Text
    description: StrictStr | None = None
    local_dir: StrictStr | None = None
    remote: InputRemote
    remote_constraint: list[dict[str, Any]] | None = None
    access_method: Literal["parameter", "env"] | None = None  # Huawei only


class Output(BaseModel):
    model_config = _STRICT

    name: Text
    description: StrictStr | None = None
    local_dir: StrictStr | None = None
    remote: OutputRemote
    access_method: Literal["parameter", "env"] | None = None  # Huawei only


class Algorithm(BaseModel):
    model_config = _STRICT

    id: Text | None = None
    name: StrictStr | None = None
    subscription_id: Text | None = None
    item_version_id: Text | None = None
    code_dir: Text | None = None
    boot_file: Text | None = None
    command: Text | None = None
    engine: Engine | None = None
    parameters: list[Parameter] | None = None
    inputs: list[Input] | None = None
    outputs: list[Output] | None = None
    environments: Annotated[dict[Env, Annotated[StrictStr, Field(max_length=4096)]],
                            Field(max_length=100)] | None = None  # fmt: skip
    policies: dict[str, Any] | None = None
    local_code_dir: StrictStr | None = None
    working_dir: StrictStr | None = None
    autosearch_config_path: StrictStr | None = None
    autosearch_framework_path: StrictStr | None = None
    summary: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_code_source(self) -> Algorithm:
        sources = [
            name for name, ok in (
                ("id", self.id is not None),
                ("subscription_id + item_version_id",
                 self.subscription_id is not None or self.item_version_id is not None),
                ("code_dir + boot_file", self.code_dir is not None or self.boot_file is not None),
            ) if ok
        ]  # fmt: skip
        custom_image = self.engine is not None and self.engine.image_url is not None
        if len(sources) > 1 or (not sources and not custom_image):
            raise ValueError(
                "give exactly one code source: id, subscription_id with item_version_id, or "
                "code_dir with boot_file (or a custom image: engine.image_url with command)"
                + (f"; got {', '.join(sources)}" if sources else "")
            )
        if (self.code_dir is None) != (self.boot_file is None):
            raise ValueError("code_dir and boot_file go together: give both")
        if (self.subscription_id is None) != (self.item_version_id is None):
            raise ValueError("subscription_id and item_version_id go together: give both")
        if custom_image and self.command is None:
            raise ValueError("a custom image (engine.image_url) needs command (ModelArts.2806)")
        if self.id is not None and self.engine is not None:
            raise ValueError("an algorithm id brings its own engine: leave engine out")
        for field, items in (("parameters", self.parameters), ("inputs", self.inputs),
                             ("outputs", self.outputs)):
            names = [item.name for item in items or ()]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{field}: name {twice[0]!r} is listed twice: keep one")
        return self


class Resource(BaseModel):
    model_config = _STRICT

    flavor_id: Text
    node_count: Annotated[StrictInt, Field(ge=1)] | None = None
    pool_id: Text | None = None
    pool_group_id: Text | None = None  # Huawei only
    main_container_customized_flavor: dict[str, Any] | None = None  # Huawei only


class Spec(BaseModel):
    model_config = _STRICT

    resource: Resource
    log_export_path: dict[str, StrictStr] | None = None
    volumes: list[dict[str, Any]] | None = None
    auto_stop: dict[str, Any] | None = None
    schedule_policy: dict[str, Any] | None = None
    notification: dict[str, Any] | None = None
    # Huawei only (section 2, spec): passed through as given.
    retention: dict[str, Any] | None = None
    log_export_config: dict[str, Any] | None = None
    custom_metrics: list[Any] | None = None
    output_model: dict[str, Any] | None = None
    asset_model: dict[str, Any] | None = None
    asset_id: StrictStr | None = None
    reserved_time: StrictInt | None = None


class CreateTrainingJobRequest(BaseModel):
    """The body of ``POST /v2/{project_id}/training-jobs``, as we send it."""

    model_config = _STRICT

    kind: Literal[KINDS] = "job"  # type: ignore[valid-type]
    metadata: Metadata
    algorithm: Algorithm
    spec: Spec
    endpoints: dict[str, Any] | None = None


def fields_at(loc: tuple[str | int, ...]) -> tuple[str, ...]:
    """The fields the request allows in the object at ``loc`` (e.g. ``("algorithm",)``), for
    "did you mean" hints; empty when ``loc`` is no object of the request models."""
    model: type[BaseModel] = CreateTrainingJobRequest
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list: the list's item model was taken at its field
        field = model.model_fields.get(part)
        models = _models_in(field.annotation) if field is not None else []
        if not models:
            return ()
        model = models[0]
    return tuple(model.model_fields)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The request models an annotation holds (``Algorithm | None``, ``list[Input] | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


# ---------------------------------------------------------------------------------------------
# Responses: tolerant.


class TrainingJobMetadata(BaseModel):
    model_config = _TOLERANT

    id: str = Field(min_length=1)
    name: str = ""
    create_time: int | None = None  # ms
    workspace_id: str | None = None

    @field_validator("id", "name", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("create_time", mode="before")
    @classmethod
    def _ms(cls, value: Any) -> Any:
        if value in ("", None):
            return None
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return None


class TrainingJobStatus(BaseModel):
    model_config = _TOLERANT

    phase: str | None = None
    secondary_phase: str | None = None
    duration: int | None = None  # ms

    @field_validator("duration", mode="before")
    @classmethod
    def _ms(cls, value: Any) -> Any:
        try:
            return None if value in ("", None) else int(float(value))
        except (TypeError, ValueError):
            return None


def _scalar_text(value: Any) -> Any:
    """A parameter value as text: the echo may carry numbers and booleans (as v1's may)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return "" if value is None else value


class EchoedParameter(BaseModel):
    model_config = _TOLERANT

    name: str
    value: str = ""

    @field_validator("value", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _scalar_text(value)


class EchoedAlgorithm(BaseModel):
    model_config = _TOLERANT

    parameters: list[EchoedParameter] | None = None
    outputs: list[dict[str, Any]] | None = None

    @field_validator("parameters", "outputs", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return None if value is None or not isinstance(value, list) else [
            item for item in value if isinstance(item, dict)
        ]


class TrainingJob(BaseModel):
    """A job as create, search and detail return it: what identifies it and where it stands."""

    model_config = _TOLERANT

    metadata: TrainingJobMetadata
    status: TrainingJobStatus = TrainingJobStatus()
    algorithm: EchoedAlgorithm = EchoedAlgorithm()

    @field_validator("status", "algorithm", mode="before")
    @classmethod
    def _object(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}

    @property
    def id(self) -> str:
        return self.metadata.id

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def phase(self) -> str | None:
        return self.status.phase

    @property
    def parameter_pairs(self) -> list[tuple[str, str]]:
        return [(p.name, p.value) for p in self.algorithm.parameters or ()]

    @property
    def output_urls(self) -> dict[str, str]:
        """Output channel name -> its OBS url, as echoed."""
        urls: dict[str, str] = {}
        for item in self.algorithm.outputs or ():
            remote = item.get("remote")
            obs = remote.get("obs") if isinstance(remote, dict) else None
            url = obs.get("obs_url") if isinstance(obs, dict) else None
            if isinstance(item.get("name"), str) and isinstance(url, str):
                urls[item["name"]] = url
        return urls


class JobSearchPage(BaseModel):
    """One page of ``POST /v2/{project_id}/training-job-searches``. ``total`` and ``count`` are
    read but never trusted to end a walk (their meaning is disputed: section 4)."""

    model_config = _TOLERANT

    items: list[TrainingJob] = []
    total: int | None = None
    count: int | None = None

    @field_validator("items", mode="before")
    @classmethod
    def _items(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("total", "count", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        try:
            return None if value in ("", None) else int(value)
        except (TypeError, ValueError):
            return None

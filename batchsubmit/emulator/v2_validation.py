"""Request rules of the v2 create, search and terminate calls, from the contract, not the client.

Written from shared/spec/v2-training-jobs.md (sections 2, 4 and 6), sharing nothing with the
client's models. The first failure wins; every message names the field path. Codes:

- ``ModelArts.2787`` the body is not one JSON object;
- ``ModelArts.2788`` InvalidParam: an unknown or missing field, or an "exactly one of" rule;
- ``ModelArts.2825`` ParamTypeError: a field of the wrong JSON type (parameter values are
  strings on the wire);
- ``ModelArts.2816`` ParamRangeError: a value out of range (name pattern, lengths, kind,
  node_count, offset, limit);
- ``ModelArts.0102`` a workspace_id that is neither ``"0"`` nor a 32-character id;
- ``ModelArts.2791`` InvalidObsPath, ``2802`` invalid codeDir, ``2758`` boot file outside it,
  ``2806`` a custom image without ``command``, ``2854`` an input with no known remote type;
- terminate: ``2812`` UnsupportedActionType (the search's rules are in ``v2_search.py``).

Where the sources disagree (section 9.3) the emulator requires ``algorithm``, ``spec`` and
``spec.resource.flavor_id`` (Terraform; the contract's note says always send them), keeps
``node_count`` optional (default 1) and requires both ``id`` and ``version_id`` of a dataset input.
Huawei-only fields (``train_type``, ``training_experiment_reference``, ...) are accepted.
"""

from __future__ import annotations

import re
from typing import Any

from batchsubmit.emulator.validation import Rejection, json_type

MAX_DESC = 256
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
WORKSPACE = re.compile(r"0|[A-Za-z0-9]{32}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KINDS = ("job", "visualization_job", "federated_pool_job", "edge_job", "hetero_job",
         "mrs_job", "autosearch_job", "diag_job")  # fmt: skip
TOP = ("kind", "metadata", "algorithm", "spec", "tasks", "endpoints", "train_type", "ftjob_config")
METADATA = ("name", "workspace_id", "description", "annotations", "training_experiment_reference")
ALGORITHM = ("id", "name", "subscription_id", "item_version_id", "code_dir", "boot_file",
             "command", "engine", "parameters", "inputs", "outputs", "environments", "policies",
             "local_code_dir", "working_dir", "autosearch_config_path",
             "autosearch_framework_path", "summary")  # fmt: skip
ALGORITHM_STRINGS = ("id", "name", "subscription_id", "item_version_id", "code_dir", "boot_file",
                     "command", "local_code_dir", "working_dir")  # fmt: skip
ENGINE = ("engine_id", "engine_name", "engine_version", "image_url", "install_sys_packages",
          "image_repo_id")  # fmt: skip
PARAMETER = ("name", "value", "description", "constraint", "i18n_description")
INPUT = ("name", "description", "local_dir", "remote", "remote_constraint", "access_method")
OUTPUT = ("name", "description", "local_dir", "remote", "access_method")
SPEC = ("resource", "log_export_path", "volumes", "auto_stop", "schedule_policy", "notification",
        "retention", "log_export_config", "custom_metrics", "output_model", "asset_model",
        "asset_id", "reserved_time")  # fmt: skip
RESOURCE = ("flavor_id", "node_count", "pool_id", "pool_group_id",
            "main_container_customized_flavor")  # fmt: skip


class V2Rejection(Rejection):
    """A v2 failure; ``solution`` becomes the body's ``error_solution`` when given."""

    def __init__(self, status: int, code: str, message: str, *, solution: str | None = None):
        super().__init__(status, code, message)
        self.solution = solution


def invalid_param(message: str) -> V2Rejection:
    """ModelArts.2788 InvalidParam: unknown or missing field, or an exclusivity rule."""
    return V2Rejection(400, "ModelArts.2788", message)


def out_of_range(message: str) -> V2Rejection:
    """ModelArts.2816 ParamRangeError: a well-typed value outside its range."""
    return V2Rejection(400, "ModelArts.2816", message)


def wrong_type(path: str, expected: str, value: object) -> V2Rejection:
    """ModelArts.2825 ParamTypeError naming the field, what it must be and what it was."""
    return V2Rejection(
        400, "ModelArts.2825", f"{path} must be a JSON {expected}, got {json_type(value)}"
    )


def at(path: str, key: str) -> str:
    """The dotted path of ``key`` inside ``path`` (top-level fields are named bare)."""
    return key if path == "body" else f"{path}.{key}"


def object_with(value: object, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``value`` as a JSON object with no field outside ``allowed`` (2825, 2788 otherwise)."""
    if not isinstance(value, dict):
        raise wrong_type(path, "object", value)
    for key in value:
        if key not in allowed:
            where = at(path, key)
            raise invalid_param(f"unknown field {where}; allowed here: {', '.join(allowed)}")
    return value


def _required(obj: dict[str, Any], key: str, path: str, hint: str) -> Any:
    if key not in obj:
        raise invalid_param(f"{at(path, key)} is required; {hint}")
    return obj[key]


def strings(obj: dict[str, Any], keys: tuple[str, ...], path: str) -> None:
    """2825 for the first of ``keys`` present in ``obj`` that is not a JSON string."""
    for key in keys:
        if key in obj and not isinstance(obj[key], str):
            raise wrong_type(at(path, key), "string", obj[key])


def _string_map(value: object, path: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise wrong_type(path, "object of strings", value)
    for key, item in value.items():
        if not isinstance(item, str):
            raise wrong_type(f"{path}.{key}", "string", item)
    return value


def _obs_path(value: object, path: str) -> None:
    if not isinstance(value, str):
        raise wrong_type(path, "string", value)
    rest = value.removeprefix("obs://") if value.startswith("obs://") else None
    if rest is None and value.startswith("/"):
        rest = value[1:]
    if not rest or rest.startswith("/"):
        raise V2Rejection(
            400,
            "ModelArts.2791",
            f"Invalid obs path: {value!r}, reason: {path} must be /bucket/dir/ or "
            "obs://bucket/dir/",
        )


def validate_create(body: dict[str, Any]) -> dict[str, Any]:
    """Apply every create rule (section 2) in order; returns the body, raises the first failure."""
    object_with(body, "body", TOP)
    kind = _required(body, "kind", "body", 'write "kind": "job"')
    if not isinstance(kind, str):
        raise wrong_type("kind", "string", kind)
    if kind not in KINDS:
        raise out_of_range(f'kind {kind!r} is not one of {", ".join(KINDS)}; write "job"')
    _check_metadata(_required(body, "metadata", "body", 'write {"name": "my-job-01"}'))
    algorithm = _required(body, "algorithm", "body", "give code_dir + boot_file + engine")
    _check_algorithm(object_with(algorithm, "algorithm", ALGORITHM))
    _check_spec(_required(body, "spec", "body", 'write {"resource": {"flavor_id": "..."}}'))
    if "tasks" in body:
        raise invalid_param("tasks must be left out when spec is given; drop tasks")
    if "endpoints" in body:
        object_with(body["endpoints"], "endpoints", ("ssh",))
    return body


def _check_metadata(value: object) -> None:
    metadata = object_with(value, "metadata", METADATA)
    name = _required(metadata, "name", "metadata", 'e.g. "sweep-p0001"')
    strings(metadata, ("name", "workspace_id", "description"), "metadata")
    if not NAME.fullmatch(name):
        raise out_of_range(
            f'metadata.name {name!r} is invalid: use 1..64 letters, digits, "_" or "-" '
            '(no ".", "/" or "="), e.g. "lr0p01-bs32"'
        )
    workspace = metadata.get("workspace_id", "0")
    if not WORKSPACE.fullmatch(workspace):
        raise V2Rejection(
            400,
            "ModelArts.0102",
            f'metadata.workspace_id {workspace!r}: the workspace does not exist; use "0" '
            "(the default) or a 32-character workspace id",
        )
    if len(metadata.get("description", "")) > MAX_DESC:
        raise out_of_range(f"metadata.description is longer than {MAX_DESC} characters")
    if "annotations" in metadata:
        _string_map(metadata["annotations"], "metadata.annotations")


def _check_algorithm(algorithm: dict[str, Any]) -> None:
    strings(algorithm, ALGORITHM_STRINGS, "algorithm")
    forms = [
        name
        for name, present in (
            ("id", "id" in algorithm),
            ("subscription_id + item_version_id", "subscription_id" in algorithm),
            ("code_dir + boot_file", "code_dir" in algorithm or "boot_file" in algorithm),
        )
        if present
    ]
    if len(forms) != 1:
        raise invalid_param(
            f"algorithm needs exactly one code source, got {' and '.join(forms) or 'none'}: "
            "give algorithm.id, or subscription_id + item_version_id, or code_dir + boot_file"
        )
    for one, other in (("subscription_id", "item_version_id"), ("code_dir", "boot_file")):
        if (one in algorithm) != (other in algorithm):
            present, missing = (one, other) if one in algorithm else (other, one)
            raise invalid_param(f"algorithm.{present} needs algorithm.{missing} too")
    if "code_dir" in algorithm:
        _check_code(algorithm)
    elif "id" in algorithm and "engine" in algorithm:
        raise invalid_param("algorithm.engine must be left out with algorithm.id")
    _check_channels(algorithm)
    if "environments" in algorithm:
        _check_environments(_string_map(algorithm["environments"], "algorithm.environments"))


def _check_code(algorithm: dict[str, Any]) -> None:
    code_dir, boot = algorithm["code_dir"], algorithm["boot_file"]
    try:
        _obs_path(code_dir, "algorithm.code_dir")
    except V2Rejection as exc:
        raise V2Rejection(400, "ModelArts.2802", f"invalid codeDir: {exc.message}") from None
    directory = code_dir if code_dir.endswith("/") else code_dir + "/"
    if not (boot.startswith(directory) and len(boot) > len(directory)):
        raise V2Rejection(
            400,
            "ModelArts.2758",
            f"algorithm.boot_file {boot!r} must lie inside algorithm.code_dir {code_dir!r}; "
            f"write e.g. {directory + 'train.py'!r}",
        )
    engine = object_with(
        _required(algorithm, "engine", "algorithm", 'e.g. {"engine_id": "pytorch-cp36-1.4.0-v2"}'),
        "algorithm.engine",
        ENGINE,
    )
    _check_engine(engine, algorithm)


def _check_engine(engine: dict[str, Any], algorithm: dict[str, Any]) -> None:
    strings(engine, ("engine_id", "engine_name", "engine_version", "image_url"), "algorithm.engine")
    if ("engine_name" in engine) != ("engine_version" in engine):
        raise invalid_param("algorithm.engine.engine_name and engine_version go together")
    forms = [key for key in ("engine_id", "engine_name", "image_url") if key in engine]
    if len(forms) != 1:
        raise invalid_param(
            f"algorithm.engine needs exactly one of engine_id, engine_name + engine_version or "
            f"image_url, got {', '.join(forms) or 'none'}"
        )
    if "image_url" in engine and "command" not in algorithm:
        raise V2Rejection(
            400,
            "ModelArts.2806",
            "a custom image (algorithm.engine.image_url) needs algorithm.command too",
        )


def _items(algorithm: dict[str, Any], key: str) -> list[Any]:
    items = algorithm.get(key, [])
    if not isinstance(items, list):
        raise wrong_type(f"algorithm.{key}", "array", items)
    return items


def _check_channels(algorithm: dict[str, Any]) -> None:
    for index, raw in enumerate(_items(algorithm, "parameters")):
        item = object_with(raw, f"algorithm.parameters[{index}]", PARAMETER)
        strings(item, ("name", "value", "description"), f"algorithm.parameters[{index}]")
    for key, allowed in (("inputs", INPUT), ("outputs", OUTPUT)):
        for index, raw in enumerate(_items(algorithm, key)):
            where = f"algorithm.{key}[{index}]"
            item = object_with(raw, where, allowed)
            _required(item, "name", where, 'e.g. "data_url"')
            strings(item, ("name", "description", "local_dir", "access_method"), where)
            remote = _required(item, "remote", where, 'e.g. {"obs": {"obs_url": "/bucket/d/"}}')
            _check_remote(remote, f"{where}.remote", dataset_allowed=key == "inputs")


def _check_remote(value: object, where: str, *, dataset_allowed: bool) -> None:
    remote = object_with(value, where, ("obs", "dataset"))
    kinds = sorted(remote) if dataset_allowed else [k for k in remote if k == "obs"]
    if len(kinds) != 1 or len(remote) != 1:
        allowed = "obs or dataset" if dataset_allowed else "obs"
        raise V2Rejection(
            400, "ModelArts.2854", f"{where} needs exactly one remote type ({allowed})"
        )
    if kinds[0] == "obs":
        obs = object_with(remote["obs"], f"{where}.obs", ("obs_url",))
        _obs_path(
            _required(obs, "obs_url", f"{where}.obs", '"/bucket/dir/"'), f"{where}.obs.obs_url"
        )
    else:
        dataset = object_with(remote["dataset"], f"{where}.dataset", ("id", "version_id"))
        for key in ("id", "version_id"):
            _required(dataset, key, f"{where}.dataset", "give the dataset's id and version_id")
        strings(dataset, ("id", "version_id"), f"{where}.dataset")


def _check_environments(env: dict[str, str]) -> None:
    if len(env) > 100:
        raise out_of_range(f"algorithm.environments has {len(env)} pairs; at most 100")
    for key, value in env.items():
        if not ENV_NAME.fullmatch(key) or len(key) > 8192:
            raise out_of_range(f"algorithm.environments name {key!r}: use [A-Za-z_][A-Za-z0-9_]*")
        if "$" in value or len(value) > 4096:
            raise out_of_range(f"algorithm.environments.{key}: no '$', at most 4096 characters")


def _check_spec(value: object) -> None:
    spec = object_with(value, "spec", SPEC)
    hint = 'write {"flavor_id": "modelarts.vm.cpu.2u", "node_count": 1}'
    resource = object_with(_required(spec, "resource", "spec", hint), "spec.resource", RESOURCE)
    flavor = _required(resource, "flavor_id", "spec.resource", 'e.g. "modelarts.vm.cpu.2u"')
    strings(resource, ("flavor_id", "pool_id"), "spec.resource")
    if not flavor.strip():
        raise out_of_range("spec.resource.flavor_id is empty; give a flavor id")
    count = resource.get("node_count", 1)
    if isinstance(count, bool) or not isinstance(count, int):
        raise wrong_type("spec.resource.node_count", "integer", count)
    if count < 1:
        raise out_of_range(f"spec.resource.node_count must be >= 1, got {count}")
    if "log_export_path" in spec:
        log_path = object_with(
            spec["log_export_path"], "spec.log_export_path", ("obs_url", "host_path")
        )
        if "obs_url" in log_path:
            _obs_path(log_path["obs_url"], "spec.log_export_path.obs_url")


def validate_action(body: dict[str, Any]) -> None:
    """The terminate body: ``{"action_type": "terminate"}``, else 2788 or 2812."""
    if "action_type" not in body:
        raise invalid_param('action_type is required; write {"action_type": "terminate"}')
    action = body["action_type"]
    if not isinstance(action, str):
        raise wrong_type("action_type", "string", action)
    if action != "terminate":
        raise V2Rejection(
            400,
            "ModelArts.2812",
            f'UnsupportedActionType: action_type {action!r}; the only action is "terminate"',
        )

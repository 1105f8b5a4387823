"""Request-body rules of create-version and create-job, written from the spec, not the client.

The emulator is an independent check of the client's request models, so nothing here is shared
with them. Rules run in the order of the error contract and the first failure wins; every message
names the field path and says what to write instead.

``strict`` (the default) enforces the two exclusivity rules that the documentation's own sample
requests break (real-service-unknowns.md, U9): ``model_id`` must not come with
``app_url``/``boot_file_url``, and ``pool_id`` (a dedicated resource pool, U8) must not come with
``spec_id``. Exactly one of ``spec_id`` and ``pool_id`` is required either way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

TOP_FIELDS = ("job_desc", "config")
JOB_TOP_FIELDS = ("job_name", "job_desc", "config")
INT_FIELDS = ("worker_server_num", "spec_id", "engine_id", "model_id", "pre_version_id")
STR_FIELDS = (
    "app_url",
    "boot_file_url",
    "data_url",
    "dataset_id",
    "dataset_version_id",
    "train_url",
    "log_url",
    "user_image_url",
    "user_command",
    "pool_id",
)
CONFIG_FIELDS = (*INT_FIELDS, *STR_FIELDS, "parameter", "data_source")
DATA_SOURCE_FIELDS = ("dataset_id", "dataset_version", "type", "data_url")
PARAMETER_FIELDS = ("label", "value")
MAX_DESC = 256
JOB_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Rejection(Exception):
    """A request the emulator answers with an error body; ``gateway`` selects the APIG shape."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        *,
        gateway: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.gateway = gateway
        self.headers = headers or {}


def invalid_argument(message: str) -> Rejection:
    """ModelArts.0101: unknown field, missing field or wrong JSON type."""
    return Rejection(400, "ModelArts.0101", message)


def invalid_value(message: str) -> Rejection:
    """ModelArts.0107: a well-typed value out of its range."""
    return Rejection(400, "ModelArts.0107", message)


@dataclass(frozen=True, slots=True)
class VersionRequest:
    """A create-version body that passed every rule."""

    job_desc: str | None
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A create-job body that passed every rule."""

    job_name: str
    job_desc: str | None
    config: dict[str, Any]


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a body that must be one JSON object (ModelArts.2787 otherwise)."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejection(
            400, "ModelArts.2787", f"request body is not valid JSON ({exc}); send a JSON object"
        ) from None
    if not isinstance(body, dict):
        raise Rejection(
            400,
            "ModelArts.2787",
            f'request body must be a JSON object, got {json_type(body)}; send {{"config": ...}}',
        )
    return body


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_version_body(body: dict[str, Any], *, strict: bool = True) -> VersionRequest:
    """Apply every create-version rule in contract order; raises the first :class:`Rejection`."""
    _check_unknown(body, TOP_FIELDS)
    config = _check_types_top(body)
    _check_config(body, config, require_pre_version=True, strict=strict)
    return VersionRequest(job_desc=body.get("job_desc"), config=config)


def validate_job_body(body: dict[str, Any], *, strict: bool = True) -> JobRequest:
    """Create-job rules: a job name, and a config checked like a version's minus pre_version_id."""
    _check_unknown(body, JOB_TOP_FIELDS)
    if "job_name" not in body:
        raise invalid_argument('job_name is required: a name of 1..64 letters, digits, "_" or "-"')
    name = body["job_name"]
    if not isinstance(name, str):
        raise invalid_argument(f"job_name must be a JSON string, got {json_type(name)}")
    config = _check_types_top(body)
    _check_config(body, config, require_pre_version=False, strict=strict)
    if not JOB_NAME.fullmatch(name):
        raise invalid_value(
            f'job_name {name!r} is invalid: use 1..64 letters, digits, "_" or "-", e.g. "sweep-01"'
        )
    return JobRequest(job_name=name, job_desc=body.get("job_desc"), config=config)


def _check_config(
    body: dict[str, Any], config: dict[str, Any], *, require_pre_version: bool, strict: bool
) -> None:
    """The rules after the unknown-field pass, in contract order."""
    _check_required_and_types(config, require_pre_version=require_pre_version)
    desc = body.get("job_desc")
    if desc is not None and len(desc) > MAX_DESC:
        raise invalid_value(f"job_desc has {len(desc)} characters; shorten it to <= {MAX_DESC}")
    _check_code_source(config, strict=strict)
    _check_resource(config, strict=strict)
    _check_data_source(config)
    _check_boot_file(config)
    for name in INT_FIELDS:
        if name in config and config[name] < 1:
            raise invalid_value(f"config.{name} must be >= 1, got {config[name]}")
    if "pool_id" in config and not config["pool_id"].strip():
        raise invalid_value(
            'config.pool_id is empty: give the dedicated pool\'s id, e.g. "pool-1234", '
            "or drop it and give config.spec_id for the public pool"
        )


def _check_unknown(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """ModelArts.0101 for any field the spec does not define, at any level."""
    _reject_extra(body, allowed, "")
    config = body.get("config")
    if not isinstance(config, dict):
        return
    _reject_extra(config, CONFIG_FIELDS, "config.")
    for list_name, fields in (("data_source", DATA_SOURCE_FIELDS), ("parameter", PARAMETER_FIELDS)):
        items = config.get(list_name)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    _reject_extra(item, fields, f"config.{list_name}[{index}].")


def _reject_extra(obj: dict[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    extra = [key for key in obj if key not in allowed]
    if extra:
        raise invalid_argument(
            f"unknown field {prefix}{extra[0]}; allowed here: {', '.join(allowed)}"
        )


def _check_types_top(body: dict[str, Any]) -> dict[str, Any]:
    """Top-level presence and types; returns the config object."""
    if "job_desc" in body and not isinstance(body["job_desc"], str):
        raise invalid_argument(
            f"job_desc must be a JSON string, got {json_type(body['job_desc'])}; omit it or "
            'write e.g. "sweep point 3"'
        )
    if "config" not in body:
        raise invalid_argument("config is required: an object with the version's parameters")
    config = body["config"]
    if not isinstance(config, dict):
        raise invalid_argument(f"config must be a JSON object, got {json_type(config)}")
    return config


_EXAMPLES = {
    "worker_server_num": "1",
    "spec_id": "1",
    "pre_version_id": "the version_id of an existing version of this job",
    "train_url": '"/bucket/output/"',
}


def _check_required_and_types(config: dict[str, Any], *, require_pre_version: bool) -> None:
    required = ["worker_server_num", "spec_id", "train_url"]
    if "pool_id" in config:  # a dedicated pool replaces the public pool's spec_id (U8)
        required.remove("spec_id")
    if require_pre_version:
        required.append("pre_version_id")
    for name in required:
        if name not in config:
            alternative = (
                " (or config.pool_id for a dedicated resource pool)" if name == "spec_id" else ""
            )
            raise invalid_argument(
                f"config.{name} is required{alternative}; write e.g. {_EXAMPLES[name]}"
            )
    for name in INT_FIELDS:
        if name in config:
            value = config[name]
            if isinstance(value, bool) or not isinstance(value, int):
                hint = f"; write {int(value)}" if _integral(value) else ""
                raise invalid_argument(
                    f"config.{name} must be a JSON integer, got {json_type(value)} "
                    f"{json.dumps(value)}{hint}"
                )
    for name in STR_FIELDS:
        if name in config and not isinstance(config[name], str):
            raise invalid_argument(
                f"config.{name} must be a JSON string, got {json_type(config[name])}; "
                "quote the value, or omit the field instead of sending null"
            )
    _check_object_list(config, "parameter", PARAMETER_FIELDS, required_item=())
    _check_object_list(config, "data_source", DATA_SOURCE_FIELDS, required_item=("type",))


def _integral(value: object) -> bool:
    if isinstance(value, float) and value.is_integer():
        return True
    return isinstance(value, str) and value.strip().lstrip("-").isdigit()


def _check_object_list(
    config: dict[str, Any], name: str, fields: tuple[str, ...], *, required_item: tuple[str, ...]
) -> None:
    if name not in config:
        return
    items = config[name]
    if not isinstance(items, list):
        raise invalid_argument(
            f"config.{name} must be a JSON array of objects, got {json_type(items)}"
        )
    for index, item in enumerate(items):
        where = f"config.{name}[{index}]"
        if not isinstance(item, dict):
            raise invalid_argument(f"{where} must be a JSON object, got {json_type(item)}")
        for field in required_item:
            if field not in item:
                raise invalid_argument(f'{where}.{field} is required; write "obs" or "dataset"')
        for field in fields:
            if field in item and not isinstance(item[field], str):
                raise invalid_argument(
                    f"{where}.{field} must be a JSON string, got {json_type(item[field])}; "
                    f"write it quoted, e.g. {json.dumps(str(item[field]))}"
                )


def _invalid_param(message: str) -> Rejection:
    return Rejection(400, "ModelArts.2788", message)


def _check_code_source(config: dict[str, Any], *, strict: bool) -> None:
    has_app, has_boot = "app_url" in config, "boot_file_url" in config
    if has_app != has_boot:
        present, missing = ("app_url", "boot_file_url") if has_app else ("boot_file_url", "app_url")
        raise _invalid_param(
            f"config.{present} needs config.{missing} too: give both, e.g. "
            '"app_url": "/bucket/code/", "boot_file_url": "/bucket/code/train.py"'
        )
    has_model = "model_id" in config
    if not has_app and not has_model:
        raise _invalid_param(
            "config needs a code source: give config.app_url + config.boot_file_url "
            "(+ engine_id), or config.model_id"
        )
    if strict and has_app and has_model:
        raise _invalid_param(
            "config.model_id must not appear together with config.app_url and "
            "config.boot_file_url: give model_id for a built-in algorithm, or app_url + "
            "boot_file_url for your own code"
        )


def _check_resource(config: dict[str, Any], *, strict: bool) -> None:
    """U8/U9: a public-pool job gives spec_id, a dedicated-pool job pool_id; strict: not both."""
    if strict and "spec_id" in config and "pool_id" in config:
        raise _invalid_param(
            "config.spec_id must not appear together with config.pool_id: give spec_id for a "
            "public-pool job, or pool_id for a dedicated resource pool"
        )


def _check_data_source(config: dict[str, Any]) -> None:
    has_id, has_version = "dataset_id" in config, "dataset_version_id" in config
    if has_id != has_version:
        present, missing = (
            ("dataset_id", "dataset_version_id") if has_id else ("dataset_version_id", "dataset_id")
        )
        raise _invalid_param(
            f"config.{present} needs config.{missing} too: give both, or use config.data_url "
            "or config.data_source instead"
        )
    forms = [
        form
        for form, present in (
            ("data_url", "data_url" in config),
            ("dataset_id+dataset_version_id", has_id),
            ("data_source", "data_source" in config),
        )
        if present
    ]
    if len(forms) != 1:
        given = " and ".join(f"config.{form}" for form in forms) if forms else "none"
        raise _invalid_param(
            f"config needs exactly one data source, got {given}: give one of config.data_url, "
            "config.dataset_id + config.dataset_version_id, or config.data_source"
        )
    if forms[0] == "data_source":
        _check_data_source_items(config["data_source"])


def _check_data_source_items(items: list[dict[str, str]]) -> None:
    if not items:
        raise _invalid_param(
            "config.data_source is empty: give at least one item, or use config.data_url"
        )
    types: set[str] = set()
    for index, item in enumerate(items):
        where = f"config.data_source[{index}]"
        kind = item["type"]
        if kind == "obs":
            if "data_url" not in item:
                raise _invalid_param(f'{where} of type "obs" needs data_url, e.g. "/bucket/data/"')
            if "dataset_id" in item or "dataset_version" in item:
                raise _invalid_param(
                    f'{where} of type "obs" must not have dataset_id/dataset_version; '
                    'use type "dataset" for those'
                )
        elif kind == "dataset":
            if "dataset_id" not in item or "dataset_version" not in item:
                raise _invalid_param(
                    f'{where} of type "dataset" needs dataset_id and dataset_version'
                )
            if "data_url" in item:
                raise _invalid_param(
                    f'{where} of type "dataset" must not have data_url; use type "obs" for it'
                )
        else:
            raise _invalid_param(f'{where}.type must be "obs" or "dataset", got {kind!r}')
        types.add(kind)
    if len(types) > 1:
        raise _invalid_param(
            'config.data_source mixes "obs" and "dataset" items: use items of one type only'
        )


def _check_boot_file(config: dict[str, Any]) -> None:
    if "app_url" not in config:
        return
    app, boot = config["app_url"], config["boot_file_url"]
    directory = app if app.endswith("/") else app + "/"  # "/usr/app" names the same directory
    if not app or not (boot.startswith(directory) and len(boot) > len(directory)):
        raise Rejection(
            400,
            "ModelArts.2791",
            f"config.boot_file_url {boot!r} must lie inside config.app_url {app!r}; "
            f"write e.g. {directory + 'train.py'!r}",
        )

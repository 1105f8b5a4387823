"""One table of bad create-version bodies, judged by both sides: our models and the emulator.

The emulator validates from the spec's rules without importing our request models, so a rule we
got wrong cannot pass on both sides. Every row is a mutation of the spec's example body; it must be
rejected by ``CreateVersionRequest`` naming the field, *and*, sent raw over a real socket (plain
aiohttp, none of our client's checks), by the emulator with 400 and the row's error code. A
hypothesis property then checks that the two sides agree on random mutations.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from batchsubmit.emulator import DEFAULT_PROJECT_ID, run_emulator
from batchsubmit.emulator.validation import Rejection, validate_version_body
from batchsubmit.models import CreateVersionRequest, describe_validation_error
from tests.fakes import DROP, body_with

MODEL_ONLY = {"config.app_url": DROP, "config.boot_file_url": DROP, "config.model_id": 3}
NO_DATASET = {"config.dataset_id": DROP, "config.dataset_version_id": DROP}
OBS = {"type": "obs", "data_url": "/bucket/data/"}
DATASET = {"type": "dataset", "dataset_id": "a", "dataset_version": "b"}
INVALID_ARGUMENT, INVALID_VALUE = "ModelArts.0101", "ModelArts.0107"
INVALID_PARAM, INVALID_OBS_PATH = "ModelArts.2788", "ModelArts.2791"



# (id, mutation, the emulator's error code, the field both sides must name)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown top-level field", {"jobdesc": "x"}, INVALID_ARGUMENT, "jobdesc"),
    ("unknown config field", {"config.learning_rate": "1"}, INVALID_ARGUMENT, "learning_rate"),
    ("unknown parameter field", {"config.parameter.0.name": "lr"}, INVALID_ARGUMENT, "name"),
    ("unknown data_source field", {**NO_DATASET, "config.data_source": [{**OBS, "path": "/x/"}]},
     INVALID_ARGUMENT, "path"),
    ("config missing", {"config": DROP}, INVALID_ARGUMENT, "config"),
    ("config not an object", {"config": []}, INVALID_ARGUMENT, "config"),
    ("config null", {"config": None}, INVALID_ARGUMENT, "config"),
    ("worker_server_num missing", {"config.worker_server_num": DROP}, INVALID_ARGUMENT,
     "worker_server_num"),
    ("spec_id missing", {"config.spec_id": DROP}, INVALID_ARGUMENT, "spec_id"),
    ("train_url missing", {"config.train_url": DROP}, INVALID_ARGUMENT, "train_url"),
    ("pre_version_id missing", {"config.pre_version_id": DROP}, INVALID_ARGUMENT,
     "pre_version_id"),
    ("integer as string", {"config.spec_id": "1"}, INVALID_ARGUMENT, "spec_id"),
    ("integer as boolean", {"config.worker_server_num": True}, INVALID_ARGUMENT,
     "worker_server_num"),
    ("integer as float", {"config.pre_version_id": 20.0}, INVALID_ARGUMENT, "pre_version_id"),
    ("string as number", {"config.train_url": 5}, INVALID_ARGUMENT, "train_url"),
    ("string as null", {"config.log_url": None}, INVALID_ARGUMENT, "log_url"),
    ("integer as null", {"config.engine_id": None}, INVALID_ARGUMENT, "engine_id"),
    ("job_desc a number", {"job_desc": 3}, INVALID_ARGUMENT, "job_desc"),
    ("job_desc null", {"job_desc": None}, INVALID_ARGUMENT, "job_desc"),
    ("parameter not a list", {"config.parameter": {"lr": "1"}}, INVALID_ARGUMENT, "parameter"),
    ("parameter null", {"config.parameter": None}, INVALID_ARGUMENT, "parameter"),
    ("parameter item not an object", {"config.parameter": ["lr=1"]}, INVALID_ARGUMENT,
     "parameter"),
    ("parameter value a number", {"config.parameter.0.value": 0.01}, INVALID_ARGUMENT, "value"),
    ("parameter label a boolean", {"config.parameter.0.label": False}, INVALID_ARGUMENT, "label"),
    ("parameter value null", {"config.parameter.1.value": None}, INVALID_ARGUMENT, "value"),
    ("data_source item field null",
     {**NO_DATASET, "config.data_source": [{**DATASET, "data_url": None}]}, INVALID_ARGUMENT,
     "data_url"),
    ("data_source item without type", {**NO_DATASET, "config.data_source": [{"data_url": "/d/"}]},
     INVALID_ARGUMENT, "type"),
    ("job_desc of 257 characters", {"job_desc": "d" * 257}, INVALID_VALUE, "job_desc"),
    ("worker_server_num zero", {"config.worker_server_num": 0}, INVALID_VALUE,
     "worker_server_num"),
    ("spec_id zero", {"config.spec_id": 0}, INVALID_VALUE, "spec_id"),
    ("engine_id negative", {"config.engine_id": -1}, INVALID_VALUE, "engine_id"),
    ("model_id zero", {**MODEL_ONLY, "config.model_id": 0}, INVALID_VALUE, "model_id"),
    ("pre_version_id zero", {"config.pre_version_id": 0}, INVALID_VALUE, "pre_version_id"),
    ("no code source", {"config.app_url": DROP, "config.boot_file_url": DROP}, INVALID_PARAM,
     "model_id"),
    ("app_url without boot_file_url", {"config.boot_file_url": DROP}, INVALID_PARAM,
     "boot_file_url"),
    ("boot_file_url without app_url", {"config.app_url": DROP}, INVALID_PARAM, "app_url"),
    ("boot_file_url alone beside model_id", {**MODEL_ONLY, "config.boot_file_url": "/a/b.py"},
     INVALID_PARAM, "app_url"),
    ("no data source", NO_DATASET, INVALID_PARAM, "data_url"),
    ("data_url beside the dataset pair", {"config.data_url": "/d/"}, INVALID_PARAM, "data_url"),
    ("data_url beside data_source",
     {**NO_DATASET, "config.data_url": "/d/", "config.data_source": [OBS]}, INVALID_PARAM,
     "data_source"),
    ("dataset pair beside data_source", {"config.data_source": [OBS]}, INVALID_PARAM,
     "data_source"),
    ("lone dataset_id", {"config.dataset_version_id": DROP}, INVALID_PARAM,
     "dataset_version_id"),
    ("lone dataset_version_id", {"config.dataset_id": DROP}, INVALID_PARAM, "dataset_id"),
    ("empty data_source", {**NO_DATASET, "config.data_source": []}, INVALID_PARAM,
     "data_source"),
    ("obs item without data_url", {**NO_DATASET, "config.data_source": [{"type": "obs"}]},
     INVALID_PARAM, "data_url"),
    ("obs item with dataset_id", {**NO_DATASET, "config.data_source": [{**OBS, "dataset_id": "a"}]},
     INVALID_PARAM, "dataset_id"),
    ("dataset item without dataset_version",
     {**NO_DATASET, "config.data_source": [{"type": "dataset", "dataset_id": "a"}]},
     INVALID_PARAM, "dataset_version"),
    ("dataset item with data_url",
     {**NO_DATASET, "config.data_source": [{**DATASET, "data_url": "/d/"}]}, INVALID_PARAM,
     "data_url"),
    ("data_source item of unknown type",
     {**NO_DATASET, "config.data_source": [{"type": "s3", "data_url": "/d/"}]}, INVALID_PARAM,
     "type"),
    ("obs and dataset items mixed", {**NO_DATASET, "config.data_source": [OBS, DATASET]},
     INVALID_PARAM, "obs"),
    ("boot_file_url outside app_url", {"config.boot_file_url": "/other/boot.py"},
     INVALID_OBS_PATH, "boot_file_url"),
    ("app_url empty", {"config.app_url": "", "config.boot_file_url": "/boot.py"},
     INVALID_OBS_PATH, "app_url"),
    ("boot_file_url equal to app_url", {"config.boot_file_url": "/usr/app/"}, INVALID_OBS_PATH,
     "boot_file_url"),
]
VALID = {
    "the spec's example": {},
    "model_id instead of code": MODEL_ONLY,
    "data_url": {**NO_DATASET, "config.data_url": "/bucket/data/"},
    "data_source of obs items": {**NO_DATASET, "config.data_source": [OBS, OBS]},
    "data_source of dataset items": {**NO_DATASET, "config.data_source": [DATASET]},
    "bare minimum": {"job_desc": DROP, "config.log_url": DROP, "config.parameter": DROP},
}


def model_problems(body: dict[str, Any]) -> str:
    """Our models' verdict as one text of "path: message" lines ("" when accepted)."""
    try:
        CreateVersionRequest.model_validate(body)
    except ValidationError as exc:
        return "\n".join(f"{path}: {message}" for path, message in describe_validation_error(exc))
    return ""


async def post_raw(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST ``body`` as JSON with plain aiohttp, none of our client's checks on the way."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/v1/{DEFAULT_PROJECT_ID}/training-jobs/10/versions", data=json.dumps(body),
            headers={"Content-Type": "application/json"},
        ) as response,
    ):
        return response.status, await response.json()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "code", "field"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
async def test_a_bad_body_is_rejected_by_our_models_and_by_the_emulator(
    changes: dict[str, Any], code: str, field: str
) -> None:
    """Our models and the emulator both refuse the body, each naming the field (400 + code)."""
    body = body_with(changes)
    verdict = model_problems(body)
    assert verdict, "our models accepted it"
    assert field in verdict
    async with run_emulator() as emu:
        status, reply = await post_raw(emu.url, body)
        assert (status, reply["is_success"], reply["error_code"]) == (400, False, code), reply
        assert field in reply["error_message"]
        assert emu.counters["creates"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("changes", VALID.values(), ids=list(VALID))
async def test_a_valid_body_is_accepted_by_our_models_and_by_the_emulator(
    changes: dict[str, Any],
) -> None:
    """Each documented form of body passes our models and creates a version on the emulator."""
    body = body_with(changes)
    assert model_problems(body) == ""
    async with run_emulator() as emu:
        status, reply = await post_raw(emu.url, body)
        assert (status, reply["is_success"]) == (200, True), reply
        assert emu.counters["creates"] == 1


def test_every_error_code_of_the_table_is_a_documented_400() -> None:
    """The table only expects codes the spec lists for a bad body."""
    documented = {INVALID_ARGUMENT, INVALID_VALUE, INVALID_PARAM, INVALID_OBS_PATH,
                  "ModelArts.0104", "ModelArts.2787"}
    assert {case[2] for case in CASES} <= documented


# --- the two sides agree on random mutations --------------------------------------------------

# Values worth trying anywhere: wrong JSON types, edge integers, the strings the rules look at.
JSON_VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [
        None, True, False, 0, -1, 1, 2**40, 1.5, 20.0, "", "/usr/app", "/usr/app/",
        "/usr/app/x.py", "/other/x.py", "obs", "dataset", "1", "d" * 256, "d" * 257, [], {},
        [OBS], [DATASET], [OBS, DATASET], [{"type": "obs"}], [{"label": "a", "value": "b"}],
        [{}], ["x"],
    ]
)


def _slots(body: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Every (container, key) of the body a mutation may touch, plus new keys to add."""
    slots: list[tuple[Any, Any]] = [(body, key) for key in [*body, "extra", "job_desc"]]
    config = body.get("config")
    if isinstance(config, dict):
        names = [
            "worker_server_num", "app_url", "boot_file_url", "parameter", "data_url",
            "dataset_id", "dataset_version_id", "data_source", "spec_id", "engine_id",
            "model_id", "train_url", "log_url", "pre_version_id", "user_image_url",
            "user_command", "nonsense",
        ]
        slots += [(config, key) for key in names]
        for list_name, keys in (
            ("parameter", ["label", "value", "name"]),
            ("data_source", ["type", "data_url", "dataset_id", "dataset_version", "path"]),
        ):
            items = config.get(list_name)
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict):
                        slots += [(item, key) for key in keys]
    return slots


@st.composite
def mutated_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with one to three random edits: a field dropped, replaced or added."""
    body = body_with(draw(st.sampled_from(list(VALID.values()))))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        container, key = draw(st.sampled_from(_slots(body)))
        if draw(st.booleans()):
            container.pop(key, None)
        else:
            container[key] = copy.deepcopy(draw(JSON_VALUES))
    return body


def _emulator_accepts(body: dict[str, Any]) -> bool:
    """The emulator's verdict, in the reading our models follow (U9): ``model_id`` beside
    ``app_url`` is allowed (the create page says only that app_url "need not be given"), so that
    pair is judged leniently; ``pool_id`` beside ``spec_id`` is refused (the page forbids it)."""
    config = body.get("config")
    strict = True
    if isinstance(config, dict) and "model_id" in config:
        code_pair = "app_url" in config or "boot_file_url" in config
        strict = not code_pair or ("pool_id" in config and "spec_id" in config)
    try:
        validate_version_body(body, strict=strict)
    except Rejection:
        return False
    return True


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(mutated_bodies())
def test_our_models_and_the_emulator_agree_on_random_bodies(body: dict[str, Any]) -> None:
    """For any mutation of a valid body, our models accept it exactly when the emulator does."""
    assert (model_problems(body) == "") == _emulator_accepts(body), model_problems(body)

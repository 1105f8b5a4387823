"""Request and response models: strict in (every create-version rule), tolerant out.

Pure tests, no event loop. Bodies are mutations of the spec's own example
(``shared/spec/create-training-job-version.md``); each rejection must name the field path.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from batchsubmit.models import (
    CreateVersionRequest,
    CreateVersionResponse,
    ErrorBody,
    JobStatus,
    Version,
    VersionDetail,
    VersionList,
    describe_validation_error,
)
from tests.fakes import DROP, EXAMPLE, body_with

MODEL_ONLY = {"config.app_url": DROP, "config.boot_file_url": DROP, "config.engine_id": DROP,
              "config.model_id": 3}
NO_DATASET = {"config.dataset_id": DROP, "config.dataset_version_id": DROP}
OBS = {"type": "obs", "data_url": "/bucket/data/"}
DATASET = {"type": "dataset", "dataset_id": "a", "dataset_version": "b"}



def problems(body: Any) -> list[tuple[str, str]]:
    """(path, message) of every rule ``body`` breaks; [] when it is valid."""
    try:
        CreateVersionRequest.model_validate(body)
    except ValidationError as exc:
        return describe_validation_error(exc)
    return []


# --- valid bodies ----------------------------------------------------------------------------

VALID = {
    "the spec's example": {},
    "model_id instead of code": MODEL_ONLY,
    "model_id beside code": {"config.model_id": 3},
    "data_url": {**NO_DATASET, "config.data_url": "/bucket/data/"},
    "data_source of obs items": {**NO_DATASET, "config.data_source": [OBS, OBS]},
    "data_source of dataset items": {**NO_DATASET, "config.data_source": [DATASET]},
    "bare minimum": {"job_desc": DROP, "config.log_url": DROP, "config.parameter": DROP,
                     "config.engine_id": DROP},
    "job_desc of 256 characters": {"job_desc": "d" * 256},
    "empty job_desc and parameter list": {"job_desc": "", "config.parameter": []},
    "parameter item without label or value": {"config.parameter": [{}, {"value": "v"}]},
    "custom image": {"config.user_image_url": "swr/x:1", "config.user_command": "bash run.sh"},
    "app_url without a trailing slash": {"config.app_url": "/usr/app"},
    "ids beyond 32 bits": {"config.pre_version_id": 2**62, "config.spec_id": 2**40},
    "a dedicated pool instead of spec_id": {"config.spec_id": DROP, "config.pool_id": "pool-a1"},
}


@pytest.mark.parametrize("changes", VALID.values(), ids=list(VALID))
def test_valid_bodies_are_accepted_and_sent_unchanged(changes: dict[str, Any]) -> None:
    """Every documented form of body is accepted, and to_wire() gives back the very same JSON."""
    body = body_with(changes)
    assert problems(body) == []
    assert CreateVersionRequest.model_validate(body).to_wire() == body


def test_the_spec_example_keeps_its_parameter_order() -> None:
    """Parameter items keep their order: points are matched by it."""
    wire = CreateVersionRequest.model_validate(EXAMPLE).to_wire()
    assert [p["label"] for p in wire["config"]["parameter"]] == ["learning_rate", "batch_size"]


# --- each rule, rejected with the field named -------------------------------------------------

# (id, changes, path describe_validation_error names, text its message holds)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    # required fields
    ("config missing", {"config": DROP}, "config", "required field is missing"),
    ("worker_server_num missing", {"config.worker_server_num": DROP},
     "config.worker_server_num", "required"),
    ("neither spec_id nor pool_id", {"config.spec_id": DROP}, "config", "or pool_id"),
    ("spec_id and pool_id together", {"config.pool_id": "pool-a"}, "config",
     "spec_id and pool_id together"),
    ("pool_id empty", {"config.spec_id": DROP, "config.pool_id": " "}, "config",
     "pool_id is empty"),
    ("pool_id a number", {"config.spec_id": DROP, "config.pool_id": 7}, "config.pool_id",
     "must be a string"),
    ("train_url missing", {"config.train_url": DROP}, "config.train_url", "required"),
    ("pre_version_id missing", {"config.pre_version_id": DROP}, "config.pre_version_id",
     "required"),
    # code source
    ("no code source", {"config.app_url": DROP, "config.boot_file_url": DROP}, "config",
     "model_id"),
    ("app_url without boot_file_url", {"config.boot_file_url": DROP}, "config",
     "add boot_file_url"),
    ("boot_file_url without app_url", {"config.app_url": DROP}, "config", "add app_url"),
    ("boot_file_url alone beside model_id", {**MODEL_ONLY, "config.boot_file_url": "/a/b.py"},
     "config", "add app_url"),
    ("boot_file_url outside app_url", {"config.boot_file_url": "/other/boot.py"}, "config",
     "must lie inside app_url"),
    ("boot_file_url equal to app_url", {"config.boot_file_url": "/usr/app/"}, "config",
     "must lie inside app_url"),
    ("app_url empty", {"config.app_url": "", "config.boot_file_url": "/boot.py"}, "config",
     "app_url is empty"),
    ("boot_file_url a sibling prefix", {"config.boot_file_url": "/usr/apple.py"}, "config",
     "must lie inside app_url"),
    # data source: exactly one form
    ("no data source", NO_DATASET, "config", "no data source"),
    ("data_url beside the dataset pair", {"config.data_url": "/d/"}, "config",
     "more than one data source (data_url and dataset_id + dataset_version_id)"),
    ("data_url beside data_source", {**NO_DATASET, "config.data_url": "/d/",
                                     "config.data_source": [OBS]}, "config",
     "data_url and data_source"),
    ("dataset pair beside data_source", {"config.data_source": [OBS]}, "config",
     "dataset_id + dataset_version_id and data_source"),
    ("lone dataset_id", {"config.dataset_version_id": DROP}, "config",
     "add dataset_version_id"),
    ("lone dataset_version_id", {"config.dataset_id": DROP}, "config", "add dataset_id"),
    ("empty data_source", {**NO_DATASET, "config.data_source": []}, "config",
     "data_source is empty"),
    ("obs item without data_url", {**NO_DATASET, "config.data_source": [{"type": "obs"}]},
     "config.data_source[0]", 'type "obs" needs data_url'),
    ("obs item with dataset_id", {**NO_DATASET, "config.data_source": [{**OBS, "dataset_id": "a"}]},
     "config.data_source[0]", "drop dataset_id/dataset_version"),
    ("dataset item without dataset_version",
     {**NO_DATASET, "config.data_source": [{"type": "dataset", "dataset_id": "a"}]},
     "config.data_source[0]", "needs both dataset_id and dataset_version"),
    ("dataset item with data_url",
     {**NO_DATASET, "config.data_source": [{**DATASET, "data_url": "/d/"}]},
     "config.data_source[0]", "drop data_url"),
    ("item of unknown type", {**NO_DATASET, "config.data_source": [{"type": "s3"}]},
     "config.data_source[0].type", "'obs' or 'dataset'"),
    ("item without type", {**NO_DATASET, "config.data_source": [{"data_url": "/d/"}]},
     "config.data_source[0].type", "required"),
    ("obs and dataset items mixed", {**NO_DATASET, "config.data_source": [OBS, DATASET]},
     "config", 'mixes type "obs" and type "dataset"'),
    # job_desc
    ("job_desc of 257 characters", {"job_desc": "d" * 257}, "job_desc", "at most 256"),
    # parameter items: strings only
    ("parameter value a number", {"config.parameter.0.value": 0.01},
     "config.parameter[0].value", "must be a string, got 0.01 (quote it)"),
    ("parameter label a number", {"config.parameter.1.label": 7},
     "config.parameter[1].label", "must be a string"),
    ("parameter value a boolean", {"config.parameter.0.value": True},
     "config.parameter[0].value", "must be a string"),
    ("parameter item not an object", {"config.parameter": ["lr=1"]}, "config.parameter[0]",
     "Parameter"),
    ("parameter not a list", {"config.parameter": {"lr": "1"}}, "config.parameter", "list"),
    # integers are integers
    ("worker_server_num a boolean", {"config.worker_server_num": True},
     "config.worker_server_num", "must be an integer, got True"),
    ("spec_id a string", {"config.spec_id": "1"}, "config.spec_id",
     "must be an integer, got '1'"),
    ("pre_version_id a float", {"config.pre_version_id": 20.0}, "config.pre_version_id",
     "must be an integer"),
    ("engine_id zero", {"config.engine_id": 0}, "config.engine_id", "greater than or equal to 1"),
    ("model_id negative", {**MODEL_ONLY, "config.model_id": -3}, "config.model_id",
     "greater than or equal to 1"),
    ("train_url a number", {"config.train_url": 5}, "config.train_url", "must be a string"),
    # explicit nulls: the API types these String/Long/Array, and answers ModelArts.0101
    ("log_url null", {"config.log_url": None}, "config.log_url", "must not be null"),
    ("job_desc null", {"job_desc": None}, "job_desc", "must not be null"),
    ("engine_id null", {"config.engine_id": None}, "config.engine_id", "must not be null"),
    ("parameter null", {"config.parameter": None}, "config.parameter", "must not be null"),
    ("parameter value null", {"config.parameter.0.value": None}, "config.parameter[0].value",
     "must not be null"),
    ("dataset item data_url null",
     {**NO_DATASET, "config.data_source": [{**DATASET, "data_url": None}]},
     "config.data_source[0].data_url", "must not be null"),
    ("config null", {"config": None}, "config", "must not be null"),
    # unknown fields, at every level
    ("unknown top-level field", {"jobdesc": "x"}, "jobdesc", "unknown field"),
    ("unknown config field", {"config.learning_rate": "0.1"}, "config.learning_rate",
     "unknown field"),
    ("unknown parameter field", {"config.parameter.0.name": "lr"}, "config.parameter[0].name",
     "unknown field"),
    ("unknown data_source field", {**NO_DATASET, "config.data_source": [{**OBS, "path": "/x/"}]},
     "config.data_source[0].path", "unknown field"),
]


@pytest.mark.parametrize(
    ("changes", "path", "needle"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID]
)
def test_each_rule_is_rejected_naming_the_field(
    changes: dict[str, Any], path: str, needle: str
) -> None:
    """A body breaking one rule is rejected, and the error names its field path and the fix."""
    found = problems(body_with(changes))
    assert found, "accepted"
    messages = [message for where, message in found if where == path]
    assert messages, found
    assert any(needle in message for message in messages), found


def test_a_body_that_is_not_an_object_is_rejected() -> None:
    """A JSON array or string is no body: the error points at the body itself."""
    assert problems([EXAMPLE])[0][0] == "<body>"


def test_describe_validation_error_dots_paths_and_takes_a_prefix() -> None:
    """Paths read config.parameter[1].value, and a prefix (e.g. the point) leads them."""
    with pytest.raises(ValidationError) as info:
        CreateVersionRequest.model_validate(body_with({"config.parameter.1.value": 32}))
    assert describe_validation_error(info.value, prefix="points[4]") == [
        ("points[4].config.parameter[1].value", "must be a string, got 32 (quote it)")
    ]


def test_request_models_are_frozen() -> None:
    """A validated body cannot be changed behind the validator's back."""
    request = CreateVersionRequest.model_validate(EXAMPLE)
    with pytest.raises(ValidationError):
        request.config.spec_id = 0


# --- round trip (hypothesis) -----------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
IDS = st.integers(min_value=1, max_value=2**63 - 1)


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Any body the contract allows: each code-source and data-source form, optional fields."""
    config: dict[str, Any] = {
        "worker_server_num": draw(IDS),
        "spec_id": draw(IDS),
        "train_url": draw(TEXT),
        "pre_version_id": draw(IDS),
    }
    code = draw(st.sampled_from(["app", "model", "both"]))
    if code != "model":
        app = draw(TEXT.filter(bool)) + draw(st.sampled_from(["/", ""]))
        prefix = app if app.endswith("/") else app + "/"
        config["app_url"] = app
        config["boot_file_url"] = prefix + draw(TEXT.filter(bool))
        if draw(st.booleans()):
            config["engine_id"] = draw(IDS)
    if code != "app":
        config["model_id"] = draw(IDS)
    data = draw(st.sampled_from(["url", "pair", "obs", "dataset"]))
    if data == "url":
        config["data_url"] = draw(TEXT)
    elif data == "pair":
        config["dataset_id"], config["dataset_version_id"] = draw(TEXT), draw(TEXT)
    elif data == "obs":
        items = st.fixed_dictionaries({"type": st.just("obs"), "data_url": TEXT})
        config["data_source"] = draw(st.lists(items, min_size=1, max_size=3))
    else:
        items = st.fixed_dictionaries(
            {"type": st.just("dataset"), "dataset_id": TEXT, "dataset_version": TEXT}
        )
        config["data_source"] = draw(st.lists(items, min_size=1, max_size=3))
    parameter = st.fixed_dictionaries({}, optional={"label": TEXT, "value": TEXT})
    optional = {
        "parameter": st.lists(parameter, max_size=4),
        "log_url": TEXT,
        "user_image_url": TEXT,
        "user_command": TEXT,
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            config[name] = draw(strategy)
    body: dict[str, Any] = {"config": config}
    if draw(st.booleans()):
        body["job_desc"] = draw(st.text(max_size=256))
    return body


@settings(max_examples=300, deadline=None)
@given(valid_bodies())
def test_any_valid_body_round_trips_unchanged(body: dict[str, Any]) -> None:
    """Any valid body validates, and to_wire() then model_validate() give it back unchanged."""
    request = CreateVersionRequest.model_validate(body)
    wire = request.to_wire()
    assert wire == body
    assert CreateVersionRequest.model_validate(wire) == request


# --- responses: tolerant ---------------------------------------------------------------------


def test_create_response_reads_the_spec_example() -> None:
    """The spec's success example parses into ids, name, status and time."""
    reply = CreateVersionResponse.model_validate(
        {"is_success": True, "job_id": 10, "job_name": "TestModelArtsJob", "status": 1,
         "create_time": 1524189990635, "version_id": 10, "version_name": "V0001"}
    )
    assert (reply.version_id, reply.version_name, reply.job_id, reply.status) == (
        10, "V0001", 10, 1
    )


@pytest.mark.parametrize(
    "name_field",
    [{"version_name": ""}, {}, {"version_name": None}],
    ids=["empty", "missing", "null"],
)
def test_create_response_tolerates_a_missing_name_and_numbers_as_strings(
    name_field: dict[str, Any],
) -> None:
    """Numbers sent as strings, an empty/missing/null version_name and extras are all accepted."""
    reply = CreateVersionResponse.model_validate(
        {"version_id": "12", "job_id": "10", "status": "1", "create_time": "1524189990635",
         "model_metric_list": "[]", "unknown": {"x": 1}, **name_field}
    )
    assert (reply.version_id, reply.job_id, reply.status, reply.create_time) == (
        12, 10, 1, 1524189990635
    )
    assert reply.version_name == ""


def test_create_response_tolerates_blank_optional_numbers() -> None:
    """An empty string where an optional number belongs reads as absent, not as an error."""
    reply = CreateVersionResponse.model_validate({"version_id": 5, "job_id": "", "status": " "})
    assert (reply.job_id, reply.status) == (None, None)


@pytest.mark.parametrize("version_id", [None, "", "V0002", True, 0, -1, 1.5, {"id": 1}])
def test_create_response_without_a_real_version_id_is_refused(version_id: Any) -> None:
    """version_id is the one thing a success must carry: absent, boolean or < 1 is refused."""
    with pytest.raises(ValidationError):
        CreateVersionResponse.model_validate({"is_success": True, "version_id": version_id})
    with pytest.raises(ValidationError):
        CreateVersionResponse.model_validate({"is_success": True})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"is_success": False, "error_code": "ModelArts.0105", "error_message": "Error string"},
         "Error string"),
        ({"error_code": "APIG.0308", "error_msg": "throttled", "request_id": "r1"}, "throttled"),
    ],
    ids=["v1 error_message", "gateway error_msg"],
)
def test_error_body_reads_error_message_or_error_msg(payload: dict[str, Any], message: str) -> None:
    """A failure body gives its message under either name, with code and request id."""
    body = ErrorBody.model_validate(payload)
    assert (body.error_message, body.error_code, body.is_success) == (
        message, payload["error_code"], False
    )
    assert body.request_id == payload.get("request_id")


def test_version_tolerates_strings_nulls_and_numbers_in_parameters() -> None:
    """A listed version reads string numbers, null fields, and number/bool/null parameter halves."""
    version = Version.model_validate(
        {"version_id": "30", "version_name": None, "status": "8", "create_time": "",
         "spec_id": "", "worker_server_num": "2", "data_source": None, "extra": [1],
         "parameter": [{"label": "lr", "value": 0.01}, {"label": "n", "value": 32},
                       {"label": "flag", "value": True}, {"label": "x", "value": None},
                       {"label": "y", "value": "1", "unknown": "z"}]}
    )
    assert (version.version_id, version.version_name, version.status) == (30, "", 8)
    assert (version.create_time, version.spec_id, version.worker_server_num) == (None, None, 2)
    assert [(p.label, p.value) for p in version.parameter] == [
        ("lr", "0.01"), ("n", "32"), ("flag", "true"), ("x", None), ("y", "1")
    ]
    assert Version.model_validate({"version_id": 1, "parameter": None}).parameter == []


def test_version_status_blank_or_unknown() -> None:
    """A blank status reads as UNKNOWN (0); a code beyond 22 is kept but has no JobStatus."""
    assert Version.model_validate({"version_id": 1, "status": ""}).job_status is JobStatus.UNKNOWN
    future = Version.model_validate({"version_id": 1, "status": 99})
    assert (future.status, future.job_status) == (99, None)


def test_version_matches_by_normalised_train_url_and_parameters_by_value() -> None:
    """matches() compares the normalised train_url and the parameters by label and value."""
    version = Version.model_validate(
        {"version_id": 1, "train_url": "obs://o/p1",
         "parameter": [{"label": "lr", "value": 0.1}, {"label": "bs", "value": 32},
                       {"label": "added_by_service", "value": "x"}]}
    )
    assert version.matches("/o/p1/", [("lr", "0.1"), ("bs", "32")])
    assert version.matches("/o//p1/", [("bs", "32.0"), ("lr", "0.100")])
    assert not version.matches("/o/p1/", [("lr", "0.2"), ("bs", "32")])
    assert not version.matches("/o/p1/", [("lr", "0.1"), ("epochs", "3")])
    assert not version.matches("/o/p2/", [("lr", "0.1"), ("bs", "32")])


def test_a_pool_version_reads_its_pool_id_as_text() -> None:
    """A version's pool_id is kept as text, also when a server sends it as a number."""
    assert Version.model_validate({"version_id": 1, "pool_id": "pool-a"}).pool_id == "pool-a"
    assert Version.model_validate({"version_id": 1, "pool_id": 7}).pool_id == "7"
    assert Version.model_validate({"version_id": 1, "pool_id": ""}).pool_id is None


def test_version_list_tolerates_null_versions_and_string_counts() -> None:
    """A list page with versions null, a blank or string count, and extras still reads."""
    empty = VersionList.model_validate({"is_success": True, "versions": None, "version_count": ""})
    assert (empty.versions, empty.version_count) == ([], None)
    page = VersionList.model_validate(
        {"job_id": "10", "version_count": "2", "quotas": 3,
         "versions": [{"version_id": "21"}, {"version_id": 22, "version_name": "V0003"}]}
    )
    assert (page.job_id, page.version_count) == (10, 2)
    assert [v.version_id for v in page.versions] == [21, 22]


def test_version_detail_is_a_flat_version_with_the_job() -> None:
    """Version detail reads the flat object: the version's fields plus job id and name."""
    detail = VersionDetail.model_validate(
        {"is_success": True, "job_id": "10", "job_name": "j", "version_id": 21, "status": 10}
    )
    assert (detail.job_id, detail.job_name, detail.version_id) == (10, "j", 21)
    assert detail.job_status is JobStatus.COMPLETED


# --- job status ------------------------------------------------------------------------------

TERMINAL = {3, 5, 6, 10, 11, 12, 13, 14, 16, 17, 20, 21, 22}


def test_job_status_names_every_code_0_to_22() -> None:
    """The enum has exactly the codes 0..22, named as the API names them (minus JOBSTAT_)."""
    assert [s.value for s in JobStatus] == list(range(23))
    assert (JobStatus(1).name, JobStatus(8).name, JobStatus(22).name) == (
        "INIT", "RUNNING", "MOUNT_FAILED"
    )


def test_job_status_terminal_set_is_the_documented_one() -> None:
    """terminal is True exactly for {3,5,6,10,11,12,13,14,16,17,20,21,22}."""
    assert {s.value for s in JobStatus if s.terminal} == TERMINAL


def test_job_status_succeeded_only_for_completed_kinds() -> None:
    """succeeded is True for COMPLETED and CHECK_RUNNING_COMPLETED only, both terminal."""
    assert {s for s in JobStatus if s.succeeded} == {
        JobStatus.COMPLETED, JobStatus.CHECK_RUNNING_COMPLETED
    }
    assert all(s.terminal for s in JobStatus if s.succeeded)

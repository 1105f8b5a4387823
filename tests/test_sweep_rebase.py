"""Many jobs, bases from the server: target.job_ids, base.from_version, {job_id}, bind, rebase."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from batchsubmit.errors import SpecError
from batchsubmit.models import CreateVersionRequest, VersionDetail
from batchsubmit.sweep import (
    SweepSpec,
    Target,
    base_from_version,
    bind,
    count_points,
    iter_points,
    load_spec,
    merge_config,
    preflight,
    rebase,
)

# A version detail as the service returns it: unset fields as null, "" or 0, extras around.
DETAIL: dict[str, Any] = {
    "is_success": True,
    "job_id": 10,
    "job_name": "job-10",
    "version_id": 31,
    "version_name": "V0003",
    "pre_version_id": 20,
    "status": 10,
    "create_time": 1717171717171,
    "duration": 3600000,
    "start_time": 1717171727171,
    "app_url": "/bucket/code/",
    "boot_file_url": "/bucket/code/train.py",
    "parameter": [
        {"label": "epochs", "value": "10"},
        {"label": "lr", "value": "0.01"},
        {"label": "opts", "value": '{"warmup": 5}'},
    ],
    "spec_id": 1,
    "worker_server_num": 2,
    "data_url": "/bucket/data/",
    "dataset_id": "",
    "dataset_version_id": None,
    "data_source": None,
    "model_id": 0,
    "engine_id": 1,
    "engine_name": "TensorFlow",
    "engine_version": "TF-1.8.0-python2.7",
    "train_url": "/bucket/job-10/output/V0003/",
    "log_url": "/bucket/job-10/log/V0003/",
    "user_image_url": None,
    "user_command": "",
    "model_metric_list": "[]",
}

SPEC = """\
name: rv
target:
  endpoint: emulator
  job_ids: [10, 11, 12]
base:
  from_version: latest
  job_desc: "job {job_id}"
  config:
    dataset_id: d1
    dataset_version_id: v2
    train_url: /out/{sweep}/{job_id}/{key}/
    parameter:
      - {label: epochs, value: 20}
      - {label: seed, value: 7}
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str = SPEC) -> SweepSpec:
    return load_spec(write(tmp_path, text))


def bodies(spec: SweepSpec) -> list[dict[str, Any]]:
    return [point.body for point in iter_points(spec)]


# ---------------------------------------------------------------------------------------------
# base_from_version


def test_base_keeps_only_what_create_accepts_and_builds_on_the_version() -> None:
    """Only create-call fields are kept, unset ones (null, "", 0) dropped, pre_version_id set."""
    assert base_from_version(DETAIL) == {
        "worker_server_num": 2,
        "app_url": "/bucket/code/",
        "boot_file_url": "/bucket/code/train.py",
        "parameter": DETAIL["parameter"],
        "data_url": "/bucket/data/",
        "spec_id": 1,
        "engine_id": 1,
        "train_url": "/bucket/job-10/output/V0003/",
        "log_url": "/bucket/job-10/log/V0003/",
        "pre_version_id": 31,
    }


def test_base_reads_a_version_model_dump_like_the_plain_detail() -> None:
    """Version.model_dump() (what the client returns) gives the same base as the raw JSON."""
    dumped = VersionDetail.model_validate(DETAIL).model_dump()
    assert base_from_version(dumped) == base_from_version(DETAIL)


def test_base_is_tolerant_of_sloppy_numbers_and_parameters() -> None:
    """Integers as text are read, blank strings dropped; parameters without a label go, values
    become strings (null is ""), and a label listed twice keeps its last value, first place."""
    detail = {
        **DETAIL,
        "worker_server_num": "4",
        "spec_id": 2.0,
        "version_id": "31",
        "log_url": "   ",
        "parameter": [
            {"label": "epochs", "value": 10},
            {"value": "orphan"},
            {"label": "", "value": "x"},
            {"label": "flag", "value": None},
            {"label": "on", "value": True},
            {"label": "epochs", "value": "12"},
        ],
    }
    base = base_from_version(detail)
    assert (base["worker_server_num"], base["spec_id"], base["pre_version_id"]) == (4, 2, 31)
    assert "log_url" not in base
    assert base["parameter"] == [
        {"label": "epochs", "value": "12"},
        {"label": "flag", "value": ""},
        {"label": "on", "value": "true"},
    ]


@pytest.mark.parametrize(
    ("reported", "kept"),
    [
        ({"data_url": "/d/", "dataset_id": "d1", "dataset_version_id": "v1"},
         {"dataset_id": "d1", "dataset_version_id": "v1"}),
        ({"data_url": "/d/", "data_source": [{"type": "obs", "data_url": "/d/"}],
          "dataset_id": "d1", "dataset_version_id": "v1"},
         {"data_source": [{"type": "obs", "data_url": "/d/"}]}),
        ({"data_url": "/d/", "dataset_id": "d1", "data_source": []}, {"data_url": "/d/"}),
        ({"data_url": "", "dataset_id": "d1", "dataset_version_id": ""}, {"dataset_id": "d1"}),
        ({"data_url": "/d/"}, {"data_url": "/d/"}),
    ],
    ids=["pair-over-url", "data-source-first", "incomplete-pair-loses", "incomplete-kept",
         "url"],
)
def test_base_keeps_exactly_one_data_source(
    reported: dict[str, Any], kept: dict[str, Any]
) -> None:
    """Several complete data-source forms: data_source, else the dataset pair, else data_url;
    with no complete form, what there is stays for the spec to complete."""
    detail = {
        **{k: v for k, v in DETAIL.items()
           if k not in ("data_url", "dataset_id", "dataset_version_id", "data_source")},
        **reported,
    }
    base = base_from_version(detail)
    forms = ("data_url", "dataset_id", "dataset_version_id", "data_source")
    assert {k: base[k] for k in forms if k in base} == kept


def test_base_data_source_items_lose_their_unset_fields() -> None:
    """null and blank values inside data_source items are dropped, as at the top level."""
    detail = {**DETAIL, "data_url": None, "data_source": [
        {"type": "dataset", "dataset_id": "d1", "dataset_version": "v1", "data_url": None},
    ]}
    assert base_from_version(detail)["data_source"] == [
        {"type": "dataset", "dataset_id": "d1", "dataset_version": "v1"}
    ]


def test_base_without_a_version_id_is_an_error() -> None:
    """A detail without a usable version_id cannot be built on."""
    with pytest.raises(ValueError, match="no usable version_id"):
        base_from_version({k: v for k, v in DETAIL.items() if k != "version_id"})
    with pytest.raises(ValueError, match="no usable version_id"):
        base_from_version({**DETAIL, "version_id": True})


# ---------------------------------------------------------------------------------------------
# merge_config


def test_merge_replaces_merges_mappings_and_removes_nulls() -> None:
    """Overlay fields replace, mappings merge recursively, lists are replaced, null removes."""
    base = {"a": 1, "nested": {"x": 1, "y": {"p": 1, "q": 2}}, "data_source": [{"type": "obs"}],
            "log_url": "/log/"}
    overlay = {"a": 2, "nested": {"y": {"q": 3, "r": 4}, "z": 5}, "data_source": [],
               "log_url": None, "new": "n"}
    assert merge_config(base, overlay) == {
        "a": 2, "nested": {"x": 1, "y": {"p": 1, "q": 3, "r": 4}, "z": 5}, "data_source": [],
        "new": "n",
    }


def test_merge_parameters_by_label() -> None:
    """Overlay labels replace the base's values in place; new labels follow in overlay order."""
    base = {"parameter": [{"label": "a", "value": "1"}, {"label": "b", "value": "2"}]}
    overlay = {"parameter": [{"label": "c", "value": "3"}, {"label": "a", "value": "9"}]}
    assert merge_config(base, overlay)["parameter"] == [
        {"label": "a", "value": "9"}, {"label": "b", "value": "2"}, {"label": "c", "value": "3"},
    ]
    assert "parameter" not in merge_config(base, {"parameter": None})
    assert merge_config(base, {"parameter": []}) == base


@pytest.mark.parametrize(
    ("overlay", "gone", "kept"),
    [
        ({"dataset_version_id": "v2"}, {"data_url"}, {"dataset_id"}),
        ({"data_url": "/new/"}, {"dataset_id", "dataset_version_id"}, set()),
        ({"data_source": [{"type": "obs", "data_url": "/x/"}]},
         {"data_url", "dataset_id", "dataset_version_id"}, set()),
        ({"model_id": 3}, {"app_url", "boot_file_url"}, {"engine_id"}),
        ({"boot_file_url": "/code/main.py"}, {"model_id"}, {"app_url", "engine_id"}),
        ({"engine_id": 5}, set(), {"app_url", "model_id", "data_url"}),
    ],
    ids=["dataset-version", "to-data-url", "to-data-source", "to-model", "to-code", "engine"],
)
def test_merge_switching_an_exclusive_form_drops_the_bases_other_forms(
    overlay: dict[str, Any], gone: set[str], kept: set[str]
) -> None:
    """Naming one data-source (or code-source) form drops the base's other forms, so the merged
    body keeps exactly one; fields of the same form and neutral fields stay."""
    base = {"app_url": "/code/", "boot_file_url": "/code/train.py", "model_id": 2,
            "engine_id": 1, "data_url": "/d/", "dataset_id": "d1", "dataset_version_id": "v1"}
    merged = merge_config(base, overlay)
    assert not gone & merged.keys()
    assert kept <= merged.keys()
    assert all(merged[k] == v for k, v in overlay.items())


# ---------------------------------------------------------------------------------------------
# rebase


def test_rebase_merges_the_spec_on_the_versions_config(tmp_path: Path) -> None:
    """The body is the version's config with the spec's fields on top: pre_version_id is the
    version, parameters merged by label, the dataset pair replacing data_url, {job_id} filled."""
    spec = rebase(load(tmp_path), 11, {**DETAIL, "job_id": 11})
    assert spec.target.job_ids == (11,) and spec.target.job_id == 11
    assert spec.rebased_on == 31
    (body,) = bodies(spec)
    assert body == {
        "job_desc": "job 11",
        "config": {
            "worker_server_num": 2,
            "app_url": "/bucket/code/",
            "boot_file_url": "/bucket/code/train.py",
            "parameter": [
                {"label": "epochs", "value": "20"},
                {"label": "lr", "value": "0.01"},
                {"label": "opts", "value": '{"warmup": 5}'},
                {"label": "seed", "value": "7"},
            ],
            "dataset_id": "d1",
            "dataset_version_id": "v2",
            "spec_id": 1,
            "engine_id": 1,
            "train_url": body["config"]["train_url"],
            "log_url": "/bucket/job-10/log/V0003/",
            "pre_version_id": 31,
        },
    }
    assert body["config"]["train_url"].startswith("/out/rv/11/")
    assert body == CreateVersionRequest.model_validate(body).to_wire()
    assert preflight(spec) == 1


def test_rebase_grid_applies_per_job_and_swept_labels_override_the_version(
    tmp_path: Path,
) -> None:
    """A grid gives every job the same points (same keys: the engine prefixes the job); a swept
    label replaces the version's parameter of that label."""
    spec = load(tmp_path, SPEC + "grid:\n  lr: [0.1, 0.2]\n")
    assert count_points(spec) == 2
    ten = list(iter_points(rebase(spec, 10, DETAIL)))
    eleven = list(iter_points(rebase(spec, 11, {**DETAIL, "job_id": 11})))
    assert [p.key for p in ten] == [p.key for p in eleven]
    assert {p.train_url for p in ten}.isdisjoint(p.train_url for p in eleven)
    assert [dict(p.parameter)["lr"] for p in ten] == ["0.1", "0.2"]
    assert [label for label, _ in ten[0].parameter] == ["epochs", "opts", "seed", "lr"]


def test_rebase_takes_the_form_the_spec_names_from_the_version(tmp_path: Path) -> None:
    """A detail reporting a dataset pair, data_url and data_source still lends its dataset_id to
    a spec that only moves dataset_version_id."""
    spec = load(tmp_path, SPEC.replace("    dataset_id: d1\n", ""))
    detail = {**DETAIL, "dataset_id": "d0", "dataset_version_id": "v1",
              "data_source": [{"type": "dataset", "dataset_id": "d0", "dataset_version": "v1"}]}
    (body,) = bodies(rebase(spec, 10, detail))
    config = body["config"]
    assert (config["dataset_id"], config["dataset_version_id"]) == ("d0", "v2")
    assert "data_url" not in config and "data_source" not in config


def test_rebase_keeps_the_versions_text_literal(tmp_path: Path) -> None:
    """Braces in the version's values are text, not placeholders, and its parameter labels (even
    reserved names like key) are sent as they are."""
    detail = {
        **DETAIL,
        "user_command": "bash run.sh {python_file_parameter}",
        "parameter": [{"label": "key", "value": "{x}"}, {"label": "epochs", "value": "1"}],
    }
    (body,) = bodies(rebase(load(tmp_path), 10, detail))
    assert body["config"]["user_command"] == "bash run.sh {python_file_parameter}"
    assert body["config"]["parameter"][0] == {"label": "key", "value": "{x}"}


def test_rebase_null_removes_a_versions_field(tmp_path: Path) -> None:
    """`log_url: null` in the spec sends no log_url, whatever the version had."""
    spec = load(tmp_path, SPEC.replace("    parameter:", "    log_url: null\n    parameter:"))
    (body,) = bodies(rebase(spec, 10, DETAIL))
    assert "log_url" not in body["config"]


def test_rebase_invalid_merge_names_file_job_version_and_origin(tmp_path: Path) -> None:
    """An invalid merged body is a SpecError naming the spec file, the job, the version and the
    fields that came from the version."""
    path = write(tmp_path, SPEC.replace("    dataset_id: d1\n", ""))
    with pytest.raises(SpecError) as caught:
        rebase(load_spec(path), 12, DETAIL)
    error = caught.value
    assert error.path == str(path)
    assert error.field == "base.config" and error.index == 0
    assert "job 12 rebased on version 31" in str(error)
    assert "dataset_id and dataset_version_id go together" in str(error)
    assert "from version 31: worker_server_num, app_url" in str(error)


def test_rebase_invalid_field_of_the_version_says_it_is_the_versions(tmp_path: Path) -> None:
    """A bad value that came from the version is reported as the version's value."""
    with pytest.raises(SpecError) as caught:
        rebase(load(tmp_path), 10, {**DETAIL, "spec_id": "one"})
    assert caught.value.field == "base.config.spec_id"
    assert "spec_id is the value of version 31" in str(caught.value)


def test_rebase_refuses_the_versions_own_train_url(tmp_path: Path) -> None:
    """A point rendering the base version's train_url would overwrite it and be taken for it."""
    spec = load(tmp_path, SPEC.replace("/out/{sweep}/{job_id}/{key}/", "/out/{job_id}/"))
    message = "the train_url of the version this one builds on"
    with pytest.raises(SpecError, match=message) as caught:
        rebase(spec, 10, {**DETAIL, "train_url": "/out/10/"})
    assert caught.value.field == "base.config.train_url"
    assert "job 10 rebased on version 31" in str(caught.value)


def test_rebase_refuses_the_versions_own_train_url_in_another_spelling(tmp_path: Path) -> None:
    """The version lists its train_url as obs://... without the final slash: still the same."""
    spec = load(tmp_path, SPEC.replace("/out/{sweep}/{job_id}/{key}/", "/out/{job_id}/"))
    with pytest.raises(SpecError, match="compared as normalised OBS paths"):
        rebase(spec, 10, {**DETAIL, "train_url": "obs://out/10"})


def test_rebase_of_a_pool_version_keeps_its_pool(tmp_path: Path) -> None:
    """A dedicated-pool version (pool_id, perhaps a spec_id beside it) is re-versioned on its
    pool: pool_id kept, spec_id dropped; a spec naming spec_id moves it to the public pool."""
    pooled = {**DETAIL, "pool_id": "pool-gpu-a"}
    (body,) = bodies(rebase(load(tmp_path), 11, pooled))
    assert body["config"]["pool_id"] == "pool-gpu-a"
    assert "spec_id" not in body["config"]
    assert body == CreateVersionRequest.model_validate(body).to_wire()
    public = SPEC.replace("    dataset_id: d1\n", "    dataset_id: d1\n    spec_id: 3\n")
    (body,) = bodies(rebase(load(tmp_path, public), 11, pooled))
    assert body["config"]["spec_id"] == 3
    assert "pool_id" not in body["config"]


def test_rebase_needs_from_version_and_a_version_id(tmp_path: Path) -> None:
    """Rebasing a spec without from_version, or on a detail without version_id, is an error."""
    spec = load(tmp_path)
    with pytest.raises(SpecError, match="job 10: the version detail has no usable version_id"):
        rebase(spec, 10, {"train_url": "/x/"})
    plain = load_spec(write(tmp_path, (
        SPEC.replace("  job_ids: [10, 11, 12]", "  job_id: 10")
        .replace("  from_version: latest\n", "")
        .replace("    dataset_id: d1\n", "    worker_server_num: 1\n    model_id: 1\n"
                 "    spec_id: 1\n    pre_version_id: 20\n    dataset_id: d1\n")
    ) + "grid:\n  lr: [1]\n", "plain.yaml"))
    with pytest.raises(SpecError, match=re.escape("has no base.from_version")):
        rebase(plain, 10, DETAIL)


# ---------------------------------------------------------------------------------------------
# from_version in the spec


def test_from_version_spec_is_partial_but_checked_field_by_field(tmp_path: Path) -> None:
    """With from_version the config may be partial; each field it gives is still checked."""
    spec = load(tmp_path)
    assert spec.from_version == "latest"
    assert preflight(spec) == 1
    path = write(tmp_path, SPEC.replace("dataset_version_id:", "dataset_versoin_id:"), "bad.yaml")
    with pytest.raises(SpecError, match="did you mean 'dataset_version_id'") as caught:
        load_spec(path)
    assert caught.value.field == "base.config.dataset_versoin_id"
    assert caught.value.line == 10


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (("from_version: latest", "from_version: newest"), "base.from_version",
         "a version id (a positive integer) or latest"),
        (("from_version: latest", "from_version: 0"), "base.from_version", "positive integer"),
        (("    dataset_id: d1\n", "    pre_version_id: 3\n"), "base.config.pre_version_id",
         "comes from base.from_version"),
        (("    train_url: /out/{sweep}/{job_id}/{key}/\n", ""), "base.config",
         "give train_url of its own"),
        (("from_version: latest", "from_version: 42"), "base.from_version",
         "version 42 belongs to one job"),
        (("/out/{sweep}/{job_id}/{key}/", "/out/{sweep}/{key}/"), "base.config.train_url",
         "put {job_id} in train_url"),
        (("  from_version: latest\n", ""), "target.job_ids", "write base.from_version: latest"),
        (("epochs, value: 20", "epochs, value: null"), "base.config.parameter[0].value",
         "null is not a parameter value"),
        (("/out/{sweep}/{job_id}/{key}/", "/out/{job_id}/{epoch}/"), "base.config.train_url",
         "unknown placeholder {epoch}"),
    ],
)
def test_from_version_mistakes(
    tmp_path: Path, edit: tuple[str, str], field: str, message: str
) -> None:
    """from_version's rules and the many-jobs rules fail at load, at the field concerned."""
    old, new = edit
    assert old in SPEC
    with pytest.raises(SpecError, match=re.escape(message)) as caught:
        load(tmp_path, SPEC.replace(old, new))
    assert caught.value.field == field


def test_from_version_without_a_grid_is_one_point_a_job(tmp_path: Path) -> None:
    """Re-versioning alone needs no grid: one point per job (without from_version it is still
    "nothing to sweep")."""
    assert count_points(load(tmp_path)) == 1


# ---------------------------------------------------------------------------------------------
# target.job_ids


def test_job_ids_are_normalised() -> None:
    """job_id gives (job_id,), a list gives a tuple, neither gives ()."""
    assert Target(endpoint="emulator", job_id=7).job_ids == (7,)
    assert Target.model_validate({"endpoint": "emulator", "job_ids": [3, 1]}).job_ids == (3, 1)
    assert Target(endpoint="emulator").job_ids == ()
    again = Target.model_validate(Target(endpoint="emulator", job_id=7).model_dump())
    assert again.job_ids == (7,)


def test_job_ids_from_a_file_relative_to_the_spec(tmp_path: Path) -> None:
    """A file of job ids (comments, blank lines) is read relative to the spec file, in order."""
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "jobs.txt").write_text("# jobs\n12\n\n  10   # the first\n11\n")
    spec = load_spec(write(tmp_path / "specs", SPEC.replace("[10, 11, 12]", "jobs.txt")))
    assert spec.target.job_ids == (12, 10, 11)
    assert spec.jobs_file == tmp_path / "specs" / "jobs.txt"


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("10\n11\nx1\n", 3, "'x1' is not a job id"),
        ("10\n\n0\n", 3, "'0' is not a job id"),
        ("10\n# c\n11\n10  # again\n", 4, "job 10 is listed twice (first on line 1)"),
        ("# nothing\n\n", None, "no job ids in the file"),
    ],
)
def test_job_ids_file_errors_name_file_and_line(
    tmp_path: Path, content: str, line: int | None, message: str
) -> None:
    """A bad line of the job ids file is reported at that file and line."""
    (tmp_path / "jobs.txt").write_text(content)
    with pytest.raises(SpecError, match=re.escape(message)) as caught:
        load(tmp_path, SPEC.replace("[10, 11, 12]", "jobs.txt"))
    assert caught.value.path == str(tmp_path / "jobs.txt")
    assert caught.value.line == line


def test_missing_job_ids_file_names_the_spec_field(tmp_path: Path) -> None:
    """An unreadable job ids file is reported at the spec's target.job_ids line."""
    with pytest.raises(SpecError, match="cannot read the job ids file") as caught:
        load(tmp_path, SPEC.replace("[10, 11, 12]", "nope.txt"))
    assert caught.value.path == str(tmp_path / "spec.yaml")
    assert (caught.value.field, caught.value.line) == ("target.job_ids", 4)


@pytest.mark.parametrize(
    ("jobs", "field", "message"),
    [
        ("job_ids: [10, 11, 10]", "target.job_ids", "job 10 is listed twice"),
        ("job_ids: []", "target.job_ids", "no job ids"),
        ("job_ids: [10, 11]\n  job_id: 10", "target", "either job_id (one job) or job_ids"),
        ("job_ids: [10, ten]", "target.job_ids[1]", "must be an integer"),
        ("job_ids: 10", "target.job_ids", "for one job write job_id: 10"),
        ("jobs: [10]", "target.jobs", "allowed here: endpoint, project_id, job_id, job_ids"),
    ],
)
def test_job_ids_mistakes(tmp_path: Path, jobs: str, field: str, message: str) -> None:
    """Duplicates, an empty list, both job_id and job_ids, and misspellings are spec errors."""
    with pytest.raises(SpecError, match=re.escape(message)) as caught:
        load(tmp_path, SPEC.replace("job_ids: [10, 11, 12]", jobs))
    assert caught.value.field == field


# ---------------------------------------------------------------------------------------------
# {job_id} and bind

FULL = """\
name: one
target:
  endpoint: emulator
  job_id: 10
base:
  job_desc: "job {job_id}"
  config:
    worker_server_num: 1
    app_url: /bucket/app/
    boot_file_url: /bucket/app/train.py
    data_url: /bucket/data/
    spec_id: 1
    pre_version_id: 20
    train_url: /out/{job_id}/{key}/
grid:
  lr: [0.1, 0.2]
"""


def test_job_id_placeholder_renders_the_target_job(tmp_path: Path) -> None:
    """{job_id} renders target.job_id in a single-job spec."""
    spec = load(tmp_path, FULL)
    assert all(p.train_url.startswith("/out/10/") for p in iter_points(spec))
    assert bodies(spec)[0]["job_desc"] == "job 10"


def test_bind_renders_another_job_and_keeps_keys(tmp_path: Path) -> None:
    """bind(spec, job) is the same sweep for that job: {job_id} renders it, keys stay."""
    spec = load(tmp_path, FULL)
    bound = bind(spec, 11)
    assert bound.target.job_ids == (11,) and bound.target.job_id == 11
    assert [p.key for p in iter_points(bound)] == [p.key for p in iter_points(spec)]
    assert all(p.train_url.startswith("/out/11/") for p in iter_points(bound))
    assert preflight(bound) == 2
    assert bind(spec, 10).target == spec.target


def test_spec_bound_to_no_job_shows_the_placeholder(tmp_path: Path) -> None:
    """Without a job (several, or none), {job_id} renders as itself until bound."""
    spec = load(tmp_path, FULL.replace("  job_id: 10\n", ""))
    assert spec.target.job_ids == ()
    assert next(iter_points(spec)).train_url.startswith("/out/{job_id}/")
    assert next(iter_points(bind(spec, 3))).train_url.startswith("/out/3/")
    multi = load(tmp_path, SPEC)
    assert next(iter_points(multi)).train_url.startswith("/out/rv/{job_id}/")


def test_bind_a_rebased_spec_only_to_its_own_job(tmp_path: Path) -> None:
    """A rebased spec belongs to its job: binding it elsewhere is an error."""
    rebased = rebase(load(tmp_path), 10, DETAIL)
    assert bind(rebased, 10) is rebased
    with pytest.raises(SpecError, match="rebase it on a version of job 11"):
        bind(rebased, 11)


def test_job_id_is_a_reserved_label(tmp_path: Path) -> None:
    """A swept or fixed label named job_id would shadow the placeholder: a spec error."""
    with pytest.raises(SpecError, match=re.escape("reserved for the {job_id} placeholder")):
        load(tmp_path, FULL.replace("lr: [0.1, 0.2]", "job_id: [1, 2]"))


def test_saved_detail_fixture_round_trips(tmp_path: Path) -> None:
    """A detail written to JSON and read back rebases to the same bodies (the --from-file path)."""
    saved = tmp_path / "v.json"
    saved.write_text(json.dumps(DETAIL))
    spec = load(tmp_path)
    assert bodies(rebase(spec, 10, json.loads(saved.read_text()))) == bodies(
        rebase(spec, 10, DETAIL)
    )

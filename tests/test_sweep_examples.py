"""The example specs in sweeps/ load, expand and pass preflight, so they never rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchsubmit.models import CreateVersionRequest
from batchsubmit.models_v2 import CreateTrainingJobRequest
from batchsubmit.sweep import count_points, iter_points, load_spec, preflight, rebase

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
EXAMPLES = sorted(p for p in SWEEPS.iterdir() if p.suffix in (".yaml", ".yml", ".json", ".toml"))


def test_the_examples_cover_every_format() -> None:
    """sweeps/ holds the quickstart and at least one YAML, TOML and JSON example."""
    assert {p.suffix for p in EXAMPLES} >= {".yaml", ".toml", ".json"}
    assert {p.name for p in EXAMPLES} >= {
        "quickstart.yaml", "lr-batch-grid.yaml", "random-search.yaml", "seeds-splits-zip.yaml"
    }


# Saved version details (sweeps/versions/): what a base.from_version example is merged on.
VERSION = json.loads((SWEEPS / "versions" / "job-10.json").read_text())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_loads_and_expands(path: Path) -> None:
    """Every example is valid: counted, expanded and preflighted to the same number of points
    (a from_version example once rebased on the saved version detail)."""
    spec = load_spec(path)
    if spec.from_version is not None:
        assert count_points(spec) == preflight(spec)  # the partial body, field by field
        spec = rebase(spec, spec.target.job_ids[0], VERSION)
    points = list(iter_points(spec))
    assert points
    assert count_points(spec) == len(points) == preflight(spec)
    for point in points:
        if spec.target.api == "v2":  # sent as rendered (point.body), once it passes the model
            CreateTrainingJobRequest.model_validate(point.body)
            continue
        wire = CreateVersionRequest.model_validate(point.body).to_wire()
        assert json.dumps(point.body) == json.dumps(wire)


def test_quickstart_targets_the_embedded_emulator() -> None:
    """The quickstart targets the emulator's seeded job 10 / version 20 with a dozen points."""
    spec = load_spec(SWEEPS / "quickstart.yaml")
    assert spec.target.endpoint == "emulator"
    assert spec.target.project_id == "0123456789abcdef0123456789abcdef"
    assert spec.target.job_id == 10
    assert spec.submit.rate == 10
    assert 8 <= count_points(spec) <= 16
    assert all(p.body["config"]["pre_version_id"] == 20 for p in iter_points(spec))


def test_reversion_example_re_versions_three_jobs_from_latest() -> None:
    """The re-versioning example reads its jobs from a file and moves each latest version to a
    new dataset version, one new version per job, each in a directory of its own."""
    spec = load_spec(SWEEPS / "reversion-jobs.yaml")
    assert spec.target.job_ids == (10, 11, 12)
    assert spec.jobs_file == SWEEPS / "reversion-jobs.txt"
    assert spec.from_version == "latest"
    assert count_points(spec) == 1
    urls = set()
    for job in spec.target.job_ids:
        (point,) = iter_points(rebase(spec, job, {**VERSION, "job_id": job}))
        config = point.body["config"]
        assert config["pre_version_id"] == VERSION["version_id"]
        assert (config["dataset_id"], config["dataset_version_id"]) != ("", "")
        assert "data_url" not in config  # the dataset replaced the version's data_url
        assert config["parameter"][0] == {"label": "epochs", "value": "20"}
        urls.add(point.train_url)
    assert len(urls) == 3

"""The example specs in sweeps/ load, expand and pass preflight, so they never rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchsubmit.models import CreateVersionRequest
from batchsubmit.sweep import count_points, iter_points, load_spec, preflight

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
EXAMPLES = sorted(p for p in SWEEPS.iterdir() if p.suffix in (".yaml", ".yml", ".json", ".toml"))


def test_the_examples_cover_every_format() -> None:
    """sweeps/ holds the quickstart and at least one YAML, TOML and JSON example."""
    assert {p.suffix for p in EXAMPLES} >= {".yaml", ".toml", ".json"}
    assert {p.name for p in EXAMPLES} >= {
        "quickstart.yaml", "lr-batch-grid.yaml", "random-search.yaml", "seeds-splits-zip.yaml"
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_loads_and_expands(path: Path) -> None:
    """Every example is valid: counted, expanded and preflighted to the same number of points."""
    spec = load_spec(path)
    points = list(iter_points(spec))
    assert points
    assert count_points(spec) == len(points) == preflight(spec)
    for point in points:
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

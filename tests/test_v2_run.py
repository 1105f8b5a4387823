"""v2 runs end to end over real loopback HTTP against the emulator (bs.submit, bs.testing)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

import batchsubmit as bs
from batchsubmit.ledger import read_ledger as fold_ledger
from tests.test_v2_core import SPEC

pytestmark = pytest.mark.integration


def v2_spec(points: int = 6) -> bs.SweepSpec:
    data: dict[str, Any] = copy.deepcopy(SPEC)
    data["grid"] = {"learning_rate": [f"0.{i}" for i in range(1, points + 1)]}
    return bs.SweepSpec.from_dict(data)


def options(emu: bs.testing.Emulator, ledger: Path) -> dict[str, Any]:
    return {"endpoint": emu.url, "credentials": emu.credentials, "ledger": ledger,
            "rate": 200, "concurrency": 4, "settle": 0.2, "read_timeout": 2.0}


def test_a_used_up_quota_halts_the_run_and_the_next_run_sends_the_rest(tmp_path: Path) -> None:
    """ModelArts.2815 (too many active jobs) is refused before anything is made: the run stops
    sending rather than burning requests, no point is failed for it, and once the quota allows
    the next run sends exactly the points still missing."""
    spec, ledger = v2_spec(6), tmp_path / "q.jsonl"
    with bs.testing.Emulator(v2_quota=2, v2_running_seconds=600) as emu:
        first = bs.submit_sync(spec, **options(emu, ledger))
        assert first.halted is not None and "quota" in first.halted
        assert len(first.succeeded) == 2 == len(emu.v2_jobs())
        assert not first.failed
        state = fold_ledger(ledger)
        assert all(r.get("error_code") != "ModelArts.2815" for r in state.outcomes.values())
        assert len(state.pending) >= 1  # the refused point: sent again by the next run

        emu.set_faults(v2_quota=None)  # the quota was raised
        second = bs.submit_sync(spec, **options(emu, ledger))
        assert second.halted is None and len(second.succeeded) == 6 and second.complete
        truth = {j["name"]: j["id"] for j in emu.v2_jobs()}
        recorded = {r["job_name"]: r["training_job_id"]
                    for r in fold_ledger(ledger).outcomes.values()}
        assert recorded == truth and len(truth) == 6

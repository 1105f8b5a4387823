"""Chaos against the v2 API with every section-7 switch at once (issue 14's "done when").

300 points as ``batchsubmit run`` processes against an emulator whose search offsets are record
offsets, whose count is the page's, whose ``like`` is SQL LIKE, whose names are unique per
project, compared ignoring case and never reused, which lets racing creates of one name both in
for 0.4 s, holds a quota of exactly the sweep, and whose jobs run briefly, some ending Failed or
Abnormal; with 10 % ambiguous commits of every kind, 10 % 500s (searches too), throttling and a
1 s search lag, and decoy jobs in every search. Two SIGKILLed runs, then a run to the end: one job
per point by name, the ledger's training_job_ids are the server's, exit 0. Then the ledger is
lost: nothing is created.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from batchsubmit.emulator import EmulatorConfig, run_emulator
from batchsubmit.ledger import read_ledger
from tests.chaos.test_chaos import (
    PROJECT,
    TOKEN,
    LedgerLines,
    ledger_verdict,
    run_args,
    spawn,
    wait_exit,
    wait_lines,
)
from tests.test_exactly_once_v2 import (
    check_exactly_once,
    plant_decoys,
    until_searchable,
    write_spec,
)

pytestmark = [pytest.mark.chaos, pytest.mark.anyio]

POINTS = 300
EVERY_SWITCH: dict[str, Any] = {
    "v2_offset": "record", "v2_count": "page", "v2_default_limit": 1, "v2_limit_range": "clamp",
    "v2_like": "sql-like", "v2_name_scope": "project", "v2_name_case": "insensitive",
    "v2_name_reuse": "never", "v2_race_window": 0.4, "v2_quota": POINTS, "v2_delete_lag": 0.0,
    "v2_creating_seconds": 0.2, "v2_pending_seconds": 0.2, "v2_running_seconds": 0.5,
    "failure_share": 0.1, "abnormal_share": 0.1,
}
FAULTS: dict[str, Any] = {
    "rate": 120, "burst": 4, "error_500_share": 0.1, "ambiguous_share": 0.1,
    "stall_seconds": 1.0, "faults_on_lists": True, "search_lag": 1.0, "latency_ms": 2,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def v2_counts(counters: dict[str, int]) -> str:
    names = ("v2_creates", "v2_searches", "faults_500", "ambiguous_500", "ambiguous_reset",
             "ambiguous_stall", "throttled")
    return " ".join(f"{name}={counters.get(name, 0)}" for name in names)


async def test_every_v2_switch_two_kills_and_a_lost_ledger(tmp_path: Path) -> None:
    """Every section-7 switch, faults, two SIGKILLs, a re-run: exactly once by name, exit 0;
    then a lost ledger creates nothing."""
    spec = write_spec(tmp_path / "chaos.json",
                      grid={"learning_rate": [f"0.{i:02}" for i in range(1, 16)],
                            "seed": list(range(20))})
    ledger = tmp_path / "chaos.ledger.jsonl"
    log = tmp_path / "run.err"
    config = EmulatorConfig(project_id=PROJECT, auth="token", tokens=(SecretStr(TOKEN),),
                            seed=14, **EVERY_SWITCH)
    async with run_emulator(config) as emu:
        decoys = await plant_decoys(emu.url, spec, token=TOKEN, count=60)  # 300 points: enough
        emu.set_faults(**FAULTS, v2_quota=POINTS + decoys)
        args = run_args(spec, emu.url, ledger, rate=300, settle=1.4, max_attempts=25)
        lines = LedgerLines(ledger)
        for target in (150, 450):
            with spawn(*args, log=log) as proc:
                assert await wait_lines(lines, target, proc), log.read_text()
                proc.send_signal(signal.SIGKILL)
                assert await wait_exit(proc, 30) == -signal.SIGKILL
        for _ in range(3):  # a run may halt (most recent requests failed): run again
            with spawn(*args, log=log) as proc:
                code = await wait_exit(proc, 60)
            assert code == ledger_verdict(ledger, POINTS), log.read_text()
            if code == 0:
                break
        assert code == 0, log.read_text()
        check_exactly_once(emu, ledger, spec, others=decoys)
        counters = emu.counters
        print(f"\nv2 chaos: {v2_counts(counters)}")
        assert counters["ambiguous"] > 0 and counters["faults_500"] > 0
        assert counters["throttled"] > 0
        await until_searchable(emu)
        creates = counters["v2_creates"]
        ledger.unlink()
        with spawn(*args, log=log) as proc:
            assert await wait_exit(proc, 60) == 0, log.read_text()
        assert emu.counters["v2_creates"] == creates
        assert all(r["reconciled"] for r in read_ledger(ledger).outcomes.values())
        check_exactly_once(emu, ledger, spec, others=decoys)

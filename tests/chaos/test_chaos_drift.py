"""Chaos with every drift switch on at once (issue 10's "done when"): the long version.

500 points against an emulator that echoes numbers, shuffles and adds parameters, rewrites
train_url, caps its pages (offsets read the other way), answers business errors as 200, spells its
gateway codes APIG., sends Retry-After, and is lenient; with 10 % ambiguous commits, 10 % 500s,
throttling and a 1 s list lag. Two SIGKILLed runs, then a run to the end: one version per point,
the ledger's version_ids are the server's, exit 0. Then the ledger is lost: nothing is created.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from pydantic import SecretStr

from batchsubmit.emulator import EmulatorConfig, run_emulator
from batchsubmit.ledger import read_ledger
from tests.chaos.test_chaos import (
    JOB,
    PROJECT,
    TOKEN,
    LedgerLines,
    check_exactly_once,
    fault_counts,
    ledger_verdict,
    run_args,
    spawn,
    wait_exit,
    wait_lines,
    write_spec,
)
from tests.fakes import until_listed

pytestmark = [pytest.mark.chaos, pytest.mark.anyio]

EVERY_SWITCH = {
    "echo_numbers": True, "shuffle_params": True,
    "add_params": (("max_epochs", "5"), ("preset", "resnet")),
    "normalise_train_url": True, "max_per_page": 50, "page_offsets": "requested",
    "errors_200": True, "error_field": "error_msg", "gateway_prefix": "APIG",
    "retry_after": True, "strict": False,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_every_switch_at_once_two_kills_and_a_lost_ledger(tmp_path: Path) -> None:
    """Every drift switch, faults, two SIGKILLs, a re-run: exactly once, exit 0; then a lost
    ledger creates nothing."""
    points = 500
    spec = write_spec(tmp_path / "drift.json", a=25, b=20, name="drift")
    ledger = tmp_path / "drift.ledger.jsonl"
    log = tmp_path / "run.err"
    config = EmulatorConfig(
        project_id=PROJECT, auth="token", tokens=(SecretStr(TOKEN),), seed=11,
        rate=120, burst=4, error_500_share=0.1, ambiguous_share=0.1, stall_seconds=1.0,
        list_lag=1.0, latency_ms=2, **EVERY_SWITCH,
    )
    async with run_emulator(config) as emu:
        args = run_args(spec, emu.url, ledger, rate=300, settle=1.4, max_attempts=25)
        lines = LedgerLines(ledger)
        for target in (150, 600):
            with spawn(*args, log=log) as proc:
                assert await wait_lines(lines, target, proc), log.read_text()
                proc.send_signal(signal.SIGKILL)
                assert await wait_exit(proc, 60) == -signal.SIGKILL
        for _ in range(3):  # a run may halt (most recent requests failed): run again
            with spawn(*args, log=log) as proc:
                code = await wait_exit(proc, 120)
            assert code == ledger_verdict(ledger, points), log.read_text()
            if code == 0:
                break
        assert code == 0, log.read_text()
        check_exactly_once(emu.versions(JOB), ledger, spec)
        counters = emu.counters
        print(f"\ndrift chaos: {fault_counts(counters)}")
        assert counters["ambiguous"] > 0 and counters["faults_500"] > 0
        assert counters["throttled"] > 0
        await until_listed(emu)
        creates = counters["creates"]
        ledger.unlink()
        with spawn(*args, log=log) as proc:
            assert await wait_exit(proc, 60) == 0, log.read_text()
        assert emu.counters["creates"] == creates
        assert all(r["reconciled"] for r in read_ledger(ledger).outcomes.values())
        check_exactly_once(emu.versions(JOB), ledger, spec)

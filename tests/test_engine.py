"""The pool's decisions, driven by a scripted in-memory server and a fake clock (no sockets)."""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime
from typing import Any

import anyio.lowlevel
import pytest

from batchsubmit.engine import Engine
from batchsubmit.errors import (
    APIError,
    AuthError,
    BatchSubmitError,
    NotSentError,
    OutcomeUnknownError,
    ThrottledError,
)
from batchsubmit.limiter import AdaptiveRateLimiter, Turn
from batchsubmit.models import Version
from batchsubmit.reconcile import Reconciler
from batchsubmit.retry import FailureWindow
from batchsubmit.sweep import Point
from batchsubmit.target import Created
from batchsubmit.v1 import Listing
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


LOST = "created, then the reply was lost"


class ScriptedServer:
    """Creates versions; each call takes the next scripted step (an error, LOST, or success)."""

    def __init__(self, *script: BatchSubmitError | str) -> None:
        self.script: deque[BatchSubmitError | str] = deque(script)
        self.versions: list[Version] = []
        self.calls = 0

    async def create(self, job_id: int, point: Point) -> Created:
        body = point.body
        self.calls += 1
        step = self.script.popleft() if self.script else "ok"
        if isinstance(step, BatchSubmitError):
            raise step
        version = Version(
            version_id=100 + len(self.versions), version_name=f"V{len(self.versions):04d}",
            train_url=body["config"]["train_url"], parameter=body["config"]["parameter"],
        )
        self.versions.append(version)
        if step == LOST:
            raise OutcomeUnknownError("POST: connection reset after sending")
        return Created(version.version_id, version.version_name)

    async def listing(self, started_at: float) -> Listing:
        return Listing.build(started_at, self.versions)


class Recorder:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    async def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def events(self, key: str | None = None) -> list[str]:
        return [r["event"] for r in self.records if key is None or r.get("key") == key]


def point(i: int) -> Point:
    parameter = (("lr", str(i)),)
    train_url = f"/out/{i}/"
    body = {"config": {"train_url": train_url,
                       "parameter": [{"label": k, "value": v} for k, v in parameter]}}
    return Point(index=i, key=f"k{i}", values=parameter, parameter=parameter,
                 train_url=train_url, body=body)


def make_engine(server: ScriptedServer, ledger: Recorder, clock: FakeClock,
                **kw: Any) -> Engine:
    limiter = AdaptiveRateLimiter(1000, clock=clock, sleep=clock.sleep)
    reconciler = Reconciler(server.listing, settle=1.0, clock=clock, sleep=clock.sleep)
    return Engine(api=server, ledger=ledger, limiter=limiter, reconcilers={10: reconciler},
                  clock=clock, sleep=clock.sleep, **kw)


async def run(engine: Engine, n: int, **kw: Any) -> None:
    await engine.run(((10, point(i), 0) for i in range(n)), **kw)


async def test_intent_is_written_before_the_request() -> None:
    """Every create is preceded by its durable `submitted` line, and followed by its outcome."""
    server, ledger, clock = ScriptedServer(), Recorder(), FakeClock()
    await run(make_engine(server, ledger, clock), 3)
    for i in range(3):
        assert ledger.events(f"k{i}") == ["submitted", "succeeded"]
    assert server.calls == 3


class TurnAhead(AdaptiveRateLimiter):
    """A limiter that gives each turn ``ahead`` seconds after it is granted."""

    def __init__(self, clock: FakeClock, ahead: float) -> None:
        super().__init__(1000, clock=clock, sleep=clock.sleep)
        self.fake, self.ahead = clock, ahead

    async def reserve(self, *, lead: float | None = None) -> Turn:
        return Turn(self.fake() + self.ahead, self.fake())


class WallRecorder(Recorder):
    """Also notes the wall-clock time at which each record is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[float] = []

    async def write(self, record: dict[str, Any]) -> None:
        self.written.append(time.time())
        await super().write(record)


async def test_an_intent_is_stamped_with_its_turn_not_the_time_it_was_written() -> None:
    """An intent written ahead of its turn carries the turn's time (rounded up to the ms): a
    re-run's settle wait from it starts no earlier than the request left."""
    server, ledger, clock = ScriptedServer(), WallRecorder(), FakeClock()
    engine = make_engine(server, ledger, clock)
    engine._limiter = TurnAhead(clock, ahead=0.5)
    await run(engine, 2)
    for record, written in zip(ledger.records, ledger.written, strict=True):
        if record["event"] == "submitted":
            stamp = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
            assert 0.5 - 0.001 < stamp - written < 0.5 + 0.05


async def test_not_sent_errors_are_retried_after_backoff() -> None:
    """A refused connection is retried; the success records both attempts."""
    server, ledger, clock = ScriptedServer(NotSentError("refused")), Recorder(), FakeClock()
    await run(make_engine(server, ledger, clock), 1)
    assert ledger.events("k0") == ["submitted", "submitted", "succeeded"]
    assert ledger.records[-1]["attempts"] == 2
    assert server.calls == 2


async def test_unknown_outcome_is_reconciled_not_resent() -> None:
    """A create whose reply was lost is found in the listing and adopted: no second create."""
    server, ledger, clock = ScriptedServer(LOST), Recorder(), FakeClock()
    await run(make_engine(server, ledger, clock), 1)
    assert server.calls == 1
    assert len(server.versions) == 1
    outcome = ledger.records[-1]
    assert outcome["event"] == "succeeded"
    assert outcome["reconciled"] is True
    assert outcome["version_id"] == server.versions[0].version_id


async def test_unknown_outcome_not_on_server_is_resent_after_settling() -> None:
    """A timeout that created nothing: after the settle interval the point is sent again."""
    server = ScriptedServer(OutcomeUnknownError("read timeout"))
    ledger, clock = Recorder(), FakeClock()
    engine = make_engine(server, ledger, clock)
    start = clock()
    await run(engine, 1)
    assert server.calls == 2
    assert len(server.versions) == 1
    assert clock() - start >= 1.0  # waited out the list lag before concluding "absent"
    assert ledger.records[-1]["reconciled"] is False


async def test_refusal_fails_the_point_for_good() -> None:
    """A 400 is recorded with its code, status and request id, and never retried."""
    refusal = APIError("bad spec_id", http_status=400, error_code="ModelArts.2781",
                       request_id="rid-1")
    server, ledger, clock = ScriptedServer(refusal), Recorder(), FakeClock()
    await run(make_engine(server, ledger, clock), 2)
    failed = [r for r in ledger.records if r["event"] == "failed"]
    assert server.calls == 2
    assert len(failed) == 1
    assert failed[0]["error_code"] == "ModelArts.2781"
    assert failed[0]["http_status"] == 400
    assert failed[0]["request_id"] == "rid-1"


async def test_auth_failure_stops_after_one_request() -> None:
    """Wrong credentials: the canary point alone is sent, no outcome is written, run aborts."""
    refused = AuthError("bad signature", http_status=401, error_code="APIG.0301")
    server, ledger, clock = ScriptedServer(refused), Recorder(), FakeClock()
    engine = make_engine(server, ledger, clock, concurrency=8)
    await run(engine, 50)
    assert server.calls == 1
    assert engine.abort_error is refused
    assert ledger.events() == ["submitted"]


async def test_throttle_lowers_the_rate_and_retries() -> None:
    """A 429 cuts the limiter's rate and the point succeeds on its next attempt."""
    server = ScriptedServer(ThrottledError("slow down", retry_after=0.5))
    ledger, clock = Recorder(), FakeClock()
    engine = make_engine(server, ledger, clock)
    await run(engine, 1)
    assert engine.stats.throttled == 1
    assert engine.stats.rate < 1000
    assert ledger.events("k0") == ["submitted", "submitted", "succeeded"]


async def test_attempts_are_bounded() -> None:
    """With max_attempts=3 and a server that always refuses to connect, the point fails."""
    server = ScriptedServer(*[NotSentError("refused")] * 10)
    ledger, clock = Recorder(), FakeClock()
    await run(make_engine(server, ledger, clock, max_attempts=3), 1)
    assert server.calls == 3
    assert ledger.records[-1]["event"] == "failed"
    assert ledger.records[-1]["attempts"] == 3


async def test_mostly_failing_run_halts() -> None:
    """More than half of the last ten answers failing halts the run before the sweep ends."""
    server = ScriptedServer(*[APIError("no", http_status=400, error_code="X")] * 100)
    ledger, clock = Recorder(), FakeClock()
    engine = make_engine(server, ledger, clock, concurrency=2,
                         failure_window=FailureWindow(size=10, threshold=0.5))
    await run(engine, 100)
    assert engine.halt_reason is not None
    assert server.calls < 20


async def test_points_already_on_the_server_are_adopted() -> None:
    """A point the start-of-run listing already holds is recorded, not created again."""
    server, ledger, clock = ScriptedServer(), Recorder(), FakeClock()
    await run(make_engine(server, Recorder(), clock), 1)  # a run whose ledger was lost
    listing = Listing.build(clock(), server.versions)
    await run(make_engine(server, ledger, clock), 2, on_server={10: listing})
    assert server.calls == 2  # one from the first run, one for the new point
    assert ledger.events("k0") == ["succeeded"]
    assert ledger.records[0]["reconciled"] is True


def foreign(train_url: str, lr: str) -> Version:
    """A version someone else made on a point's train_url, with other parameters."""
    return Version(version_id=900, version_name="V0900", train_url=train_url,
                   parameter=[{"label": "lr", "value": lr}])


async def test_a_foreign_version_at_the_start_fails_the_point_and_creates_nothing() -> None:
    """The start-of-run listing shows point 0's train_url with other parameters: the point fails
    with batchsubmit.identity_conflict, nothing is sent for it, the others go on."""
    server, ledger, clock = ScriptedServer(), Recorder(), FakeClock()
    listing = Listing.build(clock(), [foreign("obs://out/0", lr="7")])
    await run(make_engine(server, ledger, clock), 2, on_server={10: listing})
    assert server.calls == 1  # point 1 only
    assert ledger.events("k0") == ["failed"]
    failed = ledger.records[0]
    assert failed["error_code"] == "batchsubmit.identity_conflict"
    assert "version 900 (V0900)" in failed["error_message"]
    assert ledger.events("k1") == ["submitted", "succeeded"]


async def test_a_foreign_version_found_by_reconciliation_fails_the_point_without_a_resend() -> None:
    """After an unknown outcome the listing shows the train_url taken by other parameters: the
    point fails as a conflict rather than being sent again."""
    server = ScriptedServer(OutcomeUnknownError("timed out"))
    server.versions.append(foreign("/out/0", lr="7"))
    ledger, clock = Recorder(), FakeClock()
    await run(make_engine(server, ledger, clock), 1)
    assert server.calls == 1
    assert ledger.events("k0") == ["submitted", "failed"]
    assert ledger.records[-1]["error_code"] == "batchsubmit.identity_conflict"


async def test_an_echo_in_other_words_is_still_adopted() -> None:
    """A version listed with the point's parameters as numbers and its path as obs:// is the
    point's own: adopted at the start of a run, not created again."""
    server, ledger, clock = ScriptedServer(), Recorder(), FakeClock()
    echoed = Version(version_id=901, version_name="V0901", train_url="obs://out/0",
                     parameter=[{"label": "service_default", "value": 1},
                                {"label": "lr", "value": 0.0}])
    await run(make_engine(server, ledger, clock), 1,
              on_server={10: Listing.build(clock(), [echoed])})
    assert server.calls == 0
    assert ledger.records[0]["version_id"] == 901


async def test_interrupt_stops_taking_points() -> None:
    """After interrupt() no new point is sent; the run returns with interrupted set."""
    server, ledger, clock = ScriptedServer(), Recorder(), FakeClock()
    engine = make_engine(server, ledger, clock, concurrency=1)

    def items() -> Any:
        for i in range(100):
            if i == 5:
                engine.interrupt()
            yield 10, point(i), 0

    await engine.run(items())
    assert engine.interrupted
    assert server.calls <= 6


async def test_slots_bound_requests_and_the_crew_bounds_open_points() -> None:
    """At most ``concurrency`` creates in flight; at most 8 points per slot open (the rest wait
    in the iterator), even while many back off; every point is sent until it succeeds, once."""
    ledger, clock = Recorder(), FakeClock()
    seen: set[str] = set()
    state = {"in_flight": 0, "max_in_flight": 0, "pulled": 0, "max_open": 0}

    class Server(ScriptedServer):
        async def create(self, job_id: int, point: Point) -> Created:
            body = point.body
            state["in_flight"] += 1
            state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
            done = sum(1 for r in ledger.records if r["event"] == "succeeded")
            state["max_open"] = max(state["max_open"], state["pulled"] - done)
            try:
                for _ in range(30):  # stay in flight while the others run (paced 1 ms apart)
                    await anyio.lowlevel.checkpoint()
                url = body["config"]["train_url"]
                if url not in seen:  # each point's first attempt: refused connection, back off
                    seen.add(url)
                    raise NotSentError("connection refused")
                return await super().create(job_id, point)
            finally:
                state["in_flight"] -= 1

    server = Server()
    engine = make_engine(server, ledger, clock, concurrency=3, max_attempts=3)

    def items() -> Any:
        for i in range(200):
            state["pulled"] += 1
            yield 10, point(i), 0

    await engine.run(items())
    assert state["max_in_flight"] == 3
    assert 3 < state["max_open"] <= 3 * 8
    assert len(server.versions) == 200
    assert sorted(r["key"] for r in ledger.records if r["event"] == "succeeded") == sorted(
        f"k{i}" for i in range(200)
    )


async def test_after_an_abort_no_request_queued_behind_it_is_sent() -> None:
    """A credential refused mid-run: points waiting for a slot or for the limiter send nothing
    (five refusals in a row lock an AK); the intents already written stay pending."""
    ledger, clock = Recorder(), FakeClock()
    sent_while_stopping = []

    class Server(ScriptedServer):
        async def create(self, job_id: int, point: Point) -> Created:
            if engine.stopping:
                sent_while_stopping.append(point.train_url)
            for _ in range(3):  # stay in flight while the others queue for slots
                await anyio.lowlevel.checkpoint()
            return await super().create(job_id, point)

    server = Server(*["ok"] * 29, AuthError("wrong SK", http_status=401, error_code="APIG.0301"))
    engine = make_engine(server, ledger, clock, concurrency=4)
    await run(engine, 200)
    assert isinstance(engine.abort_error, AuthError)
    assert server.calls <= 30 + 3  # the 30th refused; at most the 3 others in flight with it
    assert sent_while_stopping == []

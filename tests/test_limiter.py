"""The adaptive limiter, stepped on a fake clock: no test sleeps."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsubmit.limiter import BETA, AdaptiveRateLimiter
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make(ceiling: float, clock: FakeClock, **kw: float) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(ceiling, clock=clock, sleep=clock.sleep, **kw)


async def test_paces_at_the_ceiling() -> None:
    """600 acquisitions at 10/s take a minute of (fake) time, less the small initial burst."""
    clock = FakeClock()
    limiter = make(10, clock)
    start = clock()
    for _ in range(600):
        await limiter.acquire()
    assert 59.0 <= clock() - start <= 60.0


async def test_concurrent_callers_share_one_rate() -> None:
    """Twenty tasks acquiring together still get 20/s in total, not 20/s each."""
    clock = FakeClock()
    limiter = make(20, clock, burst_seconds=0)
    start = clock()

    async def worker() -> None:
        for _ in range(10):
            await limiter.acquire()

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(worker)
    assert clock() - start == pytest.approx(199 / 20, rel=0.01)


async def test_throttle_cuts_rate_by_beta() -> None:
    """A throttled answer multiplies the rate by 0.7."""
    clock = FakeClock()
    limiter = make(50, clock)
    sent = await limiter.acquire()
    limiter.on_throttle(sent_at=sent)
    assert limiter.rate == pytest.approx(50 * BETA)
    assert limiter.throttles == 1


async def test_throttles_in_flight_before_a_cut_do_not_cut_again() -> None:
    """Requests sent before the last cut don't cut the rate a second time."""
    clock = FakeClock()
    limiter = make(50, clock)
    sent = [await limiter.acquire() for _ in range(3)]
    clock.now += 0.01
    for s in sent:
        limiter.on_throttle(sent_at=s)
    assert limiter.rate == pytest.approx(50 * BETA)
    assert limiter.throttles == 3


async def test_retry_after_pauses_every_caller() -> None:
    """After a 429 with Retry-After: 2, nobody acquires before two seconds have passed."""
    clock = FakeClock()
    limiter = make(100, clock)
    sent = await limiter.acquire()
    limiter.on_throttle(sent_at=sent, retry_after=2.0)
    t0 = clock()
    assert limiter.stats().paused_for == pytest.approx(2.0)
    await limiter.acquire()
    assert clock() - t0 >= 2.0


async def test_recovers_toward_ceiling_but_never_above() -> None:
    """After one throttle, steady success climbs back to the ceiling and stays there."""
    clock = FakeClock()
    limiter = make(20, clock)
    for _ in range(40):
        await limiter.acquire()
        limiter.on_success()
    sent = await limiter.acquire()
    limiter.on_throttle(sent_at=sent)
    low = limiter.rate
    rates = []
    for _ in range(600):
        await limiter.acquire()
        limiter.on_success()
        rates.append(limiter.rate)
    assert low < 20
    assert max(rates) <= 20
    assert rates[-1] == pytest.approx(20)


def test_rejects_a_non_positive_rate() -> None:
    """A rate of zero is a usage mistake, reported at construction."""
    with pytest.raises(ValueError, match="rate must be > 0"):
        AdaptiveRateLimiter(0)


class FakeService:
    """A token-bucket server: the limit the limiter has to discover."""

    def __init__(self, limit: float, clock: FakeClock, burst: float) -> None:
        self.limit, self.clock, self.burst = limit, clock, burst
        self.tokens, self.last = burst, clock()

    def admit(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.limit)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


async def discover(limit: int, over: float, burst: float) -> tuple[float, float]:
    """Run a minute against FakeService; return (achieved rate / limit, share of 429s)."""
    clock = FakeClock()
    service = FakeService(limit, clock, burst=burst)
    limiter = make(limit * over, clock)
    ok = throttled = 0
    start = clock()
    while clock() - start < 60:
        sent = await limiter.acquire()
        if service.admit():
            ok += 1
            limiter.on_success()
        else:
            throttled += 1
            limiter.on_throttle(sent_at=sent)
    return ok / (clock() - start) / limit, throttled / (ok + throttled)


@settings(max_examples=20, deadline=None)
@given(limit=st.integers(min_value=20, max_value=120), over=st.floats(min_value=1.2, max_value=4))
def test_discovers_an_unknown_limit(limit: int, over: float) -> None:
    """Behind a gateway bucket with a 1 s burst: >= 90% of the limit, <= 3% of requests 429."""
    achieved, share_429 = anyio.run(discover, limit, over, float(limit))
    assert achieved >= 0.9
    assert share_429 <= 0.03


@settings(max_examples=10, deadline=None)
@given(limit=st.integers(min_value=5, max_value=120), over=st.floats(min_value=1.2, max_value=4))
def test_discovers_a_strict_limit(limit: int, over: float) -> None:
    """Behind a bucket with no burst at all, still >= 75% of the limit and <= 11% of 429s."""
    achieved, share_429 = anyio.run(discover, limit, over, 1.0)
    assert achieved >= 0.75
    assert share_429 <= 0.11


async def test_announced_policy_becomes_the_ceiling() -> None:
    """A 429 naming its policy ("limit:40,time:1 second") caps the rate just under 40/s."""
    from batchsubmit.errors import ThrottledError

    clock = FakeClock()
    limiter = make(100, clock)
    error = ThrottledError(
        "The throttling threshold has been reached: policy user over ratelimit,limit:40,"
        "time:1 second"
    )
    assert error.announced_limit == 40
    limiter.on_throttled(error, sent_at=await limiter.acquire())
    for _ in range(2000):
        await limiter.acquire()
        limiter.on_success()
    assert 0.9 * 40 <= limiter.rate < 40


def test_policies_per_minute_are_per_second_limits() -> None:
    """"limit:120,time:1 minute" is 2 requests/s; a message without a policy announces nothing."""
    from batchsubmit.errors import ThrottledError

    assert ThrottledError("ratelimit,limit:120,time:1 minute").announced_limit == 2
    assert ThrottledError("too many requests").announced_limit is None

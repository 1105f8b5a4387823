"""The adaptive limiter, stepped on a fake clock: no test sleeps.

The per-window bound, exactly: at rate R every send is at least ``1/R`` (plus a nanosecond of
float guard) after the one before, so any one-second window of the limiter's clock, half-open
``[t, t + 1)`` or closed ``[t, t + 1]``, holds at most ``ceil(R)`` sends (R itself when R is an
integer), the first second included. The "+1 at the window edge" of the issue is not needed on
the limiter's own clock; it appears only once send times are rounded (the ledger's milliseconds).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsubmit.errors import ThrottledError
from batchsubmit.limiter import (
    BETA,
    JITTER_MARGINS,
    AdaptiveRateLimiter,
    announced_policy,
)
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make(ceiling: float, clock: FakeClock, **kw: float) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(ceiling, clock=clock, sleep=clock.sleep, **kw)


def most_in_a_window(sends: Sequence[float], *, closed: bool = False, width: float = 1.0) -> int:
    """The most sends in any window [t, t + width) (or [t, t + width]) over ``sends`` (sorted).

    A window holding the most sends can always be slid to start at a send, so only those count.
    """
    most, end = 0, 0
    for start, t in enumerate(sends):
        end = max(end, start)
        while end < len(sends) and (
            sends[end] <= t + width if closed else sends[end] < t + width
        ):
            end += 1
        most = max(most, end - start)
    return most


def gaps(sends: Sequence[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(sends)]


async def acquire_all(limiter: AdaptiveRateLimiter, n: int) -> list[float]:
    return [await limiter.acquire() for _ in range(n)]


# --- pacing: the ceiling over every one-second window ------------------------------------------


@pytest.mark.parametrize("rate", [1, 7.5, 10, 40, 99.9, 100, 1000])
async def test_no_second_holds_more_than_the_rate(rate: float) -> None:
    """At rate R no window [t, t+1), nor [t, t+1], holds more than ceil(R) sends, nor the first."""
    clock = FakeClock()
    limiter = make(rate, clock)
    sends = await acquire_all(limiter, math.ceil(rate * 20))
    assert sum(1 for t in sends if t < sends[0] + 1.0) == math.ceil(rate)
    assert most_in_a_window(sends) == math.ceil(rate)
    assert most_in_a_window(sends, closed=True) == math.ceil(rate)
    assert min(gaps(sends)) >= 1.0 / rate


async def test_paces_at_the_ceiling() -> None:
    """600 acquisitions at 10/s are 59.9 s from first to last: evenly spaced, no initial burst."""
    clock = FakeClock()
    limiter = make(10, clock)
    sends = await acquire_all(limiter, 600)
    assert sends[-1] - sends[0] == pytest.approx(59.9)
    assert gaps(sends) == pytest.approx([0.1] * 599)


async def test_concurrent_callers_share_one_rate() -> None:
    """Twenty tasks acquiring together still get 20/s in total, evenly spaced, not 20/s each."""
    clock = FakeClock()
    limiter = make(20, clock)
    sends: list[float] = []

    async def worker() -> None:
        for _ in range(10):
            sends.append(await limiter.acquire())

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(worker)
    assert sends == sorted(sends)
    assert sends[-1] - sends[0] == pytest.approx(199 / 20)
    assert min(gaps(sends)) >= 1 / 20
    assert most_in_a_window(sends) == 20


class LateClock(FakeClock):
    """A fake clock whose sleeps sometimes end late, as a busy event loop's do."""

    def __init__(self, late: Callable[[int], float]) -> None:
        super().__init__()
        self.late, self.sleeps = late, 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        await super().sleep(seconds + (self.late(self.sleeps) if seconds > 0 else 0.0))


async def test_a_late_send_does_not_let_the_next_one_catch_up() -> None:
    """When a send leaves late, the next still waits a whole interval after it: never closer."""
    clock = LateClock(late=lambda i: 0.03 if i % 3 == 0 else 0.0)
    limiter = make(40, clock)
    sends = await acquire_all(limiter, 400)
    assert min(gaps(sends)) >= 1 / 40
    assert max(gaps(sends)) == pytest.approx(1 / 40 + 0.03)
    assert most_in_a_window(sends) <= 40


async def test_idle_time_saves_credit_for_one_request_only() -> None:
    """After a long idle spell one request goes at once; the next waits its interval."""
    clock = FakeClock()
    limiter = make(10, clock)
    await acquire_all(limiter, 3)
    clock.now += 60
    idle_end = clock()
    sends = await acquire_all(limiter, 5)
    assert sends[0] == idle_end
    assert gaps(sends) == pytest.approx([0.1] * 4)


async def test_the_last_part_of_a_wait_is_spun_not_slept() -> None:
    """With ``spin``, the real sleep ends that early and checkpoints cover the rest, on time."""

    class TickingClock(FakeClock):
        def __call__(self) -> float:  # time passes while the loop spins through checkpoints
            self.now += 0.0001
            return self.now

    clock = TickingClock()
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        await clock.sleep(seconds)

    limiter = AdaptiveRateLimiter(10, clock=clock, sleep=sleep, spin=0.002)
    sends = await acquire_all(limiter, 5)
    assert min(gaps(sends)) >= 0.1
    assert max(gaps(sends)) < 0.1 + 0.0003
    coarse = [s for s in asked if s > 0]
    assert coarse and all(s <= 0.1 - 0.002 for s in coarse)


# --- reserved turns: work between permission and send ------------------------------------------


async def reserve_and_depart(
    limiter: AdaptiveRateLimiter, clock: FakeClock, work: Callable[[int], float], n: int
) -> list[float]:
    """``n`` sends, each doing ``work(i)`` seconds of work between its reserve and its depart."""
    sends = []
    for i in range(n):
        turn = await limiter.reserve()
        assert turn.at >= turn.granted == clock()  # never a turn in the past
        clock.now += work(i)  # the intent's fsync, say
        sent = await limiter.depart(turn)
        assert sent == clock() >= turn.at  # departs at its turn, or at once when late
        sends.append(sent)
    return sends


@pytest.mark.parametrize("rate", [1, 10, 40, 1000])
async def test_work_within_the_lead_keeps_the_sends_exactly_spaced(rate: float) -> None:
    """Work done in the lead before each turn delays no send: they leave one interval apart
    exactly, and no window [t, t+1) or [t, t+1] holds more than ceil(R)."""
    clock = FakeClock()
    limiter = make(rate, clock)
    await acquire_all(limiter, 1)
    work = min(0.0004, 0.2 / rate)  # within the lead: at most half an interval
    sends = await reserve_and_depart(limiter, clock, lambda i: work * (i % 3), 20 * rate)
    assert gaps(sends) == pytest.approx([1 / rate] * (len(sends) - 1))
    assert min(gaps(sends)) >= 1 / rate
    assert most_in_a_window(sends) == most_in_a_window(sends, closed=True) == math.ceil(rate)


async def test_a_late_departure_spaces_the_next_turn_from_the_real_send() -> None:
    """Work longer than the lead sends late; the next turn is a whole interval after that send
    (never closer), and the lead grows to cover such work the next time."""
    clock = FakeClock()
    limiter = make(40, clock)
    await acquire_all(limiter, 1)
    sends = await reserve_and_depart(limiter, clock, lambda i: 0.006 if i == 38 else 0.0, 40)
    assert min(gaps(sends)) >= 1 / 40
    assert max(gaps(sends)) == pytest.approx(1 / 40 + 0.006, abs=0.002)  # the late one only
    assert most_in_a_window(sends, closed=True) <= 40
    turn = await limiter.reserve()
    assert turn.at - turn.granted >= 0.011  # about twice the work seen, ahead of the turn


async def test_a_turn_given_before_a_late_send_left_waits_for_it() -> None:
    """The next turn was given while the send before it still worked past its own turn: that
    turn leaves a whole interval after the late send, not a moment after it."""
    clock = FakeClock()
    limiter = make(40, clock)
    await limiter.acquire()
    first = await limiter.reserve()
    second = await limiter.reserve()  # given before the first has left
    assert clock() - first.at > 0.02  # the first's work ran past its turn, and past the lead
    left = await limiter.depart(first)
    assert left == clock()
    sent = await limiter.depart(second)
    assert sent - left >= 1 / 40
    assert (await limiter.reserve()).at - sent >= 1 / 40


async def test_a_reserved_turn_is_now_when_nothing_waits() -> None:
    """After an idle spell a turn is ``now``: a lead never delays an unpaced send."""
    clock = FakeClock()
    limiter = make(10, clock)
    await acquire_all(limiter, 2)
    clock.now += 60
    turn = await limiter.reserve()
    assert turn.at == turn.granted == clock()
    assert await limiter.depart(turn) == clock()


# --- throttles ----------------------------------------------------------------------------------


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
    sent = await acquire_all(limiter, 3)
    clock.now += 0.01
    for s in sent:
        limiter.on_throttle(sent_at=s)
    assert limiter.rate == pytest.approx(50 * BETA)
    assert limiter.throttles == 3


async def test_throttles_before_the_cut_is_answered_hold_sends_back() -> None:
    """A 429 after a cut, before anything sent since was answered, holds (doubling), no cut."""
    clock = FakeClock()
    limiter = make(50, clock)
    limiter.on_throttle(sent_at=await limiter.acquire())
    rate = limiter.rate
    held = []
    for _ in range(3):
        sent = await limiter.acquire()
        limiter.on_throttle(sent_at=sent)
        held.append((await limiter.acquire()) - sent)
        limiter.on_throttle(sent_at=clock())  # that one too: the window is still full
    assert limiter.rate == rate
    assert held[1] > held[0] and held[2] > held[1]
    limiter.on_success()  # answered: the gateway admits again
    limiter.on_throttle(sent_at=await limiter.acquire())
    assert limiter.rate < rate


async def test_retry_after_pauses_every_caller_and_no_burst_follows() -> None:
    """After a 429 with Retry-After: 2, nobody sends for two seconds, then one per interval."""
    clock = FakeClock()
    limiter = make(100, clock)
    sent = await limiter.acquire()
    limiter.on_throttle(sent_at=sent, retry_after=2.0)
    t0, rate = clock(), limiter.rate
    assert limiter.stats().paused_for == pytest.approx(2.0)
    sends: list[float] = []

    async def worker() -> None:
        for _ in range(5):
            sends.append(await limiter.acquire())

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(worker)
    assert min(sends) == pytest.approx(t0 + 2.0)
    assert min(gaps(sorted(sends))) >= 1 / rate
    assert sends[-1] - sends[0] == pytest.approx(39 / rate)


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


async def test_repr_shows_live_state() -> None:
    """The repr names the rate, the ceiling, the policy, the margin, the lead and who waits."""
    clock = FakeClock()
    limiter = make(100, clock)
    limiter.on_throttled(ThrottledError("ratelimit,limit:40,time:1 second"),
                         sent_at=await limiter.acquire())
    text = repr(limiter)
    assert "rate=40.00/s" in text and "ceiling=40/s" in text and "policy=40/1s" in text
    assert "margin=0.0%" in text and "throttles=1" in text and "waiting=0" in text
    assert "lead=2.0ms" in text


# --- gateways: the limit has to be reached on each kind (G5) ------------------------------------


class Bucket:
    """A token bucket of ``burst`` tokens refilled at ``limit``/s, full at the start."""

    def __init__(self, limit: float, clock: FakeClock, burst: int) -> None:
        self.limit, self.burst = limit, burst
        self.tokens, self.last = float(burst), clock()

    def admit(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.limit)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FixedWindow:
    """At most ``limit`` per aligned window [k*period + phase, (k+1)*period + phase)."""

    def __init__(self, limit: float, clock: FakeClock, period: float = 1.0,
                 phase: float = 0.37) -> None:
        self.count, self.period, self.phase = round(limit * period), period, phase
        self.window, self.used = math.inf, 0

    def admit(self, now: float) -> bool:
        window = math.floor((now - self.phase) / self.period)
        if window != self.window:
            self.window, self.used = window, 0
        if self.used < self.count:
            self.used += 1
            return True
        return False


class SlidingWindow:
    """At most ``limit`` per trailing window (t - period, t]."""

    def __init__(self, limit: float, clock: FakeClock, period: float = 1.0) -> None:
        self.count, self.period = round(limit * period), period
        self.admitted: deque[float] = deque()

    def admit(self, now: float) -> bool:
        while self.admitted and self.admitted[0] <= now - self.period:
            self.admitted.popleft()
        if len(self.admitted) < self.count:
            self.admitted.append(now)
            return True
        return False


Gateway = Bucket | FixedWindow | SlidingWindow
GATEWAYS: dict[str, Callable[[float, FakeClock], Gateway]] = {
    "bucket of 1": lambda limit, clock: Bucket(limit, clock, burst=1),
    "bucket of 2": lambda limit, clock: Bucket(limit, clock, burst=2),
    "bucket of a second": lambda limit, clock: Bucket(limit, clock, burst=math.ceil(limit)),
    "fixed window": lambda limit, clock: FixedWindow(limit, clock),
    "sliding window": lambda limit, clock: SlidingWindow(limit, clock),
}


class Outcome:
    def __init__(self, sends: list[float], ok: int, throttled: int, seconds: float,
                 limiter: AdaptiveRateLimiter) -> None:
        self.sends, self.ok, self.throttled, self.seconds = sends, ok, throttled, seconds
        self.limiter = limiter

    def achieved(self, limit: float) -> float:
        return self.ok / self.seconds / limit

    @property
    def share_429(self) -> float:
        return self.throttled / (self.ok + self.throttled)


async def against(gateway: str, limit: float, rate: float, *, seconds: float = 60.0,
                  message: str | None = None) -> Outcome:
    """Send for ``seconds`` against a gateway; ``message``: the 429's text (None: no policy)."""
    clock = FakeClock()
    service = GATEWAYS[gateway](limit, clock)
    limiter = make(rate, clock)
    sends: list[float] = []
    ok = throttled = 0
    start = clock()
    while clock() - start < seconds:
        sent = await limiter.acquire()
        sends.append(sent)
        if service.admit(sent):
            ok += 1
            limiter.on_success()
        else:
            throttled += 1
            limiter.on_throttled(ThrottledError(message or "too many requests"), sent_at=sent)
    return Outcome(sends, ok, throttled, clock() - start, limiter)


POLICY_40 = (
    "The throttling threshold has been reached: policy user over ratelimit,limit:40,time:1 second"
)


@pytest.mark.parametrize("gateway", list(GATEWAYS))
async def test_at_the_limit_on_every_gateway_kind(gateway: str) -> None:
    """--rate 40 against a 40/s gateway of each kind: every request admitted, 40 in each second."""
    outcome = await against(gateway, 40, 40)
    assert outcome.throttled == 0
    assert outcome.achieved(40) >= 0.999
    assert most_in_a_window(outcome.sends) == 40


@pytest.mark.parametrize("gateway", list(GATEWAYS))
async def test_an_announced_limit_is_where_it_sits(gateway: str) -> None:
    """--rate 100, a 429 naming "limit:40,time:1 second": then exactly 40/s, no other 429."""
    outcome = await against(gateway, 40, 100, message=POLICY_40)
    assert outcome.throttled == 1
    assert outcome.limiter.rate == 40 and outcome.limiter.ceiling == 40
    after = [t for t in outcome.sends if t > outcome.sends[0] + 1.0]
    assert min(gaps(after)) >= 1 / 40
    assert most_in_a_window(after) == 40
    assert outcome.achieved(40) >= 0.99


async def test_an_announced_minute_policy_waits_for_its_window_to_empty() -> None:
    """At 10/s against 120 a minute (a sliding minute): one 429, then the window's pace, 2/s."""
    clock = FakeClock()
    service = SlidingWindow(2, clock, period=60)
    limiter = make(10, clock)
    error = ThrottledError("policy user over ratelimit,limit:120,time:1 minute")
    sends, throttled = [], 0
    while clock() < 1000 + 300:
        sent = await limiter.acquire()
        if service.admit(sent):
            sends.append(sent)
            limiter.on_success()
        else:
            throttled += 1
            limiter.on_throttled(error, sent_at=sent)
    assert throttled == 1
    assert limiter.rate == pytest.approx(2)
    assert most_in_a_window(sends, width=60) == 120
    assert len(sends) >= 120 * 4 + 110  # the first minute's 120, then 2/s


async def throttle_one_in(limiter: AdaptiveRateLimiter, clock: FakeClock, n: int) -> None:
    """A second later, ``n - 1`` sends admitted and one throttled by the 40/s policy."""
    clock.now += 1.0
    for _ in range(n - 1):
        await limiter.acquire()
        limiter.on_success()
    limiter.on_throttled(ThrottledError(POLICY_40), sent_at=await limiter.acquire())


async def test_jitter_at_an_announced_limit_widens_the_spacing_only_as_far_as_it_pays() -> None:
    """Throttled again at the announced rate: a throttle costs one turn, a wider margin costs its
    width on every turn. So the spacing grows a step (a quarter second apart at most) only while
    the throttles outnumber the step's cost; at the widest margin they are absorbed up to 15% of
    the latest answers, beyond that the rate is cut and climbs back to the limit."""
    clock = FakeClock()
    limiter = make(100, clock)
    limiter.on_throttled(ThrottledError(POLICY_40), sent_at=await limiter.acquire())  # 40/s
    await throttle_one_in(limiter, clock, 400)  # 0.25%: cheaper than 0.5% on every send
    assert gaps(await acquire_all(limiter, 3)) == pytest.approx([1 / 40] * 2)
    for step in range(1, len(JITTER_MARGINS)):
        await throttle_one_in(limiter, clock, 10)  # 10%: worth any step
        limiter.on_throttled(ThrottledError(POLICY_40), sent_at=await limiter.acquire())
        sends = await acquire_all(limiter, 3)  # (the second 429, just after: no step)
        assert gaps(sends) == pytest.approx([(1 + JITTER_MARGINS[step]) / 40] * 2)
    assert max(JITTER_MARGINS) == 0.08
    assert limiter.rate == 40  # the rate itself stays at the limit...
    for _ in range(4):
        await throttle_one_in(limiter, clock, 10)
        assert limiter.rate == 40  # ...and throttles at the widest margin are absorbed...
    for _ in range(11):
        limiter.on_throttled(ThrottledError(POLICY_40), sent_at=await limiter.acquire())
    assert limiter.rate == 40  # ...up to 15% of the latest 100 answers...
    limiter.on_throttled(ThrottledError(POLICY_40), sent_at=await limiter.acquire())
    assert limiter.rate < 40  # ...and past it: cut
    for _ in range(2000):
        await limiter.acquire()
        limiter.on_success()
    assert limiter.rate == 40  # and climbs back to the limit, not past it...
    await throttle_one_in(limiter, clock, 10)
    assert limiter.rate == 40  # ...where jitter is absorbed again, the cut behind it


@pytest.mark.parametrize("gateway", ["bucket of 1", "fixed window", "sliding window"])
async def test_a_policy_mostly_taken_by_another_client_is_shared(gateway: str) -> None:
    """The gateway names a 40/s policy, but another client takes three quarters of it: once no
    margin helps, one cut finds the quarter, and the run keeps near it with few 429s."""
    outcome = await against(gateway, 10, 40, message=POLICY_40)
    assert outcome.achieved(10) >= 0.8
    assert outcome.share_429 <= 0.15
    assert outcome.limiter.rate <= 15


async def test_the_margin_steps_back_once_throttles_are_rare() -> None:
    """Weighed every 1,000 sends: a step back when throttled less than half as often as the step
    down would cost, else the margin stays; without throttles it is all the way back in 5,000."""
    clock = FakeClock()
    limiter = make(40, clock)
    limiter.on_throttled(ThrottledError(POLICY_40), sent_at=await limiter.acquire())  # 0.5%
    for _ in range(len(JITTER_MARGINS) - 2):
        await throttle_one_in(limiter, clock, 10)
    widest = (1 + JITTER_MARGINS[-1]) / 40
    assert gaps(await acquire_all(limiter, 3)) == pytest.approx([widest] * 2)
    for _ in range(30):  # 3% of 1,000 sends: more than half the 4% a step down saves
        await throttle_one_in(limiter, clock, 33)
    await acquire_all(limiter, 1000 - 30 * 33 - 3)
    assert gaps(await acquire_all(limiter, 3)) == pytest.approx([widest] * 2)
    await acquire_all(limiter, 1000 - 3)  # the next 1,000: none, one step back
    assert gaps(await acquire_all(limiter, 3)) == pytest.approx(
        [(1 + JITTER_MARGINS[-2]) / 40] * 2)
    await acquire_all(limiter, 4000)
    assert gaps(await acquire_all(limiter, 3)) == pytest.approx([1 / 40] * 2)


async def test_a_first_throttle_at_exactly_the_announced_rate_widens_the_spacing() -> None:
    """--rate 40 throttled by a 40/s policy: jitter, not a lower limit; the spacing grows 0.5%."""
    clock = FakeClock()
    limiter = make(40, clock)
    limiter.on_throttled(ThrottledError(POLICY_40), sent_at=await limiter.acquire())
    sends = await acquire_all(limiter, 3)
    assert limiter.rate == 40
    assert gaps(sends) == pytest.approx([(1 + JITTER_MARGINS[1]) / 40] * 2)


async def test_a_throttle_under_an_announced_limit_cuts_the_rate() -> None:
    """Throttled while sending under a 40/s policy (someone else shares it): the rate is cut."""
    clock = FakeClock()
    limiter = make(100, clock)
    limiter.on_throttled(ThrottledError(POLICY_40), sent_at=await limiter.acquire())
    limiter.on_throttle(sent_at=await limiter.acquire())  # a 429 without a policy: cut to 28
    limiter.on_success()
    limiter.on_throttled(ThrottledError(POLICY_40), sent_at=await limiter.acquire())
    assert limiter.rate < 40 * BETA
    slow = make(10, clock)
    slow.on_throttled(ThrottledError(POLICY_40), sent_at=await slow.acquire())
    assert slow.rate == pytest.approx(10 * BETA)


@pytest.mark.parametrize("gateway", list(GATEWAYS))
async def test_discovers_an_undisclosed_limit_on_every_gateway_kind(gateway: str) -> None:
    """--rate 100, a 40/s limit never named: >= 90% of it within a minute, <= 2% of 429s."""
    outcome = await against(gateway, 40, 100)
    assert outcome.achieved(40) >= 0.9
    assert outcome.share_429 <= 0.02
    assert outcome.limiter.rate <= 44


@settings(max_examples=20, deadline=None)
@given(limit=st.integers(min_value=20, max_value=120), over=st.floats(min_value=1.2, max_value=4))
def test_discovers_an_unknown_limit(limit: int, over: float) -> None:
    """Behind a gateway bucket with a 1 s burst: >= 90% of the limit, <= 3% of requests 429."""
    outcome = anyio.run(against, "bucket of a second", limit, limit * over)
    assert outcome.achieved(limit) >= 0.9
    assert outcome.share_429 <= 0.03


@settings(max_examples=20, deadline=None)
@given(limit=st.integers(min_value=20, max_value=120), over=st.floats(min_value=1.2, max_value=4),
       gateway=st.sampled_from(["bucket of 2", "sliding window", "fixed window"]))
def test_discovers_an_unknown_limit_on_strict_gateways(
    limit: int, over: float, gateway: str
) -> None:
    """Behind a bucket of 2 or a one-second window: >= 88% of the limit, <= 4% of 429s."""
    outcome = anyio.run(against, gateway, limit, limit * over)
    assert outcome.achieved(limit) >= 0.88
    assert outcome.share_429 <= 0.04


@settings(max_examples=10, deadline=None)
@given(limit=st.integers(min_value=5, max_value=120), over=st.floats(min_value=1.2, max_value=4))
def test_discovers_a_strict_limit(limit: int, over: float) -> None:
    """Behind a bucket with no burst at all, still >= 75% of the limit and <= 12% of 429s."""
    outcome = anyio.run(against, "bucket of 1", limit, limit * over)
    assert outcome.achieved(limit) >= 0.75
    assert outcome.share_429 <= 0.12


def test_policies_per_minute_are_per_second_limits() -> None:
    """"limit:120,time:1 minute" is 2 requests/s over a 60 s window; no policy, no limit."""
    assert ThrottledError("ratelimit,limit:120,time:1 minute").announced_limit == 2
    assert announced_policy(ThrottledError("ratelimit,limit:120,time:1 minute")) == (120, 60)
    assert announced_policy(ThrottledError(POLICY_40)) == (40, 1)
    assert ThrottledError("too many requests").announced_limit is None
    assert announced_policy(ThrottledError("too many requests")) is None

"""An adaptive requests-per-second limiter shared by every request of a run.

The limiter is a paced scheduler, not a token bucket: each request is sent no earlier than one
interval (``1 / rate``) after the previous one *was sent*, so requests are evenly spaced and the
only credit saved while idle is the one request that may go at once. Spacing counts from the
actual send time, so a send that left late never lets the next one go early to catch up; a
nanosecond of guard per interval keeps float rounding from ever closing a gap. Hence no window
``[t, t + 1]`` of the clock, open or closed, the first second included, holds more than
``ceil(rate)`` sends, and a gateway that counts in any of the usual ways (a token bucket of one or
two, a fixed or a sliding one-second window: G5) admits every request sent at exactly its limit,
as long as the requests reach it as evenly as they left.

A caller with work between permission and send (the engine's fsync'd intent) uses
:meth:`~AdaptiveRateLimiter.reserve` and :meth:`~AdaptiveRateLimiter.depart` instead of
``acquire``: the turn is given a little ahead (the *lead*: twice the longest such work lately),
the work is done before the turn instead of after it, and the send leaves at the turn, so the
work's jitter never spaces two sends closer than one interval.

The configured rate is a ceiling, not a promise: nobody knows the service's real limit, so the
limiter finds it.

- **Undisclosed limit.** On a throttled answer the rate drops multiplicatively; on success it
  climbs back along a cubic curve toward the rate it was throttled at, then past it toward the
  ceiling: the AWS SDKs' "adaptive" retry mode (CUBIC, beta 0.7, scale 0.4). Changes from TCP:
  a throttle cuts the rate once per round trip (the requests in flight when the first 429 arrives
  don't cut it again); a 429 for a request sent after a cut, before any sent since was answered,
  is a gateway window still full, not a rate still too high, so it holds sends back (doubling)
  instead of cutting again; the rate a cut starts from is what the gateway let through in the
  last second when that is known; and a throttle near the last one's rate (a limit found) cuts
  by 0.9, not 0.7, so the sawtooth stays close under it.
- **Announced limit.** A 429 whose message names the gateway's policy ("limit:40,time:1 second",
  or "...,time:1 minute": G3) gives the limit itself: the rate becomes exactly that, and the
  limiter keeps a log of its own recent sends that were not throttled, so no window of the
  policy's period ever holds more than its limit (after an early burst, sends wait for the
  window to empty instead of hitting a full one, a whole minute for a per-minute policy). If
  the gateway still throttles at that rate (our sends reached it less evenly than they left),
  the spacing grows a step (0.5% up to 8%), but only while the throttles cost more than the
  step would: a throttle costs one turn, a margin its width on every turn (against a bucket of
  one token, jitter of a millisecond or two throttles some requests at any margin, and a wide
  one would cost more than they do). At 8%, or under the limit, throttles are absorbed up to
  15% of the latest 100 answers; beyond that (another client's share, a gateway slower than it
  says) the rate is cut as for an undisclosed limit, from what got through, and climbs back,
  and a throttle while it climbs past the rate it was cut from cuts again at once.
- **Retry-After** is a floor for every caller; after the pause, sends resume one interval apart.

Time is injected (``clock`` and ``sleep``) so tests step a fake clock and never sleep.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import monotonic

import anyio

from batchsubmit.errors import ThrottledError

__all__ = ["AdaptiveRateLimiter", "LimiterStats", "Turn", "announced_policy"]

BETA = 0.7
BETA_NEAR = 0.9  # the cut when throttled again near the last rate throttled: a stable limit
SCALE = 0.4
SPIN = 0.0015  # s of each wait spent in checkpoints rather than asleep (real clock only)
GUARD = 1e-9  # s added to every interval, so float rounding never spaces two sends too closely
# Spacing margins tried in turn when a gateway throttles us at the limit it announced: our sends
# reach it less evenly than they leave (the network, the gateway's own scheduling in between).
# A bucket of one token needs several percent; a window, half a percent at most.
JITTER_MARGINS = (0.0, 0.005, 0.01, 0.02, 0.04, 0.08)
# A throttle at the announced rate costs one request's turn; a wider margin costs its width on
# every turn. So a margin widens only when throttles outnumber what the next step would cost
# (its width, at least 0.5% of the sends at this margin), and steps back after 1,000 sends
# throttled less than half as often as the step down would cost. At the widest margin, and
# under the limit (a cut's climb, another client's share), throttles are absorbed up to 15% of
# the latest answers: a cut costs about a second of sending, far more than a few retries.
_WIDEN_SHARE = tuple(max(0.005, b - a) for a, b in itertools.pairwise(JITTER_MARGINS))
_CUT_SHARE = 0.15
_RECENT_ANSWERS = 100  # the answers the 15% is counted over (at least _MEASURE_SENDS of them)
_WIDEN_EVERY = 0.25  # s: the margin widens at most once in this long
_MARGIN_DECAY = 1000  # sends at a margin before it is weighed again (steps down if it may)
_MEASURE_SENDS = 20  # the measured send rate spans this many recent sends
_HISTORY = 4096  # recent admitted sends kept (more when an announced window holds more)
_MAX_WINDOW = 100_000  # a policy allowing more than this per period is paced by rate alone
# The lead a reserving caller gets for its work before the send (see AdaptiveRateLimiter.reserve):
# twice the longest such work lately, decaying slowly, within these bounds (s).
_LEAD_MIN = 0.001
_LEAD_MAX = 0.02
_LEAD_DECAY = 0.99


def _rebook(booked: deque[float], at: float, sent: float) -> None:
    """The send booked at ``at`` left at ``sent`` (booked in order: searched from the end)."""
    for i in range(len(booked) - 1, -1, -1):
        if booked[i] == at:
            booked[i] = sent
            return
        if booked[i] < at:
            return


def announced_policy(error: ThrottledError) -> tuple[float, float] | None:
    """(requests, period in seconds) of the policy a 429 names, e.g. (40, 1.0); else None."""
    return error.announced_policy


@dataclass(frozen=True, slots=True)
class Turn:
    """A request's reserved send time ``at``, granted at ``granted`` (both on the clock)."""

    at: float
    granted: float


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A frozen view of the limiter, for progress displays and logs."""

    rate: float
    ceiling: float
    measured_rate: float
    throttles: int
    paused_for: float


class AdaptiveRateLimiter:
    """Evenly spaced sends whose rate adapts to throttling (see the module docstring)."""

    def __init__(
        self,
        ceiling: float,
        *,
        min_rate: float = 0.5,
        clock: Callable[[], float] = monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        spin: float | None = None,
    ) -> None:
        if ceiling <= 0:
            raise ValueError(f"rate must be > 0 requests/s, got {ceiling}")
        self.ceiling = float(ceiling)
        self._min_rate = min(min_rate, self.ceiling)
        self._clock = clock
        self._sleep = sleep
        # The event loop wakes a sleeper up to a millisecond late (epoll's resolution): ~2% of
        # the interval at 40/s, lost for ever since spacing counts from the actual send. So the
        # real sleep ends this early and the rest is checkpoints. Off for an injected sleep,
        # which is a fake clock's: its sleep(0) would never advance time.
        self._spin = (SPIN if sleep is anyio.sleep else 0.0) if spin is None else spin
        # FIFO: one waiter sleeps for its turn at a time; no checkpoint when uncontended
        self._lock = anyio.Lock(fast_acquire=True)
        now = clock()
        self._rate = self.ceiling
        self._last_send = -math.inf  # the latest turn given (a send's time once it left)
        self._departed = -math.inf  # the latest send that left
        self._first_send = math.inf
        self._pause_until = -math.inf
        self._hold_until = -math.inf  # a full gateway window: wait for it to empty
        self._holds = 0  # throttles since the last cut before any request sent after it answered
        # send times awaiting an answer, oldest first: answers mostly come back in order, so a
        # success is taken to answer the oldest (it only decides when a cut has been answered)
        self._outstanding: deque[float] = deque(maxlen=_HISTORY)
        self._cut_answered = True
        # recent sends that were not throttled, oldest first (the gateway's view of our traffic)
        self._history: deque[float] = deque(maxlen=_HISTORY)
        self._policy: tuple[int, float] | None = None  # announced (requests, period)
        self._margin = 0  # index into JITTER_MARGINS
        self._level_sends = 0  # sends since the pacing last changed (the margin, a cut)...
        self._level_throttles = 0  # ...and throttles at the announced policy among them
        # the latest answers under an announced policy, True for a throttle counted against us
        self._answers: deque[bool] = deque(maxlen=_RECENT_ANSWERS)
        self._adjusted_at = -math.inf  # when the rate or the margin was last changed by a 429
        self._lead = _LEAD_MIN * 2  # s a reserving caller works before its send (measured)
        # CUBIC state
        self._throttled_ever = False
        self._last_max_rate = self.ceiling
        self._last_throttle = now
        self._window = 0.0
        self.throttles = 0

    def __repr__(self) -> str:
        policy = "none" if self._policy is None else f"{self._policy[0]}/{self._policy[1]:g}s"
        return (
            f"<AdaptiveRateLimiter rate={self._rate:.2f}/s ceiling={self.ceiling:g}/s "
            f"next_in={max(0.0, self._ready_at() - self._clock()):.3f}s policy={policy} "
            f"margin={JITTER_MARGINS[self._margin]:.1%} lead={self._lead * 1000:.1f}ms "
            f"throttles={self.throttles} "
            f"waiting={self._lock.statistics().tasks_waiting}>"
        )

    @property
    def rate(self) -> float:
        """The rate currently allowed, in requests per second."""
        return self._rate

    def stats(self) -> LimiterStats:
        return LimiterStats(
            rate=self._rate,
            ceiling=self.ceiling,
            measured_rate=self._measured(),
            throttles=self.throttles,
            paused_for=max(0.0, self._pause_until - self._clock()),
        )

    async def acquire(self) -> float:
        """Wait for permission to send one request; returns the send time on the clock."""
        at = (await self.reserve(lead=0.0)).at
        self._departed = max(self._departed, at)
        return at

    async def reserve(self, *, lead: float | None = None) -> Turn:
        """Wait until shortly before this request's turn; returns the turn, to :meth:`depart` at.

        For a caller with work to do between permission and send (the engine's fsync'd intent):
        it does that work during the last ``lead`` seconds of the wait, instead of between the
        turn and the send, where its jitter would space two sends closer than one interval. The
        turn is booked as the send (spacing counts from it) and is never in the past: with no
        wait ahead, it is ``now``. ``lead`` defaults to the limiter's measure of that work.
        """
        if lead is None:
            lead = min(self._lead, 0.5 / self._rate)  # half an interval at most
        async with self._lock:
            while True:
                now = self._clock()
                ready = self._ready_at()
                if now >= ready - lead:
                    at = max(now, ready)
                    self._book(at)
                    return Turn(at, now)
                wait = ready - lead - now
                spin = min(self._spin, 0.125 / self._rate)  # at most an eighth of the interval
                await self._sleep(wait - spin if wait > spin else 0.0 if spin else wait)

    async def depart(self, turn: Turn) -> float:
        """Wait for ``turn``; returns the send time booked for it (send at once after this).

        Never less than one interval after the send before it left: when that one's work took
        longer than the lead and it left late, a turn given before it left waits for it rather
        than following it closely. A send that leaves after its turn is rebooked at its real
        departure, so the turns given after it count from there; the lead then grows to cover
        such work next time.
        """
        now = self._clock()
        prep = now - turn.granted
        self._lead = max(_LEAD_MIN, min(_LEAD_MAX, max(2.0 * prep, self._lead * _LEAD_DECAY)))
        at = max(turn.at, self._departed + self._interval())
        while now < at:
            wait = at - now
            spin = min(self._spin, 0.125 / self._rate)
            await self._sleep(wait - spin if wait > spin else 0.0 if spin else wait)
            now = self._clock()
        self._departed = max(self._departed, now)
        if now <= turn.at:
            return turn.at
        if self._last_send == turn.at:
            self._last_send = now  # the latest turn: space the next from the real send
        for booked in (self._history, self._outstanding):
            _rebook(booked, turn.at, now)
        return now

    def _book(self, at: float) -> None:
        self._last_send = at
        self._first_send = min(self._first_send, at)
        self._level_sends += 1
        if self._margin and self._level_sends >= _MARGIN_DECAY:
            if self._level_throttles < self._level_sends * _WIDEN_SHARE[self._margin - 1] / 2:
                self._margin -= 1
            self._level_sends = self._level_throttles = 0
        self._history.append(at)
        self._outstanding.append(at)

    def on_success(self) -> None:
        """An answer that was not a throttle: grow back toward the ceiling."""
        if self._policy is not None:
            self._answers.append(False)
        if self._outstanding and self._outstanding.popleft() >= self._last_throttle:
            self._cut_answered = True
            self._holds = 0
        if not self._throttled_ever:
            return
        now = self._clock()
        cubic = SCALE * (now - self._last_throttle - self._window) ** 3 + self._last_max_rate
        cap = 2.0 * max(self._measured(), self._min_rate)
        self._set_rate(min(cubic, cap))
        if self._policy is not None and self._rate >= self.ceiling:
            self._throttled_ever = False  # back at the announced limit: the cut is behind us

    def on_throttle(
        self, *, sent_at: float, retry_after: float | None = None,
        announced_limit: float | None = None, announced_period: float = 1.0,
    ) -> None:
        """A throttled answer to a request sent at ``sent_at``: slow down, honour Retry-After.

        ``announced_limit`` (requests/s), when the gateway names its policy, becomes the rate and
        the ceiling: no need to probe past it; ``announced_period`` is the policy's period (1 s
        for "limit:40,time:1 second", 60 s for "...,time:1 minute"), the window it counts in.
        """
        now = self._clock()
        self.throttles += 1
        self._forget(sent_at)
        if retry_after:
            self._pause_until = max(self._pause_until, now + retry_after)
        if announced_limit and self._announced(announced_limit, announced_period, sent_at, now):
            return
        if self._throttled_ever and sent_at < self._last_throttle:
            return  # sent before the last cut: that cut already accounted for it
        if self._throttled_ever and not self._cut_answered:
            # Sent after the cut, and nothing sent after it has been answered yet: the gateway's
            # window is still full. Wait for it to empty (doubling), don't cut the rate again.
            self._holds += 1
            self._hold_until = now + min(1.0, 2.0 ** min(self._holds - 1, 30) / self._rate)
            return
        measured = self._measured()
        base = min(measured, self._rate) if measured > 0 else self._rate
        admitted = self._admitted_last_second(now)
        # What the gateway let through in the last second is its limit, if we sent above it that
        # long, and before the first cut we did (fewer than ten sends are too coarse a count).
        full_second = self._first_send <= now - 1.0 or not self._throttled_ever
        if full_second and admitted >= _MEASURE_SENDS // 2:
            base = min(base, admitted)
        # near the last rate throttled, or the announced limit: a limit found, cut it finely
        near = self._last_max_rate if self._throttled_ever else self._policy_rate()
        beta = BETA_NEAR if near is not None and base >= 0.9 * near else BETA
        self._throttled_ever = True
        self._cut_answered = False
        self._last_max_rate = base
        self._window = ((base * (1 - beta)) / SCALE) ** (1 / 3)
        self._last_throttle = now
        self._holds = 0
        self._set_rate(base * beta)

    def on_throttled(self, error: ThrottledError, *, sent_at: float) -> None:
        """:meth:`on_throttle` with what a ThrottledError carries."""
        policy = announced_policy(error)
        self.on_throttle(
            sent_at=sent_at, retry_after=error.retry_after,
            announced_limit=None if policy is None else policy[0] / policy[1],
            announced_period=1.0 if policy is None else policy[1],
        )

    # -- internals --------------------------------------------------------------------------

    def _interval(self) -> float:
        """The least time between two sends now."""
        return (1.0 / self._rate) * (1.0 + JITTER_MARGINS[self._margin]) + GUARD

    def _ready_at(self) -> float:
        """The earliest time the next request may be sent."""
        interval = self._interval()
        ready = max(
            self._last_send + interval,
            self._departed + interval,
            self._pause_until,
            self._hold_until,
        )
        if self._policy is not None:
            count, period = self._policy
            if len(self._history) >= count:
                # the count-th most recent send must have left the policy's window (t - P, t]
                ready = max(ready, self._history[-count] + period + GUARD)
        return ready

    def _announced(self, limit: float, period: float, sent_at: float, now: float) -> bool:
        """Apply an announced policy; False if the throttle is to be taken as an unknown one."""
        below = self._rate < limit * (1 - 1e-9)  # sent under the policy's rate, still throttled
        if self._policy is None or limit < self.ceiling:
            # Learnt (or lowered): pace at exactly the limit, and count its window.
            self.ceiling = min(self.ceiling, limit)
            self._min_rate = min(self._min_rate, self.ceiling)
            count = math.floor(limit * period + 1e-9)
            if 1 <= count <= _MAX_WINDOW:
                self._policy = (count, period)
                if count > (self._history.maxlen or 0):
                    self._history = deque(self._history, maxlen=count)
            self._adjusted_at = now
            if below:
                return False  # another client shares the policy: find our share of it
            if self._rate <= limit * (1 + 1e-9):
                self._widen()  # throttled at exactly the limit: our sends arrive unevenly
            self._rate = self.ceiling
            self._throttled_ever = False  # nothing to climb back to
            return True
        if sent_at < self._adjusted_at + _WIDEN_EVERY:
            # in flight when we adjusted, or just after (one late send throttles a few in a
            # row, and the first sends of a run arrive unevenly while connecting)
            return True
        if self._throttled_ever and self._rate > self._last_max_rate:
            return False  # probing past the share last found (a cut's climb): a limit, cut
        self._level_throttles += 1
        if not below and self._margin < len(JITTER_MARGINS) - 1:
            # throttled at the announced rate: our sends reach it less evenly than they leave
            if self._level_throttles > self._level_sends * _WIDEN_SHARE[self._margin]:
                self._widen()
                self._adjusted_at = now
            return True
        # At the widest margin, or under the limit: the gateway's jitter, another client's
        # share, or a gateway slower than it says. Only when it recurs is it taken as a limit
        # of our own: cut from what got through, as for an undisclosed limit.
        answers = self._answers
        answers.append(True)
        if len(answers) < _MEASURE_SENDS or sum(answers) <= _CUT_SHARE * len(answers):
            return True
        answers.clear()
        self._level_sends = self._level_throttles = 0
        self._adjusted_at = now
        return False

    def _widen(self) -> None:
        self._margin = min(self._margin + 1, len(JITTER_MARGINS) - 1)
        self._level_sends = self._level_throttles = 0

    def _admitted_last_second(self, now: float) -> float:
        """Sends in the last second that were not throttled: what the gateway let through."""
        count = 0
        for sent in reversed(self._history):
            if sent <= now - 1.0:
                break
            count += 1
        return float(count)

    def _policy_rate(self) -> float | None:
        return None if self._policy is None else self._policy[0] / self._policy[1]

    def _forget(self, sent_at: float) -> None:
        """A throttled send is answered, and did not count against the gateway's limit."""
        with contextlib.suppress(ValueError):
            self._outstanding.remove(sent_at)
        history = self._history
        for i in range(len(history) - 1, -1, -1):
            if history[i] == sent_at:
                del history[i]
                return
            if history[i] < sent_at:
                return

    def _set_rate(self, rate: float) -> None:
        self._rate = max(self._min_rate, min(self.ceiling, rate))

    def _measured(self) -> float:
        """Requests/s over the last few sends: what we really sent, whatever the rate allowed.

        About the last second's sends: over a longer span a climb since looks like a slow rate.
        A gap counts as at most two intervals, so one idle spell (the first request sent alone
        and awaited before the others) doesn't pass for a slow rate either.
        """
        history = self._history
        n = min(len(history), _MEASURE_SENDS, max(3, math.ceil(self._rate)))
        if n < 2:
            return 0.0
        longest = 2.0 / self._rate
        span = sum(min(history[i] - history[i - 1], longest) for i in range(1 - n, 0))
        return (n - 1) / span if span > 0 else float("inf")

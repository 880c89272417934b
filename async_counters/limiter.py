"""A send rate per key that adapts to throttling, because DynamoDB throttles per partition.

One counter lives on one partition, capped near 1,000 writes/s whatever the table's capacity.
Concurrency alone cannot respect that: one request in flight at a 5 ms round trip already sends
~200 writes/s. So each key that has been throttled gets a pacing rate:

- **Measure, then pace.** Responses are counted per key in short windows. When a window's share of
  throttled responses exceeds `THROTTLE_SHARE`, the key is paced at the rate the server *accepted*
  in that window: under capacity throttling that is the partition's capacity, whatever was sent.
- **Check that it helped.** Under capacity throttling, sending less leaves the accepted rate where
  it was and the throttled share falls. If instead the next window throttles the same share and
  accepts less in proportion, the throttling did not come from our rate (random throttles, faults):
  the cut is undone and the key left unpaced for `HOLD` seconds, so that pacing cannot collapse it;
  each request's jittered backoff still applies.
- **Probe upward, cubically.** After a cut the rate grows as ``base * (1 + GROWTH * (t / K)**3)``:
  it stays near the capacity it measured for a while (goodput near the cap, few throttles), then
  probes faster, so that more capacity (an on-demand table splitting a partition) is found.
- A key whose pace is far above what it sends is released, and a released key idle for `IDLE`
  seconds is forgotten: memory follows the keys being throttled, not the operations.

Keys that were never throttled pay one dict lookup per request. The pool-wide ``max_in_flight``
still bounds everything; a key's pace is applied *before* taking a pool slot, so a throttled hot key
queues on its own and does not hold slots that cold keys need.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from .transport import Outcome

__all__ = ["KeyLimiter"]

#: A window ends after this long and at least `WINDOW_RESPONSES` responses (or after `WINDOW_MAX`).
WINDOW = 0.1
WINDOW_RESPONSES = 20
WINDOW_MAX = 1.0
#: Share of throttled responses in a window above which a key is paced down.
THROTTLE_SHARE = 0.02
#: A cut is undone when the next window throttles the same share (within these bounds) and
#: accepts less than this fraction of the window before.
SAME_SHARE = 0.05
SAME_SHARE_RELATIVE = 0.25
KEEP_IF = 0.85
#: One cut goes at most down to this share of the current rate.
MAX_CUT = 0.5
#: How long a key whose throttling did not respond to pacing is left unpaced.
HOLD = 2.0
#: Cubic probing: the rate is ``base * (1 + GROWTH * (t / PROBE_SECONDS) ** 3)``.
GROWTH = 0.1
PROBE_SECONDS = 1.0
#: A pace more than this many times the rate a key really sends is released.
RELEASE_FACTOR = 4.0
#: A released key not heard from for this long is forgotten.
IDLE = 10.0
#: Never pace slower than this (requests/s).
MIN_RATE = 1.0
#: Requests may run this far ahead of the pace (seconds), so that pacing adds no delay at low load.
SLACK = 0.005
_EPSILON = 1e-6


def _cut_did_not_help(before: tuple[float, float], accepted: float, share: float) -> bool:
    """After a cut: the throttled share stayed about the same and the accepted rate fell with it.

    That is what random throttling looks like. Capacity throttling looks otherwise: the share
    falls (we were over the cap), or rises (the partition's burst ran out; cut more).
    """
    accepted_before, share_before = before
    same_share = abs(share - share_before) <= max(SAME_SHARE, SAME_SHARE_RELATIVE * share_before)
    return same_share and accepted < KEEP_IF * accepted_before


class _Key:
    """The pacing state of one throttled key."""

    __slots__ = (
        "acked",
        "base",
        "cut_at",
        "hold_until",
        "judging",
        "last_seen",
        "lock",
        "next_send",
        "previous_base",
        "responses",
        "throttled",
        "window_start",
    )

    def __init__(self, now: float) -> None:
        self.lock = asyncio.Lock()
        self.base: float | None = None  # None: not paced
        self.cut_at = now
        self.judging: tuple[float, float] | None = None  # (accepted, share) before the last cut
        self.previous_base: float | None = None
        self.hold_until = 0.0
        self.next_send = now
        self.window_start = now
        self.responses = 0
        self.acked = 0
        self.throttled = 0
        self.last_seen = now

    def rate(self, now: float) -> float | None:
        if self.base is None:
            return None
        t = (now - self.cut_at) / PROBE_SECONDS
        return self.base * (1.0 + GROWTH * t * t * t)


class KeyLimiter:
    """Per-key adaptive pacing (see the module docstring); `clock` and `sleep` are injectable.

    >>> limiter = KeyLimiter()
    >>> await limiter.acquire("views:/home")            # returns at once unless the key is paced
    >>> limiter.observe("views:/home", Outcome.THROTTLED)
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._keys: dict[str, _Key] = {}
        self._next_sweep = clock() + IDLE

    async def acquire(self, key: str) -> None:
        """Wait until ``key`` may send its next request (at once for keys that are not paced)."""
        state = self._keys.get(key)
        if state is None or state.base is None:
            return
        async with state.lock:  # FIFO: paced requests of one key leave in arrival order
            while True:
                now = self._clock()
                rate = state.rate(now)
                if rate is None:
                    return
                wait = state.next_send - now - SLACK
                if wait <= _EPSILON:  # not 0: a clock may not move for a sub-microsecond sleep
                    state.next_send = max(state.next_send, now - SLACK) + 1.0 / rate
                    return
                await self._sleep(wait)

    def observe(self, key: str, outcome: Outcome) -> None:
        """Account one response of a write to ``key``."""
        state = self._keys.get(key)
        if state is None:
            if outcome is not Outcome.THROTTLED:
                return
            now = self._clock()
            state = self._keys[key] = _Key(now)
            self._sweep(now)
        else:
            now = self._clock()
        state.last_seen = now
        state.responses += 1
        if outcome is Outcome.THROTTLED:
            state.throttled += 1
        elif outcome is Outcome.ACKNOWLEDGED or outcome is Outcome.CONDITION_FAILED:
            state.acked += 1  # a refused condition was served too: it used the partition
        elapsed = now - state.window_start
        if (elapsed >= WINDOW and state.responses >= WINDOW_RESPONSES) or elapsed >= WINDOW_MAX:
            self._close_window(state, now, elapsed)

    def _close_window(self, state: _Key, now: float, elapsed: float) -> None:
        share = state.throttled / state.responses
        accepted = state.acked / elapsed
        sent = state.responses / elapsed
        state.window_start, state.responses, state.acked, state.throttled = now, 0, 0, 0

        judging, state.judging = state.judging, None
        if judging is not None and _cut_did_not_help(judging, accepted, share):
            # Throttled as before and accepting less: our rate was not the cause. Undo, hold off.
            state.base = state.previous_base
            state.cut_at = now
            state.hold_until = now + HOLD
            return
        if share > THROTTLE_SHARE:
            if now < state.hold_until:
                return
            current = state.rate(now) or sent
            state.previous_base = state.base
            state.base = max(MIN_RATE, accepted, current * MAX_CUT)
            state.cut_at = now
            state.judging = (accepted, share)
            state.next_send = min(state.next_send, now + 1.0 / state.base)
            return
        rate = state.rate(now)
        if rate is not None and share == 0 and rate > RELEASE_FACTOR * max(sent, MIN_RATE):
            state.base = None  # the pace no longer binds; the key sends freely again

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + IDLE
        for key in [
            k for k, s in self._keys.items() if s.base is None and now - s.last_seen > IDLE
        ]:
            del self._keys[key]

    def rates(self) -> dict[str, float]:
        """The current pace (requests/s) of every key that is paced."""
        now = self._clock()
        return {key: rate for key, s in self._keys.items() if (rate := s.rate(now)) is not None}

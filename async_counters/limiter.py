"""A send rate per key that adapts to throttling, because DynamoDB throttles per partition.

One counter lives on one partition, capped near 1,000 writes/s whatever the table's capacity.
Concurrency alone cannot respect that: one request in flight at a 5 ms round trip already sends
~200 writes/s. So each key that has been throttled gets a pacing rate:

- **Measure, then pace.** Responses are counted per key in short windows. When a window's share of
  throttled responses exceeds `THROTTLE_SHARE`, the key is paced at the rate the server *accepted*
  in that window: under capacity throttling that is the partition's capacity, whatever was sent.
  A window that is overwhelmingly throttled before it holds enough acknowledgements to measure
  cuts the rate at once (deeper the more was throttled), so that a crowd of callers on a cold key
  is reined in within milliseconds.
- **Notice when pacing does not help.** Under capacity throttling, sending at the accepted rate
  all but ends the throttling. If after a few cuts to the accepted rate the share throttled stays
  where it was, the throttling does not come from our rate (random throttles, faults): the rate
  from before the run is restored and no cut follows for `HOLD` seconds, so that pacing cannot
  collapse a key; each request's jittered backoff still applies. Whatever that misses, a cut
  never goes below an eighth of the best accepted rate seen lately (halved every 10 s).
- **Probe upward, cubically.** After a cut the rate grows as ``base * (1 + GROWTH * (t / K)**3)``
  (K: a second, or the time `PROBE_REQUESTS` take at the base rate for a slow key):
  it stays near the capacity it measured for a while (goodput near the cap, few throttles), then
  probes faster, so that more capacity (an on-demand table splitting a partition) is found. When a
  run of cuts that started from a pace that held ends (a storm passed, a neighbour left), that
  pace is regained within `REGAIN_SECONDS`, concavely, as CUBIC regains its last window.
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

#: A window ends after `WINDOW_RESPONSES` responses, `WINDOW_MIN` seconds and `MIN_ACKED`
#: acknowledgements (enough to measure the accepted rate), or at once when more than
#: `BLIND_SHARE` of it was throttled; and after `WINDOW_MAX` seconds in any case.
WINDOW_MIN = 0.01
WINDOW_RESPONSES = 20
MIN_ACKED = 10
WINDOW_MAX = 1.0
#: A window closed by `WINDOW_MAX` (a slow key) measures the accepted rate from this many acks.
MIN_ACKED_SLOW = 3
#: Share of throttled responses in a window above which a key is paced down.
THROTTLE_SHARE = 0.02
#: A window too throttled to measure (more than `BLIND_SHARE` throttled) cuts the rate to twice
#: the share that got through, within these bounds.
BLIND_SHARE = 0.5
BLIND_CUT_MIN = 1 / 16
BLIND_CUT_MAX = 0.5
#: Pacing is judged not to help when, after `STREAK_CUTS` cuts in a row, a window is still
#: throttled at `SHARE_KEPT` of the share that started the run: under capacity throttling the
#: first cut to the accepted rate all but ends it. (A greedy neighbour on the
#: partition looks the same: competing with it, rather than yielding to nothing, is then right.)
STREAK_CUTS = 3
SHARE_KEPT = 0.5
#: After pacing was judged not to help: no cut for this long.
HOLD = 3.0
#: After a run of cuts from a pace that held, that pace is regained within this many seconds.
REGAIN_SECONDS = 1.0
#: Cubic probing: the rate is ``base * (1 + GROWTH * (t / PROBE_SECONDS) ** 3)``.
GROWTH = 0.2
PROBE_SECONDS = 1.0
#: ... or the time `PROBE_REQUESTS` take at the base rate, if longer: a slow key is throttled
#: too rarely to see a probe too far within a second, so it probes over as many requests.
PROBE_REQUESTS = 50.0
#: A pace more than this many times the rate a key really sends is released.
RELEASE_FACTOR = 4.0
#: A released key not heard from for this long is forgotten.
IDLE = 10.0
#: Never pace slower than this (requests/s), nor below `FLOOR_SHARE` of the best accepted rate
#: measured lately (halved every `BEST_HALF_LIFE` seconds), so that a real drop is followed.
MIN_RATE = 1.0
FLOOR_SHARE = 1 / 8
BEST_HALF_LIFE = 10.0
#: Requests may run this far ahead of the pace (seconds), so that pacing adds no delay at low load.
SLACK = 0.005
_EPSILON = 1e-6


class _Streak:
    """A run of throttled windows: the rate before it, and the cuts made to accepted rates."""

    __slots__ = ("cuts", "first_share", "paced", "rate")

    def __init__(self, rate: float, paced: bool) -> None:
        self.rate = rate  # the rate before the run's first cut
        self.paced = paced  # whether that rate was a pace that held (not a crowd let loose)
        self.cuts = 0
        self.first_share = 0.0

    def cut(self, share: float) -> None:
        if self.cuts == 0:
            self.first_share = share
        self.cuts += 1

    def pacing_does_not_help(self, share: float) -> bool:
        """Cut to the accepted rate again and again, and still throttled about as much."""
        return self.cuts >= STREAK_CUTS and share >= SHARE_KEPT * self.first_share


class _Key:
    """The pacing state of one throttled key."""

    __slots__ = (
        "acked",
        "base",
        "best",
        "best_at",
        "cut_at",
        "epoch",
        "hold_until",
        "last_seen",
        "lock",
        "next_send",
        "responses",
        "streak",
        "target",
        "throttled",
        "waiting",
        "window_start",
    )

    def __init__(self, now: float) -> None:
        self.lock = asyncio.Lock()
        self.base: float | None = None  # None: not paced
        self.best = 0.0  # the highest accepted rate measured lately (decaying), and when
        self.best_at = now
        self.epoch = 0  # counts cuts; a request carries the epoch it was admitted in
        self.cut_at = now
        self.hold_until = 0.0
        self.streak: _Streak | None = None
        self.target: float | None = None  # a pace that held before a run of cuts: regained first
        self.next_send = now
        self.window_start = now
        self.responses = 0
        self.acked = 0
        self.throttled = 0
        self.waiting = 0  # requests inside `acquire`, queued behind the pace
        self.last_seen = now

    def floor(self, now: float) -> float:
        """The slowest a cut may pace: a share of the best accepted rate seen lately. Whatever
        the detection of useless cuts misses, a key cannot be paced to a standstill."""
        decayed: float = self.best * 0.5 ** ((now - self.best_at) / BEST_HALF_LIFE)
        return max(MIN_RATE, FLOOR_SHARE * decayed)

    def rate(self, now: float) -> float | None:
        base = self.base
        if base is None:
            return None
        t = max(0.0, now - self.cut_at)
        target = self.target
        if target is not None:
            if t < REGAIN_SECONDS:  # concave: most of the way back quickly, then carefully
                left = 1.0 - t / REGAIN_SECONDS
                return target - (target - base) * left * left * left
            base, t = target, t - REGAIN_SECONDS
        t /= max(PROBE_SECONDS, PROBE_REQUESTS / base)
        return base * (1.0 + GROWTH * t * t * t)


class KeyLimiter:
    """Per-key adaptive pacing (see the module docstring); `clock` and `sleep` are injectable.

    >>> limiter = KeyLimiter()
    >>> epoch = await limiter.acquire("views:/home")   # at once unless the key is paced
    >>> limiter.stale("views:/home", epoch)            # cut since? then acquire again
    False
    >>> limiter.observe("views:/home", Outcome.THROTTLED, epoch)

    The epoch is what makes a cut take hold at once: requests admitted before it (queued for a
    pool slot, or on the wire) are sent again through the pace, or not counted in the windows
    that judge the new rate.
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

    def unpaced_epoch(self, key: str) -> int | None:
        """The epoch to send ``key`` in at once if it is not paced; None: await `acquire`."""
        state = self._keys.get(key)
        if state is None:
            return 0
        return state.epoch if state.base is None else None

    async def acquire(self, key: str) -> int:
        """Wait until ``key`` may send its next request; return the epoch it is admitted in."""
        state = self._keys.get(key)
        if state is None:
            return 0
        if state.base is None:
            return state.epoch
        state.waiting += 1
        try:
            return await self._paced(state)
        finally:
            state.waiting -= 1

    async def _paced(self, state: _Key) -> int:
        async with state.lock:  # FIFO: paced requests of one key leave in arrival order
            while True:
                now = self._clock()
                rate = state.rate(now)
                if rate is None:
                    return state.epoch
                wait = state.next_send - now - SLACK
                if wait <= _EPSILON:  # not 0: a clock may not move for a sub-microsecond sleep
                    state.next_send = max(state.next_send, now - SLACK) + 1.0 / rate
                    return state.epoch
                await self._sleep(wait)

    def delay(self, key: str) -> float:
        """Seconds until a request to ``key`` asked for now could leave: 0 unless the key is
        paced; behind the pace's next slot and the requests already waiting for it. Cheap."""
        state = self._keys.get(key)
        if state is None or state.base is None:
            return 0.0
        now = self._clock()
        rate = state.rate(now)
        if rate is None:
            return 0.0
        return max(0.0, state.next_send - now - SLACK) + state.waiting / rate

    def stale(self, key: str, epoch: int) -> bool:
        """Whether ``key`` was cut since a request was admitted in ``epoch``."""
        state = self._keys.get(key)
        return state is not None and state.epoch != epoch

    def observe(self, key: str, outcome: Outcome, epoch: int) -> None:
        """Account one response of a write to ``key`` admitted in ``epoch``."""
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
        if epoch != state.epoch:
            return  # sent at a rate that is no longer ours: it says nothing of the current one
        state.responses += 1
        if outcome is Outcome.THROTTLED:
            state.throttled += 1
        elif outcome is Outcome.ACKNOWLEDGED or outcome is Outcome.CONDITION_FAILED:
            state.acked += 1  # a refused condition was served too: it used the partition
        elapsed = now - state.window_start
        if elapsed >= WINDOW_MAX or (
            elapsed >= WINDOW_MIN
            and state.responses >= WINDOW_RESPONSES
            and (state.acked >= MIN_ACKED or state.throttled > BLIND_SHARE * state.responses)
        ):
            self._close_window(state, now, elapsed)

    def _close_window(self, state: _Key, now: float, elapsed: float) -> None:
        share = state.throttled / state.responses
        accepted = state.acked / elapsed
        sent = state.responses / elapsed
        measured = state.acked >= (MIN_ACKED if elapsed < WINDOW_MAX else MIN_ACKED_SLOW)
        state.window_start, state.responses, state.acked, state.throttled = now, 0, 0, 0
        if measured:
            decay = 0.5 ** ((now - state.best_at) / BEST_HALF_LIFE)
            if accepted >= state.best * decay:
                state.best, state.best_at = accepted, now

        if share <= THROTTLE_SHARE:
            streak, state.streak = state.streak, None
            if (
                streak is not None
                and streak.paced
                and streak.cuts >= 2  # a storm, not one probe too far
                and state.base is not None
            ):
                # A run of cuts from a pace that held is over (a storm, a neighbour): regain
                # that pace quickly, rather than probing up from the bottom of the run.
                current = state.rate(now) or 0.0
                if streak.rate > current:
                    state.base, state.target, state.cut_at = current, streak.rate, now
            rate = state.rate(now)
            if rate is not None and share == 0 and rate > RELEASE_FACTOR * max(sent, MIN_RATE):
                state.base = None  # the pace no longer binds; the key sends freely again
            return
        if now < state.hold_until:
            return
        paced = state.rate(now)
        current = paced or sent
        if state.streak is None:
            state.streak = _Streak(current, paced is not None)
        streak = state.streak
        if (measured or share > BLIND_SHARE) and streak.pacing_does_not_help(share):
            # Cutting did not stop the throttling: it is not about our rate.
            state.base = streak.rate if streak.paced else None
            state.target = None
            state.hold_until = now + HOLD
            state.cut_at = state.hold_until  # no probing while holding
            state.streak = None
            return
        if measured:
            state.base = max(state.floor(now), accepted)
        elif share > BLIND_SHARE:
            # Sending k times what is accepted throttles about 1 - 1/k: cut by about that much.
            factor = min(BLIND_CUT_MAX, max(BLIND_CUT_MIN, 2.0 * (1.0 - share)))
            state.base = max(state.floor(now), current * factor)
        else:
            return
        streak.cut(share)
        state.target = None
        state.cut_at = now
        state.epoch += 1

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + IDLE
        idle = [k for k, s in self._keys.items() if s.base is None and now - s.last_seen > IDLE]
        for key in idle:
            del self._keys[key]

    def rates(self) -> dict[str, float]:
        """The current pace (requests/s) of every key that is paced."""
        now = self._clock()
        # A copy first (one step under the GIL): an exporter may call this from its own thread.
        keys = list(self._keys.items())
        return {key: rate for key, s in keys if (rate := s.rate(now)) is not None}

"""A send rate per key that adapts to throttling, because DynamoDB throttles per partition.

One counter lives on one partition, capped near 1,000 writes/s whatever the table's capacity.
Concurrency alone cannot respect that: one request in flight at a 5 ms round trip already sends
~200 writes/s. So each key that has been throttled gets a pacing rate:

- **Measure, then pace.** Responses are counted per key in short windows. When an unpaced key's
  window is throttled beyond `THROTTLE_SHARE`, it is paced at the rate the server *accepted*
  in that window, times ``1 + PROBE``: under capacity throttling that is the partition's rate,
  whatever was sent. A window too throttled, or too short, to measure cuts by the share that
  got through instead, so that a crowd of callers on a cold key is reined in within milliseconds
  (within the round trip that brought the first throttles, for a crowd wider than two windows).
  The first measured cut of a run after such a guess, at most `STEP_SHARE` throttled, goes only
  halfway to the accepted rate: a bucket of a token paced a few per cent over takes every other
  request, and reads as half its capacity.
  After a key's first pace, or such a guess, and until a request sent since is acknowledged,
  a paced window ends at its `EARLY_THROTTLES`-th throttle however short. The pace is then
  cut to twice one request in the silence so far (the time since the first request sent at the
  new pace, less a round trip: none in t seconds says under about 1/t a second), if that is
  below it; after a guess, by the guess too if that cuts deeper. A deep bucket that just ran
  out under a crowd acknowledges its burst in the first window and looks fast; the silence
  after it tells its rate.
- **A refusal counts when its ack would.** A bucket in front of the server (a proxy) refuses
  at once, and acks take the round trip. Counted as they come back, a window's refusals of
  its last round trip are in and its acks are not: the crowd's first windows read as more
  throttled, and slower, than they were, and were cut too deep. A throttle back in under
  `EARLY_REFUSAL` of the round trip is counted when an ack sent with it would be back: its
  sender waits the rest of the round trip first (its retry, too: one sent sooner than an ack
  could come back is what hammers such a bucket), on keys sending more than one request a
  round trip.
- **Step before cutting.** A paced key's window more than `OVER_SHARE` throttled means its pace
  no longer holds. The pace first steps `STEP` below the highest pace that held, up to `STEPS`
  times; only then does it cut to the accepted rate. No bucket shape is assumed. A deep bucket
  paced a few per cent above its rate stays drained and throttles that few per cent. A bucket
  of a token or two, overrun by 1 %, loses every other slot. That looks like a halved capacity,
  and the steps tell it from a real drop, which stays throttled after them.
- **Ease at the edge.** Near the pace that held, a window only a little throttled (at most
  `EDGE_SHARE`, or under `OVER_SHARE` while callers queue) eases the pace by `EDGE_CUT` per
  throttle. On a bucket of one token, with a few ms of jitter, a request that arrives even
  slightly early is throttled and its slot lost: the pace settles a few per cent under the
  token interval and stays there, instead of oscillating through cuts to the accepted rate.
- **Probe, slowly near the edge.** Above its base the pace grows as
  ``base * (1 + GROWTH * (t / K)**3)``. K is the time `PROBE_REQUESTS` take once two overruns
  came near the same pace (the edge is found: a shallow bucket's overrun costs lost slots). It
  is the time of `FAST_REQUESTS` while the edge is unknown, and again after a storm (a cut to
  under half the pace that held), below the pace that held before it. A deep bucket just spent
  is cut by less: the pace that held while it emptied is no rate to regain.
- **Notice when pacing does not help.** If after `STREAK_CUTS` measured cuts the share throttled
  stays where it was, the throttling does not come from our rate (random throttles, faults).
  So too when, after `STREAK_CUTS` cuts of any kind (blind ones included: a key throttled 90 %
  at random is never measured), the pace fell to `FELL` of the highest rate accepted in a paced
  window of the run and the share did not fall with it. The rate from before the run is
  restored and no cut follows for `HOLD` seconds, so that pacing cannot collapse a key; an
  unpaced key's retries keep their jittered backoff. A window that held does not end the run
  of cuts on its own, only `CALM_RESPONSES` held in a row: a slow pace's window holds a few
  responses, and one without a throttle is often luck (30 % at random, 3 in a row: a third of
  the time). Or `CALM_MIN` or more without one throttle, were that unlikely luck at the share
  of the last over window: a key paced under 20/s never has 20 in a window. A pace at its
  floor still throttled as much is not helped either: its windows are too short to measure,
  and its callers would queue there. Found again soon after a hold ended, the key is let loose
  (the pace put back did not stop it) for twice as long, up to `HOLD_MAX`. Whatever that
  misses, a cut never goes below an eighth of the best accepted rate seen lately (halved every
  10 s).
- **Notice it across runs too.** A few per cent of throttles at random end most runs after a
  window or two (a window that holds ends a run), and each window eases or steps the pace a
  little. So throttles are also counted at two levels of the pace that held lately: near it,
  and a quarter or more under it. When the lower is throttled at least half as much as the
  higher, the pace that held is put back, unless the last windows near it were throttled well
  beyond its share there (a partition that lost capacity, or a deep bucket that ran dry: its
  new edge is throttled a few per cent, as the old one was). For `HOLD` seconds no cut follows,
  no ease at the edge either, but the probe above it goes on: held flat, such a pace stayed far
  under what the callers asked for. If the windows since are overrun beyond chance, the probe
  went past a cap, or the capacity did fall: the pace put back becomes the one that held, and
  cuts follow as usual. A measured cut starts both counts again. A pace put back after a run
  of cuts that seemed not to help is on a trial too: a deep bucket run dry under a climbing
  pace is accepted at its burst's rate in the run's first window, and a pace cut under half of
  that still overruns it.
- **Retries first.** A paced key's first attempts leave in arrival order; a retry (or a request
  sent back by a cut) takes the next slot of the pace ahead of them, as it already waited its
  turn once. So a throttle costs a caller one slot of the pace, not a second wait behind the
  whole queue, and the tail latency stays at the queue's length (Little's law).
- A key whose pace is far above what it sends is released, and a released key idle for `IDLE`
  seconds, or not throttled for as long, is forgotten: memory follows the keys being
  throttled, not the operations.
- Before a key's first throttle, a crowd on it goes out through `slowstart` (a few writes at
  once, doubling each round trip while they are acknowledged).

Keys that were never throttled pay one dict lookup per request. The pool-wide ``max_in_flight``
still bounds everything; a key's pace is applied *before* taking a pool slot, so a throttled hot key
queues on its own and does not hold slots that cold keys need.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType

from .transport import Outcome

__all__ = ["KeyLimiter"]

#: A throttle back in under this share of the round trip is counted a round trip after its
#: request left, when an ack would be (see `KeyLimiter.refusal_wait`).
EARLY_REFUSAL = 0.5
#: A window ends after `WINDOW_RESPONSES` responses, `WINDOW_MIN` seconds and `MIN_ACKED`
#: acknowledgements (enough to measure the accepted rate), or at once when more than
#: `BLIND_SHARE` of it was throttled, or when `EARLY_THROTTLES` throttles make over
#: `EARLY_SHARE` of it (a shallow bucket overrun: one slot in two lost); and after
#: `WINDOW_MAX` seconds in any case.
WINDOW_MIN = 0.05
#: ... but an unpaced key's window (a crowd let loose on a cold key) may end this soon; and
#: sooner, at once, when it heard `CROWD_RESPONSES`, more than `BLIND_SHARE` of them throttled.
#: A crowd that wide is on the wire at once (a key's gate holds its own under it; the table's
#: does not, at the pool's bound): waiting out the 10 ms, two round trips of 5 ms, sends a second
#: round into the empty bucket. Its rate sent is then counted over a round trip at least.
FIRST_WINDOW_MIN = 0.01
CROWD_RESPONSES = 40
WINDOW_RESPONSES = 20
MIN_ACKED = 10
WINDOW_MAX = 1.0
EARLY_THROTTLES = 3
EARLY_SHARE = 0.2
#: A window of at least `SLOW_WINDOW` seconds (a slow key) measures the accepted rate from
#: this many acks.
MIN_ACKED_SLOW = 3
SLOW_WINDOW = 0.25
#: Share of throttled responses in a window above which an unpaced key gets a pace.
THROTTLE_SHARE = 0.02
#: Share above which a paced key's window is "over": its pace no longer holds. Below it the
#: pace held, throttles included: sending a few per cent above a deep bucket's rate keeps the
#: bucket drained (goodput = the cap) at a few per cent throttled.
OVER_SHARE = 0.06
#: The pace is the accepted rate times ``1 + PROBE`` after a real cut: a little more than the
#: partition took, so that the bucket stays drained and a rise is seen.
PROBE = 0.02
#: An over window after the pace held steps down to `STEP` below the highest pace that held,
#: up to `STEPS` times in a row; only the next one cuts to the accepted rate. A shallow bucket
#: (a token or two) overrun by 1 % loses about every other slot, which looks like a halved
#: capacity: the steps tell it from a real drop, which stays over after them.
STEP = 0.03
STEPS = 3
#: ... as long as at most this share was throttled: an overrun shallow bucket loses at most
#: about every other request; more is a drop to under half.
STEP_SHARE = 0.6
#: At the edge (`EDGE_SHARE` throttled at most, near the pace that held), each throttle eases
#: the pace by `EDGE_CUT` instead: a bucket of one token loses a slot to every request that
#: arrives even slightly early, so the pace must settle a little below the edge, found by
#: small steps, not by a cut to the accepted rate (which a 1 % overrun halves). In a window
#: that held, only within `EDGE_BAND` of the highest pace that held since the last cut, so
#: that rare random throttles cannot wear the pace down.
EDGE_SHARE = 0.25
EDGE_CUT = 0.01
EDGE_BAND = 0.1
#: At most this many eases in a run of over windows; the next over windows step, then cut.
EDGE_STEPS = 4
#: A cut to the accepted rate that keeps this share of the pace is a small one.
NEAR_CUT = 0.8
#: A pace that holds without a throttle below this share of the pace that held before the
#: last real drop (a storm passed) probes fast again.
REGAIN_BELOW = 0.8
#: ... where that pace is one that held before a cut to under this share of it (a storm).
STORM_DROP = 0.5
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
STREAK_SECONDS = 0.15
SHARE_KEPT = 0.5
#: A run of cuts ends when its pace held over this many responses in a row.
CALM_RESPONSES = 20
#: ... or, sooner, when its windows since the last over window held at least `CALM_MIN`
#: responses and not one throttle, which random throttles at the last over window's share would
#: allow at most `CALM_LUCK` of the time: a key paced under 20/s has windows (a second at most)
#: of fewer than `CALM_RESPONSES`, and a run that never ends steps once too often, then cuts on
#: every probe above the edge until it is judged random.
CALM_MIN = 10
CALM_LUCK = 0.02
#: ... or when, after `STREAK_CUTS` cuts of any kind, the pace is at most `FELL` of the highest
#: rate accepted in a paced window of the run, and still throttled at `SHARE_KEPT` of the run's
#: first share: under capacity throttling a pace that far under what was accepted holds.
FELL = 0.5
#: After pacing was judged not to help: no cut for this long; twice as long each time it is
#: judged so again within that long of the last hold's end, up to `HOLD_MAX`.
HOLD = 3.0
HOLD_MAX = 48.0
#: Throttles counted at two levels of the pace that held lately: windows paced at least
#: `HIGH_BAND` of it, and at most `FELL_QUIETLY` of it. Once each level has `EVIDENCE`
#: responses, the lower throttled at `SHARE_KEPT` of the higher's share or more, the throttles
#: do not come from our rate: the pace that held is restored. Counts are kept to the last
#: `EVIDENCE_MAX` responses of each level, and dropped at every measured cut (the partition
#: changed: what held before says nothing of it).
HIGH_BAND = 0.95
FELL_QUIETLY = 0.75
EVIDENCE = 40
EVIDENCE_MAX = 400
#: ... unless the last windows near the pace that held were throttled more than this many times
#: its share there: a partition whose capacity fell, or a deep bucket that ran dry. (Their share
#: is weighed by their responses: a window cut short at its third throttle says less.)
RECENT_KEPT = 2.0
#: During a restore's hold, the last `TRIAL_MAX` responses (at least a window's) throttled
#: beyond `UNDO_SHARE`, and beyond what random throttles at the share the restore was judged on
#: would give (`UNDO_KEPT` times it, or `UNDO_SIGMAS` standard deviations above it if that is
#: less), undo it: the pace put back is overrun (a pace restored a quarter or more above one
#: that holds throttles a quarter of its requests or more; a few per cent at random rarely
#: reach it over 100). A deep bucket that ran dry leaves a pace that held while it was spent,
#: twice or more its rate: the pace a quarter under it is overrun too (22 % throttled in one
#: run), and the one put back 64 %, short of three times that but far beyond chance at it.
UNDO_SHARE = 0.15
UNDO_KEPT = 3.0
UNDO_SIGMAS = 3.0
TRIAL_MAX = 100.0
#: Cubic probing above the pace set last: ``base * (1 + GROWTH * (t / K) ** 3)``. After a step
#: below a pace that held, K is the longer of `PROBE_SECONDS` and the time `PROBE_REQUESTS`
#: take at the base rate: slow, as an overrun of a shallow bucket costs a few lost slots and
#: throttles, which must stay a small share. After a cut to a measured or guessed rate, where
#: nothing above is known, K is `PROBE_SECONDS`.
GROWTH = 0.2
PROBE_SECONDS = 1.0
PROBE_REQUESTS = 300.0
FAST_REQUESTS = 20.0
#: A pace more than this many times the rate a key really sends is released.
RELEASE_FACTOR = 4.0
#: A released key not heard from, or not throttled, for this long is forgotten.
IDLE = 10.0
#: Never pace slower than this (requests/s), nor below `FLOOR_SHARE` of the best accepted rate
#: measured lately (halved every `BEST_HALF_LIFE` seconds), so that a real drop is followed.
MIN_RATE = 1.0
FLOOR_SHARE = 1 / 8
BEST_HALF_LIFE = 10.0
#: The highest pace that held decays with this half-life, so that an old one is not trusted.
#: Slowly: at 10 writes/s a window lasts a second, and a run of over windows must step from
#: about the pace that held, not from one a few per cent lower.
HELD_HALF_LIFE = 120.0
#: Requests may run this far ahead of the pace (seconds), so that pacing adds no delay at low load.
SLACK = 0.005
_EPSILON = 1e-6


class _Streak:
    """A run of over windows: the rate before it, and the cuts made."""

    __slots__ = (
        "all_cuts",
        "calm",
        "calm_throttled",
        "cuts",
        "edges",
        "first_share",
        "last_share",
        "opening_share",
        "paced",
        "rate",
        "started",
        "steps",
        "top",
    )

    def __init__(self, rate: float, paced: bool, now: float, share: float) -> None:
        self.started = now
        self.opening_share = share  # the share throttled in the run's first over window
        self.top = 0.0  # the highest rate accepted in a paced window of the run
        self.all_cuts = 0  # every cut of the run: blind, measured or a step
        self.steps = 0  # steps below the pace that held, before any cut to the accepted rate
        self.edges = 0  # of them, eases at the edge
        self.rate = rate  # the rate before the run's first cut
        self.paced = paced  # whether that rate was a pace (not a crowd let loose)
        self.cuts = 0
        self.first_share = 0.0
        self.calm = 0  # responses of the windows that held since its last over window
        self.calm_throttled = 0  # ... and their throttles
        self.last_share = share  # the share throttled in its last over window

    def cut(self, share: float) -> None:
        if self.cuts == 0:
            self.first_share = share
        self.cuts += 1

    def pacing_does_not_help(self, share: float, now: float) -> bool:
        """Cut again and again for a while, and still throttled about as much."""
        return (
            self.cuts >= STREAK_CUTS
            and now - self.started >= STREAK_SECONDS
            and share >= SHARE_KEPT * self.first_share
        )

    def pace_fell_alone(self, share: float, pace: float | None, now: float, floor: float) -> bool:
        """The pace fell well below what the partition accepted earlier in the run, and the
        share throttled did not fall with it. Capacity throttling ends once the pace is under
        the rate the partition accepts; random throttles (faults) do not care about the pace.
        This holds whatever the cuts were (blind ones included), so a key throttled at random
        cannot be paced down to the floor by blind cuts that the measured test never sees.
        So too at the floor, whatever was accepted: a slow pace's windows are too short to
        measure, and the callers queued behind it (a key throttled at random when few wrote
        to it) would wait there for as long as it takes them to leave one a second."""
        return (
            pace is not None
            and self.all_cuts >= STREAK_CUTS
            and now - self.started >= STREAK_SECONDS
            and (pace <= FELL * self.top or pace <= (1.0 + STEP) * floor)
            and share >= SHARE_KEPT * self.opening_share
        )


class _Key:
    """The pacing state of one throttled key."""

    __slots__ = (
        "acked",
        "base",
        "best",
        "best_at",
        "cut_at",
        "epoch",
        "guessed",
        "held",
        "held_at",
        "high_n",
        "high_recent_n",
        "high_recent_t",
        "high_t",
        "hold",
        "hold_until",
        "k",
        "last_seen",
        "last_sent",
        "last_throttled",
        "lock",
        "low_n",
        "low_t",
        "next_send",
        "ok_rate",
        "overrun",
        "pause_until",
        "peak",
        "prior",
        "responses",
        "responses_closed",
        "silent_guess",
        "silent_since",
        "streak",
        "throttled",
        "told",
        "told_rate",
        "trial",
        "trial_n",
        "trial_share",
        "trial_t",
        "waiting",
        "window_rate",
        "window_start",
    )

    def __init__(self, now: float) -> None:
        self.lock = asyncio.Lock()
        self.base: float | None = None  # None: not paced
        self.best = 0.0  # the highest accepted rate measured lately (decaying), and when
        self.best_at = now
        self.held = 0.0  # the highest pace that held lately (decaying), and when
        self.held_at = now
        # Responses and throttles of windows paced near the pace that held, and far under it.
        self.high_n = self.high_t = self.low_n = self.low_t = 0.0
        # ... and in the last windows at it: their responses and throttles, each window's halved
        # at the next (a share weighed by how much it heard: a window cut short by three
        # throttles holds a few responses, and says less than a full one).
        self.high_recent_n = self.high_recent_t = 0.0
        # After a restore, until a window at it closes: the pace to go back to if that window
        # is throttled well beyond the share the restore was judged on (0: no trial).
        self.trial = 0.0
        self.trial_share = 0.0
        self.trial_n = self.trial_t = 0.0  # responses and throttles since (the last `TRIAL_MAX`)
        self.epoch = 0  # counts cuts; a request carries the epoch it was admitted in
        self.guessed = False  # whether the pace was set by a guess (a blind cut)
        self.cut_at = now
        self.hold_until = -math.inf  # no hold yet (a clock may start at 0)
        # Until when a key just throttled for the first time sends nothing new, under a
        # limiter with ``pause``: the round on the wire is heard first.
        self.pause_until = -math.inf
        self.hold = HOLD  # the last hold's length after pacing was judged not to help
        self.streak: _Streak | None = None
        self.next_send = now
        self.last_sent = now  # when the last paced request left
        self.k = PROBE_SECONDS  # the probe's time constant, set at each cut
        self.window_start = now
        self.window_rate = 0.0  # the pace when the window started (the lowest in it)
        self.prior = 0.0  # the pace that held before the last storm (a cut to under half)
        self.overrun = 0.0  # the pace that held before the last overrun
        self.peak = 0.0  # the highest pace that held since the last cut
        self.ok_rate = 0.0  # the pace at the window's last ack before its first throttle
        self.responses = 0
        self.responses_closed = 0  # the responses of the window being closed
        self.acked = 0
        self.throttled = 0
        self.waiting = 0  # requests inside `acquire`, queued behind the pace
        self.last_seen = now
        self.last_throttled = now
        # Since when no request sent after a first pace or a guess was acknowledged: from the
        # first sent (inf: none sent yet; None: one was acknowledged, or the last cut was
        # measured on a paced key). The silence bounds the rate.
        self.silent_since: float | None = None
        self.silent_guess = False  # whether that began at a guess (not a measured first pace)
        # Whether the pace that held is the one the service told (`KeyLimiter.tell`), not yet
        # one that held: a cut far under it is the told rate's error, not a storm to regain.
        self.told = False
        self.told_rate = 0.0  # the rate told of the key, once in its state's life (0: none)

    def forget_levels(self) -> None:
        """Drop what was counted at the levels of the pace that held: it no longer holds."""
        self.high_n = self.high_t = self.low_n = self.low_t = 0.0
        self.high_recent_n = self.high_recent_t = 0.0

    def floor(self, now: float) -> float:
        """The slowest a cut may pace: a share of the best accepted rate seen lately. Whatever
        the detection of useless cuts misses, a key cannot be paced to a standstill."""
        decayed: float = self.best * 0.5 ** ((now - self.best_at) / BEST_HALF_LIFE)
        return max(MIN_RATE, FLOOR_SHARE * decayed)

    def held_now(self, now: float) -> float:
        decayed: float = self.held * 0.5 ** ((now - self.held_at) / HELD_HALF_LIFE)
        return decayed

    def prior_now(self, now: float) -> float:
        """The pace that held before the last real drop (decaying from that drop)."""
        decayed: float = self.prior * 0.5 ** ((now - self.held_at) / HELD_HALF_LIFE)
        return decayed

    def rate(self, now: float) -> float | None:
        base = self.base
        if base is None:
            return None
        t = max(0.0, now - self.cut_at) / self.k
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

    ``pause``: a key's first throttle stops its new requests for a round trip (the sender's
    ``rtt``), so that the round on the wire is heard before more go into a bucket that may
    have run dry. The sender's limiter of a table's capacity pauses: a throttle naming it
    says every key's writes meet the same empty bucket, and the crowd on the wire is as wide
    as the pool's bound. A key's limiter does not: its gate holds its crowd already, and
    pausing keys throttled at random cost them goodput (4-11 points of the unpaced pool's, in
    virtual time, 64 callers on one key, 5-10 % at random).

    ``rate_only``: every throttle is the rate's, so pacing is never judged not to help (no
    restore, no hold, no key let loose). A throttle naming a table's capacity is: it says the
    table's bucket is empty. Judged by its share alone, it looked random when several
    processes wrote one table: each one's cuts were undone by the others' rate, the share did
    not fall, and the pace from before the run (a crowd's) was put back, or the limit let
    loose. Four pools of 64 callers on a table of 50/s, in virtual time: 1.17-1.25 requests per
    ack over 25 s in 16 runs; judged by the share, 7 of those 16 stormed at 2.8-9.4. The
    sender's limiter of the table has it; a key's throttles may be faults, and its limiter
    does not.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        pause: bool = False,
        rate_only: bool = False,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._pause = pause
        self._rate_only = rate_only
        self._keys: dict[str, _Key] = {}
        #: The keys whose state is held, read-only: empty (false) while none was throttled
        #: lately, which a caller may test for nothing more than a length check.
        self.held: Mapping[str, object] = MappingProxyType(self._keys)
        self._next_sweep = clock() + IDLE
        self._rtt = 0.0  # the sender's round trip of acknowledged requests, at the last answer

    def unpaced_epoch(self, key: str) -> int | None:
        """The epoch to send ``key`` in at once if it is not paced; None: await `acquire`."""
        state = self._keys.get(key)
        if state is None:
            return 0
        if state.base is not None or self._pausing(state):
            return None
        return state.epoch

    def known(self, key: str) -> bool:
        """Whether ``key`` was throttled lately (the limiter holds its state)."""
        return key in self._keys

    def told(self, key: str) -> bool:
        """Whether ``key``'s capacity was told (`tell`) since it was last throttled afresh."""
        state = self._keys.get(key)
        return state is not None and state.told_rate > 0.0

    def paced(self, key: str) -> bool:
        """Whether ``key`` has a pace."""
        state = self._keys.get(key)
        return state is not None and state.base is not None

    async def acquire(self, key: str, *, again: bool = False) -> int:
        """Wait until ``key`` may send its next request; return the epoch it is admitted in.

        ``again``: a retry, or a request sent back by a cut. It waited its turn once, so it
        takes the next free slot of the pace ahead of the requests queued for their first.
        """
        state = self._keys.get(key)
        if state is None:
            return 0
        if self._pausing(state):
            await self._paused(state)
        if state.base is None:
            return state.epoch
        state.waiting += 1
        try:
            if again:
                return await self._next_slot(state)
            async with state.lock:  # FIFO: first requests of one key leave in arrival order
                return await self._next_slot(state)
        finally:
            state.waiting -= 1

    def _pausing(self, state: _Key) -> bool:
        """Whether ``state``'s key, not paced, is in the pause after its first throttle."""
        return self._pause and state.base is None and state.pause_until > self._clock()

    async def _paused(self, state: _Key) -> None:
        """Wait out the round trip after a first throttle (``pause``), or until a pace."""
        while state.base is None and (wait := state.pause_until - self._clock()) > _EPSILON:
            await self._sleep(wait)

    async def _next_slot(self, state: _Key) -> int:
        while True:
            now = self._clock()
            rate = state.rate(now)
            if rate is None:
                return state.epoch
            wait = state.next_send - now - SLACK
            if wait <= _EPSILON:  # not 0: a clock may not move for a sub-microsecond sleep
                state.next_send = max(state.next_send, now - SLACK) + 1.0 / rate
                state.last_sent = now
                if state.silent_since == math.inf:
                    state.silent_since = now  # the first request sent since a first pace
                return state.epoch
            await self._sleep(wait)

    def delay(self, key: str) -> float:
        """Seconds until a request to ``key`` asked for now could leave: 0 unless the key is
        paced (behind the pace's next slot and the requests already waiting for it) or pausing
        after its first throttle (the rest of the pause). Cheap."""
        state = self._keys.get(key)
        if state is None:
            return 0.0
        now = self._clock()
        if state.base is None:
            return max(0.0, state.pause_until - now)
        rate = state.rate(now)
        if rate is None:
            return 0.0
        return max(0.0, state.next_send - now - SLACK) + state.waiting / rate

    def stale(self, key: str, epoch: int) -> bool:
        """Whether ``key`` was cut since a request was admitted in ``epoch``, or is pausing
        after its first throttle: either way it goes round through `acquire` again."""
        state = self._keys.get(key)
        if state is None:
            return False
        return state.epoch != epoch or self._pausing(state)

    def refusal_wait(self, key: str, took: float, rtt: float) -> float:
        """How long a throttle of ``key`` that came back in ``took`` seconds waits before it is
        counted, at a round trip of ``rtt``: 0, or until an ack sent with it would be back.

        A bucket in front of the server refuses at once; an ack takes the round trip. Counted as
        they come back, a window's refusals of its last round trip are in and its acks are not:
        the window reads as more throttled, and slower, than it is. So a refusal back in under
        `EARLY_REFUSAL` of the round trip waits the rest of it, on a key sending more than one
        request a round trip (one that sends fewer has no acks on the way to wait for)."""
        if took >= EARLY_REFUSAL * rtt:
            return 0.0
        state = self._keys.get(key)
        if state is not None:
            rate = state.rate(self._clock())
            if rate is not None and rate * rtt < 1.0:
                return 0.0
        return rtt - took

    def observe(self, key: str, outcome: Outcome, epoch: int, rtt: float = 0.0) -> None:
        """Account one response of a write to ``key`` admitted in ``epoch``; ``rtt``: the
        round trip of acknowledged requests lately (seconds), as the sender measures it. (A
        throttle may come back sooner than an ack: a silence is only one once it is longer.)"""
        state = self._keys.get(key)
        if state is None:
            if outcome is not Outcome.THROTTLED:
                return
            now = self._clock()
            state = self._keys[key] = _Key(now)
            if self._pause:
                state.pause_until = now + rtt
            self._sweep(now)
        else:
            now = self._clock()
        if (
            state.base is None
            and outcome is not Outcome.THROTTLED
            and now - state.last_throttled > IDLE
            and now >= state.hold_until
        ):
            # Released, and not throttled for a while though still written: forgotten, so
            # that its writes cost a dict lookup again (and a crowd on it starts slowly).
            del self._keys[key]
            return
        state.last_seen = now
        self._rtt = rtt
        if epoch != state.epoch:
            return  # sent at a rate that is no longer ours: it says nothing of the current one
        state.responses += 1
        if outcome is Outcome.THROTTLED:
            state.throttled += 1
            state.last_throttled = now
        elif outcome is Outcome.ACKNOWLEDGED or outcome is Outcome.CONDITION_FAILED:
            state.acked += 1  # a refused condition was served too: it used the partition
            state.silent_since = None
            if state.throttled == 0 and state.base is not None:
                state.ok_rate = state.rate(now) or 0.0  # the pace held up to here
        elapsed = now - state.window_start
        if (
            elapsed >= WINDOW_MAX
            or (
                elapsed >= (WINDOW_MIN if state.base is not None else FIRST_WINDOW_MIN)
                and state.responses >= WINDOW_RESPONSES
                and (state.acked >= MIN_ACKED or state.throttled > BLIND_SHARE * state.responses)
            )
            or (
                state.base is None
                and elapsed > 0
                and state.responses >= CROWD_RESPONSES
                and state.throttled > BLIND_SHARE * state.responses
            )
            or (
                # Overrun early; or three throttles while nothing sent since a first pace or a
                # guess was acknowledged, for longer than an ack takes (elapsed > 0: a window
                # needs time to measure, and a coarse clock may not have moved).
                state.base is not None
                and state.throttled >= EARLY_THROTTLES
                and (
                    (elapsed >= WINDOW_MIN and state.throttled > EARLY_SHARE * state.responses)
                    or (
                        elapsed > 0
                        and state.silent_since is not None
                        and now - state.silent_since > self._rtt
                    )
                )
            )
        ):
            self._close_window(state, now, elapsed)

    def _close_window(self, state: _Key, now: float, elapsed: float) -> None:
        self._judge(state, now, elapsed)
        state.window_rate = state.rate(now) or 0.0  # the next window's pace, as it starts
        state.ok_rate = 0.0

    def _judge(self, state: _Key, now: float, elapsed: float) -> None:
        throttled = state.throttled
        share = throttled / state.responses
        state.responses_closed = state.responses
        accepted = state.acked / elapsed
        # A crowd's first window may be shorter than the round trip its writes took.
        sent = state.responses / (elapsed if state.base is not None else max(elapsed, self._rtt))
        measured = state.acked >= MIN_ACKED or (
            state.acked >= MIN_ACKED_SLOW and elapsed >= SLOW_WINDOW
        )
        state.window_start, state.responses, state.acked, state.throttled = now, 0, 0, 0
        window_rate = state.window_rate
        paced = state.rate(now)
        if paced is not None and state.trial:
            back = state.trial
            state.trial_n += state.responses_closed
            state.trial_t += throttled
            if state.trial_n > TRIAL_MAX:
                scale = TRIAL_MAX / state.trial_n
                state.trial_n, state.trial_t = TRIAL_MAX, state.trial_t * scale
            if now >= state.hold_until:
                state.trial = 0.0  # the restore held through its hold
            elif state.trial_n >= WINDOW_RESPONSES and state.trial_t > state.trial_n * max(
                UNDO_SHARE, self._beyond_chance(state.trial_share, state.trial_n)
            ):
                # The pace put back is overrun: the capacity did fall (gradually, a few per cent
                # at a time, as random throttles look, or since the restore), or the probe
                # above it went past a cap. Back to `back` (where a run of cuts came from, or
                # the pace put back itself, without the probe), which is now the pace that
                # holds, and cuts as usual from there; no more restores until one holds higher.
                state.trial = 0.0
                state.base, state.cut_at, state.hold_until = back, now, -math.inf
                state.held, state.held_at, state.told = back, now, False
                state.forget_levels()
                state.next_send = max(state.next_send, state.last_sent + 1.0 / back)
                state.epoch += 1
                return
        if (
            paced is not None
            and not self._rate_only
            and self._pace_does_not_matter(state, now, window_rate, paced, throttled)
        ):
            return
        if measured and paced is not None:  # paced: not a crowd emptying a full bucket
            decay = 0.5 ** ((now - state.best_at) / BEST_HALF_LIFE)
            if accepted >= state.best * decay:
                state.best, state.best_at = accepted, now

        if share <= (THROTTLE_SHARE if paced is None else OVER_SHARE):
            streak = state.streak
            if streak is not None:
                # A run of cuts ends once its pace held over `CALM_RESPONSES` (a window of a
                # slow pace holds a few responses: one without a throttle may be luck), or
                # over `CALM_MIN` without a throttle, were that unlikely luck.
                streak.calm += state.responses_closed
                streak.calm_throttled += throttled
                if (
                    paced is None
                    or streak.calm >= CALM_RESPONSES
                    or (
                        not streak.calm_throttled
                        and streak.calm >= CALM_MIN
                        and (1.0 - streak.last_share) ** streak.calm <= CALM_LUCK
                    )
                ):
                    state.streak = None
            if paced is None:
                return
            # The pace held: remember it if it bound (callers queued behind it), else the
            # rate really sent (not a pace far above what the callers asked for).
            ok = max(window_rate, state.ok_rate)  # the pace at the window's last ack
            held = ok if state.waiting else min(ok, sent)
            if held >= state.held_now(now):
                state.held, state.held_at, state.told = held, now, False
            if window_rate >= HIGH_BAND * state.held_now(now):  # the window that set it, too
                self._count_high(state, state.responses_closed, throttled)
            if (
                throttled
                and state.waiting
                and paced >= (1.0 - EDGE_BAND) * state.peak
                and now >= state.hold_until
            ):
                # Held, but at the edge: each throttle eases the pace a little (a bucket of a
                # token loses a slot to each). Within a band of the highest pace that held
                # since the last real cut, so that random throttles cannot wear it down; and
                # not while a pace put back holds (pacing was judged not to help: an ease is a
                # cut too, and a few per cent at random took such a pace back down in 0.4 s).
                base = max(state.floor(now), paced * (1.0 - EDGE_CUT) ** throttled)
                state.base, state.cut_at = base, now
                state.k = max(PROBE_SECONDS, PROBE_REQUESTS / base)
                state.next_send = max(state.next_send, state.last_sent + 1.0 / base)
                return
            state.peak = max(state.peak, paced)
            fast = max(PROBE_SECONDS, FAST_REQUESTS / paced)
            bound = state.waiting or sent >= REGAIN_BELOW * window_rate  # the pace holds back
            far = paced < REGAIN_BELOW * state.prior_now(now)
            if share == 0 and bound and far and state.k > fast:
                # Far below a pace that held before a drop (a storm passed): regain fast.
                state.base, state.cut_at, state.k = paced, now, fast
            if share == 0 and paced > RELEASE_FACTOR * max(sent, MIN_RATE):
                state.base = None  # the pace no longer binds; the key sends freely again
            return
        if now < state.hold_until:
            return
        current = paced or sent
        if state.streak is None:
            state.streak = _Streak(current, paced is not None, now, share)
        streak = state.streak
        if paced is not None and accepted > streak.top:
            streak.top = accepted  # paced: not a crowd emptying a full bucket
        streak.calm = streak.calm_throttled = 0
        streak.last_share = share
        if not self._rate_only and (
            ((measured or share > BLIND_SHARE) and streak.pacing_does_not_help(share, now))
            or streak.pace_fell_alone(share, paced, now, state.floor(now))
        ):
            # Cutting did not stop the throttling: it is not about our rate. The pace from
            # before the run is put back; found again soon after the last hold (that pace did
            # not stop it either), the key is let loose, for twice as long (up to `HOLD_MAX`).
            again = now - state.hold_until < state.hold
            state.hold = min(HOLD_MAX, 2.0 * state.hold) if again else HOLD
            state.base = streak.rate if streak.paced and not again else None
            state.hold_until = now + state.hold
            state.cut_at = state.hold_until  # no probing while holding
            state.streak = None
            if state.base is not None and paced is not None:
                # On trial, as a restore is: a deep bucket that ran dry under a crowd was
                # accepted at its burst's rate early in the run, and the pace from before the
                # run overruns its rate by far.
                self._on_trial(state, paced, max(share, streak.opening_share))
            return
        stepped = False
        held = state.held_now(now)
        if held > 0:  # refined by how far this window's pace held before its first throttle
            held = max(held, min(state.ok_rate, held * (1.0 + 2.0 * STEP)))
        if paced is not None and streak.steps < STEPS and held > 0 and share <= STEP_SHARE:
            # An overrun since the pace held: step just below the highest pace that held (a
            # shallow bucket overrun looks like a halved capacity; a real drop stays over
            # after a few steps, and the next window cuts to the accepted rate).
            edge = (
                share <= EDGE_SHARE
                and paced <= held * (1.0 + 2.0 * STEP)
                and streak.edges < EDGE_STEPS
            )
            if edge:
                base = paced * (1.0 - EDGE_CUT) ** throttled
                near = True
                streak.edges += 1  # an ease, not a step: the steps after it are still due
            else:
                base = min(paced, held) * (1.0 - STEP)
                # Slowly above it once two overruns in a row came near the same pace: the edge
                # is found. Until then, fast (a first overrun may be far above the edge).
                near = abs(held - state.overrun) <= 2.0 * STEP * held
                streak.steps += 1
            state.overrun = held
            stepped = True
            state.k = max(PROBE_SECONDS, (PROBE_REQUESTS if near else FAST_REQUESTS) / base)
        elif measured:
            base = accepted * (1.0 + PROBE)
            if state.guessed and not streak.cuts and share <= STEP_SHARE and paced is not None:
                # The first measure of a guessed pace: the capacity lies between what was
                # accepted and the pace. A bucket of a token paced a few per cent over takes
                # every other request, and reads as half of it: halfway, not down to that.
                base = max(base, 0.5 * (base + paced))
            prior, before = state.prior_now(now), state.held_now(now)  # not the refined `held`
            if base < STORM_DROP * before and not state.told:
                # A storm: regain fast towards what held before it, once it passes. A smaller
                # cut is no storm: a deep bucket just spent leaves a pace that held, a third
                # above its rate, and regaining fast towards it overran the rate every few s.
                prior = max(prior, before)
            state.prior, state.held, state.held_at = prior, 0.0, now  # it no longer holds
            state.told = False
            state.forget_levels()
            # A cut by a little (a deep bucket drained) probes slowly; a deep one fast, as the
            # accepted rate of an overrun shallow bucket may be half its capacity.
            near = base >= NEAR_CUT * current
            state.k = max(PROBE_SECONDS, (PROBE_REQUESTS if near else FAST_REQUESTS) / base)
        else:
            # Too few answers to measure. Sending k times what is accepted throttles about
            # 1 - 1/k: cut by about that much, deeper only on a full window.
            factor = min(BLIND_CUT_MAX, max(BLIND_CUT_MIN, 2.0 * (1.0 - share)))
            if share <= BLIND_SHARE or state.responses_closed < WINDOW_RESPONSES:
                factor = max(BLIND_CUT_MAX, 1.0 - share)
            base = current * factor
            silent = state.silent_since
            if silent is not None:
                # Nothing sent since the key's first pace (or a guess) got through: no faster
                # than twice one request in that time (none in t seconds says under about 1/t
                # a second). A bucket that just ran out under a crowd acknowledges its burst in
                # the first windows and looks fast; the silence after it tells its rate. After
                # a first pace that was measured, only the silence cuts: its measure may hold.
                # The requests sent in the last round trip could not have been acknowledged yet.
                heard = 2.0 / max(now - silent - self._rtt, _EPSILON)
                base = min(heard, base if state.silent_guess else current)
                if base >= current:
                    return  # not long enough a silence to say more than the pace does
            state.k = max(PROBE_SECONDS, FAST_REQUESTS / base)
        if paced is None or not (measured or stepped):
            # A first pace (its window held a crowd spending a full bucket) or a guess: until
            # an ack, the silence is the measure.
            if state.silent_since is None:
                state.silent_since, state.silent_guess = math.inf, not measured
        else:
            state.silent_since = None
        base = max(state.floor(now), base)
        state.base = state.peak = base
        state.guessed = not (measured or stepped)
        # The next request leaves a whole interval of the new pace after the last one: one sent
        # sooner would overrun a shallow bucket at once.
        state.next_send = max(state.next_send, state.last_sent + 1.0 / base)
        if measured and not stepped:  # blind cuts (guesses) and steps (small) do not count
            streak.cut(share)
        streak.all_cuts += 1
        state.cut_at = now
        state.epoch += 1

    def _pace_does_not_matter(
        self, state: _Key, now: float, low: float, high: float, throttled: int
    ) -> bool:
        """Count a window paced from ``low`` to ``high`` at its level of the pace that held lately;
        when a pace that fell a quarter under it is throttled about as much as the pace that held
        was, the throttles do not come from our rate (faults, random throttles): restore that
        pace, and make no cut for `HOLD` seconds, while the probe above it goes on. (Each window
        with a throttle or two eased or cut the pace a little, and a window that held ended the
        run of cuts that could tell.)

        Not when the last windows at the pace that held were throttled well beyond its share
        there: that is a partition that lost capacity, or a deep bucket that ran dry, and the
        pace under it is its new edge (a few per cent throttled, as the old edge was)."""
        held = state.held_now(now)
        if held <= 0:
            return False
        responses = state.responses_closed
        if low >= HIGH_BAND * held:
            if throttled > OVER_SHARE * responses:  # a window that held counts once held is set
                self._count_high(state, responses, throttled)
            return False
        if high > FELL_QUIETLY * held:
            return False
        state.low_n += responses
        state.low_t += throttled
        if state.low_n > EVIDENCE_MAX:
            scale = EVIDENCE_MAX / state.low_n
            state.low_n, state.low_t = EVIDENCE_MAX, state.low_t * scale
        high_n, high_t = state.high_n, state.high_t
        if (
            now < state.hold_until
            or state.low_n < EVIDENCE
            or high_n < EVIDENCE
            or high_t == 0
            or state.low_t * high_n < SHARE_KEPT * high_t * state.low_n
            or state.high_recent_t * high_n > RECENT_KEPT * high_t * state.high_recent_n
        ):
            return False
        # On trial, going back to the pace put back: the probe above it goes on through the hold
        # (a hold stops cuts, not growth: a pace held flat under random throttles stayed far
        # under what the callers asked for), and what the trial may find overrun is that probe,
        # or a capacity that fell, which the cuts after it follow down.
        self._on_trial(state, held, state.low_t / state.low_n)
        state.base, state.streak = held, None
        state.hold_until = now + HOLD
        state.cut_at = now
        state.low_n = state.low_t = 0.0
        return True

    @staticmethod
    def _on_trial(state: _Key, back: float, share: float) -> None:
        """A pace is put back, judged by throttles at ``share`` not to come from our rate: until
        its hold ends, go ``back`` to this pace if it is throttled well beyond that."""
        state.trial, state.trial_share = back, share
        state.trial_n = state.trial_t = 0.0

    @staticmethod
    def _beyond_chance(share: float, responses: float) -> float:
        """A share throttled that random throttles at ``share`` would seldom reach over
        ``responses``."""
        spread = UNDO_SIGMAS * math.sqrt(share * (1.0 - share) / responses)
        return min(UNDO_KEPT * share, share + spread)

    @staticmethod
    def _count_high(state: _Key, responses: int, throttled: int) -> None:
        """Count a window paced near the pace that held (held there, or overrun)."""
        state.high_recent_n = 0.5 * state.high_recent_n + responses
        state.high_recent_t = 0.5 * state.high_recent_t + throttled
        state.high_n += responses
        state.high_t += throttled
        if state.high_n > EVIDENCE_MAX:
            scale = EVIDENCE_MAX / state.high_n
            state.high_n, state.high_t = EVIDENCE_MAX, state.high_t * scale

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + IDLE
        idle = [k for k, s in self._keys.items() if s.base is None and now - s.last_seen > IDLE]
        for key in idle:
            del self._keys[key]

    def tell(self, key: str, rate: float) -> None:
        """The service's own word on what ``key`` takes (requests/s): a provisioned table's
        capacity, read from its description when its throttles name it.

        A key throttled but not paced by a measure yet (not paced, or its pace a guess, or a
        first pace no ack has confirmed: a crowd that spent a deep bucket looks fast) is paced
        at it instead, as a pace that held: an overrun steps below it, then cuts to what was
        accepted, as after any pace that held (the table may be shared with other writers, or
        its capacity may have changed since). A cut to under half of it is no storm to regain
        fast from, as a cut from a pace that held would be: told the whole table's capacity,
        each of several processes writing it has a share of it. A measured pace is not told
        (what the table was seen to take says more; a blind cut since makes it a guess again),
        and once told, the key's state is told nothing more until it is forgotten: a capacity
        read again must not hold down a pace that found more, nor put a process's share, cut
        blind after another process joined, back to the whole table. A key not throttled
        lately is not paced."""
        state = self._keys.get(key)
        if state is None or not rate > 0.0 or state.told_rate:
            return
        if state.base is not None and not state.guessed and state.silent_since is None:
            return
        now = self._clock()
        state.told_rate = rate
        state.base = state.peak = rate
        state.held, state.held_at, state.overrun, state.told = rate, now, rate, True
        state.prior = 0.0
        state.forget_levels()
        state.k = max(PROBE_SECONDS, PROBE_REQUESTS / rate)
        state.guessed = False
        state.silent_since = None
        state.streak = None
        state.hold_until = -math.inf
        state.trial = 0.0
        state.cut_at = state.window_start = now
        state.window_rate = rate
        state.responses = state.acked = state.throttled = 0
        state.ok_rate = 0.0
        # The next request a whole interval of the told pace after the last one.
        state.next_send = state.last_sent + 1.0 / rate
        state.epoch += 1

    def rates(self) -> dict[str, float]:
        """The current pace (requests/s) of every key that is paced."""
        now = self._clock()
        # A copy first (one step under the GIL): an exporter may call this from its own thread.
        keys = list(self._keys.items())
        return {key: rate for key, s in keys if (rate := s.rate(now)) is not None}

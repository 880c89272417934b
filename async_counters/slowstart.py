"""A crowd on a key the pacer knows nothing of goes out a few writes at a time, then faster.

Before a key's first throttle nothing paces it, so a thousand callers arriving together on one
counter all send at once. A partition holding a token or two then throttles all but one or two of
them, before any answer can tell the pool to slow down: one wasted request per caller.

So a key with more than `START` writes inside the sender at once, and unknown to the pacer,
passes a gate whose size starts at `START` and grows by one for every write of the key that is
acknowledged (doubling each round trip, as TCP's slow start does). A partition that takes them
all lets the crowd through within a few round trips (eight from 8 to 1,024); one that throttles
acknowledges only what it can take, so the gate grows no faster than the partition's rate, and
the key's pace, once it has one, takes over from the gate. (A throttle does not freeze the gate:
a key throttled a little, never paced, would then stay at a few writes at once for as long as
its crowd lasts, under the partition's rate on a slow network.) A gate is kept
only while its key has writes inside the sender: memory follows the keys being written.

The gate stops growing at what carries `KEY_RATE` writes a second at the pool's least round trip
lately, or `PARTITION_RATE` at its smoothed round trip, whichever is wider (at least `START`).
`KEY_RATE` is four times what one partition serves, and all that a warm on-demand table takes;
`PARTITION_RATE` is one partition's 1,000 WCU/s, more than any one item can take: so no write
that DynamoDB could take is held back. A partition with a deep bucket (DynamoDB keeps up to 300 s
of unused capacity) takes a crowd at any rate until the bucket runs out, and then throttles every
write on the wire at once: without a ceiling, a thousand callers lose a thousand requests in that
instant, and their retries queue behind the partition's rate for longer than a retry deadline.

The least round trip, not the smoothed one, for the wide term: a crowd on the wire makes its own
queue, in the client, the network and the server, and the smoothed round trip grows with it. A
ceiling of 4,000/s at that grew with the crowd it let through (to 180 writes at once at a 45 ms
round trip, where the server added 5 ms), and every one of them was throttled when the bucket
ran out. The least is kept over `LEAST_SECONDS`, so a path that got slower for good is followed
within that.

Keys with at most `START` writes at once never meet a gate, and pay one comparison per write.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from .slots import Slots

__all__ = ["KEY_RATE", "LEAST_SECONDS", "PARTITION_RATE", "START", "LeastRoundTrip", "SlowStart"]

#: Writes of one key that may be sent at once before its partition has acknowledged any.
START: Final = 8
#: A gate this wide is no longer a limit: it opens for good (until its key goes idle).
WIDE: Final = 4_096
#: Writes per second one key's gate carries at most, at the pool's least round trip: 4 x the
#: 1,000 WCU/s of one partition, the whole of a warm on-demand table's 4,000 WRU/s.
KEY_RATE: Final = 4_000.0
#: Writes per second one key's gate carries at least, at the pool's smoothed round trip: the
#: 1,000 WCU/s of one partition, all that one item can take however long the round trip.
PARTITION_RATE: Final = 1_000.0
#: The least round trip is the least of the samples of the last one or two spans this long.
LEAST_SECONDS: Final = 10.0


class LeastRoundTrip:
    """The least round trip of answered requests lately: over the current span of
    `LEAST_SECONDS` and the one before it (0 before the first answer)."""

    __slots__ = ("_before", "_since", "_span")

    def __init__(self) -> None:
        self._span = math.inf  # the least of this span
        self._before = math.inf  # the least of the span before
        self._since = -math.inf  # when this span began

    def add(self, took: float, now: float) -> None:
        if now - self._since >= LEAST_SECONDS:
            self._before, self._span, self._since = self._span, took, now
        elif took < self._span:
            self._span = took

    def __call__(self) -> float:
        least = min(self._span, self._before)  # read only while a gate grows: not per answer
        return 0.0 if least == math.inf else least


class _Gate:
    __slots__ = ("open", "size", "slots")

    def __init__(self, past: int) -> None:
        self.size = START
        self.slots = Slots(START - past)  # the writes already inside went through no gate
        self.open = False

    def open_all(self) -> None:
        self.open = True
        slots = self.slots
        while slots.waiters:
            slots.release()
        slots.free = WIDE


class SlowStart:
    """The gates of the keys being written by a crowd (see the module docstring).

    ``known(key)``: whether the pacer holds state for ``key`` (it was throttled lately),
    ``paced(key)``: whether the key has a pace, which then replaces the gate, and ``least()``
    and ``rtt()``: the pool's least round trip lately (`LeastRoundTrip`) and its smoothed one
    (seconds), which set how wide a gate may grow.
    """

    __slots__ = ("_known", "_least", "_paced", "_rtt", "gates")

    def __init__(
        self,
        *,
        known: Callable[[str], bool],
        paced: Callable[[str], bool],
        least: Callable[[], float],
        rtt: Callable[[], float],
    ) -> None:
        self.gates: dict[str, _Gate] = {}  # the sender calls `leave` only while this is not empty
        self._known = known
        self._paced = paced
        self._least = least
        self._rtt = rtt

    def ceiling(self) -> int:
        """How wide a gate may grow: `KEY_RATE` writes a second at the least round trip, or
        `PARTITION_RATE` at the smoothed one."""
        wide = max(KEY_RATE * self._least(), PARTITION_RATE * self._rtt())
        return max(START, math.ceil(wide))

    async def enter(self, key: str, writes: int) -> None:
        """Pass the gate of ``key``, whose ``writes`` inside the sender include this one."""
        gate = self.gates.get(key)
        if gate is None:
            if writes <= START or self._known(key):
                return  # not a crowd, or one the pacer already knows of
            gate = self.gates[key] = _Gate(writes - 1)
        if gate.open:
            return
        if self._paced(key):
            gate.open_all()
            return
        if not gate.slots.try_take():
            await gate.slots.take()

    def leave(self, key: str, *, passed: bool, acknowledged: bool, writes_left: int) -> None:
        """A write of ``key`` left the sender; ``writes_left`` are still inside. ``passed``: it
        got through `enter` (not cancelled while waiting at the gate)."""
        gate = self.gates.get(key)
        if gate is None:
            return
        if not writes_left:
            del self.gates[key]  # idle: the next crowd starts again from `START`
            return
        if gate.open or not passed:
            return
        if self._paced(key):
            gate.open_all()
            return
        gate.slots.release()
        if acknowledged and gate.size < self.ceiling():  # the partition took it: one more
            gate.size += 1
            if gate.size >= WIDE:
                gate.open_all()
            else:
                gate.slots.release()

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

**The table's gate.** A crowd spread over many keys, with at most `START` writes on each, meets no
key's gate: 256 callers over 32 keys send 256 writes at once, and a provisioned table of 10 WCU/s
holding a second of it throttles all but 10, whose retries come back before the table's pace can
take over (1.4-1.8 requests per increment over 30 s in virtual time). So the writes that met no
gate of their key pass one gate for the whole table, kept by the sender with ``top`` set: it
starts at `TABLE_START` writes at once and grows by one for each acknowledged, as a key's does,
up to `WIDE`. A write holds its place through its retries, so a round throttled at once does not
come back before the table's pace has a measure. It opens for good once the table's pace takes
over, or at the first throttle naming a key's partition (that limit is paced per key, and a
gate across all keys would hold the others back with it); and once it grew to ``top``, the
pool's bound, none stands again in that pool. A crowd over at most four keys is held by their
gates alone (4 x `START` is `TABLE_START`), as before; on an on-demand table the cost is the
first crowd of a pool's life: 32 writes at once, then 64 (the default bound) a round trip later.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from .slots import Slots

__all__ = [
    "KEY_RATE",
    "LEAST_SECONDS",
    "PARTITION_RATE",
    "START",
    "TABLE_START",
    "LeastRoundTrip",
    "SlowStart",
]

#: Writes of one key that may be sent at once before its partition has acknowledged any.
START: Final = 8
#: Writes of all keys, each under its own gate's `START`, that may be sent at once before the
#: table has acknowledged any: four keys' first gates.
TABLE_START: Final = 4 * START
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

    def __init__(self, start: int, past: int) -> None:
        self.size = start
        self.slots = Slots(start - past)  # the writes already inside went through no gate
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

    __slots__ = ("_known", "_least", "_paced", "_rtt", "gates", "spent", "start", "top")

    def __init__(
        self,
        *,
        known: Callable[[str], bool],
        paced: Callable[[str], bool],
        least: Callable[[], float],
        rtt: Callable[[], float],
        start: int = START,
        top: int | None = None,
    ) -> None:
        self.gates: dict[str, _Gate] = {}  # the sender calls `leave` only while this is not empty
        self.start = start  # more writes than this at once meet a gate, of this size at first
        # A gate with a ``top`` grows to `WIDE`, and once it grew to ``top`` none stands after
        # it: the table's gate, whose capacity is not one partition's (None: a key's gate).
        self.top = top
        self.spent = False  # no gate stands again
        self._known = known
        self._paced = paced
        self._least = least
        self._rtt = rtt

    def ceiling(self) -> int:
        """How wide a gate may grow: `KEY_RATE` writes a second at the least round trip, or
        `PARTITION_RATE` at the smoothed one (`WIDE` with a ``top``)."""
        if self.top is not None:
            return WIDE
        wide = max(KEY_RATE * self._least(), PARTITION_RATE * self._rtt())
        return max(self.start, math.ceil(wide))

    async def enter(self, key: str, writes: int) -> bool:
        """Pass the gate of ``key``, whose ``writes`` inside the sender include this one.
        Returns whether a gate of ``key`` stands (open or not)."""
        gate = self.gates.get(key)
        if gate is None:
            if writes <= self.start or self.spent or self._known(key):
                return False  # not a crowd, one the pacer already knows of, or no more gates
            gate = self.gates[key] = _Gate(self.start, writes - 1)
        if gate.open:
            return True
        if self._paced(key):
            gate.open_all()
            return True
        if not gate.slots.try_take():
            await gate.slots.take()
        return True

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
            if gate.size == self.top:
                self.spent = True
            if gate.size >= WIDE:
                gate.open_all()
            else:
                gate.slots.release()

    def end(self, key: str) -> None:
        """Open the gate of ``key`` for good, if one stands, and let none stand again."""
        self.spent = True
        gate = self.gates.get(key)
        if gate is not None:
            gate.open_all()

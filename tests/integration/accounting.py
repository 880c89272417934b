"""What callers were told, set against what the server applied (the embedded server's ledger).

Helpers for load tests that judge a pool by the ledger: `Tally` records every outcome callers
saw, per counter; `ledger_by_counter` sums the ledger per counter whatever items a sharded
counter is spread over; `serial_order_problems` checks that acknowledged values fit one serial
order. Checks return a list of problems (empty when all hold) so that a test can report every
broken invariant of a run at once, not only the first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from async_counters import AmbiguousWriteError, CounterError, CounterFloorError
from async_counters.local import LedgerEntry


@dataclass
class KeyTally:
    """One counter's outcomes as its callers saw them (amounts signed: decrements negative)."""

    acknowledged: int = 0
    ambiguous_up: int = 0
    ambiguous_down: int = 0
    ambiguous_calls: int = 0
    refused: int = 0
    #: (value returned, delta) of every acknowledged write: the test keeps a record per call.
    values: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Tally:
    """Every outcome the callers of one pool saw."""

    keys: dict[str, KeyTally] = field(default_factory=dict)
    cancelled: int = 0
    unexpected: list[str] = field(default_factory=list)

    def key(self, name: str) -> KeyTally:
        return self.keys.setdefault(name, KeyTally())

    async def call(self, key: str, delta: int, write: Callable[[], Awaitable[int]]) -> None:
        """Make one increment or decrement of ``delta`` and record how it ended.

        ``write`` is called here, not by the caller's caller: a task cancelled before its first
        step then leaves no coroutine that was never awaited.
        """
        tally = self.key(key)
        try:
            value = await write()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        except AmbiguousWriteError:
            tally.ambiguous_calls += 1
            if delta > 0:
                tally.ambiguous_up += delta
            else:
                tally.ambiguous_down += delta
        except CounterFloorError:
            tally.refused += 1
        except CounterError as error:  # throttled or unreachable past the deadline, or a bug
            self.unexpected.append(f"{key} {delta:+}: {error!r}")
        else:
            tally.acknowledged += delta
            tally.values.append((value, delta))

    @property
    def answered(self) -> int:
        """Callers that got an outcome (any but cancellation)."""
        return len(self.unexpected) + sum(
            len(t.values) + t.ambiguous_calls + t.refused for t in self.keys.values()
        )

    @property
    def acknowledged(self) -> int:
        return sum(t.acknowledged for t in self.keys.values())

    @property
    def ambiguous(self) -> int:
        return sum(t.ambiguous_up + t.ambiguous_down for t in self.keys.values())

    @property
    def ambiguous_calls(self) -> int:
        return sum(t.ambiguous_calls for t in self.keys.values())


def ledger_by_counter(
    ledger: Mapping[str, LedgerEntry], *, plain: Iterable[str], sharded: Iterable[str]
) -> tuple[dict[str, int], list[str]]:
    """The applied sum per counter, and a problem for every item that no single counter owns.

    An unsharded counter is its own item. A sharded one owns every other item whose name holds
    its key: this does not assume how shard items are named, only that the name shows the key
    (pick keys none of which holds another sharded one).
    """
    plain, sharded = list(plain), list(sharded)
    sums = dict.fromkeys([*plain, *sharded], 0)
    problems: list[str] = []
    for item, entry in ledger.items():
        assert isinstance(entry.sum, int), (item, entry)
        if item in plain:
            sums[item] += entry.sum
            continue
        owners = [key for key in sharded if key in item]
        if len(owners) == 1:
            sums[owners[0]] += entry.sum
        else:
            problems.append(f"ledger item {item!r} belongs to {owners or 'no counter'}")
    return sums, problems


def serial_order_problems(
    key: str, values: Iterable[tuple[int, int]], *, start: int, end: int
) -> list[str]:
    """Whether acknowledged (value, delta) pairs of one counter fit one serial order of writes.

    All deltas share a sign (increments only, or decrements only) over a counter that went from
    ``start`` to ``end``. An increment of ``a`` that returned ``v`` owns the units ``(v-a, v]``,
    a decrement owns ``(v, v+a]``: in one serial order no two writes own the same unit, and every
    unit lies between ``start`` and ``end``. (Writes that applied without an acknowledgement own
    the gaps.)
    """
    spans = []
    for value, delta in values:
        if (delta > 0) != (end >= start):
            raise ValueError(f"{key}: a {delta:+} from {start} to {end}: mixed directions")
        spans.append((value - delta, value) if delta > 0 else (value, value - delta))
    low, high = min(start, end), max(start, end)
    problems = [
        f"{key}: the span {span} of an acknowledged write lies outside ({low}, {high}]"
        for span in spans
        if span[0] < low or span[1] > high
    ]
    spans.sort()
    overlaps = []
    reach: tuple[int, int] | None = None  # the span reaching furthest so far
    for span in spans:
        if reach is not None and span[0] < reach[1]:
            overlaps.append((reach, span))
        if reach is None or span[1] > reach[1]:
            reach = span
    if overlaps:
        problems.append(
            f"{key}: {len(overlaps)} acknowledged writes share values with another, "
            f"e.g. {overlaps[:3]} (no serial order gives two writes the same units)"
        )
    return problems

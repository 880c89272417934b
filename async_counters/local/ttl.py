"""Time to live as DynamoDB honours it: late, in the background, a bounded amount at a time.

DynamoDB deletes an item whose TTL attribute (a Number, epoch seconds) has passed "typically
within a few days"; until then the item is read, counted and written like any other. The memory
backend does the same with a configurable delay: an item expired at ``t`` is deleted at the first
sweep after ``t + delay``, never before. The queue holds one entry per item and TTL value written
(not per write: a write that leaves the value as it was adds nothing), soonest first, so a sweep
looks only at what is due and stops after ``limit`` items.

    queue = ExpiryQueue()
    queue.push(due=expires_at + delay, table=table, key=key)
    for table, key in queue.pop_due(now, limit=1000): ...   # re-checked by the caller
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, Final, Generic, TypeVar

from async_counters.local import values as v

#: How often the server's loop sweeps, and how many items one sweep may delete.
SWEEP_INTERVAL: Final = 1.0
SWEEP_LIMIT: Final = 1000
#: DynamoDB leaves alone an item whose expiry is more than five years in the past.
_IGNORED_AFTER: Final = 5 * 365 * 24 * 3600.0

T = TypeVar("T")


def expiry(item: Mapping[str, Any] | None, attribute: str) -> Decimal | None:
    """The item's expiry in epoch seconds: its TTL attribute when that is a Number."""
    if item is None:
        return None
    value = item.get(attribute)
    if not isinstance(value, dict) or "N" not in value:
        return None
    try:
        return v.parse_number(value["N"])
    except v.InvalidValue:
        return None


def deletable(expires: Decimal | None, now: float, delay: float) -> bool:
    """Whether TTL may delete an item with this expiry now."""
    if expires is None:
        return False
    elapsed = Decimal(str(now)) - expires
    return Decimal(str(delay)) <= elapsed <= Decimal(str(_IGNORED_AFTER))


class ExpiryQueue(Generic[T]):
    """Entries ``(due, table, key)`` in due order; stale ones are the caller's to skip."""

    __slots__ = ("_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T, tuple[str, ...]]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, *, due: float, table: T, key: tuple[str, ...]) -> None:
        heapq.heappush(self._heap, (due, next(self._order), table, key))

    def pop_due(self, now: float, *, limit: int) -> Iterator[tuple[T, tuple[str, ...]]]:
        """Take out up to ``limit`` entries due by ``now``, soonest first."""
        heap = self._heap
        for _ in range(limit):
            if not heap or heap[0][0] > now:
                return
            _, _, table, key = heapq.heappop(heap)
            yield table, key

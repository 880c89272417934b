"""The capacity model: token buckets per partition key and per table, as DynamoDB throttles.

Each (table, partition key) has a write bucket and a read bucket, and each table one of each on
top. A bucket refills at its rate and holds ``burst_seconds`` of it; a request takes its capacity
units from both its key's bucket and its table's, or from neither, in which case it is throttled
and must not be applied.

    model = CapacityModel(Capacity(partition_write_units=100))
    reasons = model.take("counters", "views", WRITE, 1)   # [] admitted; else throttling reasons
    model.take_all([("counters", "a", WRITE, 2), ("counters", "b", WRITE, 2)])  # a transaction
    model.charge("counters", "views", WRITE, 1)           # what a request really consumed
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final, Literal

from async_counters.local.config import Capacity

Kind = Literal["Read", "Write"]
READ: Final = "Read"
WRITE: Final = "Write"


class TokenBucket:
    """Refills at ``rate`` units/s up to ``size``; starts full.

    A request larger than the whole bucket still passes when the bucket is full (and leaves it in
    debt), so one big item is slowed rather than refused forever.
    """

    __slots__ = ("rate", "size", "tokens", "updated")

    def __init__(self, rate: float, size: float, now: float) -> None:
        self.rate = rate
        self.size = size
        self.tokens = size
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.size, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def can_take(self, units: float) -> bool:
        return self.tokens >= min(units, self.size)

    def take(self, units: float) -> None:
        self.tokens -= units


class CapacityModel:
    """Per-key and per-table buckets for reads and writes; `take` admits or throttles."""

    def __init__(self, capacity: Capacity, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.clock = clock
        self._partitions: dict[tuple[str, str, str], TokenBucket] = {}
        self._tables: dict[tuple[str, str], TokenBucket] = {}

    def _bucket_rates(self, kind: Kind) -> tuple[float, float]:
        c = self.capacity
        if kind == WRITE:
            return c.partition_write_units, c.table_write_units
        return c.partition_read_units, c.table_read_units

    def _buckets(
        self, table: str, key: str, kind: Kind, now: float
    ) -> tuple[TokenBucket, TokenBucket]:
        partition_rate, table_rate = self._bucket_rates(kind)
        burst = self.capacity.burst_seconds
        partition = self._partitions.get((table, key, kind))
        if partition is None:
            partition = TokenBucket(partition_rate, partition_rate * burst, now)
            self._partitions[(table, key, kind)] = partition
        whole = self._tables.get((table, kind))
        if whole is None:
            whole = TokenBucket(table_rate, table_rate * burst, now)
            self._tables[(table, kind)] = whole
        partition.refill(now)
        whole.refill(now)
        return partition, whole

    def take(self, table: str, key: str, kind: Kind, units: float) -> list[str]:
        """Take ``units`` for one item; the throttling reasons if refused (nothing taken)."""
        return self.take_all([(table, key, kind, units)])[0]

    def take_all(self, items: Sequence[tuple[str, str, Kind, float]]) -> list[list[str]]:
        """Take units for several items at once (a transaction), all or none: each item's
        throttling reasons, every list empty when all were taken. Items sharing a bucket are
        judged by what they need together."""
        now = self.clock()
        buckets = [self._buckets(table, key, kind, now) for table, key, kind, _ in items]
        needed: dict[int, float] = {}
        for (partition, whole), (_, _, _, units) in zip(buckets, items, strict=True):
            needed[id(partition)] = needed.get(id(partition), 0.0) + units
            needed[id(whole)] = needed.get(id(whole), 0.0) + units
        all_reasons: list[list[str]] = []
        for (partition, whole), (_, _, kind, _) in zip(buckets, items, strict=True):
            reasons = []
            if not partition.can_take(needed[id(partition)]):
                reasons.append(f"Table{kind}KeyRangeThroughputExceeded")
            if not whole.can_take(needed[id(whole)]):
                reasons.append(f"Table{kind}ProvisionedThroughputExceeded")
            all_reasons.append(reasons)
        if not any(all_reasons):
            for (partition, whole), (_, _, _, units) in zip(buckets, items, strict=True):
                partition.take(units)
                whole.take(units)
        return all_reasons

    def charge(self, table: str, key: str, kind: Kind, units: float) -> None:
        """Take ``units`` after the fact, whatever is left (a bucket may go into debt), or give
        them back when negative (never past full): to settle an estimate taken at admission
        with what the request really consumed."""
        partition, whole = self._buckets(table, key, kind, self.clock())
        for bucket in (partition, whole):
            bucket.tokens = min(bucket.size, bucket.tokens - units)

"""What the pool did: counts that add up, latency percentiles, and hooks for observers.

Memory is fixed: counts and a log-bucketed latency histogram, never a record per operation.
Every write operation settles exactly once, so ``calls == settled + in_progress`` always holds,
where ``settled`` sums every final outcome (acknowledged, refused, exhausted, ambiguous, ...).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .consumed import READS, charged
from .transport import Outcome

__all__ = ["LatencyHistogram", "LatencySummary", "PoolHooks", "PoolStats", "StatsRecorder"]


class PoolHooks:
    """Observer of a pool's requests and operations; subclass and override what you need.

    The default does nothing. Hooks run on the event loop, inline: keep them cheap, and do not
    raise (an exception is logged and ignored).

    >>> class Throttles(PoolHooks):
    ...     def __init__(self) -> None:
    ...         self.count = 0
    ...     def on_retry(self, operation, key, outcome, attempt, delay):
    ...         self.count += outcome is Outcome.THROTTLED
    """

    def on_open(self, stats: Callable[[], PoolStats]) -> None:
        """The pool opened; ``stats()`` takes a snapshot of its `PoolStats` at any time (for an
        exporter's gauges, read when it collects: the pacing rates, requests in flight)."""

    def on_request(self, operation: str, outcome: Outcome, seconds: float) -> None:
        """One request ended (each attempt of each operation, reads included)."""

    def on_request_detail(
        self, operation: str, key: str | None, outcome: Outcome, seconds: float, consumed: Any
    ) -> None:
        """`on_request`, with what few hooks need: ``key``, the item a write went to (None for
        reads and table requests), and ``consumed``, the answer's ``ConsumedCapacity`` as
        DynamoDB sent it (a dict, a list for BatchGetItem; None without an answer). The
        request's `on_consumed` comes just before. By default it calls `on_request`."""
        self.on_request(operation, outcome, seconds)

    def on_retry(
        self, operation: str, key: str | None, outcome: Outcome, attempt: int, delay: float
    ) -> None:
        """Attempt ``attempt`` ended in a retryable ``outcome``; the next follows in ``delay`` s."""

    def on_settled(self, key: str, delta: int, outcome: Outcome, seconds: float) -> None:
        """A write operation (increment or decrement of ``delta``) ended, after any retries."""

    def on_consumed(self, operation: str, write_units: float, read_units: float) -> None:
        """A request was charged these capacity units (its answer's ConsumedCapacity; a write
        refused by its condition counts one write unit). Comes before the request's
        `on_request`."""

    def on_coalesced(self, key: str, calls: int) -> None:
        """One write to ``key`` applied ``calls`` write operations merged (coalescing, background
        additions); each of them is also told to `on_settled`."""


class LatencyHistogram:
    """Latencies in log buckets ~1 % wide from 1 µs to ~30 h: fixed memory, ~1 % precision."""

    _LOWEST = 1e-6
    _GROWTH = 1.01
    _LOG_GROWTH = math.log(_GROWTH)
    _INV_LOG_GROWTH = 1 / _LOG_GROWTH
    _SCALE = 1 / _LOWEST
    _BUCKETS = 2500

    __slots__ = ("_buckets", "count", "max", "total")

    def __init__(self) -> None:
        self._buckets = [0] * self._BUCKETS
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def record(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds
        if seconds <= self._LOWEST:
            index = 0
        else:
            index = 1 + int(math.log(seconds * self._SCALE) * self._INV_LOG_GROWTH)
            if index >= self._BUCKETS:
                index = self._BUCKETS - 1
        self._buckets[index] += 1

    def percentile(self, fraction: float) -> float:
        """The latency below which ``fraction`` (0..1) of recorded values lie (0.0 when empty)."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index, n in enumerate(self._buckets):
            seen += n
            if seen >= rank:
                upper = self._LOWEST * self._GROWTH**index
                return min(upper, self.max)
        return self.max

    def summary(self) -> LatencySummary:
        return LatencySummary(
            count=self.count,
            mean=self.total / self.count if self.count else 0.0,
            p50=self.percentile(0.50),
            p90=self.percentile(0.90),
            p99=self.percentile(0.99),
            p999=self.percentile(0.999),
            max=self.max,
        )


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency of settled write operations in seconds, retries and backoff included."""

    count: int = 0
    mean: float = 0.0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    p999: float = 0.0
    max: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolStats:
    """A snapshot of `CounterPool.stats`.

    Write operations (increments and decrements): ``calls`` made, of which ``acknowledged``
    (net ``acknowledged_amount``), ``floor_refused``, ``throttled`` and ``unreachable`` (retries
    ran out), ``ambiguous`` (sum of their deltas in ``ambiguous_amount``), ``cancelled`` (caller
    gone before anything was sent), ``errors`` (other refusals by code), and ``in_progress``.
    ``detached`` counts callers cancelled while their write was on the wire (``detached_amount``
    the sum of their deltas); those writes still settle, and are counted, as above.
    ``unwritten``: background additions (``add_nowait``) that were not acknowledged, and their sum
    ``unwritten_amount``. With ``exactly_once``: ``recovered`` writes whose answer was lost but
    which a retry found applied (each would have been an ambiguous write, or a double count), and
    ``pruned`` items cleaned of stale writers' records.
    Requests: ``requests`` sent (reads included), ``retries``, ``throttles`` (throttled
    responses received, retried or not) and ``conflicts`` (writes refused for a conflicting
    transaction or replicated write, retried or not; those that ran out of retries settle in
    ``errors`` under their code); ``in_flight`` of the pool's ``max_in_flight`` right now.
    ``key_rates``: the send rate (requests/s) of each key that the pool currently paces because it
    was throttled (see `async_counters.limiter`); ``table_rate``: the send rate of all the
    table's paced writes together while throttles that name the table's own limits (a provisioned
    table's capacity, an index's, the account's) pace them, else None.
    Cost: ``write_units`` and ``read_units`` the requests were charged (ConsumedCapacity, failed
    conditional writes included), in total and by operation (``write_units_by_operation``,
    ``read_units_by_operation``: e.g. ``{"UpdateItem": 120.0}``).
    """

    calls: int = 0
    acknowledged: int = 0
    acknowledged_amount: int = 0
    floor_refused: int = 0
    throttled: int = 0
    unreachable: int = 0
    ambiguous: int = 0
    ambiguous_amount: int = 0
    cancelled: int = 0
    errors: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    in_progress: int = 0
    detached: int = 0
    detached_amount: int = 0
    unwritten: int = 0
    unwritten_amount: int = 0
    recovered: int = 0
    pruned: int = 0
    requests: int = 0
    retries: int = 0
    throttles: int = 0
    conflicts: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    key_rates: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    table_rate: float | None = None
    latency: LatencySummary = field(default_factory=LatencySummary)
    write_units: float = 0.0
    read_units: float = 0.0
    write_units_by_operation: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({})
    )
    read_units_by_operation: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def settled(self) -> int:
        """Write operations that ended, whatever the outcome."""
        return (
            self.acknowledged
            + self.floor_refused
            + self.throttled
            + self.unreachable
            + self.ambiguous
            + self.cancelled
            + sum(self.errors.values())
        )


#: How each final outcome of a write operation is counted (any other: ``errors`` by its code).
_SETTLED_FIELD = {
    Outcome.ACKNOWLEDGED: "acknowledged",
    Outcome.CONDITION_FAILED: "floor_refused",
    Outcome.THROTTLED: "throttled",
    Outcome.UNREACHABLE: "unreachable",
    Outcome.AMBIGUOUS: "ambiguous",
    Outcome.CANCELLED: "cancelled",
}
#: Responses counted by outcome, besides ``requests`` (each attempt, reads included).
_REQUEST_FIELD = {
    Outcome.THROTTLED: "throttles",
    Outcome.CONFLICT: "conflicts",
}
#: Every count of `PoolStats` the recorder keeps (the rest is measured when the snapshot is taken).
_COUNTS = tuple(
    name
    for name, spec in PoolStats.__dataclass_fields__.items()
    if spec.type == "int" and name not in ("in_flight", "max_in_flight")
)


class StatsRecorder(PoolHooks):
    """The pool's own tally: one observer among the hooks, which `snapshot` turns into `PoolStats`.

    Beyond the hooks' three events it hears what only the pool knows (a call begun, a caller
    detached, a background addition unwritten, a write recovered, an item pruned). A new count is
    one field of `PoolStats` and, when an outcome drives it, one entry in the tables above.
    """

    __slots__ = ("counts", "errors", "latency", "reads", "writes")

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(_COUNTS, 0)
        self.errors: Counter[str] = Counter()
        self.latency = LatencyHistogram()
        self.writes: dict[str, float] = {}  # units by operation
        self.reads: dict[str, float] = {}

    def answered(
        self, operation: str, key: str | None, seconds: float, response: Mapping[str, Any]
    ) -> None:
        """A request was answered: counted, and charged what its ConsumedCapacity says. The
        pool without hooks calls this straight, for every answer: the usual answer (one
        table's total, a float) is read inline."""
        self.counts["requests"] += 1
        consumed = response.get("ConsumedCapacity")
        if consumed is None:
            return
        if type(consumed) is dict and len(consumed) == 2:  # {"TableName", "CapacityUnits"}
            total = consumed.get("CapacityUnits")
            if type(total) is float:
                tally = self.reads if operation in READS else self.writes
                tally[operation] = tally.get(operation, 0.0) + total
                return
        write, read = charged(operation, consumed)
        self.on_consumed(operation, write, read)

    def on_consumed(self, operation: str, write_units: float, read_units: float) -> None:
        if write_units:
            writes = self.writes
            writes[operation] = writes.get(operation, 0.0) + write_units
        if read_units:
            reads = self.reads
            reads[operation] = reads.get(operation, 0.0) + read_units

    def on_request(self, operation: str, outcome: Outcome, seconds: float) -> None:
        counts = self.counts
        counts["requests"] += 1
        name = _REQUEST_FIELD.get(outcome)
        if name is not None:
            counts[name] += 1

    def on_retry(
        self, operation: str, key: str | None, outcome: Outcome, attempt: int, delay: float
    ) -> None:
        self.counts["retries"] += 1

    def on_settled(
        self, key: str, delta: int, outcome: Outcome, seconds: float, code: str = ""
    ) -> None:
        """Record the end of one write operation (``code`` names the error for other refusals)."""
        counts = self.counts
        counts["in_progress"] -= 1
        name = _SETTLED_FIELD.get(outcome)
        if name is None:
            self.errors[code or outcome.value] += 1
        else:
            counts[name] += 1
        if outcome is Outcome.ACKNOWLEDGED:
            counts["acknowledged_amount"] += delta
        elif outcome is Outcome.AMBIGUOUS:
            counts["ambiguous_amount"] += delta
        if outcome is not Outcome.CANCELLED:
            self.latency.record(seconds)

    def acknowledge(self, count: int, amount: int) -> None:
        """Record ``count`` acknowledged writes adding ``amount`` (latencies recorded apart)."""
        counts = self.counts
        counts["in_progress"] -= count
        counts["acknowledged"] += count
        counts["acknowledged_amount"] += amount

    def add(self, name: str, count: int = 1, amount: int | None = None) -> None:
        """Count ``count`` more of ``name`` (and ``amount`` more of ``name + '_amount'``)."""
        counts = self.counts
        counts[name] += count
        if amount is not None:
            counts[name + "_amount"] += amount

    def snapshot(
        self,
        *,
        key_rates: Mapping[str, float],
        in_flight: int,
        max_in_flight: int,
        table_rate: float | None = None,
    ) -> PoolStats:
        return PoolStats(
            **self.counts,
            key_rates=MappingProxyType(dict(key_rates)),
            table_rate=table_rate,
            in_flight=in_flight,
            max_in_flight=max_in_flight,
            errors=MappingProxyType(dict(self.errors)),
            latency=self.latency.summary(),
            write_units=sum(self.writes.values()),
            read_units=sum(self.reads.values()),
            write_units_by_operation=MappingProxyType(dict(self.writes)),
            read_units_by_operation=MappingProxyType(dict(self.reads)),
        )

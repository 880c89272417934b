"""A whole pool against simulated partitions, in virtual time (`virtual_loop`).

`Partitions` is a transport over the memory backend with a bucket per item (``scope="partition"``)
or one for the whole table (``scope="table"``, a provisioned table's capacity) in front, of either
shape the benchmarks use: ``"tokens"`` (a token bucket that starts full, checked after the
latency, as the embedded server's capacity model) or ``"gcra"`` (virtual scheduling, throttles
answered at once, as `benchmarks/bucket_proxy.py`). `load` runs closed-loop callers through a real
`CounterPool` and measures goodput over the whole window and over its steady part, requests per
acknowledgement, failures and latency of acknowledged increments; its callers share one key, or
are spread over ``keys`` of them.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from async_counters import CounterError, CounterPool, RetryPolicy
from async_counters.stats import LatencyHistogram
from async_counters.transport import Outcome, TransportError

from .memory_transport import MemoryTransport

Shape = Literal["tokens", "gcra"]
#: What a table's description gives under ``scope="table"``: its capacity (True), none (False:
#: on demand, no maximum), other units/s than it takes (a number: a table shared with other
#: writers, or changed since), or no description at all ("denied": no
#: ``dynamodb:DescribeTable``).
Described = bool | float | Literal["denied"]
Scope = Literal["partition", "table"]
TABLE = "sim"
#: What DynamoDB names in ``ThrottlingReasons`` for each scope.
REASONS: dict[str, str] = {
    "partition": "TableWriteKeyRangeThroughputExceeded",
    "table": "TableWriteProvisionedThroughputExceeded",
}


class Bucket:
    """``rate`` units/s holding ``burst`` seconds of it (at least one unit); starts full."""

    def __init__(self, shape: Shape, rate: float, burst: float, now: float) -> None:
        self.shape = shape
        self.rate = rate
        self.depth = max(1.0, rate * burst)
        self.tokens = self.depth
        self.updated = now
        self.due = -math.inf  # gcra

    def admit(self, now: float) -> bool:
        if self.shape == "gcra":
            interval = 1.0 / self.rate
            start = max(self.due, now)
            if start - now > (self.depth - 1.0) * interval + interval * 1e-3:
                return False
            self.due = start + interval
            return True
        self.tokens = min(self.depth, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0 - 1e-9:
            return False
        self.tokens -= 1.0
        return True


@dataclass
class Counts:
    requests: int = 0
    throttled: int = 0
    descriptions: int = 0  # DescribeTable calls


class Timeline:
    """Requests and throttles counted by when they were answered, in bins that widen with time
    since the first request (``edges``, seconds): where a cold start spends its throttles."""

    def __init__(self, edges: tuple[float, ...]) -> None:
        self.edges = edges
        self.requests = [0] * len(edges)
        self.throttled = [0] * len(edges)
        self.start: float | None = None

    def answered(self, now: float, *, throttled: bool) -> None:
        if self.start is None:
            self.start = now
        i = bisect.bisect_right(self.edges, now - self.start) - 1
        self.requests[i] += 1
        self.throttled[i] += throttled


class Partitions(MemoryTransport):
    """Items capped at ``rate`` writes/s each (``UpdateItem``), or the whole table at it
    (``scope``), ``latency`` +- ``jitter``, plus ``queueing`` for each write already on the wire
    (a server, or a client, busier the more it holds: the round trip grows with the crowd)."""

    def __init__(
        self,
        *,
        shape: Shape,
        rate: float,
        burst: float,
        latency: float = 0.005,
        jitter: float = 0.001,
        seed: int = 1,
        scope: Scope = "partition",
        random_throttles: float = 0.0,
        queueing: float = 0.0,
        timeline: Timeline | None = None,
        described: Described = True,
    ) -> None:
        super().__init__()
        self.described = described
        self.timeline = timeline
        self.random_throttles = random_throttles
        self.queueing = queueing
        self.on_wire = 0
        self.shape = shape
        self.scope = scope
        self.rate = rate
        self.burst = burst
        self.base_latency = latency
        self.jitter = jitter
        self.rng = random.Random(seed)
        self.buckets: dict[str, Bucket] = {}
        self.counts = Counts()

    def _delay(self) -> float:
        latency = self.base_latency + self.queueing * self.on_wire
        return max(0.0, latency + self.rng.uniform(-self.jitter, self.jitter))

    def _throttle(self) -> TransportError:
        self.counts.throttled += 1
        return TransportError(
            Outcome.THROTTLED,
            "ProvisionedThroughputExceededException",
            "capped",
            status=400,
            reasons=(REASONS[self.scope],),  # the item's partition or the table, as DynamoDB says
        )

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if operation == "DescribeTable":
            await self._wire()
            self.counts.descriptions += 1
            if self.described == "denied":
                raise TransportError(
                    Outcome.REJECTED,
                    "AccessDeniedException",
                    "not authorized to perform: dynamodb:DescribeTable",
                    status=400,
                )
            answer = await super().call(operation, params)
            if self.scope == "table" and self.described:  # the table's capacity, as provisioned
                table = answer["Table"]
                table["BillingModeSummary"] = {"BillingMode": "PROVISIONED"}
                units = self.rate if self.described is True else self.described
                table["ProvisionedThroughput"]["WriteCapacityUnits"] = units
            return answer
        if operation != "UpdateItem":
            return await super().call(operation, params)
        timeline = self.timeline
        if timeline is None:
            return await self._update(params)
        loop = asyncio.get_running_loop()
        try:
            response = await self._update(params)
        except TransportError as exc:
            timeline.answered(loop.time(), throttled=exc.outcome is Outcome.THROTTLED)
            raise
        timeline.answered(loop.time(), throttled=False)
        return response

    async def _update(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self.counts.requests += 1
        key = next(iter(params["Key"].values()))["S"] if self.scope == "partition" else ""
        loop = asyncio.get_running_loop()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(self.shape, self.rate, self.burst, loop.time())
        if self.random_throttles and self.rng.random() < self.random_throttles:
            await asyncio.sleep(self._delay())  # a fault, whatever the rate: nothing taken
            raise self._throttle()
        if self.shape == "gcra":  # the proxy answers a throttle at once
            if not bucket.admit(loop.time()):
                await asyncio.sleep(0.0002)
                raise self._throttle()
            await self._wire()
        else:  # the server: latency first, then the bucket
            await self._wire()
            if not bucket.admit(loop.time()):
                raise self._throttle()
        return await super().call("UpdateItem", params)

    async def _wire(self) -> None:
        delay = self._delay()
        self.on_wire += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self.on_wire -= 1


@dataclass
class Result:
    cap: float  # of all the items the key is spread over, or of the table
    seconds: float
    warmup: float
    acked: int = 0
    acked_steady: int = 0
    acked_late: int = 0
    failed: int = 0
    requests: int = 0
    requests_steady: int = 0
    acks_total: int = 0
    drain: float = 0.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    value: int = 0
    descriptions: int = 0  # the table's, asked for by the pool

    @property
    def goodput(self) -> float:
        return self.acked / self.seconds / self.cap

    @property
    def steady_goodput(self) -> float:
        return self.acked_steady / (self.seconds - self.warmup) / self.cap

    @property
    def per_ack(self) -> float:
        return self.requests / max(1, self.acks_total)

    @property
    def steady_per_ack(self) -> float:
        return self.requests_steady / max(1, self.acked_steady)

    def line(self) -> str:
        return (
            f"good {self.goodput:.0%} steady {self.steady_goodput:.0%} "
            f"req/ack {self.per_ack:.3f} steady {self.steady_per_ack:.3f} failed {self.failed} "
            f"p50 {self.latency.percentile(0.5) * 1e3:.0f} "
            f"p99 {self.latency.percentile(0.99) * 1e3:.0f} "
            f"max {self.latency.max * 1e3:.0f} ms drain {self.drain:.2f}"
        )


async def load(
    *,
    shape: Shape,
    rate: float,
    burst: float,
    callers: int,
    seconds: float,
    warmup: float = 2.0,
    shards: int = 1,
    seed: int = 1,
    latency: float = 0.005,
    deadline: float = 30.0,
    scope: Scope = "partition",
    keys: int = 1,
    random_throttles: float = 0.0,
    adaptive: bool = True,
    cycle: bool = False,
    queueing: float = 0.0,
    timeline: Timeline | None = None,
    described: Described = True,
) -> Result:
    """``callers`` closed-loop callers incrementing one key (or ``keys``, caller i the i-th
    modulo ``keys``; with ``cycle``, caller i's j-th call the (i + j)-th: a caller held up on
    one key writes to none of the others meanwhile) for ``seconds`` of virtual time;
    ``adaptive=False``: the pool unpaced; ``timeline``: counts the writes' answers by when."""
    loop = asyncio.get_running_loop()
    random.seed(seed)  # the pool's own draws (which of a counter's shards): a run repeats
    transport = Partitions(
        shape=shape,
        rate=rate,
        burst=burst,
        seed=seed,
        latency=latency,
        scope=scope,
        random_throttles=random_throttles,
        queueing=queueing,
        timeline=timeline,
        described=described,
    )
    await transport.create_table(TABLE)
    retry = RetryPolicy(clock=loop.time, rng=random.Random(seed).random, deadline=deadline)
    cap = rate * (shards if scope == "partition" else 1)  # shards share a table's capacity
    result = Result(cap=cap, seconds=seconds, warmup=warmup)
    names = ["hot"] if keys == 1 else [f"hot{i}" for i in range(keys)]
    async with CounterPool(
        TABLE, transport=transport, retry=retry, shards=shards, adaptive=adaptive
    ) as pool:
        start = loop.time()
        steady_from, end = start + warmup, start + seconds
        steady_requests = 0

        async def caller(i: int) -> None:
            while loop.time() < end:
                name = names[i % keys]
                i += cycle
                sent = loop.time()
                try:
                    await pool.increment(name)
                except CounterError:
                    result.failed += 1
                    continue
                done = loop.time()
                result.acks_total += 1
                result.latency.record(done - sent)
                if done <= end:
                    result.acked += 1
                    result.acked_steady += done > steady_from
                else:
                    result.acked_late += 1

        async def mark() -> None:
            nonlocal steady_requests
            await asyncio.sleep(warmup)
            steady_requests = transport.counts.requests
            await asyncio.sleep(seconds - warmup)
            result.requests_steady = transport.counts.requests - steady_requests

        await asyncio.gather(mark(), *(caller(i) for i in range(callers)))
        result.drain = loop.time() - end
        result.requests = transport.counts.requests
        result.descriptions = transport.counts.descriptions
        result.value = sum((await pool.get_many(names)).values())
    return result

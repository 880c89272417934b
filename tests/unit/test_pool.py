"""CounterPool against a fake transport: retries, error mapping, stats, lifecycle, cancellation."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from async_counters import (
    AmbiguousWriteError,
    ConnectError,
    CounterError,
    CounterFloorError,
    CounterPool,
    DynamoError,
    Outcome,
    PoolHooks,
    RetryPolicy,
    TableNotFoundError,
    ThrottledError,
)
from async_counters.slowstart import START

from .fake import FakeTransport
from .fake_time import Sleeps, until


async def test_increment_returns_the_new_value(pool: CounterPool) -> None:
    assert await pool.increment("a") == 1
    assert await pool.increment("a", 5) == 6
    assert await pool.decrement("a", 2) == 4
    assert await pool.get("a") == 4
    assert await pool.get("never") == 0
    assert await pool.get_many(["a", "never", "a"]) == {"a": 4, "never": 0}


async def test_get_many_splits_into_batches_of_100(
    pool: CounterPool, transport: FakeTransport
) -> None:
    keys = [f"k{i}" for i in range(250)]
    for key in keys[::10]:
        await pool.increment(key, 2)
    values = await pool.get_many(keys)
    assert list(values) == keys
    assert sum(values.values()) == 2 * 25
    assert transport.requests("BatchGetItem") == 3


async def test_throttles_are_retried_with_the_policy_delays(
    pool: CounterPool, transport: FakeTransport, sleeps: Sleeps
) -> None:
    transport.fail(Outcome.THROTTLED, "ProvisionedThroughputExceededException", times=3)
    assert await pool.increment("a") == 1
    assert sleeps.delays == [0.05, 0.1, 0.2]
    stats = pool.stats
    assert (stats.requests, stats.retries, stats.throttles, stats.acknowledged) == (4, 3, 3, 1)


async def test_exhausted_throttling_raises_and_applies_nothing(
    pool: CounterPool, transport: FakeTransport
) -> None:
    transport.fail(Outcome.THROTTLED, "ThrottlingException", times=5)
    with pytest.raises(ThrottledError) as info:
        await pool.increment("a", 7)
    assert info.value.attempts == 5
    assert info.value.last_code == "ThrottlingException"
    assert info.value.key == "a"
    assert transport.values == {}
    assert pool.stats.throttled == 1
    assert pool.stats.acknowledged_amount == 0


async def test_connect_failures_are_retried_then_reported(
    pool: CounterPool, transport: FakeTransport
) -> None:
    transport.fail(Outcome.UNREACHABLE, "EndpointConnectionError", times=2)
    assert await pool.increment("a") == 1
    transport.fail(Outcome.UNREACHABLE, "ConnectTimeoutError", times=5)
    with pytest.raises(ConnectError):
        await pool.increment("a")
    assert transport.values == {"a": 1}


@pytest.mark.parametrize("applied", [True, False])
async def test_ambiguous_writes_are_never_retried(
    pool: CounterPool, transport: FakeTransport, applied: bool
) -> None:
    transport.fail(Outcome.AMBIGUOUS, "InternalServerError", applied=applied)
    with pytest.raises(AmbiguousWriteError) as info:
        await pool.increment("a", 3)
    assert info.value.applied is None
    assert info.value.amount == 3
    assert transport.requests("UpdateItem") == 1
    assert transport.values == ({"a": 3} if applied else {})
    stats = pool.stats
    assert (stats.ambiguous, stats.ambiguous_amount, stats.retries) == (1, 3, 0)


async def test_ambiguous_reads_are_retried(pool: CounterPool, transport: FakeTransport) -> None:
    await pool.increment("a")
    transport.fail(Outcome.AMBIGUOUS, "ReadTimeoutError", times=2)
    assert await pool.get("a") == 1
    assert transport.requests("GetItem") == 3


async def test_floor_refusal_reports_the_current_value(
    pool: CounterPool, transport: FakeTransport
) -> None:
    await pool.increment("stock", 2)
    assert await pool.decrement("stock", 2, floor=0) == 0
    with pytest.raises(CounterFloorError) as info:
        await pool.decrement("stock", 1, floor=0)
    assert (info.value.current, info.value.floor, info.value.amount) == (0, 0, 1)
    with pytest.raises(CounterFloorError) as missing:
        await pool.decrement("never", 1, floor=0)
    assert missing.value.current is None
    assert transport.values == {"stock": 0}
    assert pool.stats.floor_refused == 2


# Each scripted transport error, what reaches the caller, and how the stats count it.
ERROR_TABLE: list[tuple[Outcome, str, type[CounterError], str]] = [
    (Outcome.TABLE_NOT_FOUND, "ResourceNotFoundException", TableNotFoundError, "table_not_found"),
    (Outcome.REJECTED, "ValidationException", DynamoError, "ValidationException"),
    (Outcome.REJECTED, "AccessDeniedException", DynamoError, "AccessDeniedException"),
    (Outcome.AMBIGUOUS, "ConnectionClosedError", AmbiguousWriteError, "ambiguous"),
    (Outcome.THROTTLED, "RequestLimitExceeded", ThrottledError, "throttled"),
    (Outcome.UNREACHABLE, "EndpointConnectionError", ConnectError, "unreachable"),
]


@pytest.mark.parametrize(("outcome", "code", "error", "counted_as"), ERROR_TABLE)
async def test_error_mapping(
    pool: CounterPool,
    transport: FakeTransport,
    outcome: Outcome,
    code: str,
    error: type[CounterError],
    counted_as: str,
) -> None:
    transport.fail(outcome, code, times=5)
    with pytest.raises(error) as info:
        await pool.increment("k")
    assert type(info.value) is error
    assert info.value.key == "k"
    if isinstance(info.value, DynamoError):
        assert info.value.code == code
    stats = pool.stats
    counted = getattr(stats, counted_as, None)
    assert counted == 1 or stats.errors.get(code) == 1 or stats.errors.get(counted_as) == 1
    assert stats.settled == stats.calls == 1


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda p: p.increment(3), TypeError),
        (lambda p: p.increment(""), ValueError),
        (lambda p: p.increment(None), TypeError),
        (lambda p: p.increment("k", True), TypeError),
        (lambda p: p.increment("k", 1.0), TypeError),
        (lambda p: p.increment("k", Decimal(1)), TypeError),
        (lambda p: p.increment("k", "1"), TypeError),
        (lambda p: p.increment("k", 0), ValueError),
        (lambda p: p.increment("k", -1), ValueError),
        (lambda p: p.increment("k", 10**38), ValueError),
        (lambda p: p.decrement("k", 0), ValueError),
        (lambda p: p.decrement("k", 1, floor=0.5), TypeError),
        (lambda p: p.decrement("k", 1, floor="0"), TypeError),
        (lambda p: p.decrement("k", 1, floor=10**38), ValueError),
        (lambda p: p.get(""), ValueError),
        (lambda p: p.get(b"k"), TypeError),
        (lambda p: p.get_many("abc"), TypeError),
        (lambda p: p.get_many(["a", 1]), TypeError),
    ],
)
async def test_bad_input_is_refused_before_anything_is_sent(
    pool: CounterPool, transport: FakeTransport, call: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await call(pool)
    assert transport.calls == []
    assert pool.stats.calls == 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_in_flight": 0}, ValueError),
        ({"max_in_flight": 1.5}, TypeError),
        ({"max_in_flight": True}, TypeError),
        ({"retry": {"attempts": 3}}, TypeError),
        ({"key_attribute": ""}, ValueError),
        ({"value_attribute": "pk"}, ValueError),
        ({"read_timeout": 0}, ValueError),
        ({"endpoint_url": "localhost:8000"}, ValueError),
        ({"client": object(), "session": object()}, ValueError),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        CounterPool("t", **kwargs)


def test_table_name_must_be_a_nonempty_str() -> None:
    with pytest.raises(TypeError):
        CounterPool(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CounterPool("")


async def test_in_flight_is_bounded(transport: FakeTransport) -> None:
    transport.latency = 0.001
    async with CounterPool("t", transport=transport, max_in_flight=8) as pool:
        await asyncio.gather(*(pool.increment(f"k{i % 3}") for i in range(200)))
    assert transport.max_in_flight == 8
    assert sum(transport.values.values()) == 200


async def test_lifecycle() -> None:
    transport = FakeTransport()
    pool = CounterPool("t", transport=transport)
    with pytest.raises(RuntimeError, match="not open"):
        await pool.increment("a")
    async with pool:
        await pool.increment("a")
    assert pool.closed
    await pool.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await pool.increment("a")
    with pytest.raises(RuntimeError, match="opens once"):
        await pool.__aenter__()
    assert not transport.closed  # given, not owned


async def test_aclose_waits_for_writes_in_flight(transport: FakeTransport) -> None:
    transport.gate = asyncio.Event()
    pool = CounterPool("t", transport=transport)
    await pool.open()
    # As many as a key new to the server sends at once (more wait for its first answers).
    writes = [asyncio.create_task(pool.increment("a")) for _ in range(START)]
    await transport.on_the_wire(START)
    closing = asyncio.create_task(pool.aclose())
    await asyncio.sleep(0)  # one turn: the close has begun, and waits for the gate
    assert not closing.done()
    with pytest.raises(RuntimeError):
        await pool.increment("a")  # no new work while closing
    transport.gate.set()
    await closing
    assert sorted(await asyncio.gather(*writes)) == list(range(1, START + 1))
    assert transport.values == {"a": START}


async def test_a_cancelled_caller_does_not_cancel_a_write_on_the_wire(
    transport: FakeTransport,
) -> None:
    transport.gate = asyncio.Event()
    async with CounterPool("t", transport=transport) as pool:
        caller = asyncio.create_task(pool.increment("a", 4))
        await transport.on_the_wire()  # the request waits for the gate
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert pool.stats.detached == 1
        transport.gate.set()
    assert transport.values == {"a": 4}
    stats = pool.stats
    assert (stats.acknowledged, stats.acknowledged_amount, stats.cancelled) == (1, 4, 0)
    assert stats.settled == stats.calls == 1


async def test_a_caller_cancelled_before_sending_sends_nothing(transport: FakeTransport) -> None:
    transport.gate = asyncio.Event()
    async with CounterPool("t", transport=transport, max_in_flight=1) as pool:
        first = asyncio.create_task(pool.increment("a"))
        queued = asyncio.create_task(pool.increment("b"))
        await transport.on_the_wire()  # `first` holds the only slot; `queued` waits for it
        await until(lambda: pool.stats.in_progress == 2)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        transport.gate.set()
        assert await first == 1
    assert transport.values == {"a": 1}
    stats = pool.stats
    assert (stats.acknowledged, stats.cancelled, stats.detached) == (1, 1, 0)
    assert stats.settled == stats.calls == 2


async def test_a_caller_cancelled_during_backoff_sends_no_more(
    transport: FakeTransport,
) -> None:
    gate, backing_off = asyncio.Event(), asyncio.Event()

    async def slow_sleep(seconds: float) -> None:
        backing_off.set()
        await gate.wait()

    transport.fail(Outcome.THROTTLED, "ProvisionedThroughputExceededException")
    policy = RetryPolicy(sleep=slow_sleep)
    async with CounterPool("t", transport=transport, retry=policy) as pool:
        caller = asyncio.create_task(pool.increment("a"))
        await backing_off.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
    assert transport.requests("UpdateItem") == 1
    assert transport.values == {}
    assert pool.stats.cancelled == 1


class Recorder(PoolHooks):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_request(self, operation: str, outcome: Outcome, seconds: float) -> None:
        self.events.append(("request", operation, outcome))

    def on_retry(
        self, operation: str, key: str | None, outcome: Outcome, attempt: int, delay: float
    ) -> None:
        self.events.append(("retry", key, outcome, attempt))

    def on_settled(self, key: str, delta: int, outcome: Outcome, seconds: float) -> None:
        self.events.append(("settled", key, delta, outcome))


class Broken(PoolHooks):
    def on_settled(self, key: str, delta: int, outcome: Outcome, seconds: float) -> None:
        raise RuntimeError("observer bug")


async def test_hooks_see_requests_retries_and_outcomes(
    transport: FakeTransport, sleeps: Sleeps
) -> None:
    recorder = Recorder()
    transport.fail(Outcome.THROTTLED, "ThrottlingException")
    policy = RetryPolicy(sleep=sleeps)
    async with CounterPool("t", transport=transport, retry=policy, hooks=[recorder, Broken()]) as p:
        assert await p.decrement("a", 2) == -2
    assert recorder.events == [
        ("request", "UpdateItem", Outcome.THROTTLED),
        ("retry", "a", Outcome.THROTTLED, 1),
        ("request", "UpdateItem", Outcome.ACKNOWLEDGED),
        ("settled", "a", -2, Outcome.ACKNOWLEDGED),
    ]


async def test_stats_add_up_under_mixed_outcomes(transport: FakeTransport, sleeps: Sleeps) -> None:
    policy = RetryPolicy(attempts=2, sleep=sleeps)
    async with CounterPool("t", transport=transport, retry=policy) as pool:
        await pool.increment("s", 5)
        transport.fail(Outcome.THROTTLED, "ThrottlingException", times=2)
        transport.fail(Outcome.AMBIGUOUS, "InternalServerError", applied=True)
        transport.fail(Outcome.REJECTED, "ValidationException")
        results = await asyncio.gather(
            *(pool.increment("a") for _ in range(5)),
            *(pool.decrement("s", 2, floor=0) for _ in range(4)),
            return_exceptions=True,
        )
    stats = pool.stats
    assert stats.calls == 10 == stats.settled
    assert stats.in_progress == 0
    assert sum(isinstance(r, BaseException) for r in results) == (
        stats.throttled + stats.ambiguous + stats.floor_refused + sum(stats.errors.values())
    )
    # The server's total equals what was acknowledged plus what was ambiguous and applied here.
    assert sum(transport.values.values()) == stats.acknowledged_amount + stats.ambiguous_amount
    assert stats.latency.count == 10
    assert 0 <= stats.latency.p50 <= stats.latency.p99 <= stats.latency.max

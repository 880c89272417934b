"""Merged writes (coalesce=True, add_nowait) against the fake transport."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from async_counters import (
    AmbiguousWriteError,
    CounterFloorError,
    CounterPool,
    DynamoError,
    Outcome,
    RetryPolicy,
)

from .fake import FakeTransport
from .fake_time import until


@pytest.fixture
def pool_options() -> dict[str, Any]:
    return {"coalesce": True}


async def test_concurrent_increments_merge_and_each_caller_gets_its_own_number(
    pool: CounterPool, transport: FakeTransport
) -> None:
    tickets = await asyncio.gather(*(pool.increment("tickets") for _ in range(1_000)))
    assert sorted(tickets) == list(range(1, 1_001))  # unique, no gaps
    assert transport.values == {"tickets": 1_000}
    assert transport.requests("UpdateItem") < 20  # merged, one write in flight at a time
    stats = pool.stats
    assert stats.acknowledged == stats.calls == 1_000
    assert stats.requests == transport.requests("UpdateItem")


async def test_one_write_in_flight_per_key(pool: CounterPool, transport: FakeTransport) -> None:
    transport.latency = 0.001
    keys = [f"k{i}" for i in range(5)]
    await asyncio.gather(*(pool.increment(keys[i % 5], 1 + i % 3) for i in range(500)))
    assert transport.max_in_flight <= 5
    assert sum(transport.values.values()) == sum(1 + i % 3 for i in range(500))


async def test_mixed_hot_and_cold_keys_from_500_callers(
    pool: CounterPool, transport: FakeTransport
) -> None:
    sent: dict[str, int] = {}

    async def caller(i: int) -> None:
        for j in range(20):
            key = "hot" if j % 2 else f"cold:{(i * 7 + j) % 50}"
            sent[key] = sent.get(key, 0) + i % 4 + 1
            await pool.increment(key, i % 4 + 1)

    await asyncio.gather(*(caller(i) for i in range(500)))
    assert transport.values == sent
    assert await pool.get_many(sent) == sent


async def test_a_floored_batch_grants_exactly_the_stock(
    pool: CounterPool, transport: FakeTransport
) -> None:
    await pool.increment("stock", 10)
    transport.gate = asyncio.Event()
    blocker = asyncio.create_task(pool.increment("stock", 0 + 1))  # holds the key's write
    await transport.on_the_wire()
    buyers = [asyncio.create_task(pool.decrement("stock", 1, floor=0)) for _ in range(30)]
    await until(lambda: pool.stats.in_progress == 31)  # every buyer queued behind it
    transport.gate.set()
    await blocker
    results = await asyncio.gather(*buyers, return_exceptions=True)
    sold = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, CounterFloorError)]
    assert len(sold) == 11 and len(refused) == 19
    assert sorted(sold) == list(range(11))  # distinct remaining stock per sale
    assert [isinstance(r, int) for r in results] == [True] * 11 + [False] * 19  # arrival order
    assert all(error.current == 0 for error in refused)
    assert transport.values == {"stock": 0}
    assert pool.stats.floor_refused == 19


@pytest.mark.parametrize("all_old", [True, False], ids=["ALL_OLD", "consistent-read"])
async def test_floored_batch_learns_the_value_with_or_without_all_old(
    transport: FakeTransport, all_old: bool
) -> None:
    transport.return_all_old = all_old
    async with CounterPool("t", transport=transport, coalesce=True) as pool:
        await pool.increment("s", 3)
        transport.gate = asyncio.Event()
        first = asyncio.create_task(pool.increment("s"))
        await transport.on_the_wire()
        batch = [asyncio.create_task(pool.decrement("s", 2, floor=0)) for _ in range(4)]
        await until(lambda: pool.stats.in_progress == 5)
        transport.gate.set()
        assert await first == 4
        results = await asyncio.gather(*batch, return_exceptions=True)
    assert results[:2] == [2, 0]
    assert all(isinstance(r, CounterFloorError) for r in results[2:])
    assert transport.values == {"s": 0}
    assert transport.requests("GetItem") == (0 if all_old else 1)


async def test_a_throttled_batch_is_retried_whole(
    pool: CounterPool, transport: FakeTransport
) -> None:
    transport.fail(Outcome.THROTTLED, "ProvisionedThroughputExceededException", times=2)
    values = await asyncio.gather(*(pool.increment("k", 2) for _ in range(10)))
    assert sorted(values) == list(range(2, 21, 2))
    assert transport.values == {"k": 20}
    updates = [p for op, p in transport.calls if op == "UpdateItem"]
    # one merged write of all ten: twice throttled, then applied, always as 20
    assert [p["ExpressionAttributeValues"][":n"]["N"] for p in updates] == ["20", "20", "20"]
    assert pool.stats.retries == 2


async def test_an_ambiguous_batch_fails_every_caller_in_it(
    pool: CounterPool, transport: FakeTransport
) -> None:
    transport.gate = asyncio.Event()
    first = asyncio.create_task(pool.increment("k"))
    await transport.on_the_wire()
    rest = [asyncio.create_task(pool.increment("k", 3)) for _ in range(5)]
    await until(lambda: pool.stats.in_progress == 6)
    transport.fail(Outcome.AMBIGUOUS, "InternalServerError")  # the first write's fate
    transport.fail(Outcome.AMBIGUOUS, "ReadTimeoutError", applied=True)  # the batch's
    transport.gate.set()
    with pytest.raises(AmbiguousWriteError):
        await first
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert all(isinstance(r, AmbiguousWriteError) and r.amount == 3 for r in results)
    stats = pool.stats
    assert (stats.ambiguous, stats.ambiguous_amount) == (6, 16)
    assert transport.values == {"k": 15}  # the batch did apply; nobody can know that but the server
    assert transport.requests("UpdateItem") == 2  # never retried


async def test_add_nowait_and_aclose_lose_nothing(transport: FakeTransport) -> None:
    transport.latency = 0.0005
    pool = CounterPool("t", transport=transport)
    async with pool:
        for i in range(5_000):
            pool.add_nowait(f"page:{i % 7}", 1 + i % 2)
        assert pool.stats.in_progress > 0
    assert sum(transport.values.values()) == sum(1 + i % 2 for i in range(5_000))
    stats = pool.stats
    assert stats.acknowledged == stats.calls == 5_000
    assert stats.unwritten == 0
    assert stats.requests < 500


async def test_add_nowait_failures_are_counted_and_reported(
    transport: FakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    pool = CounterPool("t", transport=transport, retry=RetryPolicy(attempts=1))
    async with pool:
        transport.fail(Outcome.REJECTED, "ValidationException")
        pool.add_nowait("a", 4)
        pool.add_nowait("a", 5)
        stats = await pool.flush()
        assert (stats.unwritten, stats.unwritten_amount) == (2, 9)
        pool.add_nowait("a", 6)
    assert transport.values == {"a": 6}
    assert "2 background addition(s), 9 in all, could not be written" in caplog.text
    with pytest.raises(RuntimeError):
        pool.add_nowait("a")


async def test_callers_cancelled_on_the_wire_neither_remove_nor_repeat_their_amount(
    pool: CounterPool, transport: FakeTransport
) -> None:
    transport.gate = asyncio.Event()
    on_wire = asyncio.create_task(pool.increment("k", 1))
    await transport.on_the_wire()  # the first write (amount 1)
    queued = [asyncio.create_task(pool.increment("k", 10 * (i + 1))) for i in range(5)]
    await until(lambda: pool.stats.in_progress == 6)
    on_wire.cancel()
    queued[2].cancel()  # waiting for the next write: never sent
    await asyncio.sleep(0)
    transport.gate.set()
    results = await asyncio.gather(on_wire, *queued, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert isinstance(results[3], asyncio.CancelledError)
    assert [r for r in results if isinstance(r, int)] == [11, 31, 71, 121]
    stats = pool.stats
    assert (stats.detached, stats.detached_amount, stats.cancelled) == (1, 1, 1)
    assert transport.values == {"k": 1 + 10 + 20 + 40 + 50}
    assert transport.values["k"] == stats.acknowledged_amount
    assert stats.settled == stats.calls == 6


async def test_bad_input_with_coalescing_sends_nothing(
    pool: CounterPool, transport: FakeTransport
) -> None:
    for call in (
        lambda: pool.increment("k", 0),
        lambda: pool.decrement("k", 1, floor=1.5),  # type: ignore[arg-type]
        lambda: pool.increment(""),
    ):
        with pytest.raises((TypeError, ValueError)):
            await call()
    with pytest.raises(TypeError):
        pool.add_nowait("k", True)
    assert transport.calls == []


async def test_a_value_that_is_not_whole_fails_the_batch_as_applied(
    pool: CounterPool, transport: FakeTransport
) -> None:
    original = transport._apply

    def apply(operation: str, params: Any) -> dict[str, Any]:
        original(operation, params)
        return {"Attributes": {"count": {"N": "1.5"}}}

    transport._apply = apply  # type: ignore[method-assign]
    with pytest.raises(DynamoError) as info:
        await pool.increment("k")
    assert info.value.applied is True
    assert pool.stats.acknowledged == 1


def test_linger_must_be_a_sane_number() -> None:
    with pytest.raises(ValueError):
        CounterPool("t", linger=-1)
    with pytest.raises(TypeError):
        CounterPool("t", linger="1")  # type: ignore[arg-type]

"""Sharded counters over HTTP: writes spread over items, reads summing them, N changed safely."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from async_counters import CounterPool
from async_counters.builders import shard_key
from async_counters.local import Capacity, LocalDynamo


@pytest.fixture(scope="module")
def fast_server() -> Iterator[LocalDynamo]:
    with LocalDynamo(backend="memory") as server:
        yield server


@pytest.mark.parametrize(
    "options",
    [{}, {"coalesce": True}, {"exactly_once": True, "coalesce": True}],
    ids=["plain", "coalesce", "exactly-once"],
)
async def test_a_sharded_counter_sums_exactly(
    fast_server: LocalDynamo, table_name: str, options: dict[str, bool]
) -> None:
    async with CounterPool(
        table_name, endpoint_url=fast_server.endpoint_url, shards=8, **options
    ) as pool:
        await pool.ensure_table()
        await asyncio.gather(*(pool.increment("views", 1 + i % 3) for i in range(2_000)))
        await pool.decrement("views", 5)
        expected = sum(1 + i % 3 for i in range(2_000)) - 5
        assert await pool.get("views") == expected
        assert await pool.get_many(["views", "other"]) == {"views": expected, "other": 0}
    ledger = fast_server.ledger(table_name)
    names = [shard_key("views", s) for s in range(8)]
    used = [name for name in names if name in ledger and ledger[name].sum]
    assert sum(ledger[name].sum for name in used) == expected
    assert len(used) == 8  # spread, not piled on one (an exactly-once writer too: per item)
    if not options:
        assert all(ledger[name].count >= 150 for name in used)  # the least loaded: ~250 each


async def test_shards_per_key(fast_server: LocalDynamo, table_name: str) -> None:
    async with CounterPool(
        table_name, endpoint_url=fast_server.endpoint_url, shards={"hot": 4}
    ) as pool:
        await pool.ensure_table()
        await asyncio.gather(*(pool.increment(k) for k in ["hot"] * 40 + ["cold"] * 10))
        assert pool.shards_of("hot") == 4 and pool.shards_of("cold") == 1
        assert await pool.get_many(["hot", "cold"]) == {"hot": 40, "cold": 10}
    ledger = fast_server.ledger(table_name)
    assert {name for name in ledger if "hot" in name} == {shard_key("hot", s) for s in range(4)}
    assert ledger["cold"].sum == 10


async def test_a_floor_on_a_sharded_counter_is_refused_before_sending(
    fast_server: LocalDynamo, table_name: str
) -> None:
    async with CounterPool(table_name, endpoint_url=fast_server.endpoint_url, shards=4) as pool:
        await pool.ensure_table()
        requests_before = pool.stats.requests
        with pytest.raises(ValueError, match="sharded"):
            await pool.decrement("stock", 1, floor=0)
        assert pool.stats.requests == requests_before
        assert await pool.decrement("stock", 1) == -1  # without a floor it is fine


@pytest.mark.parametrize("later", [1, 2, 4, 16])
async def test_changing_the_shard_count_keeps_the_total(
    fast_server: LocalDynamo, table_name: str, later: int
) -> None:
    endpoint = fast_server.endpoint_url
    async with CounterPool(table_name, endpoint_url=endpoint) as pool:
        await pool.ensure_table()
        await pool.increment("k", 7)  # written unsharded first
    async with CounterPool(table_name, endpoint_url=endpoint, shards=8) as pool:
        await asyncio.gather(*(pool.increment("k") for _ in range(80)))
    async with CounterPool(table_name, endpoint_url=endpoint, shards=later) as pool:
        assert await pool.get("k") == 87
        assert await pool.get_many(["k"]) == {"k": 87}
        await asyncio.gather(*(pool.increment("k") for _ in range(13)))
        assert await pool.get("k") == 100


@pytest.mark.timing
async def test_throttled_reads_of_shards_are_retried(table_name: str) -> None:
    # Three reads of burst per shard, refilled in 0.3 s: ten reads of each sent at once throttle
    # unless the machine takes 0.7 s to send them.
    capacity = Capacity(partition_read_units=10, burst_seconds=0.3)
    with LocalDynamo(backend="memory", capacity=capacity) as server:
        async with CounterPool(table_name, endpoint_url=server.endpoint_url, shards=16) as pool:
            await pool.ensure_table()
            await asyncio.gather(*(pool.increment("k") for _ in range(160)))
            before = server.stats()["throttled"]
            totals = await asyncio.gather(*(pool.get("k") for _ in range(10)))
        assert totals == [160] * 10
        assert server.stats()["throttled"] > before  # and retried until every shard was read


def test_bad_shard_counts_are_refused() -> None:
    for shards, error in [(0, ValueError), (1001, ValueError), (2.0, TypeError), (True, TypeError)]:
        with pytest.raises(error):
            CounterPool("t", shards=shards)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CounterPool("t", shards={"": 2})
    with pytest.raises(ValueError):
        CounterPool("t", shards={"k": 0})


async def test_a_crowd_on_a_new_sharded_counter_records_its_width_once(
    fast_server: LocalDynamo, table_name: str
) -> None:
    """Every caller arriving before the first width record was answered used to send one of its
    own, all to the counter's first item (a storm on one partition, unpaced)."""
    callers = 256
    async with CounterPool(table_name, endpoint_url=fast_server.endpoint_url, shards=8) as pool:
        await pool.ensure_table()
        before = pool.stats.write_units_by_operation.get("UpdateItem", 0.0)
        await asyncio.gather(*(pool.increment("crowd") for _ in range(callers)))
        writes = pool.stats.write_units_by_operation.get("UpdateItem", 0.0) - before
        assert await pool.get("crowd") == callers
    assert writes == callers + 1  # write units: the increments, and one width record

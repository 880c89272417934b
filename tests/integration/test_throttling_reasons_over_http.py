"""The throttle's reasons, from the embedded server over HTTP, on both transports: a hot partition
paces its key; a table's limit paces the table as a whole and no key (pacing one key would not
lift a table's limit). Either way every increment lands, exactly."""

from __future__ import annotations

import asyncio
from collections import Counter

from async_counters import CounterPool, PoolHooks
from async_counters.described import REFRESH
from async_counters.local import Capacity, LocalDynamo
from async_counters.transport import Outcome


async def _load(pool: CounterPool, keys: list[str], callers: int, each: int) -> None:
    async def caller(i: int) -> None:
        for j in range(each):
            await pool.increment(keys[(i + j) % len(keys)])

    await asyncio.gather(*(caller(i) for i in range(callers)))


async def test_a_hot_partitions_throttles_pace_its_key(
    table_name: str, transport_name: str
) -> None:
    capacity = Capacity(partition_write_units=50.0, burst_seconds=0.1)  # five writes of burst
    async with (
        LocalDynamo(backend="memory", capacity=capacity) as server,
        CounterPool(table_name, endpoint_url=server.endpoint_url, transport=transport_name) as pool,
    ):
        await pool.ensure_table()
        await _load(pool, ["hot"], callers=32, each=4)
        stats = pool.stats
        value = await pool.get("hot")
    assert value == 128 == server.ledger(table_name)["hot"].sum
    assert stats.throttles > 0 and stats.throttled == 0 and not stats.errors
    assert set(stats.key_rates) == {"hot"}  # the key's partition said so: it is paced
    assert stats.table_rate is None


async def test_a_tables_throttles_pace_the_table_and_no_key(
    table_name: str, transport_name: str
) -> None:
    # The table takes 50 writes/s in all, each key far more: only the table's limit throttles.
    capacity = Capacity(table_write_units=50.0, burst_seconds=0.1)
    keys = [f"k{i}" for i in range(16)]
    async with (
        LocalDynamo(backend="memory", capacity=capacity) as server,
        CounterPool(table_name, endpoint_url=server.endpoint_url, transport=transport_name) as pool,
    ):
        await pool.ensure_table()
        await _load(pool, keys, callers=32, each=4)
        stats = pool.stats
        values = await pool.get_many(keys)
    ledger = server.ledger(table_name)
    assert sum(values.values()) == 128
    assert {k: ledger[k].sum for k in keys} == values
    assert stats.throttles > 0 and stats.throttled == 0 and not stats.errors
    assert stats.key_rates == {}  # "TableWriteProvisionedThroughputExceeded": no key's to pace
    assert stats.table_rate is not None  # ... but the table's, all keys' writes together


class _Operations(PoolHooks):
    """Counts the pool's requests by operation."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def on_request(self, operation: str, outcome: Outcome, seconds: float) -> None:
        self.seen[operation] += 1


async def test_a_tables_pace_starts_at_the_capacity_its_description_gives(
    table_name: str, transport_name: str
) -> None:
    """The embedded server describes the table capacity it throttles at (an on-demand table's
    maximum); the pool reads it once the throttles name it, and paces the table there."""
    capacity = Capacity(table_write_units=50.0, burst_seconds=0.1)
    keys = [f"k{i}" for i in range(16)]
    operations = _Operations()
    async with (
        LocalDynamo(backend="memory", capacity=capacity) as server,
        CounterPool(
            table_name,
            endpoint_url=server.endpoint_url,
            transport=transport_name,
            hooks=operations,
        ) as pool,
    ):
        await pool.ensure_table()
        described = operations.seen["DescribeTable"]  # ensure_table's own
        assert pool._transport is not None
        table = (await pool._transport.call("DescribeTable", {"TableName": table_name}))["Table"]
        assert table["OnDemandThroughput"]["MaxWriteRequestUnits"] == 50
        loop = asyncio.get_running_loop()
        started = loop.time()
        await _load(pool, keys, callers=32, each=4)
        took = loop.time() - started
        stats = pool.stats
        values = await pool.get_many(keys)
    assert sum(values.values()) == 128 == sum(server.ledger(table_name)[k].sum for k in keys)
    assert stats.throttles > 0 and stats.throttled == 0 and not stats.errors
    # Once in `REFRESH` seconds at most, not once per throttle.
    assert 1 <= operations.seen["DescribeTable"] - described <= 1 + took / REFRESH
    assert stats.table_rate is not None and 0.8 * 50 <= stats.table_rate <= 1.1 * 50

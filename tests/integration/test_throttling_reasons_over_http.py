"""The throttle's reasons, from the embedded server over HTTP, on both transports: a hot partition
paces its key; a table's limit paces the table as a whole and no key (pacing one key would not
lift a table's limit). Either way every increment lands, exactly."""

from __future__ import annotations

import asyncio

from async_counters import CounterPool
from async_counters.local import Capacity, LocalDynamo


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

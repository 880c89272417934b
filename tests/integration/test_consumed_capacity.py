"""What the pool's requests cost, from the embedded DynamoDB's ConsumedCapacity, over HTTP."""

from __future__ import annotations

import pytest

from async_counters import CounterFloorError, CounterPool


async def test_each_plain_increment_of_a_small_item_costs_one_write_unit(
    pool: CounterPool,
) -> None:
    for i in range(7):
        await pool.increment(f"views:{i % 3}")
    stats = pool.stats
    assert stats.write_units == 7.0
    assert dict(stats.write_units_by_operation) == {"UpdateItem": 7.0}
    assert stats.read_units == 0.0


async def test_a_strongly_consistent_get_of_a_small_item_costs_one_read_unit(
    pool: CounterPool,
) -> None:
    await pool.increment("views")
    assert await pool.get("views") == 1
    stats = pool.stats
    assert stats.read_units == 1.0
    assert dict(stats.read_units_by_operation) == {"GetItem": 1.0}
    assert stats.write_units == 1.0


async def test_get_many_costs_one_read_unit_per_small_item(pool: CounterPool) -> None:
    await pool.increment("a")
    await pool.increment("b")
    assert await pool.get_many(["a", "b", "c"]) == {"a": 1, "b": 1, "c": 0}
    assert dict(pool.stats.read_units_by_operation) == {"BatchGetItem": 3.0}


async def test_a_refused_floor_write_is_charged_one_write_unit(pool: CounterPool) -> None:
    await pool.increment("stock", 1)
    with pytest.raises(CounterFloorError):
        await pool.decrement("stock", 2, floor=0)
    stats = pool.stats
    assert stats.floor_refused == 1
    assert stats.write_units == 2.0

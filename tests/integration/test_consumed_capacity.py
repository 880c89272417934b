"""What the pool's requests cost, from the embedded DynamoDB's ConsumedCapacity, over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from async_counters import CounterFloorError, CounterPool, Outcome, PoolHooks
from async_counters.local import LocalDynamo


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


class Answers(PoolHooks):
    """Every answered item request, whether its answer said what it cost, and the writes
    charged (answered, or refused by their condition)."""

    def __init__(self) -> None:
        self.answered = 0
        self.writes = 0
        self.silent: list[str] = []

    def on_request_detail(
        self, operation: str, key: str | None, outcome: Outcome, seconds: float, consumed: Any
    ) -> None:
        if outcome is Outcome.CONDITION_FAILED:  # charged too (sharding's record, refused)
            self.writes += 1
        if outcome is Outcome.ACKNOWLEDGED and operation not in ("CreateTable", "DescribeTable"):
            self.answered += 1
            self.writes += operation == "UpdateItem"
            if consumed is None:
                self.silent.append(operation)


@pytest.mark.parametrize(
    "mode",
    [{}, {"coalesce": True}, {"exactly_once": True}, {"shards": 4}],
    ids=["plain", "coalesce", "exactly_once", "shards"],
)
async def test_every_item_request_of_every_mode_asks_what_it_cost(
    mode: dict[str, Any], table_name: str
) -> None:
    """The pool's whole traffic, exactly-once records' removal and shard reads included: an
    item request that did not ask would cost without being counted."""
    answers = Answers()
    with LocalDynamo(backend="memory") as server:
        async with CounterPool(
            table_name, endpoint_url=server.endpoint_url, hooks=answers, **mode
        ) as pool:
            await pool.ensure_table()
            await asyncio.gather(*(pool.increment(f"k{i % 3}") for i in range(30)))
            assert await pool.get_many(["k0", "k1", "k2"]) == {"k0": 10, "k1": 10, "k2": 10}
            assert await pool.get("k0") == 10
        assert answers.silent == []
        assert answers.writes >= 3
        # Small items: every write cost one unit (exactly-once's removals, refusals too).
        assert pool.stats.write_units_by_operation["UpdateItem"] == answers.writes

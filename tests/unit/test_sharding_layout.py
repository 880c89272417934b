"""Shard items' names are reserved; counters sharded the old way (``key#n``) are still read."""

from __future__ import annotations

from typing import Any

import pytest

from async_counters import CounterPool, builders

from .memory_transport import MemoryTransport, stored

TABLE = "counters"


async def write_old_layout(transport: MemoryTransport, key: str, values: list[int]) -> None:
    """What a pool of the old layout left: ``key``, ``key#1``... and ``~shards`` on ``key``."""
    for shard, value in enumerate(values):
        params: dict[str, Any] = builders.update(
            TABLE, "pk", "count", builders.legacy_shard_key(key, shard), value
        )
        await transport.call("UpdateItem", params)
    await transport.call(
        "UpdateItem",
        {
            "TableName": TABLE,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": "SET #ns = :n",
            "ExpressionAttributeNames": {"#ns": builders.LEGACY_SHARDS_ATTRIBUTE},
            "ExpressionAttributeValues": {":n": {"N": str(len(values))}},
        },
    )


@pytest.mark.parametrize("shards", [1, 2, 8])
async def test_a_counter_sharded_the_old_way_still_reads_its_total(shards: int) -> None:
    transport = MemoryTransport()
    await transport.create_table(TABLE)
    await write_old_layout(transport, "views", [3, 4, 5])
    async with CounterPool(TABLE, transport=transport, shards=shards) as pool:
        assert await pool.get("views") == 12
        assert await pool.get_many(["views", "other"]) == {"views": 12, "other": 0}
        for _ in range(20):
            await pool.increment("views")
        assert await pool.get("views") == 32
    async with CounterPool(TABLE, transport=transport) as plain:
        assert await plain.get("views") == 32
        assert await plain.get_many(["views"]) == {"views": 32}
    # new writes never go to the old names: those hold exactly what the old pool left
    assert [stored(transport, TABLE, f"views#{n}") for n in (1, 2)] == [4, 5]


def test_shard_names_are_distinct_and_reserved() -> None:
    names = {builders.shard_key(key, n) for key in ("a", "a#1", "#", "a#") for n in range(12)}
    assert len(names) == 4 * 12
    for key in ("a", "a#1", "#"):
        for n in range(1, 12):
            with pytest.raises(ValueError, match="reserved"):
                builders.check_key(builders.shard_key(key, n))
    assert builders.shard_key("views", 0) == "views"


async def test_a_key_too_long_to_shard_is_refused_before_sending() -> None:
    transport = MemoryTransport()
    async with CounterPool(TABLE, transport=transport, shards=4) as pool:
        with pytest.raises(ValueError, match="too long to be sharded"):
            await pool.increment("k" * 2045)
        with pytest.raises(ValueError, match="too long to be sharded"):
            pool.add_nowait("k" * 2045)
    assert transport.operations == []

"""The settlement and naming fixes over HTTP, checked against the embedded server's ledger."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from async_counters import CounterPool
from async_counters.local import Latency, LocalDynamo


@pytest.fixture(scope="module")
def server() -> Iterator[LocalDynamo]:
    with LocalDynamo(backend="memory", latency=Latency(mean=0.002, jitter=0.001)) as server:
        yield server


@pytest.mark.parametrize(
    "options",
    [{}, {"coalesce": True}, {"exactly_once": True}, {"coalesce": True, "exactly_once": True}],
    ids=["plain", "coalesce", "exactly-once", "both"],
)
async def test_cancelled_callers_and_detached_add_up_to_the_ledger(
    server: LocalDynamo, table_name: str, options: dict[str, bool]
) -> None:
    rng = random.Random(7)
    async with CounterPool(table_name, endpoint_url=server.endpoint_url, **options) as pool:
        await pool.ensure_table()
        amounts = [rng.randint(1, 5) for _ in range(1_500)]
        callers = [
            asyncio.create_task(pool.increment(f"k{i % 3}", amount))
            for i, amount in enumerate(amounts)
        ]
        doomed = rng.sample(callers, k=len(callers) * 3 // 10)
        while doomed:
            await asyncio.sleep(rng.choice([0, 0, 0.001]))
            for _ in range(min(len(doomed), rng.randint(0, 30))):
                doomed.pop(rng.randrange(len(doomed))).cancel()
        results = await asyncio.gather(*callers, return_exceptions=True)
        read_back = sum((await pool.get_many([f"k{i}" for i in range(3)])).values())
    received = sum(a for a, r in zip(amounts, results, strict=True) if isinstance(r, int))
    ledger = server.ledger(table_name)
    applied = sum(ledger[f"k{i}"].sum for i in range(3) if f"k{i}" in ledger)
    stats = pool.stats
    assert applied == read_back == stats.acknowledged_amount
    assert applied - received - stats.detached_amount == 0
    assert stats.calls == stats.settled == len(callers)


async def test_a_plain_key_and_a_shard_never_share_an_item(
    server: LocalDynamo, table_name: str
) -> None:
    endpoint = server.endpoint_url
    async with (
        CounterPool(table_name, endpoint_url=endpoint, shards={"views": 2}) as sharded,
        CounterPool(table_name, endpoint_url=endpoint) as plain,
    ):
        await sharded.ensure_table()
        await asyncio.gather(*(sharded.increment("views") for _ in range(10)))
        await plain.increment("views#1", 1_000)
        assert await plain.get("views") == await sharded.get("views") == 10
        assert await sharded.get_many(["views", "views#1"]) == {"views": 10, "views#1": 1_000}
    ledger = server.ledger(table_name)
    assert ledger["views#1"].sum == 1_000
    assert sum(entry.sum for name, entry in ledger.items() if name != "views#1") == 10

"""exactly_once at constant cost: a writer's record lives only while a copy of its write may arrive.

Measured against the embedded server (memory backend): the counter's item after 10,000 writers,
the write units each increment consumed (the server's ConsumedCapacity), and a late duplicate
replayed after its retry succeeded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from async_counters import CounterPool
from async_counters import fences as fences_module
from async_counters.local import LocalDynamo
from async_counters.transport import Outcome, Transport, TransportError

WRITERS = 100  # today 100 writers grow the item to 4 KB; more: benchmarks/exactly_once.py
PARALLEL = 16


class Metered:
    """A transport that asks for ConsumedCapacity on every write and adds it up."""

    def __init__(self, inner: Transport, totals: dict[str, float]) -> None:
        self.inner = inner
        self.totals = totals

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if operation != "UpdateItem":
            return await self.inner.call(operation, params)
        response = await self.inner.call(operation, {**params, "ReturnConsumedCapacity": "TOTAL"})
        self.totals["wcu"] += response.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class HoldFirst(Metered):
    """Loses the answer of the first exactly-once write (keeping its request for a replay)."""

    held: dict[str, Any] | None = None

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if (
            operation == "UpdateItem"
            and self.held is None
            and "#ws" in params.get("ExpressionAttributeNames", {})
        ):
            self.held = dict(params)
            raise TransportError(Outcome.AMBIGUOUS, "RequestTimeout", "answer held past timeout")
        return await super().call(operation, params)


def _item_bytes(item: Mapping[str, Any]) -> int:
    """An upper bound of DynamoDB's item size: names plus values as text."""
    return sum(len(name) + len(str(next(iter(value.values())))) for name, value in item.items())


async def _read_item(pool: CounterPool, table: str, key: str) -> dict[str, Any]:
    transport = pool._sender.transport
    assert transport is not None
    params = {"TableName": table, "Key": {"pk": {"S": key}}, "ConsistentRead": True}
    response = await transport.call("GetItem", params)
    item: dict[str, Any] = response.get("Item") or {}
    return item


def _meter(pool: CounterPool, totals: dict[str, float], kind: type[Metered] = Metered) -> Metered:
    inner = pool._sender.transport
    assert inner is not None
    metered = kind(inner, totals)
    pool._sender.transport = metered
    return metered


async def test_a_hundred_writers_leave_a_small_item_and_pay_at_most_two_units(
    local_server: LocalDynamo, table_name: str
) -> None:
    async with CounterPool(table_name, endpoint_url=local_server.endpoint_url) as setup:
        await setup.ensure_table()
    totals = {"wcu": 0.0}
    next_writer = iter(range(WRITERS))

    async def writers() -> None:
        for _ in next_writer:  # each pool is a new writer, closed before the next
            async with CounterPool(
                table_name, endpoint_url=local_server.endpoint_url, exactly_once=True
            ) as pool:
                _meter(pool, totals)
                await pool.increment("hot", 1)

    await asyncio.gather(*(writers() for _ in range(PARALLEL)))
    async with CounterPool(table_name, endpoint_url=local_server.endpoint_url) as plain:
        item = await _read_item(plain, table_name, "hot")
        assert item["count"] == {"N": str(WRITERS)}
        assert _item_bytes(item) < 1024
        exactly_once_wcu = totals["wcu"]
        totals["wcu"] = 0.0
        _meter(plain, totals)
        for _ in range(100):
            await plain.increment("hot", 1)
        assert totals["wcu"] <= 100  # a plain increment to the key: at most 1 WCU
    assert exactly_once_wcu <= 2.0 * WRITERS
    assert local_server.ledger(table_name)["hot"].sum == WRITERS + 100


async def test_a_busy_writer_overwrites_its_record_and_leaves_none(
    local_server: LocalDynamo, table_name: str
) -> None:
    totals = {"wcu": 0.0}
    async with CounterPool(
        table_name, endpoint_url=local_server.endpoint_url, exactly_once=True
    ) as pool:
        await pool.ensure_table()
        _meter(pool, totals)
        values = await asyncio.gather(*(pool.increment("k", 1) for _ in range(200)))
        assert sorted(values) == list(range(1, 201))
    assert totals["wcu"] <= 2.0 * 200
    async with CounterPool(table_name, endpoint_url=local_server.endpoint_url) as plain:
        item = await _read_item(plain, table_name, "k")
    assert set(item) == {"pk", "count"}


async def test_a_late_duplicate_after_its_retry_is_not_counted_twice(
    local_server: LocalDynamo, table_name: str
) -> None:
    totals = {"wcu": 0.0}
    async with CounterPool(
        table_name, endpoint_url=local_server.endpoint_url, exactly_once=True
    ) as pool:
        await pool.ensure_table()
        holding = _meter(pool, totals, HoldFirst)
        assert isinstance(holding, HoldFirst)
        assert await pool.increment("k", 5) == 5  # the first attempt's answer was lost
        assert await pool.increment("k", 1) == 6  # answered at once, but the record stays
        assert pool._records is not None and pool._records.fenced == 1
        for _ in range(10):
            await asyncio.sleep(0)
        assert holding.held is not None
        with pytest.raises(TransportError) as caught:  # the held copy arrives now
            await holding.inner.call("UpdateItem", holding.held)
        assert caught.value.outcome is Outcome.CONDITION_FAILED
        writer = pool.writer_id
    assert local_server.ledger(table_name)["k"].sum == 6
    async with CounterPool(table_name, endpoint_url=local_server.endpoint_url) as plain:
        item = await _read_item(plain, table_name, "k")
    assert item["count"] == {"N": "6"}
    assert f"~s:{writer}" in item  # a fence outlives the pool: a copy may still be signed-valid


async def test_a_fence_goes_once_the_signature_window_passed(
    local_server: LocalDynamo, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fences_module, "FENCE_LIFETIME", 0.05)
    totals = {"wcu": 0.0}
    async with CounterPool(
        table_name, endpoint_url=local_server.endpoint_url, exactly_once=True
    ) as pool:
        await pool.ensure_table()
        _meter(pool, totals, HoldFirst)
        assert await pool.increment("k", 3) == 3
        records = pool._records
        assert records is not None and records.fenced == 1
        (waiter,) = records._waiters.values()
        await asyncio.wait_for(waiter, 5)  # the fence's timer ends, and its removal starts
        await pool.flush()
        assert records.fenced == 0
        item = await _read_item(pool, table_name, "k")
    assert set(item) == {"pk", "count"}
    assert item["count"] == {"N": "3"}

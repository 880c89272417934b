"""TTL on the memory backend, in virtual time: expired items stay readable and writable until
a sweep after the delay deletes them, and a sweep does bounded work."""

from __future__ import annotations

from typing import Any

import pytest

from async_counters.local.memory import MemoryBackend
from tests.unit.fake_time import VirtualTime
from tests.unit.memory_calls import create_table, send

DELAY = 100.0
START = 1_700_000_000.0


@pytest.fixture
def clock() -> VirtualTime:
    return VirtualTime(START)


@pytest.fixture
async def backend(clock: VirtualTime) -> MemoryBackend:
    backend = MemoryBackend(region="us-east-1", clock=clock, ttl_delay=DELAY)
    await create_table(backend)
    return backend


async def enable(backend: MemoryBackend, enabled: bool = True, name: str = "ttl") -> Any:
    return await send(
        backend,
        "UpdateTimeToLive",
        TableName="tbl",
        TimeToLiveSpecification={"Enabled": enabled, "AttributeName": name},
    )


async def put(backend: MemoryBackend, pk: str, expires: float | str | None) -> None:
    item: dict[str, Any] = {"pk": {"S": pk}, "count": {"N": "1"}}
    if isinstance(expires, str):
        item["ttl"] = {"S": expires}
    elif expires is not None:
        item["ttl"] = {"N": str(int(expires))}
    status, _ = await send(backend, "PutItem", TableName="tbl", Item=item)
    assert status == 200


async def present(backend: MemoryBackend, pk: str) -> bool:
    _, body = await send(backend, "GetItem", TableName="tbl", Key={"pk": {"S": pk}})
    return "Item" in body


async def test_describe_and_update_time_to_live(backend: MemoryBackend) -> None:
    status, body = await send(backend, "DescribeTimeToLive", TableName="tbl")
    assert (status, body) == (200, {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}})
    assert await enable(backend) == (
        200,
        {"TimeToLiveSpecification": {"Enabled": True, "AttributeName": "ttl"}},
    )
    _, body = await send(backend, "DescribeTimeToLive", TableName="tbl")
    assert body == {
        "TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    }
    status, body = await enable(backend)
    assert (status, body["message"]) == (400, "TimeToLive is already enabled")
    status, body = await enable(backend, name="other")
    assert status == 400
    assert body["message"] == (
        "TimeToLive is active on a different AttributeName: current AttributeName is ttl"
    )
    assert (await enable(backend, enabled=False))[0] == 200
    status, body = await enable(backend, enabled=False)
    assert (status, body["message"]) == (400, "TimeToLive is already disabled")
    status, body = await send(backend, "DescribeTimeToLive", TableName="nope")
    assert status == 400
    assert body["__type"].endswith("#ResourceNotFoundException")


async def test_expired_items_linger_until_a_sweep_after_the_delay(
    backend: MemoryBackend, clock: VirtualTime
) -> None:
    await enable(backend)
    await put(backend, "old", START - 1)
    await put(backend, "later", START + 50)
    await put(backend, "never", None)
    await put(backend, "text", "not a number")
    assert backend.sweep() == 0
    assert await present(backend, "old")  # expired, yet read as on DynamoDB
    status, body = await send(
        backend,
        "UpdateItem",
        TableName="tbl",
        Key={"pk": {"S": "old"}},
        UpdateExpression="ADD #c :one",
        ExpressionAttributeNames={"#c": "count"},
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )
    assert (status, body) == (200, {"Attributes": {"count": {"N": "2"}}})
    clock.now = START - 1 + DELAY - 0.5
    assert backend.sweep() == 0
    clock.now = START - 1 + DELAY
    assert backend.sweep() == 1
    assert not await present(backend, "old")
    assert await present(backend, "later")
    clock.now = START + 50 + DELAY
    assert backend.sweep() == 1
    clock.now += 10 * DELAY
    assert backend.sweep() == 0
    assert await present(backend, "never")
    assert await present(backend, "text")


async def test_a_sweep_deletes_at_most_its_limit(
    backend: MemoryBackend, clock: VirtualTime
) -> None:
    await enable(backend)
    for i in range(25):
        await put(backend, f"k{i}", START - 1)
    clock.now += DELAY
    assert backend.sweep(limit=10) == 10
    assert backend.sweep(limit=10) == 10
    assert backend.sweep(limit=10) == 5
    assert backend.tables["tbl"].items == {}


async def test_a_later_expiry_written_since_saves_the_item(
    backend: MemoryBackend, clock: VirtualTime
) -> None:
    await enable(backend)
    await put(backend, "moved", START - 1)
    await put(backend, "moved", START + 1000)  # written again with a later expiry
    await put(backend, "expired", START - 1)
    clock.now += DELAY
    assert backend.sweep() == 1
    assert await present(backend, "moved")
    assert not await present(backend, "expired")


async def test_turning_ttl_off_saves_expired_items(
    backend: MemoryBackend, clock: VirtualTime
) -> None:
    await enable(backend)
    await put(backend, "kept", START - 1)
    clock.now += DELAY
    await enable(backend, enabled=False)
    assert backend.sweep() == 0
    assert await present(backend, "kept")


async def test_items_written_before_ttl_was_enabled_expire_too(
    backend: MemoryBackend, clock: VirtualTime
) -> None:
    await put(backend, "early", START - 1)
    clock.now += DELAY
    assert backend.sweep() == 0  # TTL is off
    await enable(backend)
    assert backend.sweep() == 1
    assert not await present(backend, "early")


async def test_rewriting_the_same_expiry_queues_nothing(backend: MemoryBackend) -> None:
    """One queue entry per item and expiry, not per write."""
    await enable(backend)
    for _ in range(50):
        await put(backend, "window", START + 60)
    assert len(backend.expiring) == 1


async def test_expiries_five_years_past_are_left_alone(
    backend: MemoryBackend, clock: VirtualTime
) -> None:
    await enable(backend)
    await put(backend, "ancient", START - 6 * 365 * 24 * 3600)
    assert backend.sweep() == 0
    assert await present(backend, "ancient")

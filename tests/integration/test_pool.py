"""The pool over HTTP against the embedded DynamoDB: exact totals, floors, errors, lifecycle."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import defaultdict

import pytest
from aiobotocore.session import get_session

from async_counters import (
    CounterFloorError,
    CounterPool,
    DynamoError,
    RetryPolicy,
    TableNotFoundError,
)


async def test_contention_totals_are_exact(pool: CounterPool) -> None:
    """200 tasks at once over 3 keys (the pool's 64 in flight, ~20 per key at the server): the
    values read back equal the sums sent, and each key's returned values are exactly 1..n (every
    increment saw its own serial slot). Contention is the concurrency, not the count: long runs
    are `async-counters bench` (e.g. ``--backend moto -n 20000 --keys 3 -c 200``)."""
    tasks, per_task, keys = 200, 5, ["hot:a", "hot:b", "hot:c"]
    returned: dict[str, list[int]] = defaultdict(list)
    sent: dict[str, int] = defaultdict(int)

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(per_task):
            key = rng.choice(keys)
            sent[key] += 1
            returned[key].append(await pool.increment(key))

    started = time.perf_counter()
    await asyncio.gather(*(worker(seed) for seed in range(tasks)))
    elapsed = time.perf_counter() - started

    assert sum(sent.values()) == tasks * per_task
    assert await pool.get_many(keys) == dict(sent)
    for key in keys:
        assert sorted(returned[key]) == list(range(1, sent[key] + 1))
    stats = pool.stats
    assert stats.acknowledged == tasks * per_task == stats.settled
    print(f"\ncontention: {tasks * per_task} increments, {tasks} tasks, 3 keys, {elapsed:.1f}s")


async def test_amounts_add_up_exactly(pool: CounterPool) -> None:
    rng = random.Random(1)
    amounts = [rng.randint(1, 10**12) for _ in range(300)]
    await asyncio.gather(*(pool.increment("big", amount) for amount in amounts))
    await asyncio.gather(*(pool.decrement("big", amount) for amount in amounts[:100]))
    assert await pool.get("big") == sum(amounts[100:])


async def test_floored_decrements_never_oversell(pool: CounterPool) -> None:
    assert await pool.increment("stock:sku-1", 50) == 50
    results = await asyncio.gather(
        *(pool.decrement("stock:sku-1", 1, floor=0) for _ in range(200)), return_exceptions=True
    )
    granted = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, CounterFloorError)]
    assert len(granted) == 50 and len(refused) == 150
    assert sorted(granted) == list(range(50))  # each sale saw a distinct remaining stock
    assert await pool.get("stock:sku-1") == 0
    assert all(error.current in (0, None) for error in refused)


async def test_floor_on_a_counter_never_written(pool: CounterPool) -> None:
    with pytest.raises(CounterFloorError):
        await pool.decrement("fresh", 1, floor=0)
    assert await pool.decrement("fresh", 3, floor=-3) == -3
    with pytest.raises(CounterFloorError):
        await pool.decrement("fresh", 1, floor=-3)
    assert await pool.get("fresh") == -3


async def test_ensure_table_is_idempotent(pool: CounterPool) -> None:
    await pool.increment("a")
    await pool.ensure_table()
    assert await pool.get("a") == 1


async def test_ensure_table_refuses_an_incompatible_key_schema(
    endpoint_url: str, table_name: str, transport_name: str
) -> None:
    async with CounterPool(
        table_name, endpoint_url=endpoint_url, key_attribute="id", transport=transport_name
    ) as other:
        await other.ensure_table()
    async with CounterPool(table_name, endpoint_url=endpoint_url, transport=transport_name) as pool:
        with pytest.raises(ValueError, match="key schema"):
            await pool.ensure_table()


async def test_missing_table(endpoint_url: str, table_name: str, transport_name: str) -> None:
    async with CounterPool(table_name, endpoint_url=endpoint_url, transport=transport_name) as pool:
        with pytest.raises(TableNotFoundError):
            await pool.increment("a")
        with pytest.raises(TableNotFoundError):
            await pool.get("a")
        with pytest.raises(TableNotFoundError):
            await pool.get_many(["a", "b"])
    assert pool.stats.errors == {"ResourceNotFoundException": 1}


async def test_other_service_errors_carry_code_and_message(
    pool: CounterPool, endpoint_url: str
) -> None:
    async with _client(endpoint_url) as client:
        await client.put_item(
            TableName=pool.table, Item={"pk": {"S": "text"}, "count": {"S": "not a number"}}
        )
    with pytest.raises(DynamoError) as info:
        await pool.increment("text")
    assert info.value.code == "ValidationException"
    assert info.value.message
    assert info.value.status == 400


async def test_custom_attribute_names_and_reserved_words(
    endpoint_url: str, table_name: str, transport_name: str
) -> None:
    async with CounterPool(
        table_name,
        endpoint_url=endpoint_url,
        key_attribute="name",
        value_attribute="COUNT",
        transport=transport_name,
    ) as pool:
        await pool.ensure_table()
        assert await pool.increment("x") == 1
        assert await pool.decrement("x", floor=0) == 0
        assert await pool.get_many(["x", "y"]) == {"x": 0, "y": 0}


def _client(endpoint_url: str):  # type: ignore[no-untyped-def]
    return get_session().create_client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


async def test_an_injected_client_is_left_open(endpoint_url: str, table_name: str) -> None:
    # With a client, the pool sends through it: the botocore transport, whatever the default.
    async with _client(endpoint_url) as client:
        async with CounterPool(table_name, client=client) as pool:
            await pool.ensure_table()
            assert await pool.increment("a") == 1
        # the pool is closed; the client it was given still works
        item = await client.get_item(TableName=table_name, Key={"pk": {"S": "a"}})
        assert item["Item"]["count"] == {"N": "1"}


async def test_an_injected_session_is_used(
    endpoint_url: str, table_name: str, transport_name: str
) -> None:
    session = get_session()
    session.set_credentials("local", "local")
    async with CounterPool(
        table_name,
        session=session,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        transport=transport_name,
    ) as pool:
        await pool.ensure_table()
        assert await pool.increment("a", 2) == 2


async def test_no_credentials_needed_for_a_local_endpoint(
    endpoint_url: str, table_name: str, transport_name: str
) -> None:
    # conftest scrubbed every AWS_* variable and points the config files at nothing.
    async with CounterPool(table_name, endpoint_url=endpoint_url, transport=transport_name) as pool:
        await pool.ensure_table()
        assert await pool.increment("a") == 1


async def test_a_remote_endpoint_without_a_region_is_a_clear_error(transport_name: str) -> None:
    pool = CounterPool(
        "t", endpoint_url="https://dynamodb.example.invalid", transport=transport_name
    )
    with pytest.raises(ValueError, match="region"):
        await pool.open()
    assert pool.closed


@pytest.mark.timing
async def test_nothing_listening_is_a_connect_error_after_the_deadline(
    table_name: str, transport_name: str
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Refused connections fail at once; the deadline leaves room for a slow first attempt.
    policy = RetryPolicy(deadline=1.0, base=0.01, cap=0.05)
    async with CounterPool(
        table_name, endpoint_url=f"http://127.0.0.1:{port}", retry=policy, transport=transport_name
    ) as pool:
        from async_counters import ConnectError

        with pytest.raises(ConnectError) as info:
            await pool.increment("a")
    assert info.value.attempts > 1
    assert pool.stats.unreachable == 1
    assert pool.stats.retries == info.value.attempts - 1

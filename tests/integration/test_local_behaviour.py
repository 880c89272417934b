"""The embedded DynamoDB behaving like DynamoDB under load, over HTTP: throttling, faults,
latency, the ledger, upstream mode and dynalite."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from async_counters.local import Capacity, Faults, Latency, LedgerEntry, LocalDynamo
from tests.integration.local_fixtures import dynalite_package, dynalite_url

__all__ = ["dynalite_package", "dynalite_url"]  # fixtures, imported for pytest


CLI = (sys.executable, "-m", "async_counters.local")


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def client(endpoint_url: str, **config: Any) -> Any:
    return get_session().create_client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}, **{"max_pool_connections": 64, **config}),
    )


async def create_table(c: Any, name: str) -> None:
    await c.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    waiter = c.get_waiter("table_exists")
    await waiter.wait(TableName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 200})


async def add(c: Any, table: str, key: str, amount: int = 1, **extra: Any) -> Any:
    return await c.update_item(
        TableName=table,
        Key={"pk": {"S": key}},
        UpdateExpression="ADD #v :n",
        ExpressionAttributeNames={"#v": "count"},
        ExpressionAttributeValues={":n": {"N": str(amount)}, **extra.pop("values", {})},
        ReturnValues="UPDATED_NEW",
        **extra,
    )


async def read(c: Any, table: str, key: str) -> int:
    item = (await c.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)).get(
        "Item"
    )
    return 0 if item is None else int(item["count"]["N"])


def code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


@pytest.fixture
async def table() -> str:
    return unique()


# Throttling.


async def test_throttles_a_hot_key_like_dynamodb(table: str) -> None:
    # 10 units of burst, refilling one unit per 100 s: the 11th write is refused.
    capacity = Capacity(partition_write_units=0.01, burst_seconds=1000)
    async with LocalDynamo(backend="memory", capacity=capacity) as server:
        async with client(server.endpoint_url) as c:
            await create_table(c, table)
            for _ in range(10):
                await add(c, table, "hot")
            with pytest.raises(ClientError) as raised:
                await add(c, table, "hot")
            error = raised.value.response
            assert code(raised.value) == "ProvisionedThroughputExceededException"
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert error["ThrottlingReasons"] == [
                {
                    "reason": "TableWriteKeyRangeThroughputExceeded",
                    "resource": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}",
                }
            ]
            await add(c, table, "cold")  # another key has its own bucket
            assert await read(c, table, "hot") == 10  # reads have their own bucket
        ledger = server.ledger(table)
        assert ledger["hot"].count == 10 and ledger["hot"].sum == 10
        assert server.stats()["throttled"] == 1


async def test_the_throttling_answer_is_exact_on_the_wire(table: str) -> None:
    capacity = Capacity(partition_write_units=0.01, burst_seconds=200)  # two writes
    async with LocalDynamo(backend="memory", capacity=capacity) as server:
        async with client(server.endpoint_url) as c:
            await create_table(c, table)
        payload = {
            "TableName": table,
            "Key": {"pk": {"S": "k"}},
            "UpdateExpression": "ADD #v :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":n": {"N": "1"}},
        }
        headers = {
            "X-Amz-Target": "DynamoDB_20120810.UpdateItem",
            "Content-Type": "application/x-amz-json-1.0",
        }
        async with aiohttp.ClientSession() as session:
            answers = []
            for _ in range(3):
                async with session.post(
                    server.endpoint_url, data=json.dumps(payload), headers=headers
                ) as response:
                    body = await response.read()
                    assert response.headers["x-amz-crc32"] == str(zlib.crc32(body))
                    answers.append((response.status, json.loads(body)))
        assert [status for status, _ in answers] == [200, 200, 400]
        throttled = answers[2][1]
        assert throttled["__type"] == (
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
        )
        assert throttled["message"]
        assert throttled["ThrottlingReasons"][0]["reason"] == "TableWriteKeyRangeThroughputExceeded"


async def test_the_table_limit_throttles_across_keys(table: str) -> None:
    capacity = Capacity(table_write_units=0.01, burst_seconds=500)  # five writes
    async with (
        LocalDynamo(backend="memory", capacity=capacity) as server,
        client(server.endpoint_url) as c,
    ):
        await create_table(c, table)
        for i in range(5):
            await add(c, table, f"k{i}")
        with pytest.raises(ClientError) as raised:
            await add(c, table, "k-next")
        reasons = [r["reason"] for r in raised.value.response["ThrottlingReasons"]]
        assert reasons == ["TableWriteProvisionedThroughputExceeded"]


@pytest.mark.parametrize("backend", ["moto", "memory"])
async def test_puts_are_throttled_by_their_partition_key(backend: str, table: str) -> None:
    capacity = Capacity(partition_write_units=0.01, burst_seconds=200)  # two writes per key
    async with (
        LocalDynamo(backend=backend, capacity=capacity) as server,
        client(server.endpoint_url) as c,
    ):
        await create_table(c, table)

        async def put(key: str) -> None:
            # The key is not the item's first attribute: the schema says which one it is.
            item = {"note": {"S": "x"}, "pk": {"S": key}}
            await c.put_item(TableName=table, Item=item)

        await put("a")
        await put("a")
        with pytest.raises(ClientError) as raised:
            await put("a")
        assert code(raised.value) == "ProvisionedThroughputExceededException"
        await put("b")


async def test_batch_get_returns_throttled_keys_as_unprocessed(table: str) -> None:
    capacity = Capacity(partition_read_units=0.01, burst_seconds=200)  # two reads per key
    async with LocalDynamo(backend="memory", capacity=capacity) as server:
        async with client(server.endpoint_url) as c:
            await create_table(c, table)
            await add(c, table, "a", 1)
            await add(c, table, "b", 2)
            await read(c, table, "a")
            await read(c, table, "a")  # "a" has no read capacity left
            keys = [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}]
            result = await c.batch_get_item(
                RequestItems={table: {"Keys": keys, "ConsistentRead": True}}
            )
            assert result["Responses"][table] == [{"pk": {"S": "b"}, "count": {"N": "2"}}]
            assert result["UnprocessedKeys"][table]["Keys"] == [{"pk": {"S": "a"}}]
            assert result["UnprocessedKeys"][table]["ConsistentRead"] is True
            await read(c, table, "b")  # now "b" is spent too: the whole batch is throttled
            with pytest.raises(ClientError) as raised:
                await c.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
            assert code(raised.value) == "ProvisionedThroughputExceededException"
        assert server.stats()["unprocessed_keys"] == 1


#: Writers and writes each in `test_throttled_writes_never_reach_the_ledger`.
WRITERS, WRITES = 64, 1


async def _served_rate(backend: str) -> float:
    """UpdateItem/s that this backend, uncapped, serves ``WRITERS`` writers here and now."""
    table = unique()
    async with LocalDynamo(backend=backend) as server, client(server.endpoint_url) as c:
        await create_table(c, table)
        await add(c, table, "warm")  # the first request sets up what the others reuse
        started = time.perf_counter()
        await asyncio.gather(*(add(c, table, "hot") for _ in range(WRITERS) for _ in range(WRITES)))
        return WRITERS * WRITES / (time.perf_counter() - started)


@pytest.mark.timing
@pytest.mark.parametrize("backend", ["moto", "memory"])
async def test_throttled_writes_never_reach_the_ledger(backend: str, table: str) -> None:
    """Many writers retrying through throttling: the value, the ledger and the successes agree.

    The cap is a quarter of what the same writers got from the uncapped backend a moment
    before, here: they throttle on any machine, and still would if it became 4x slower."""
    served = await _served_rate(backend)
    capacity = Capacity(partition_write_units=served / 4, burst_seconds=0.05)
    async with LocalDynamo(backend=backend, capacity=capacity) as server:
        async with client(server.endpoint_url) as c:
            await create_table(c, table)
            acknowledged = 0

            async def writer() -> None:
                nonlocal acknowledged
                for _ in range(WRITES):
                    for _attempt in range(2000):
                        try:
                            await add(c, table, "hot")
                        except ClientError as exc:
                            assert code(exc) == "ProvisionedThroughputExceededException"
                            await asyncio.sleep(random.uniform(0.005, 0.02))
                        else:
                            acknowledged += 1
                            break

            await asyncio.gather(*(writer() for _ in range(WRITERS)))
            value = await read(c, table, "hot")
        throttled = server.stats()["throttled"]
        print(f"\n{backend}: {served:.0f}/s uncapped, capped at a quarter: {throttled} throttled")
        assert throttled > 0, f"served {served:.0f}/s uncapped"
        assert value == acknowledged == WRITERS * WRITES
        assert server.ledger(table)["hot"] == LedgerEntry(sum=value, count=value)


# Faults.


async def one_update(server: LocalDynamo, table: str, faults: Faults, key: str = "k") -> str:
    async with client(server.endpoint_url, read_timeout=1.5) as c:
        server.set_faults(faults)
        try:
            await add(c, table, key, 3)
        except Exception as exc:
            outcome = type(exc).__name__ if not isinstance(exc, ClientError) else code(exc)
        else:
            outcome = "ok"
        server.set_faults(Faults())
        return outcome


@pytest.mark.parametrize(
    ("kind", "outcome", "applied"),
    [
        ("error_before_apply", "InternalServerError", False),
        ("error_after_apply", "InternalServerError", True),
        ("drop_after_apply", "ConnectionClosedError", True),
        ("delay_after_apply", "ReadTimeoutError", True),
    ],
)
async def test_each_fault_does_what_it_says_to_the_ledger(
    kind: str, outcome: str, applied: bool, table: str
) -> None:
    async with LocalDynamo(backend="memory") as server:
        async with client(server.endpoint_url) as c:
            await create_table(c, table)
        faults = Faults(delay=3.0, **{kind: 1.0})  # type: ignore[arg-type]
        assert await one_update(server, table, faults) == outcome
        async with client(server.endpoint_url) as c:
            assert await read(c, table, "k") == (3 if applied else 0)
        ledger = server.ledger(table)
        assert (ledger["k"].sum, ledger["k"].count) == (3, 1) if applied else ledger == {}
        assert server.stats()[kind] == 1


async def fault_sequence(seed: int, table: str) -> list[str]:
    faults = Faults(error_before_apply=0.3, error_after_apply=0.2, seed=seed)
    async with (
        LocalDynamo(backend="memory", faults=faults) as server,
        client(server.endpoint_url) as c,
    ):
        await create_table(c, table)
        outcomes = []
        for _ in range(40):
            try:
                await add(c, table, "k")
                outcomes.append("ok")
            except ClientError as exc:
                outcomes.append(code(exc))
        return outcomes


async def test_the_same_seed_gives_the_same_faults_over_http(table: str) -> None:
    first = await fault_sequence(11, table)
    assert first == await fault_sequence(11, table)
    assert first != await fault_sequence(12, table)
    assert {"ok", "InternalServerError"} == set(first)


async def test_faults_change_while_the_server_runs(table: str) -> None:
    async with LocalDynamo(backend="memory") as server:
        url = server.endpoint_url
        async with client(url) as c, aiohttp.ClientSession() as admin:
            await create_table(c, table)
            await add(c, table, "k")
            async with admin.put(f"{url}/_local/faults", json={"error_before_apply": 1}) as r:
                assert r.status == 200
                assert (await r.json())["error_before_apply"] == 1
            assert server.faults.error_before_apply == 1
            with pytest.raises(ClientError):
                await add(c, table, "k")
            server.set_faults(Faults())
            await add(c, table, "k")
            async with admin.get(f"{url}/_local/faults") as r:
                assert (await r.json())["error_before_apply"] == 0
            async with admin.put(f"{url}/_local/faults", json={"nonsense": 1}) as r:
                assert r.status == 400
        assert server.ledger(table)["k"].count == 2


async def test_latency_is_added_to_every_request(table: str) -> None:
    latency = Latency(mean=0.05, jitter=0.01)
    async with (
        LocalDynamo(backend="memory", latency=latency) as server,
        client(server.endpoint_url) as c,
    ):
        await create_table(c, table)
        started = time.perf_counter()
        await asyncio.gather(*(add(c, table, f"k{i}") for i in range(20)))
        elapsed = time.perf_counter() - started
    # Each request waited at least 40 ms; they waited side by side, not in a queue.
    assert elapsed >= 0.04
    assert server.stats()["succeeded"] >= 21  # the table, then 20 writes


# The ledger, from Python, the admin endpoint and the CLI.


async def test_the_ledger_is_readable_everywhere(table: str) -> None:
    async with LocalDynamo(backend="memory") as server:
        async with client(server.endpoint_url) as c:
            await create_table(c, table)
            await add(c, table, "a", 5)
            await add(c, table, "a", -2)
            await c.update_item(
                TableName=table,
                Key={"pk": {"S": "b"}},
                UpdateExpression="SET #v = if_not_exists(#v, :z) + :n",
                ExpressionAttributeNames={"#v": "count"},
                ExpressionAttributeValues={":z": {"N": "0"}, ":n": {"N": "7"}},
            )
            with pytest.raises(ClientError):  # refused: not in the ledger
                await add(
                    c,
                    table,
                    "a",
                    -10,
                    ConditionExpression="#v >= :ten",
                    values={":ten": {"N": "10"}},
                )
        assert {k: (e.sum, e.count) for k, e in server.ledger(table).items()} == {
            "a": (3, 2),
            "b": (7, 1),
        }
        assert table in server.ledger_tables()
        expected = {"a": {"sum": 3, "count": 2}, "b": {"sum": 7, "count": 1}}
        url = f"{server.endpoint_url}/_local/ledger?table={table}"
        async with aiohttp.ClientSession() as admin, admin.get(url) as r:
            assert await r.json() == {"tables": {table: expected}}
        printed = await asyncio.to_thread(
            subprocess.run,
            [*CLI, "ledger", "--endpoint-url", server.endpoint_url, table, "--reset"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert printed.returncode == 0, printed.stderr
        assert json.loads(printed.stdout) == {"tables": {table: expected}}
        assert server.ledger(table) == {}


# Upstream mode and dynalite.


async def test_upstream_mode_puts_the_same_front_before_another_endpoint(table: str) -> None:
    capacity = Capacity(partition_write_units=0.01, burst_seconds=500)  # five writes per key
    async with LocalDynamo(backend="memory") as inner:
        async with LocalDynamo(backend=inner.endpoint_url, capacity=capacity) as outer:
            async with client(outer.endpoint_url) as c:
                await create_table(c, table)
                for _ in range(5):
                    await add(c, table, "k", 2)
                with pytest.raises(ClientError) as raised:
                    await add(c, table, "k", 2)
                assert code(raised.value) == "ProvisionedThroughputExceededException"
                assert await read(c, table, "k") == 10
            outcome = await one_update(outer, table, Faults(error_after_apply=1.0), key="k2")
            assert outcome == "InternalServerError"
        for ledger in (outer.ledger(table), inner.ledger(table)):  # the upstream applied it all
            assert {k: (e.sum, e.count) for k, e in ledger.items()} == {"k": (10, 5), "k2": (3, 1)}


async def counters_are_exact(endpoint_url: str, table: str) -> None:
    async with client(endpoint_url) as c:
        await create_table(c, table)
        await asyncio.gather(*(add(c, table, "hot", 1 + i % 3) for i in range(300)))
        assert await read(c, table, "hot") == sum(1 + i % 3 for i in range(300))
        await add(c, table, "stock", 50)
        sold = 0

        async def buy() -> None:
            nonlocal sold
            try:
                await add(
                    c,
                    table,
                    "stock",
                    -1,
                    ConditionExpression="#v >= :one",
                    values={":one": {"N": "1"}},
                )
                sold += 1
            except ClientError as exc:
                assert code(exc) == "ConditionalCheckFailedException"

        await asyncio.gather(*(buy() for _ in range(200)))
        assert sold == 50
        assert await read(c, table, "stock") == 0


async def test_dynalite_behind_the_front_is_exact(dynalite_url: str, table: str) -> None:
    async with LocalDynamo(backend=dynalite_url) as server:
        await counters_are_exact(server.endpoint_url, table)
    assert server.ledger(table)["hot"].count == 300
    assert server.ledger(table)["stock"].sum == 0


async def test_the_dynalite_backend_starts_its_own_dynalite(dynalite_package: Any) -> None:
    table = unique()
    async with LocalDynamo(backend="dynalite") as server:
        await counters_are_exact(server.endpoint_url, table)


@pytest.fixture
async def fast_server() -> AsyncIterator[LocalDynamo]:
    async with LocalDynamo(backend="memory") as server:
        yield server


async def test_the_fast_backend_is_exact_under_contention(
    fast_server: LocalDynamo, table: str
) -> None:
    await counters_are_exact(fast_server.endpoint_url, table)

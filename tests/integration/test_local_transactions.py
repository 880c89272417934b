"""TransactWriteItems and TTL on the embedded server over HTTP, through aiobotocore: a retry
after an ambiguous fault, a retry while the first answer is held, throttled transactions as
botocore sees them, and TTL deleting in the background."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from async_counters.local import Capacity, Faults, LedgerEntry, LocalDynamo

#: Generous: a condition awaited on a loaded machine.
DEADLINE = 60.0


def client(endpoint_url: str, **config: Any) -> Any:
    return get_session().create_client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


async def create_table(c: Any, name: str) -> None:
    await c.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def adds(table: str, *keys: str, amount: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "Update": {
                "TableName": table,
                "Key": {"pk": {"S": key}},
                "UpdateExpression": "ADD #v :n",
                "ExpressionAttributeNames": {"#v": "count"},
                "ExpressionAttributeValues": {":n": {"N": str(amount)}},
            }
        }
        for key in keys
    ]


async def read(c: Any, table: str, key: str) -> int | None:
    item = (await c.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)).get(
        "Item"
    )
    return None if item is None else int(item["count"]["N"])


@pytest.fixture
def table() -> str:
    return f"tx-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("fault", ["error_after_apply", "drop_after_apply"])
async def test_a_retry_with_the_token_after_an_ambiguous_fault_counts_once(
    fault: str, table: str
) -> None:
    async with LocalDynamo(backend="memory") as server:
        async with client(server.endpoint_url) as c:
            await create_table(c, table)
            server.set_faults(Faults(**{fault: 1.0}))
            items = adds(table, "a", "b", amount=3)
            with pytest.raises((ClientError, ConnectionClosedError)):
                await c.transact_write_items(TransactItems=items, ClientRequestToken="tok-1")
            server.set_faults(Faults())
            for _ in range(2):
                await c.transact_write_items(TransactItems=items, ClientRequestToken="tok-1")
            assert (await read(c, table, "a"), await read(c, table, "b")) == (3, 3)
        assert server.ledger(table) == {
            "a": LedgerEntry(sum=3, count=1),
            "b": LedgerEntry(sum=3, count=1),
        }
        assert server.stats()["transactions_replayed"] == 2


async def test_a_retry_while_the_answer_is_held_is_told_it_is_in_progress(table: str) -> None:
    # Held far past the client's timeout, released when the server stops: no race to win.
    async with LocalDynamo(backend="memory") as server:
        async with client(server.endpoint_url, read_timeout=1.0) as c:
            await create_table(c, table)
            server.set_faults(Faults(delay_after_apply=1.0, delay=600))
            items = adds(table, "a")
            with pytest.raises(ReadTimeoutError):
                await c.transact_write_items(TransactItems=items, ClientRequestToken="tok-1")
            server.set_faults(Faults())
            with pytest.raises(ClientError) as raised:
                await c.transact_write_items(TransactItems=items, ClientRequestToken="tok-1")
            assert raised.value.response["Error"]["Code"] == "TransactionInProgressException"
            assert await read(c, table, "a") == 1
        assert server.ledger(table) == {"a": LedgerEntry(sum=1, count=1)}


async def test_botocore_reads_the_reasons_of_a_throttled_transaction(table: str) -> None:
    # 3 units per key, refilled at one unit per 10 s: no refill while the test runs.
    capacity = Capacity(partition_write_units=0.1, burst_seconds=30)
    async with LocalDynamo(backend="memory", capacity=capacity) as server:
        async with client(server.endpoint_url) as c:
            await create_table(c, table)
            answer = await c.transact_write_items(
                TransactItems=adds(table, "hot"), ReturnConsumedCapacity="TOTAL"
            )
            assert answer["ConsumedCapacity"] == [
                {"TableName": table, "CapacityUnits": 2.0, "WriteCapacityUnits": 2.0}
            ]
            # "hot" has 1 unit left: a transaction on it needs 2, and is cancelled whole.
            with pytest.raises(ClientError) as raised:
                await c.transact_write_items(TransactItems=adds(table, "cold", "hot"))
            error = raised.value.response
            assert error["Error"]["Code"] == "TransactionCanceledException"
            assert [r["Code"] for r in error["CancellationReasons"]] == ["None", "ThrottlingError"]
            assert await read(c, table, "cold") is None
        assert server.ledger(table) == {"hot": LedgerEntry(sum=1, count=1)}


async def test_expired_items_stay_readable_then_are_deleted_in_the_background(
    table: str,
) -> None:
    async def ttl_item(c: Any, key: str) -> None:
        await c.put_item(
            TableName=table,
            Item={"pk": {"S": key}, "count": {"N": "1"}, "ttl": {"N": str(int(time.time()) - 1)}},
        )

    async with (
        LocalDynamo(backend="memory") as lingering,
        LocalDynamo(backend="memory", ttl_delay=0) as prompt,
    ):
        for server in (lingering, prompt):
            async with client(server.endpoint_url) as c:
                await create_table(c, table)
                await c.update_time_to_live(
                    TableName=table,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
                )
                described = await c.describe_time_to_live(TableName=table)
                assert described["TimeToLiveDescription"] == {
                    "TimeToLiveStatus": "ENABLED",
                    "AttributeName": "ttl",
                }
                await ttl_item(c, "expired")
        async with client(prompt.endpoint_url) as c:
            deadline = time.monotonic() + DEADLINE
            while await read(c, table, "expired") is not None:
                assert time.monotonic() < deadline, "the sweep never deleted the expired item"
                await asyncio.sleep(0.2)
        async with client(lingering.endpoint_url) as c:
            # Expired, and (with the default delay of minutes) still there, as on DynamoDB.
            assert await read(c, table, "expired") == 1


async def test_a_test_can_sweep_expired_items_away_when_it_chooses(table: str) -> None:
    async with (
        LocalDynamo(backend="memory", ttl_delay=0) as server,
        client(server.endpoint_url) as c,
    ):
        await create_table(c, table)
        await c.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
        )
        for key in ("a", "b"):
            await c.put_item(
                TableName=table,
                Item={"pk": {"S": key}, "count": {"N": "1"}, "ttl": {"N": "1700000000"}},
            )
        await c.put_item(TableName=table, Item={"pk": {"S": "kept"}, "count": {"N": "1"}})
        # The background sweep may have taken some already; after this one, none is left.
        swept = await asyncio.to_thread(server.sweep_ttl)
        url = f"{server.endpoint_url}/_local/ttl/sweep"
        async with aiohttp.ClientSession() as http, http.post(url) as response:
            assert response.status == 200
            assert (await response.json())["deleted"] == 0
        assert swept <= 2
        assert await read(c, table, "a") is None
        assert await read(c, table, "b") is None
        assert await read(c, table, "kept") == 1
    async with LocalDynamo(backend="moto") as server:
        with pytest.raises(RuntimeError, match="never deletes"):
            await asyncio.to_thread(server.sweep_ttl)

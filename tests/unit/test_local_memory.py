"""The memory backend called directly (no HTTP): what the differential corpus cannot see."""

from __future__ import annotations

import json
from typing import Any

import pytest

from async_counters.local.backend import Call
from async_counters.local.memory import MemoryBackend, read_units, write_units
from tests.unit.memory_calls import create_table, send


@pytest.fixture
async def backend() -> MemoryBackend:
    backend = MemoryBackend(region="eu-west-1")
    await create_table(backend)
    return backend


@pytest.mark.parametrize(
    ("size", "units"), [(0, 1), (1, 1), (1024, 1), (1025, 2), (4096, 4), (400 * 1024, 400)]
)
def test_write_units(size: int, units: int) -> None:
    assert write_units(size) == units


@pytest.mark.parametrize(
    ("size", "consistent", "units"),
    [(0, True, 1.0), (0, False, 0.5), (4096, True, 1.0), (4097, True, 2.0), (4097, False, 1.0)],
)
def test_read_units(size: int, consistent: bool, units: float) -> None:
    assert read_units(size, consistent=consistent) == units


async def test_consumed_capacity_is_reported_when_asked(backend: MemoryBackend) -> None:
    big = "x" * 1500  # with its name and key, the item is past 1 KB: 2 write units
    status, body = await send(
        backend,
        "UpdateItem",
        TableName="tbl",
        Key={"pk": {"S": "k"}},
        UpdateExpression="SET #b = :b",
        ExpressionAttributeNames={"#b": "blob"},
        ExpressionAttributeValues={":b": {"S": big}},
        ReturnConsumedCapacity="TOTAL",
    )
    assert (status, body) == (200, {"ConsumedCapacity": {"TableName": "tbl", "CapacityUnits": 2.0}})
    _, body = await send(
        backend, "GetItem", TableName="tbl", Key={"pk": {"S": "k"}}, ReturnConsumedCapacity="TOTAL"
    )
    assert body["ConsumedCapacity"] == {"TableName": "tbl", "CapacityUnits": 0.5}
    _, body = await send(
        backend,
        "BatchGetItem",
        RequestItems={
            "tbl": {"Keys": [{"pk": {"S": "k"}}, {"pk": {"S": "none"}}], "ConsistentRead": True}
        },
        ReturnConsumedCapacity="TOTAL",
    )
    assert body["ConsumedCapacity"] == [{"TableName": "tbl", "CapacityUnits": 2.0}]


async def test_consumed_capacity_of_every_item_operation(backend: MemoryBackend) -> None:
    """TOTAL and INDEXES as DynamoDB reports them: 1 WCU per started KB of the larger of the
    item before and after, 1 RCU per started 4 KB (half when eventually consistent)."""
    key = {"pk": {"S": "k"}}
    item = {"pk": {"S": "k"}, "blob": {"S": "x" * 5000}}  # 5 KB: 5 WCU, 2 RCU
    _, body = await send(
        backend, "PutItem", TableName="tbl", Item=item, ReturnConsumedCapacity="INDEXES"
    )
    assert body["ConsumedCapacity"] == {
        "TableName": "tbl",
        "CapacityUnits": 5.0,
        "Table": {"CapacityUnits": 5.0},
    }
    _, body = await send(
        backend,
        "UpdateItem",
        TableName="tbl",
        Key=key,
        UpdateExpression="REMOVE #b",
        ExpressionAttributeNames={"#b": "blob"},
        ReturnConsumedCapacity="TOTAL",
    )
    assert body["ConsumedCapacity"] == {"TableName": "tbl", "CapacityUnits": 5.0}  # the before
    await send(backend, "PutItem", TableName="tbl", Item=item)
    for consistent, units in ((True, 2.0), (False, 1.0)):
        _, body = await send(
            backend,
            "GetItem",
            TableName="tbl",
            Key=key,
            ConsistentRead=consistent,
            ReturnConsumedCapacity="INDEXES",
        )
        assert body["ConsumedCapacity"] == {
            "TableName": "tbl",
            "CapacityUnits": units,
            "Table": {"CapacityUnits": units},
        }
    _, body = await send(
        backend,
        "BatchGetItem",
        RequestItems={"tbl": {"Keys": [key, {"pk": {"S": "none"}}]}},
        ReturnConsumedCapacity="INDEXES",
    )
    assert body["ConsumedCapacity"] == [
        {"TableName": "tbl", "CapacityUnits": 1.5, "Table": {"CapacityUnits": 1.5}}
    ]
    _, body = await send(
        backend, "DeleteItem", TableName="tbl", Key=key, ReturnConsumedCapacity="TOTAL"
    )
    assert body["ConsumedCapacity"] == {"TableName": "tbl", "CapacityUnits": 5.0}
    _, body = await send(
        backend, "DeleteItem", TableName="tbl", Key=key, ReturnConsumedCapacity="TOTAL"
    )
    assert body["ConsumedCapacity"] == {"TableName": "tbl", "CapacityUnits": 1.0}  # nothing there
    _, body = await send(backend, "GetItem", TableName="tbl", Key=key)
    assert "ConsumedCapacity" not in body


async def test_replies_carry_each_items_units(backend: MemoryBackend) -> None:
    """What the front charges its capacity model: the numbers ConsumedCapacity reports."""
    await send(backend, "PutItem", TableName="tbl", Item={"pk": {"S": "k"}, "b": {"S": "x" * 5000}})
    payload = {
        "RequestItems": {
            "tbl": {"Keys": [{"pk": {"S": "k"}}, {"pk": {"S": "none"}}], "ConsistentRead": True}
        }
    }
    reply = await backend.handle(Call("BatchGetItem", json.dumps(payload).encode(), {}))
    assert reply.units == (2.0, 1.0)
    payload = {"TableName": "tbl", "Key": {"pk": {"S": "k"}}}
    reply = await backend.handle(Call("DeleteItem", json.dumps(payload).encode(), {}))
    assert reply.units == (5.0,)


async def test_numbers_are_canonical_and_bounded(backend: MemoryBackend) -> None:
    async def add(amount: str) -> tuple[int, Any]:
        return await send(
            backend,
            "UpdateItem",
            TableName="tbl",
            Key={"pk": {"S": "n"}},
            UpdateExpression="ADD #v :n",
            ExpressionAttributeNames={"#v": "count"},
            ExpressionAttributeValues={":n": {"N": amount}},
            ReturnValues="UPDATED_NEW",
        )

    assert await add("1.50") == (200, {"Attributes": {"count": {"N": "1.5"}}})
    assert await add("-1.5") == (200, {"Attributes": {"count": {"N": "0"}}})
    assert await add("9" * 38) == (200, {"Attributes": {"count": {"N": "9" * 38}}})
    status, body = await add("0.1")  # 38 nines and a tenth: 39 significant digits
    assert status == 400
    assert "38 significant digits" in body["message"]


async def test_an_unknown_operation_names_the_alternative(backend: MemoryBackend) -> None:
    status, body = await send(backend, "Scan", TableName="tbl")
    assert status == 400
    assert body["__type"].endswith("#UnknownOperationException")
    assert "moto backend" in body["message"]


async def test_a_body_that_is_not_json(backend: MemoryBackend) -> None:
    reply = await backend.handle(Call("GetItem", b"{not json", {}))
    assert reply.status == 400
    assert json.loads(reply.body)["__type"].endswith("#SerializationException")


async def test_arns_name_the_region(backend: MemoryBackend) -> None:
    _, body = await send(backend, "DescribeTable", TableName="tbl")
    assert body["Table"]["TableArn"] == "arn:aws:dynamodb:eu-west-1:123456789012:table/tbl"
    assert body["Table"]["BillingModeSummary"] == {"BillingMode": "PAY_PER_REQUEST"}
    assert backend.item_size("tbl", {"pk": {"S": "none"}}) is None

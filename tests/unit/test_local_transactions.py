"""TransactWriteItems on the memory backend, called directly: all or nothing, the reasons of a
cancellation, ClientRequestToken idempotency in virtual time, and capacity as DynamoDB bills it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from async_counters.local.backend import Call
from async_counters.local.memory import MemoryBackend
from async_counters.local.tokens import TokenMemory, TokenMismatch, digest
from tests.unit.fake_time import VirtualTime
from tests.unit.memory_calls import create_table, send

START = 1_700_000_000.0


@pytest.fixture
def clock() -> VirtualTime:
    return VirtualTime(START)


@pytest.fixture
async def backend(clock: VirtualTime) -> MemoryBackend:
    backend = MemoryBackend(region="us-east-1", clock=clock)
    for name in ("tbl", "other"):
        await create_table(backend, name)
    return backend


def add(pk: str, amount: int, table: str = "tbl", **extra: Any) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": "ADD #v :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":n": {"N": str(amount)}},
            **extra,
        }
    }


def floor(pk: str, amount: int) -> dict[str, Any]:
    """A decrement that must not take the count below zero."""
    return add(
        pk,
        -amount,
        ConditionExpression="#v >= :n0",
        ExpressionAttributeValues={":n": {"N": str(-amount)}, ":n0": {"N": str(amount)}},
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )


async def count(backend: MemoryBackend, pk: str, table: str = "tbl") -> int | None:
    _, body = await send(backend, "GetItem", TableName=table, Key={"pk": {"S": pk}})
    return int(body["Item"]["count"]["N"]) if "Item" in body else None


async def test_all_actions_apply_together(backend: MemoryBackend) -> None:
    await send(backend, "PutItem", TableName="tbl", Item={"pk": {"S": "gone"}})
    status, body = await send(
        backend,
        "TransactWriteItems",
        TransactItems=[
            add("a", 5),
            add("b", 2, table="other"),
            {"Put": {"TableName": "tbl", "Item": {"pk": {"S": "p"}, "count": {"N": "9"}}}},
            {"Delete": {"TableName": "tbl", "Key": {"pk": {"S": "gone"}}}},
            {
                "ConditionCheck": {
                    "TableName": "other",
                    "Key": {"pk": {"S": "absent"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ],
    )
    assert (status, body) == (200, {})
    assert await count(backend, "a") == 5
    assert await count(backend, "b", table="other") == 2
    assert await count(backend, "p") == 9
    _, gone = await send(backend, "GetItem", TableName="tbl", Key={"pk": {"S": "gone"}})
    assert gone == {}
    assert await count(backend, "absent", table="other") is None  # a check writes nothing


async def test_one_failed_condition_cancels_everything(backend: MemoryBackend) -> None:
    await send(backend, "TransactWriteItems", TransactItems=[add("stock", 1)])
    status, body = await send(
        backend, "TransactWriteItems", TransactItems=[add("sold", 2), floor("stock", 2)]
    )
    assert status == 400
    assert body == {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": "Transaction cancelled, please refer cancellation reasons for specific "
        "reasons [None, ConditionalCheckFailed]",
        "CancellationReasons": [
            {"Code": "None"},
            {
                "Code": "ConditionalCheckFailed",
                "Message": "The conditional request failed",
                "Item": {"pk": {"S": "stock"}, "count": {"N": "1"}},
            },
        ],
    }
    assert await count(backend, "sold") is None
    assert await count(backend, "stock") == 1


async def test_an_update_dynamodb_refuses_while_applying_cancels_with_a_validation_error(
    backend: MemoryBackend,
) -> None:
    await send(backend, "PutItem", TableName="tbl", Item={"pk": {"S": "s"}, "count": {"S": "x"}})
    status, body = await send(
        backend, "TransactWriteItems", TransactItems=[add("a", 1), add("s", 1)]
    )
    assert status == 400
    reasons = body["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ValidationError"]
    assert reasons[1]["Message"] == "An operand in the update expression has an incorrect data type"
    assert await count(backend, "a") is None


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "Member must have length greater than or equal to 1"),
        (
            [add(f"k{i}", 1) for i in range(101)],
            "Member must have length less than or equal to 100",
        ),
        ([add("a", 1), add("a", 2)], "cannot include multiple operations on one item"),
        (
            [
                add("a", 1),
                {
                    "ConditionCheck": {
                        "TableName": "tbl",
                        "Key": {"pk": {"S": "a"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ],
            "cannot include multiple operations on one item",
        ),
        ([{"Put": {}, "Delete": {}}], "can only contain one of Check, Put, Update or Delete"),
        ([{"Get": {}}], "can only contain one of Check, Put, Update or Delete"),
        (
            [{"ConditionCheck": {"TableName": "tbl", "Key": {"pk": {"S": "a"}}}}],
            "at 'conditionExpression' failed to satisfy constraint: Member must not be null",
        ),
        (
            [{"Update": {"TableName": "tbl", "Key": {"pk": {"S": "a"}}}}],
            "at 'updateExpression' failed to satisfy constraint: Member must not be null",
        ),
        (
            [add("a", 1) | {"Update": {**add("a", 1)["Update"], "UpdateExpression": "ADD"}}],
            "Invalid UpdateExpression",
        ),
    ],
)
async def test_invalid_transactions_are_refused_whole(
    backend: MemoryBackend, items: list[Any], message: str
) -> None:
    status, body = await send(backend, "TransactWriteItems", TransactItems=items)
    assert status == 400
    assert body["__type"].endswith("#ValidationException")
    assert message in body["message"]
    assert backend.tables["tbl"].items == {}


async def test_a_missing_table_is_refused_whole(backend: MemoryBackend) -> None:
    status, body = await send(
        backend, "TransactWriteItems", TransactItems=[add("a", 1), add("a", 1, table="nope")]
    )
    assert status == 400
    assert body["__type"].endswith("#ResourceNotFoundException")
    assert await count(backend, "a") is None


async def test_a_token_makes_a_retry_idempotent_for_ten_minutes(
    backend: MemoryBackend, clock: VirtualTime
) -> None:
    items = [add("a", 1), add("b", 1)]
    first = await backend.handle(
        Call(
            "TransactWriteItems",
            json.dumps({"TransactItems": items, "ClientRequestToken": "t1"}).encode(),
            {},
        )
    )
    assert (first.status, first.replayed) == (200, False)
    clock.now += 599
    again = await backend.handle(
        Call(
            "TransactWriteItems",
            json.dumps({"TransactItems": items, "ClientRequestToken": "t1"}).encode(),
            {},
        )
    )
    assert (again.status, again.replayed, json.loads(again.body)) == (200, True, {})
    assert await count(backend, "a") == 1
    clock.now += 601  # ten minutes after the first completed, the token is new again
    status, _ = await send(
        backend, "TransactWriteItems", TransactItems=items, ClientRequestToken="t1"
    )
    assert status == 200
    assert await count(backend, "a") == 2


async def test_a_token_reused_for_other_items_is_refused(backend: MemoryBackend) -> None:
    await send(backend, "TransactWriteItems", TransactItems=[add("a", 1)], ClientRequestToken="t")
    status, body = await send(
        backend, "TransactWriteItems", TransactItems=[add("a", 2)], ClientRequestToken="t"
    )
    assert status == 400
    assert body["__type"].endswith("#IdempotentParameterMismatchException")
    assert await count(backend, "a") == 1
    # What is reported is not a parameter of what is written: the same items replay.
    status, _ = await send(
        backend,
        "TransactWriteItems",
        TransactItems=[add("a", 1)],
        ClientRequestToken="t",
        ReturnConsumedCapacity="TOTAL",
    )
    assert status == 200
    assert await count(backend, "a") == 1


async def test_a_cancelled_transaction_leaves_its_token_free(backend: MemoryBackend) -> None:
    items = [floor("stock", 1)]
    status, _ = await send(
        backend, "TransactWriteItems", TransactItems=items, ClientRequestToken="t"
    )
    assert status == 400
    await send(backend, "TransactWriteItems", TransactItems=[add("stock", 5)])
    status, _ = await send(
        backend, "TransactWriteItems", TransactItems=items, ClientRequestToken="t"
    )
    assert status == 200
    assert await count(backend, "stock") == 4


async def test_capacity_is_two_writes_per_item_and_a_replay_reads(backend: MemoryBackend) -> None:
    big = {"pk": {"S": "big"}, "blob": {"S": "x" * 1500}}  # 2 KB started: 2 WCU, 4 in a transaction
    items = [
        add("a", 1),
        {"Put": {"TableName": "tbl", "Item": big}},
        add("c", 1, table="other"),
        {
            "ConditionCheck": {
                "TableName": "other",
                "Key": {"pk": {"S": "d"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    ]
    reply = await backend.handle(
        Call(
            "TransactWriteItems",
            json.dumps(
                {
                    "TransactItems": items,
                    "ClientRequestToken": "t",
                    "ReturnConsumedCapacity": "INDEXES",
                }
            ).encode(),
            {},
        )
    )
    assert reply.units == (2.0, 4.0, 2.0, 2.0)
    assert json.loads(reply.body)["ConsumedCapacity"] == [
        {
            "TableName": "tbl",
            "CapacityUnits": 6.0,
            "WriteCapacityUnits": 6.0,
            "Table": {"CapacityUnits": 6.0, "WriteCapacityUnits": 6.0},
        },
        {
            "TableName": "other",
            "CapacityUnits": 4.0,
            "WriteCapacityUnits": 4.0,
            "Table": {"CapacityUnits": 4.0, "WriteCapacityUnits": 4.0},
        },
    ]
    _, replay = await send(
        backend,
        "TransactWriteItems",
        TransactItems=items,
        ClientRequestToken="t",
        ReturnConsumedCapacity="TOTAL",
    )
    assert replay["ConsumedCapacity"] == [
        {"TableName": "tbl", "CapacityUnits": 4.0, "ReadCapacityUnits": 4.0},
        {"TableName": "other", "CapacityUnits": 4.0, "ReadCapacityUnits": 4.0},
    ]


async def test_an_update_is_billed_by_the_larger_of_before_and_after(
    backend: MemoryBackend,
) -> None:
    await send(
        backend, "PutItem", TableName="tbl", Item={"pk": {"S": "k"}, "blob": {"S": "x" * 3000}}
    )
    status, body = await send(
        backend,
        "TransactWriteItems",
        TransactItems=[
            {
                "Update": {
                    "TableName": "tbl",
                    "Key": {"pk": {"S": "k"}},
                    "UpdateExpression": "REMOVE #b",
                    "ExpressionAttributeNames": {"#b": "blob"},
                }
            }
        ],
        ReturnConsumedCapacity="TOTAL",
    )
    assert status == 200
    assert body["ConsumedCapacity"][0]["CapacityUnits"] == 6.0  # 3 KB before: 3 WCU, twice


def test_the_token_memory_forgets_after_its_window_and_past_its_bound() -> None:
    clock = VirtualTime(START)
    memory = TokenMemory(clock=clock, window=600, max_tokens=3)
    for i in range(5):
        memory.remember(f"t{i}", digest([i]))
    assert len(memory) == 3
    assert memory.evicted == 2
    assert memory.check("t0", digest([0])) is None  # evicted early: forgotten
    assert memory.check("t4", digest([4])) == "replay"
    with pytest.raises(TokenMismatch):
        memory.check("t4", digest([5]))
    clock.now += 600
    assert memory.check("t4", digest([4])) is None
    assert len(memory) == 0


def test_the_digest_ignores_key_order() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})

"""The embedded server's front with the memory backend, called without HTTP, in virtual time:
how it charges capacity (the backend's numbers, a transaction all or none), what reaches the
ledger, and a transaction's retry while the first is still held."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from async_counters.local import Capacity, Faults, LedgerEntry, LocalConfig
from async_counters.local.backend import Call, Reply
from async_counters.local.front import Front, with_capacity
from async_counters.local.memory import MemoryBackend
from tests.unit.fake_time import VirtualTime
from tests.unit.memory_calls import table_spec


async def make_front(capacity: Capacity | None = None, faults: Faults | None = None) -> Front:
    front = Front(
        LocalConfig(backend="memory", capacity=capacity, faults=faults or Faults()),
        MemoryBackend(region="us-east-1"),
    )
    if front.capacity is not None:
        front.capacity.clock = VirtualTime(100.0)  # frozen: no bucket refills while a test runs
    status, _ = await call(front, "CreateTable", **table_spec())
    assert status == 200
    return front


async def call(front: Front, operation: str, **payload: Any) -> tuple[int, Any]:
    response: Any = await front.serve(Call(operation, json.dumps(payload).encode(), {}))
    return response.status, json.loads(response.body)


def add(pk: str, amount: int = 1) -> dict[str, Any]:
    return {
        "TableName": "tbl",
        "Key": {"pk": {"S": pk}},
        "UpdateExpression": "ADD #v :n",
        "ExpressionAttributeNames": {"#v": "count"},
        "ExpressionAttributeValues": {":n": {"N": str(amount)}},
    }


def transaction(*pks: str, token: str | None = None, amount: int = 1) -> dict[str, Any]:
    payload: dict[str, Any] = {"TransactItems": [{"Update": add(pk, amount)} for pk in pks]}
    if token is not None:
        payload["ClientRequestToken"] = token
    return payload


async def test_capacity_is_charged_what_the_backend_reports() -> None:
    """One value written twice: estimated from the request at 2 units, the item is 3 KB: the
    bucket is charged 3, the backend's number."""
    front = await make_front(Capacity(table_write_units=10, burst_seconds=1))
    status, body = await call(
        front,
        "UpdateItem",
        TableName="tbl",
        Key={"pk": {"S": "big"}},
        UpdateExpression="SET #a = :v, #b = :v",
        ExpressionAttributeNames={"#a": "a", "#b": "b"},
        ExpressionAttributeValues={":v": {"S": "x" * 1500}},
        ReturnConsumedCapacity="TOTAL",
    )
    assert (status, body["ConsumedCapacity"]["CapacityUnits"]) == (200, 3.0)
    statuses = [(await call(front, "UpdateItem", **add(f"k{i}")))[0] for i in range(9)]
    assert statuses == [200] * 7 + [400] * 2  # 10 - 3 units left seven 1-unit writes


async def test_a_transaction_takes_its_capacity_all_or_none() -> None:
    front = await make_front(Capacity(partition_write_units=3, burst_seconds=1))
    assert (await call(front, "TransactWriteItems", **transaction("a", "b")))[0] == 200
    status, body = await call(front, "TransactWriteItems", **transaction("c", "a"))
    assert status == 400
    assert body["__type"].endswith("#TransactionCanceledException")
    assert [r["Code"] for r in body["CancellationReasons"]] == ["None", "ThrottlingError"]
    assert "hot key" in body["CancellationReasons"][1]["Message"]
    # Nothing was taken for "c": it still has its 3 units, a transaction item costs 2.
    assert (await call(front, "TransactWriteItems", **transaction("c")))[0] == 200
    assert front.ledger.table("tbl") == {
        "a": LedgerEntry(sum=1, count=1),
        "b": LedgerEntry(sum=1, count=1),
        "c": LedgerEntry(sum=1, count=1),
    }


async def test_a_transaction_over_the_table_limit_names_provisioned_throughput() -> None:
    front = await make_front(Capacity(table_write_units=5, burst_seconds=1))
    assert (await call(front, "TransactWriteItems", **transaction("a", "b")))[0] == 200
    status, body = await call(front, "TransactWriteItems", **transaction("c"))
    assert status == 400
    assert {r["Code"] for r in body["CancellationReasons"]} == {"ProvisionedThroughputExceeded"}


async def test_a_replay_is_in_the_ledger_zero_times() -> None:
    front = await make_front(faults=Faults(error_after_apply=1.0))
    status, _ = await call(
        front, "TransactWriteItems", **transaction("a", "b", token="t", amount=5)
    )
    assert status == 500  # applied, then the answer was lost
    front.set_faults(Faults())
    for _ in range(3):
        status, body = await call(
            front, "TransactWriteItems", **transaction("a", "b", token="t", amount=5)
        )
        assert (status, body) == (200, {})
    assert front.ledger.table("tbl") == {
        "a": LedgerEntry(sum=5, count=1),
        "b": LedgerEntry(sum=5, count=1),
    }
    assert front.stats.transactions_replayed == 3


async def test_a_retry_while_the_answer_is_held_is_told_the_transaction_is_in_progress() -> None:
    front = await make_front(faults=Faults(delay_after_apply=1.0, delay=600))
    first = asyncio.ensure_future(
        front.serve(
            Call("TransactWriteItems", json.dumps(transaction("a", token="t")).encode(), {})
        )
    )
    for _ in range(1000):  # until the first is applied and its answer held
        if front.ledger.table("tbl"):
            break
        await asyncio.sleep(0)
    front.set_faults(Faults())
    status, body = await call(front, "TransactWriteItems", **transaction("a", token="t"))
    assert status == 400
    assert body["__type"].endswith("#TransactionInProgressException")
    status, body = await call(front, "TransactWriteItems", **transaction("b", token="t"))
    assert body["__type"].endswith("#IdempotentParameterMismatchException")
    front.closing().set()  # lets the held answer go
    assert (await first).status == 200
    status, _ = await call(front, "TransactWriteItems", **transaction("a", token="t"))
    assert status == 200
    assert front.ledger.table("tbl") == {"a": LedgerEntry(sum=1, count=1)}
    assert front.stats.transactions_in_progress == 1


@pytest.mark.parametrize("fault", ["error_before_apply", "throttle"])
async def test_a_transaction_refused_before_apply_leaves_its_token_free(fault: str) -> None:
    front = await make_front(faults=Faults(**{fault: 1.0}))
    status, _ = await call(front, "TransactWriteItems", **transaction("a", token="t"))
    assert status in (400, 500)
    front.set_faults(Faults())
    status, _ = await call(front, "TransactWriteItems", **transaction("a", token="t"))
    assert status == 200
    assert front.ledger.table("tbl") == {"a": LedgerEntry(sum=1, count=1)}
    assert front.stats.transactions_replayed == 0


@pytest.mark.parametrize(
    ("mode", "field", "expected"),
    [
        (
            "PAY_PER_REQUEST",
            "OnDemandThroughput",
            {"MaxReadRequestUnits": 60, "MaxWriteRequestUnits": 25},
        ),
        (
            "PROVISIONED",
            "ProvisionedThroughput",
            {"ReadCapacityUnits": 60, "WriteCapacityUnits": 25},
        ),
    ],
)
def test_a_tables_description_gives_the_capacity_the_model_holds_it_to(
    mode: str, field: str, expected: dict[str, int]
) -> None:
    described = {
        "Table": {
            "TableName": "t",
            "BillingModeSummary": {"BillingMode": mode},
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        }
    }
    reply = Reply(200, json.dumps(described).encode())
    capacity = Capacity(table_write_units=25.0, table_read_units=60.0)
    table = json.loads(with_capacity(reply, capacity).body)["Table"]
    assert {k: table[field][k] for k in expected} == expected
    assert table["TableName"] == "t"
    assert with_capacity(Reply(200, b"{}"), capacity).body == b"{}"  # not a description: as is

"""The pool through the independent throttling proxy (`benchmarks/bucket_proxy.py`), over HTTP.

The proxy's clock is virtual and advances a fixed step at every request, so the share throttled
does not depend on how fast this machine sends: 100 writes/s with 0.8 of an interval between
requests, five deep, admits five at once and then four in five, on any machine.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from async_counters import CounterPool
from async_counters.local import LocalDynamo
from benchmarks.bucket_proxy import THROTTLED_TYPE, BucketProxy

RATE = 100.0


class StepClock:
    """Virtual time that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[LocalDynamo]:
    async with LocalDynamo(backend="memory") as server:
        yield server


async def test_a_throttled_key_sees_throttles_and_its_total_is_exact(
    server: LocalDynamo, table_name: str
) -> None:
    clock = StepClock(0.8 / RATE)
    async with BucketProxy(
        server.endpoint_url, rate=RATE, burst_seconds=0.05, clock=clock
    ) as proxy:
        async with CounterPool(table_name, endpoint_url=proxy.endpoint_url) as pool:
            await pool.ensure_table()
            outcomes = await asyncio.gather(
                *(pool.increment("hot", 3) for _ in range(150)), return_exceptions=True
            )
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            assert failed == []
            value = await pool.get("hot")
        counts = proxy.counts(table_name, "hot")
        stats = proxy.snapshot()

    entry = server.ledger(table_name)["hot"]
    assert value == entry.sum == 3 * 150
    assert counts.throttled > 0
    assert counts.requests == counts.throttled + counts.forwarded
    assert counts.forwarded == entry.count  # each admitted write applied once, no throttle did
    assert stats["totals"]["throttled"] == counts.throttled


async def test_throttles_are_dynamodbs_answer_on_a_kept_alive_connection(
    server: LocalDynamo, table_name: str
) -> None:
    frozen = StepClock(0.0)  # time stands still: one unit of burst, then every write throttled
    async with (
        CounterPool(table_name, endpoint_url=server.endpoint_url) as pool,
        BucketProxy(server.endpoint_url, rate=10, burst_seconds=0.05, clock=frozen) as proxy,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http,
    ):
        await pool.ensure_table()
        request = {
            "TableName": table_name,
            "Key": {"pk": {"S": "k"}},
            "UpdateExpression": "ADD #v :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":n": {"N": "1"}},
        }
        headers = {
            "X-Amz-Target": "DynamoDB_20120810.UpdateItem",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/20261202/eu-west-1/dynamodb/"
            "aws4_request, SignedHeaders=host, Signature=0",
        }
        answers = []
        for _ in range(3):
            async with http.post(proxy.endpoint_url, json=request, headers=headers) as answer:
                body = await answer.read()
                answers.append((answer.status, answer.headers.copy(), body))
                assert answer.version == aiohttp.HttpVersion11
                assert answer.headers.get("Connection", "").lower() != "close"
        async with http.get(f"{proxy.endpoint_url}/_proxy/stats") as answer:
            stats = await answer.json()

    for _, answer_headers, body in answers:
        assert answer_headers["x-amz-crc32"] == str(zlib.crc32(body))
    assert [status for status, _, _ in answers] == [200, 400, 400]
    throttle = json.loads(answers[1][2])
    assert throttle["__type"] == THROTTLED_TYPE
    assert throttle["message"]
    assert throttle["ThrottlingReasons"] == [
        {
            "reason": "TableWriteKeyRangeThroughputExceeded",
            "resource": f"arn:aws:dynamodb:eu-west-1:000000000000:table/{table_name}",
        }
    ]
    assert server.ledger(table_name)["k"].count == 1
    [key] = stats["keys"]
    assert (key["key"], key["requests"], key["throttled"], key["forwarded"]) == ("k", 3, 2, 1)


async def test_a_table_scoped_bucket_is_shared_by_all_keys_and_names_the_table(
    server: LocalDynamo, table_name: str
) -> None:
    """``scope="table"``: one bucket for every key of the table (a provisioned table's capacity),
    its throttles naming ``TableWriteProvisionedThroughputExceeded``. The pool paces no key for
    them, and every total is exact. (The step clock throttles a fifth whatever the pace: the
    table's pace finds that pacing does not help, so it is not asserted here.)"""
    clock = StepClock(0.8 / RATE)
    keys = [f"k{i}" for i in range(10)]
    async with (
        BucketProxy(
            server.endpoint_url, rate=RATE, burst_seconds=0.05, clock=clock, scope="table"
        ) as proxy,
        CounterPool(table_name, endpoint_url=proxy.endpoint_url) as pool,
    ):
        await pool.ensure_table()
        outcomes = await asyncio.gather(
            *(pool.increment(keys[i % len(keys)]) for i in range(200)), return_exceptions=True
        )
        assert [o for o in outcomes if isinstance(o, BaseException)] == []
        stats = pool.stats
        values = await pool.get_many(keys)
        snapshot = proxy.snapshot()
    ledger = server.ledger(table_name)
    assert values == {k: ledger[k].sum for k in keys} == dict.fromkeys(keys, 20)
    throttled = [proxy.counts(table_name, k).throttled for k in keys]
    assert sum(throttled) == snapshot["totals"]["throttled"] > 0
    assert snapshot["scope"] == "table"
    assert stats.key_rates == {} and stats.throttles == sum(throttled)


@pytest.mark.parametrize("scope", ["key", "table"])
async def test_a_table_scoped_bucket_describes_its_rate_as_the_tables_capacity(
    server: LocalDynamo, table_name: str, scope: str
) -> None:
    """What DynamoDB's description says of the capacity that throttles a table: the table's
    bucket as provisioned write units; a key's bucket is no table's, and its answer passes
    as it came (an on-demand table). Either way the checksum matches the bytes."""
    async with (
        BucketProxy(server.endpoint_url, rate=25, burst_seconds=1, scope=scope) as proxy,
        CounterPool(table_name, endpoint_url=proxy.endpoint_url) as pool,
    ):
        await pool.ensure_table()  # the fast transport checks each answer's x-amz-crc32
        assert pool._transport is not None
        table = (await pool._transport.call("DescribeTable", {"TableName": table_name}))["Table"]
    if scope == "table":
        assert table["BillingModeSummary"] == {"BillingMode": "PROVISIONED"}
        assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 25
    else:
        assert table["BillingModeSummary"] == {"BillingMode": "PAY_PER_REQUEST"}
    assert table["TableName"] == table_name and table["TableStatus"] == "ACTIVE"


def test_a_bucket_scope_must_be_known() -> None:
    with pytest.raises(ValueError, match="scope must be one of key, table"):
        BucketProxy("http://127.0.0.1:1", rate=1, burst_seconds=1, scope="partition")

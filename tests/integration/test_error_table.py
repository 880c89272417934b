"""One table of DynamoDB answers, read by both transports from a server on 127.0.0.1: the same
outcome, code, message, status and item, with and without ``x-amz-crc32``; and no answer that
cannot be trusted makes either send a write again. ``pytest -s`` prints the table.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import get_session

from async_counters import AmbiguousWriteError, CounterPool, RetryPolicy
from async_counters.transport import TransportError
from async_counters.transport.fast import FastTransport
from async_counters.transport.sdk import BotocoreTransport, client_config
from async_counters.transport.sigv4 import Credentials
from tests.integration.answers import NONE, RIGHT, WRONG, Answer, Answering, answering

UPDATE = {
    "TableName": "t",
    "Key": {"pk": {"S": "a"}},
    "UpdateExpression": "ADD #v :n",
    "ExpressionAttributeNames": {"#v": "count"},
    "ExpressionAttributeValues": {":n": {"N": "1"}},
    "ReturnValues": "UPDATED_NEW",
}
OK = b'{"Attributes":{"count":{"N":"1"}}}'
DYNAMO = "com.amazonaws.dynamodb.v20120810#"
ITEM = {"pk": {"S": "a"}, "count": {"N": "3"}}


def _error(code: str, prefix: str = DYNAMO, key: str = "message", **extra: Any) -> bytes:
    return json.dumps({"__type": prefix + code, key: f"said {code}", **extra}).encode()


THROTTLING_REASONS = [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": "arn:x"}]
#: (what the body is, status, body), each answered with and without a right x-amz-crc32.
BODIES: list[tuple[str, int, bytes]] = [
    ("success", 200, OK),
    ("success, empty object", 200, b"{}"),
    ("200, HTML", 200, b"<html>proxy</html>"),
    ("200, JSON list", 200, b"[1]"),
    ("200, empty", 200, b""),
    (
        "ProvisionedThroughputExceededException + ThrottlingReasons",
        400,
        _error("ProvisionedThroughputExceededException", ThrottlingReasons=THROTTLING_REASONS),
    ),
    (
        "ThrottlingException (coral)",
        400,
        _error("ThrottlingException", "com.amazon.coral.availability#"),
    ),
    ("RequestLimitExceeded", 400, _error("RequestLimitExceeded")),
    ("TransactionConflictException", 400, _error("TransactionConflictException")),
    ("ReplicatedWriteConflictException", 400, _error("ReplicatedWriteConflictException")),
    (
        "ConditionalCheckFailedException + Item",
        400,
        _error("ConditionalCheckFailedException", Item=ITEM),
    ),
    ("ConditionalCheckFailedException", 400, _error("ConditionalCheckFailedException")),
    ("ResourceNotFoundException", 400, _error("ResourceNotFoundException")),
    ("ValidationException, `Message`", 400, _error("ValidationException", key="Message")),
    ("ValidationException, no prefix", 400, _error("ValidationException", prefix="")),
    (
        "`__type` with `:suffix`",
        400,
        b'{"__type":"SomethingException:http://internal/","message":"m"}',
    ),
    ("no `__type`", 400, b'{"message":"no type"}'),
    (
        "UnrecognizedClientException",
        400,
        _error("UnrecognizedClientException", "com.amazon.coral.service#"),
    ),
    ("AccessDeniedException", 400, _error("AccessDeniedException", "com.amazon.coral.service#")),
    (
        "ExpiredTokenException (fixed credentials)",
        400,
        _error("ExpiredTokenException", "com.amazon.coral.service#"),
    ),
    ("ExpiredToken (fixed credentials)", 400, _error("ExpiredToken", "")),
    (
        "InvalidSignatureException, clocks agree",
        400,
        _error("InvalidSignatureException", "com.amazon.coral.service#"),
    ),
    ("400, empty", 400, b""),
    ("400, JSON list", 400, b"[1]"),
    ("413, text", 413, b"too large"),
    ("InternalServerError", 500, _error("InternalServerError")),
    ("500, empty", 500, b""),
    ("ServiceUnavailable", 503, _error("ServiceUnavailable", "com.amazon.coral.service#")),
    ("503, HTML", 503, b"<html>busy</html>"),
    ("502, text", 502, b"Bad Gateway"),
]
ROWS = [(name, status, body, crc) for name, status, body in BODIES for crc in (RIGHT, NONE)]
ROWS += [
    (name, status, body, WRONG)
    for name, status, body in BODIES
    if name
    in (
        "success",
        "ProvisionedThroughputExceededException + ThrottlingReasons",
        "ConditionalCheckFailedException + Item",
        "InternalServerError",
    )
]


async def _outcome(transport: Any) -> tuple[Any, ...]:
    try:
        response = await transport.call("UpdateItem", UPDATE)
    except TransportError as exc:
        return (exc.outcome.value, exc.code, exc.message, exc.status, exc.item)
    return ("answered", response)


@pytest.fixture
async def server() -> AsyncIterator[Answering]:
    async with answering(Answering()) as state:
        yield state


@pytest.fixture
async def transports(server: Answering) -> AsyncIterator[tuple[Any, Any]]:
    """The fast transport and the botocore one, both to ``server``, opened once."""
    fast = FastTransport(
        endpoint_url=server.url, region_name="eu-west-1", credentials=Credentials("AKID", "s")
    )
    try:
        async with get_session().create_client(
            "dynamodb",
            endpoint_url=server.url,
            region_name="eu-west-1",
            aws_access_key_id="AKID",
            aws_secret_access_key="s",
            config=client_config(max_in_flight=2, connect_timeout=1, read_timeout=1),
        ) as client:
            yield fast, BotocoreTransport(client)
    finally:
        await fast.aclose()


async def _both(
    server: Answering, transports: tuple[Any, Any], answer: Answer
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The answer read by the fast transport, then by the botocore one; one request each."""
    server.script = deque([answer])
    server.seen.clear()
    fast, botocore = transports
    ours = await _outcome(fast)
    assert len(server.seen) == 1, "the fast transport sent it again"
    theirs = await _outcome(botocore)
    assert len(server.seen) == 2, "the botocore transport sent it again"
    return ours, theirs


async def test_both_transports_read_every_answer_of_the_table_alike(
    server: Answering, transports: tuple[Any, Any]
) -> None:
    read: dict[tuple[str, str], str] = {}
    differing = []
    for name, status, body, crc in ROWS:
        ours, theirs = await _both(server, transports, Answer(status, body, crc))
        if ours != theirs:
            differing.append((name, crc, ours, theirs))
        read[(name, crc)] = ours[0] if ours[0] == "answered" else f"{ours[0]} `{ours[1]}`"
    lines = [
        "| answer | status | x-amz-crc32 right | no x-amz-crc32 | x-amz-crc32 wrong |",
        "|---|---:|---|---|---|",
    ]
    for name, status, _ in BODIES:
        cells = [read.get((name, crc), "") for crc in (RIGHT, NONE, WRONG)]
        lines.append(f"| {name} | {status} | " + " | ".join(cells) + " |")
    print("\nBoth transports, each cell the same on both:\n" + "\n".join(lines))
    assert not differing, "\n".join(map(str, differing))
    assert len(ROWS) >= 60


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (OK, "ambiguous"),
        (_error("ProvisionedThroughputExceededException"), "ambiguous"),
    ],
    ids=["success", "throttle"],
)
async def test_a_wrong_crc32_is_ambiguous_on_both_transports(
    server: Answering, transports: tuple[Any, Any], body: bytes, outcome: str
) -> None:
    answer = Answer(200 if body == OK else 400, body, WRONG)
    ours, theirs = await _both(server, transports, answer)
    assert ours == theirs
    assert (ours[0], ours[1]) == (outcome, "CRC32Mismatch")


@pytest.mark.parametrize("transport_name", ["fast", "botocore"])
@pytest.mark.parametrize(
    "answer",
    [Answer(200, OK, WRONG), Answer(200, b"<html>proxy</html>", NONE), Answer(200, b"[1]")],
    ids=["wrong-crc", "html", "json-list"],
)
async def test_an_untrusted_success_never_makes_the_pool_send_the_write_again(
    server: Answering, transport_name: str, answer: Answer
) -> None:
    server.script = deque([answer, Answer(200, OK)])
    async with CounterPool(
        "t",
        endpoint_url=server.url,
        transport=transport_name,  # type: ignore[arg-type]
        retry=RetryPolicy(base=0.001, cap=0.005, deadline=2.0),
    ) as pool:
        with pytest.raises(AmbiguousWriteError):
            await pool.increment("a")
        assert len(server.seen) == 1  # applied or not, it was not sent twice
        assert await pool.increment("a") == 1  # the next write goes through
    assert pool.stats.ambiguous == 1

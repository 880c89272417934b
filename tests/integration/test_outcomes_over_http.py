"""How real HTTP answers become outcomes: a scripted DynamoDB-speaking server on 127.0.0.1.

Each request takes the next action from a script: answer with a status and a JSON body (with a
correct ``x-amz-crc32``), drop the connection after reading the request, or hold the answer until
the test is over (past any read timeout, on any machine).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from async_counters import (
    AmbiguousWriteError,
    CounterPool,
    DynamoError,
    RetryPolicy,
    ThrottledError,
)

OK = (200, {"Attributes": {"count": {"N": "1"}}})
#: A generous bound on what the server waits for: only a broken client makes it wait this long.
PATIENCE = 10.0


def _error(code: str, prefix: str = "com.amazonaws.dynamodb.v20120810") -> dict[str, Any]:
    return {"__type": f"{prefix}#{code}", "message": f"scripted {code}"}


THROTTLE = (
    400,
    {
        **_error("ProvisionedThroughputExceededException"),
        "ThrottlingReasons": [
            {"reason": "TableWriteKeyRangeThroughputExceeded", "resource": "arn:aws:dynamodb:x"}
        ],
    },
)


@dataclass
class ScriptedServer:
    script: deque[Any] = field(default_factory=deque)
    default: Any = OK
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    delay: float = 0.0
    #: Hold every answer until this many requests have been in flight at once (or `PATIENCE`).
    hold_until_in_flight: int = 0
    port: int = 0
    transport: str = "fast"
    released: asyncio.Event = field(default_factory=asyncio.Event)  # "held" answers go now
    peaked: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                self.requests += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                if self.in_flight >= self.hold_until_in_flight:
                    self.peaked.set()
                try:
                    action = self.script.popleft() if self.script else self.default
                    if self.hold_until_in_flight:
                        try:
                            await asyncio.wait_for(self.peaked.wait(), PATIENCE)
                        except TimeoutError:
                            self.peaked.set()  # never reached: answer the rest at once
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    if action == "drop":
                        return
                    if action == "held":
                        await self.released.wait()
                        action = OK
                    status, body = action
                    payload = json.dumps(body).encode()
                    writer.write(
                        f"HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.0\r\n"
                        f"Content-Length: {len(payload)}\r\n"
                        f"x-amz-crc32: {zlib.crc32(payload)}\r\n\r\n".encode()
                        + payload
                    )
                    await writer.drain()
                finally:
                    self.in_flight -= 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def scripted_server() -> AsyncIterator[ScriptedServer]:
    state = ScriptedServer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state
        state.released.set()
        server.close()


@pytest.fixture
def scripted(scripted_server: ScriptedServer, transport_name: str) -> ScriptedServer:
    """The scripted server, with pools built by `_pool` on the transport under test."""
    scripted_server.transport = transport_name
    return scripted_server


def _pool(server: ScriptedServer, **kwargs: Any) -> CounterPool:
    kwargs.setdefault("retry", RetryPolicy(base=0.001, cap=0.005, deadline=5.0))
    kwargs.setdefault("transport", server.transport)
    return CounterPool("t", endpoint_url=f"http://127.0.0.1:{server.port}", **kwargs)


async def test_dynamodb_throttle_bodies_are_retried(scripted: ScriptedServer) -> None:
    scripted.script.extend(
        [THROTTLE, (400, _error("ThrottlingException", "com.amazon.coral.availability")), OK]
    )
    async with _pool(scripted) as pool:
        assert await pool.increment("a") == 1
    assert scripted.requests == 3
    assert (pool.stats.throttles, pool.stats.retries) == (2, 2)


async def test_throttled_until_attempts_run_out(scripted: ScriptedServer) -> None:
    scripted.default = THROTTLE
    async with _pool(scripted, retry=RetryPolicy(attempts=3, base=0.001)) as pool:
        with pytest.raises(ThrottledError) as info:
            await pool.increment("a")
    assert info.value.last_code == "ProvisionedThroughputExceededException"
    assert scripted.requests == 3


@pytest.mark.timing
@pytest.mark.parametrize(
    "action",
    [
        (500, _error("InternalServerError")),
        (503, _error("ServiceUnavailable")),
        "drop",
        "held",
    ],
    ids=["500", "503", "dropped", "read-timeout"],
)
async def test_ambiguous_answers_are_sent_once_and_reported(
    scripted: ScriptedServer, action: Any
) -> None:
    scripted.script.append(action)
    async with _pool(scripted, read_timeout=1.0) as pool:
        with pytest.raises(AmbiguousWriteError):
            await pool.increment("a")
        assert scripted.requests == 1  # botocore did not retry it behind our back
        assert await pool.increment("a") == 1  # the pool still works afterwards
    assert pool.stats.ambiguous == 1


async def test_ambiguous_reads_are_retried(scripted: ScriptedServer) -> None:
    scripted.script.extend(["drop", (500, _error("InternalServerError"))])
    scripted.default = (200, {"Item": {"count": {"N": "7"}}})
    async with _pool(scripted) as pool:
        assert await pool.get("a") == 7
    assert scripted.requests == 3


async def test_validation_errors_are_not_retried(scripted: ScriptedServer) -> None:
    scripted.script.append((400, _error("ValidationException")))
    async with _pool(scripted) as pool:
        with pytest.raises(DynamoError) as info:
            await pool.increment("a")
    assert (info.value.code, info.value.status) == ("ValidationException", 400)
    assert scripted.requests == 1


@pytest.mark.timing
async def test_max_in_flight_is_not_capped_by_botocores_pool_of_ten(
    scripted: ScriptedServer,
) -> None:
    async with _pool(scripted, max_in_flight=40) as pool:
        # A pool's first crowd over many keys goes out through the table's slow start (32 at
        # once, one more per ack): warmed to its bound first, what is measured is the transport.
        await asyncio.gather(*(pool.increment(f"w{i}") for i in range(120)))
        scripted.max_in_flight = 0
        scripted.peaked.clear()
        scripted.hold_until_in_flight = 40  # answers wait for the 40th request, however slow
        await asyncio.gather(*(pool.increment(f"k{i}") for i in range(120)))
    assert scripted.max_in_flight == 40


async def test_unprocessed_keys_are_retried_until_read(scripted: ScriptedServer) -> None:
    def item(key: str, count: int) -> dict[str, Any]:
        return {"pk": {"S": key}, "count": {"N": str(count)}}

    unprocessed = {"t": {"Keys": [{"pk": {"S": "b"}}], "ConsistentRead": True}}
    scripted.script.extend(
        [
            (200, {"Responses": {"t": [item("a", 1)]}, "UnprocessedKeys": unprocessed}),
            (200, {"Responses": {"t": []}, "UnprocessedKeys": unprocessed}),
            (200, {"Responses": {"t": [item("b", 2)]}, "UnprocessedKeys": {}}),
        ]
    )
    async with _pool(scripted) as pool:
        assert await pool.get_many(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 0}
    assert scripted.requests == 3
    assert pool.stats.retries == 2

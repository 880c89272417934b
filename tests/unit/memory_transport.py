"""A transport over the embedded server's memory backend, in process: DynamoDB's semantics for
every request the pool builds (exactly-once writes, batch reads, conditions), no HTTP.

The backend answers without suspending, so each request is applied whole; ``latency`` (seconds of
the loop's time, before the request is applied) and ``gate`` (an event every call waits for) let a
test hold requests on the wire. ``values(table, key)`` reads what was stored: the ground truth.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from async_counters import builders
from async_counters.local.backend import Call
from async_counters.local.memory import MemoryBackend
from async_counters.transport import Outcome, TransportError, outcome_for_code


class MemoryTransport:
    def __init__(self, *, latency: float = 0.0) -> None:
        self.backend = MemoryBackend(region="us-east-1")
        self.latency = latency
        self.gate: asyncio.Event | None = None
        self.operations: list[str] = []
        self.closed = False

    async def create_table(self, table: str, key_attribute: str = "pk") -> None:
        await self.call("CreateTable", builders.create_table(table, key_attribute))

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.operations.append(operation)
        body = json.dumps(params).encode()  # raises on what the wire cannot carry, as orjson does
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.latency)
        reply = await self.backend.handle(Call(operation, body, {}))
        answer = json.loads(reply.body)
        if reply.status == 200:
            result: dict[str, Any] = answer
            return result
        code = str(answer.get("__type", "")).rpartition("#")[2]
        raise TransportError(
            outcome_for_code(code, reply.status),
            code,
            str(answer.get("message", "")),
            status=reply.status,
            item=answer.get("Item"),
        )

    def items(self, table: str) -> dict[str, dict[str, Any]]:
        """Every stored item of ``table`` (DynamoDB JSON) by its partition key's value."""
        found = self.backend.tables[table]
        return {key[0]: dict(item) for key, item in found.items.items()}

    async def aclose(self) -> None:
        self.closed = True


def stored(transport: MemoryTransport, table: str, key: str, attribute: str = "count") -> int:
    """The number stored in item ``key`` (0 when absent): what the server holds."""
    return builders.parse_number(transport.items(table).get(key), attribute)


__all__ = ["MemoryTransport", "Outcome", "stored"]

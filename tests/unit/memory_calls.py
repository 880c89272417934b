"""Calling the embedded server's memory backend (or its front) directly, without HTTP, as the
unit tests of the local package do: one request as DynamoDB's JSON, its status and body back."""

from __future__ import annotations

import json
from typing import Any

from async_counters.local.backend import Call
from async_counters.local.memory import MemoryBackend

__all__ = ["create_table", "send", "table_spec"]


def table_spec(name: str = "tbl") -> dict[str, Any]:
    """The CreateTable parameters of an on-demand table keyed by a string ``pk``."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


async def send(backend: MemoryBackend, operation: str, **payload: Any) -> tuple[int, Any]:
    reply = await backend.handle(Call(operation, json.dumps(payload).encode(), {}))
    return reply.status, json.loads(reply.body)


async def create_table(backend: MemoryBackend, name: str = "tbl") -> None:
    status, body = await send(backend, "CreateTable", **table_spec(name))
    assert status == 200, body

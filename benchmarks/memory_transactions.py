"""What a transaction costs the memory backend, beside an UpdateItem, in one run.

    python benchmarks/memory_transactions.py [--calls 20000]

Calls the backend directly (no HTTP, no front): server CPU per call for an UpdateItem, a
TransactWriteItems of one Update (with and without a ClientRequestToken, and its replay), and
of ten; then the memory one remembered token holds (tracemalloc), with the window full.
Ratios against UpdateItem are the figures to read; absolute times vary 2-4x between machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from async_counters.local.backend import Call
from async_counters.local.memory import MemoryBackend


def update(pk: str) -> dict[str, Any]:
    return {
        "TableName": "bench",
        "Key": {"pk": {"S": pk}},
        "UpdateExpression": "ADD #v :n",
        "ExpressionAttributeNames": {"#v": "count"},
        "ExpressionAttributeValues": {":n": {"N": "1"}},
    }


async def per_call(
    backend: MemoryBackend, operation: str, body: Callable[[int], bytes], calls: int
) -> float:
    bodies = [body(i) for i in range(calls)]
    started = time.process_time()
    for raw in bodies:
        reply = await backend.handle(Call(operation, raw, {}))
        assert reply.status == 200, reply.body
    return (time.process_time() - started) / calls * 1e6


async def main(calls: int) -> None:
    backend = MemoryBackend(region="us-east-1")
    create = {
        "TableName": "bench",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    await backend.handle(Call("CreateTable", json.dumps(create).encode(), {}))

    def tx(i: int, keys: int = 1, token: bool = False) -> bytes:
        payload: dict[str, Any] = {
            "TransactItems": [{"Update": update(f"k{(i * keys + j) % 1000}")} for j in range(keys)]
        }
        if token:
            payload["ClientRequestToken"] = f"token-{i}"
        return json.dumps(payload).encode()

    rows = [
        ("UpdateItem", "UpdateItem", lambda i: json.dumps(update(f"k{i % 1000}")).encode()),
        ("TransactWriteItems, 1 Update", "TransactWriteItems", tx),
        ("  with a ClientRequestToken", "TransactWriteItems", lambda i: tx(i, token=True)),
        ("  its replay", "TransactWriteItems", lambda i: tx(i, token=True)),
        ("TransactWriteItems, 10 Updates", "TransactWriteItems", lambda i: tx(i, keys=10)),
    ]
    base = 0.0
    print(f"{'request':<34} {'µs/call':>8} {'x UpdateItem':>13}")
    for label, operation, body in rows:
        micros = await per_call(backend, operation, body, calls)
        base = base or micros
        print(f"{label:<34} {micros:>8.1f} {micros / base:>13.2f}")

    fresh = MemoryBackend(region="us-east-1")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(calls):
        fresh.tokens.remember(f"{i:036d}", bytes(16))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"token memory: {held / calls:.0f} bytes per remembered token ({calls} tokens)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().calls))

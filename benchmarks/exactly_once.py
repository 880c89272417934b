"""What exactly_once costs per increment, beside plain writes, in one run.

The embedded DynamoDB runs in its own process (memory backend, 2 ms latency, no faults). The same
workload (64 tasks incrementing 1,000 keys, each increment its own write) runs in plain mode and
with ``exactly_once=True``; printed per acknowledged increment: requests sent, request and
response body bytes, client CPU, and the item size each writer adds.

    python benchmarks/exactly_once.py [--increments 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from typing import Any

import orjson

from async_counters import CounterPool, builders

TABLE = "exactly-once-bench"


def request_bytes(exactly_once: bool) -> int:
    """The body the fast transport sends: built by the same builders the pool uses."""
    if exactly_once:
        params = builders.update_once(
            TABLE, "pk", "count", "key:123", 1, writer=("~s:abcdefghijkl", "~v:abcdefghijkl"), seq=1
        )
    else:
        params = builders.update(TABLE, "pk", "count", "key:123", 1)
    return len(orjson.dumps(params))


def response_bytes(exactly_once: bool) -> int:
    attributes: dict[str, Any] = {"count": {"N": "12345"}}
    if exactly_once:
        attributes["~s:abcdefghijkl"] = {"N": str(time.time_ns() // 1000)}
        attributes["~v:abcdefghijkl"] = {"N": "12345"}
    return len(orjson.dumps({"Attributes": attributes}))


async def run(endpoint: str, exactly_once: bool, increments: int) -> dict[str, float]:
    rng = random.Random(1)
    keys = [f"key:{i}" for i in range(1_000)]
    async with CounterPool(
        f"{TABLE}-{int(exactly_once)}", endpoint_url=endpoint, exactly_once=exactly_once
    ) as pool:
        await pool.ensure_table()
        plan = [rng.choice(keys) for _ in range(increments)]
        per_task = increments // 64
        cpu = time.process_time()
        wall = time.perf_counter()

        async def task(i: int) -> None:
            for key in plan[i * per_task : (i + 1) * per_task]:
                await pool.increment(key)

        await asyncio.gather(*(task(i) for i in range(64)))
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        stats = pool.stats
        assert stats.acknowledged == 64 * per_task
        total = sum((await pool.get_many(keys)).values())
        assert total == stats.acknowledged_amount, "totals must be exact"
    done = stats.acknowledged
    return {
        "requests": stats.requests / done,
        "cpu_us": cpu / done * 1e6,
        "rate": done / wall,
    }


class _Metered:
    """Asks the server for ConsumedCapacity on every write and adds it up."""

    def __init__(self, inner: Any, totals: dict[str, float]) -> None:
        self.inner = inner
        self.totals = totals

    async def call(self, operation: str, params: Any) -> dict[str, Any]:
        if operation != "UpdateItem":
            return dict(await self.inner.call(operation, params))
        response = await self.inner.call(operation, {**params, "ReturnConsumedCapacity": "TOTAL"})
        self.totals["wcu"] += response.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0)
        return dict(response)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def writers_row(endpoint: str, writers: int, mode: str, per_writer: int) -> dict[str, float]:
    """``writers`` pools, one after another (16 at a time), each ``per_writer`` increments at once
    to one key: WCU per increment (the server's), the item's bytes after, client CPU."""
    table = f"{TABLE}-w{writers}-{mode.replace('+', '-')}"
    async with CounterPool(table, endpoint_url=endpoint) as setup:
        await setup.ensure_table()
    totals = {"wcu": 0.0}
    todo = iter(range(writers))
    cpu = time.process_time()

    async def lane() -> None:
        for _ in todo:
            async with CounterPool(
                table,
                endpoint_url=endpoint,
                exactly_once=mode != "plain",
                coalesce=mode == "exactly_once+coalesce",
            ) as pool:
                pool._sender.transport = _Metered(pool._sender.transport, totals)
                await asyncio.gather(*(pool.increment("hot") for _ in range(per_writer)))

    await asyncio.gather(*(lane() for _ in range(16)))
    cpu = time.process_time() - cpu
    async with CounterPool(table, endpoint_url=endpoint) as reader:
        transport = reader._sender.transport
        assert transport is not None
        key = {"TableName": table, "Key": {"pk": {"S": "hot"}}, "ConsistentRead": True}
        item = (await transport.call("GetItem", key)).get("Item") or {}
    done = writers * per_writer
    assert item["count"] == {"N": str(done)}, "totals must be exact"
    size = sum(len(n) + len(str(next(iter(v.values())))) for n, v in item.items())
    return {"wcu": totals["wcu"] / done, "bytes": size, "cpu_us": cpu / done * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--increments", type=int, default=20_000)
    parser.add_argument(
        "--writers", default="1,100,1000,10000", help="writer counts for the per-writer table"
    )
    parser.add_argument("--per-writer", type=int, default=4, help="increments each writer sends")
    args = parser.parse_args()
    counts = [int(n) for n in args.writers.split(",") if n]
    server = subprocess.Popen(
        [sys.executable, "-m", "async_counters.local", "--backend", "memory", "--latency-ms", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        rows = {mode: asyncio.run(run(endpoint, mode, args.increments)) for mode in (False, True)}
        table = {
            (n, mode): asyncio.run(writers_row(endpoint, n, mode, args.per_writer))
            for n in counts
            for mode in ("plain", "exactly_once", "exactly_once+coalesce")
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"\n{args.increments:,} increments, 64 tasks, 1,000 keys, memory backend (own process)\n")
    print(
        "| mode | requests/increment | request bytes | response bytes | client CPU µs/increment "
        "| increments/s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for mode, row in rows.items():
        print(
            f"| {'exactly_once' if mode else 'plain'} | {row['requests']:.2f} "
            f"| {request_bytes(mode)} | {response_bytes(mode)} | {row['cpu_us']:.0f} "
            f"| {row['rate']:,.0f} |"
        )
    print(f"\nwriters one after another on one key, {args.per_writer} increments each at once:\n")
    print("| writers | mode | WCU per increment | counter item bytes | client CPU µs/increment |")
    print("|---:|---|---:|---:|---:|")
    for (n, mode), cell in table.items():
        print(
            f"| {n:,} | {mode} | {cell['wcu']:.2f} | {cell['bytes']:.0f} | {cell['cpu_us']:.0f} |"
        )
    ratio = rows[True]["cpu_us"] / rows[False]["cpu_us"]
    print(f"\nexactly_once / plain CPU per increment: {ratio:.2f}")
    print(
        "item size per writer: two attributes, '~s:<12-char id>' (sequence) and '~v:<id>' "
        "(value after its last write): about 15 + 9 + 15 + 1..21 bytes, ~40-60 bytes"
    )


if __name__ == "__main__":
    main()

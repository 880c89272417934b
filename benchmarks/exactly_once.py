"""What exactly_once costs per increment, beside plain writes and other designs, in one run.

The embedded DynamoDB runs in its own process (memory backend, 2 ms latency, every key capped at
1,000 WCU/s as DynamoDB caps a partition). Printed:

- 64 tasks incrementing 1,000 keys, plain and exactly-once: requests, bytes, client CPU;
- three exactly-once designs on one key (a transaction with a ClientRequestToken; a transaction
  that also sets the writer's record on an item of its own; the fence this library uses): WCU
  per increment from the server's ConsumedCapacity, increments/s, whether the value comes back;
- per writer count (1 to 10,000 pools, one after another, each a new writer) and mode (plain,
  exactly_once, exactly_once+coalesce): WCU per increment, the counter item's bytes, client CPU,
  pools opened per second; then 16 pools x 8 callers on the same key: increments/s under the cap
  and WCU per increment; the cost of a million increments at the on-demand price for both.

    python benchmarks/exactly_once.py [--writers 1,100,1000,10000] [--price-per-million-writes N]
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
from async_counters.loadtest.cost import WRITE_PRICE
from async_counters.transport import Outcome, TransportError

TABLE = "exactly-once-bench"
MODES = ("plain", "exactly_once", "exactly_once+coalesce")


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
    table = table_of(writers, mode)
    async with CounterPool(table, endpoint_url=endpoint) as setup:
        await setup.ensure_table()
    totals = {"wcu": 0.0}
    todo = iter(range(writers))
    cpu = time.process_time()
    wall = time.perf_counter()

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
    wall = time.perf_counter() - wall
    item = await read_item(endpoint, table)
    done = writers * per_writer
    assert item["count"] == {"N": str(done)}, "totals must be exact"
    return {
        "wcu": totals["wcu"] / done,
        "bytes": item_bytes(item),
        "cpu_us": cpu / done * 1e6,
        "pools_per_s": writers / wall,
    }


DESIGNS = ("transaction + token", "transaction + record item", "fence (chosen)")


async def design_row(endpoint: str, design: str, increments: int, tasks: int) -> dict[str, float]:
    """One exactly-once design, ``tasks`` writers (each its own id) on one key, one increment
    after another each: WCU per increment from the server's ConsumedCapacity, increments/s on
    the key capped at 1,000 WCU/s, and whether the answer carries the value after."""
    table = f"{TABLE}-design-{DESIGNS.index(design)}"
    async with CounterPool(table, endpoint_url=endpoint) as setup:
        await setup.ensure_table()
    totals = {"wcu": 0.0}
    value_after = [0]

    async def writer(i: int) -> None:
        writer_id = f"w{i:04d}"
        async with CounterPool(table, endpoint_url=endpoint, exactly_once=True) as pool:
            if design == "fence (chosen)":
                pool._sender.transport = _Metered(pool._sender.transport, totals)
                for _ in range(increments // tasks):
                    await pool.increment("hot")
                value_after[0] += increments // tasks
                return
            transport = pool._sender.transport
            assert transport is not None
            for n in range(increments // tasks):
                items: list[dict[str, Any]] = [
                    {
                        "Update": {
                            "TableName": table,
                            "Key": {"pk": {"S": "hot"}},
                            "UpdateExpression": "ADD #c :one",
                            "ExpressionAttributeNames": {"#c": "count"},
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    }
                ]
                if design == "transaction + record item":  # the writer's record on its own item
                    items.append(
                        {
                            "Update": {
                                "TableName": table,
                                "Key": {"pk": {"S": f"~writer:{writer_id}:hot"}},
                                "UpdateExpression": "SET #s = :seq",
                                "ConditionExpression": "attribute_not_exists(#s) OR #s < :seq",
                                "ExpressionAttributeNames": {"#s": "seq"},
                                "ExpressionAttributeValues": {":seq": {"N": str(n + 1)}},
                            }
                        }
                    )
                params = {
                    "TransactItems": items,
                    "ClientRequestToken": f"d{DESIGNS.index(design)}-{writer_id}-{n}",
                    "ReturnConsumedCapacity": "TOTAL",
                }
                for _ in range(1_000):  # bounded: throttled or conflicting ones are retried
                    try:
                        answer = await transport.call("TransactWriteItems", params)
                    except TransportError as exc:
                        retry = exc.outcome in (Outcome.THROTTLED, Outcome.CONFLICT) or (
                            "Throttling" in exc.message or "TransactionConflict" in exc.message
                        )
                        if not retry:
                            raise
                        await asyncio.sleep(random.uniform(0.002, 0.05))
                        continue
                    totals["wcu"] += sum(c["CapacityUnits"] for c in answer["ConsumedCapacity"])
                    break
                else:
                    raise RuntimeError("a transaction stayed throttled")

    wall = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(tasks)))
    wall = time.perf_counter() - wall
    done = increments // tasks * tasks
    assert (await read_item(endpoint, table))["count"] == {"N": str(done)}, "exact"
    return {"wcu": totals["wcu"] / done, "rate": done / wall}


def table_of(writers: int, mode: str) -> str:
    return f"{TABLE}-w{writers}-{mode.replace('+', '-')}"


def item_bytes(item: dict[str, Any]) -> int:
    """An upper bound of DynamoDB's item size: names plus values as text."""
    return sum(len(n) + len(str(next(iter(v.values())))) for n, v in item.items())


async def read_item(endpoint: str, table: str) -> dict[str, Any]:
    async with CounterPool(table, endpoint_url=endpoint) as reader:
        transport = reader._sender.transport
        assert transport is not None
        key = {"TableName": table, "Key": {"pk": {"S": "hot"}}, "ConsistentRead": True}
        found: dict[str, Any] = (await transport.call("GetItem", key)).get("Item") or {}
        return found


async def busy_row(
    endpoint: str,
    writers: int,
    mode: str,
    *,
    pools: int,
    callers: int,
    warmup: float,
    seconds: float,
) -> dict[str, float]:
    """``pools`` pools of ``mode``, ``callers`` callers each looping increments of the key the
    writers row left (its server caps a key at 1,000 WCU/s): acknowledged increments/s and WCU
    per increment over ``seconds`` after ``warmup`` (the bucket starts with a second of burst)."""
    table = table_of(writers, mode)
    before = int((await read_item(endpoint, table))["count"]["N"])
    totals = {"wcu": 0.0}
    acks = [0]
    stop = asyncio.Event()
    opened = [
        CounterPool(
            table,
            endpoint_url=endpoint,
            exactly_once=mode != "plain",
            coalesce=mode == "exactly_once+coalesce",
        )
        for _ in range(pools)
    ]
    for pool in opened:
        await pool.open()
        pool._sender.transport = _Metered(pool._sender.transport, totals)

    async def caller(pool: CounterPool) -> None:
        while not stop.is_set():
            await pool.increment("hot")
            acks[0] += 1

    tasks = [asyncio.ensure_future(caller(pool)) for pool in opened for _ in range(callers)]
    await asyncio.sleep(warmup)
    acks0, wcu0, t0 = acks[0], totals["wcu"], time.perf_counter()
    await asyncio.sleep(seconds)
    acks1, wcu1, t1 = acks[0], totals["wcu"], time.perf_counter()
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    for pool in opened:
        await pool.aclose()
    acknowledged = sum(pool.stats.acknowledged_amount for pool in opened)
    after = await read_item(endpoint, table)
    assert acknowledged == acks[0], "every call acknowledged"
    assert int(after["count"]["N"]) == before + acknowledged, "totals must be exact"
    done = acks1 - acks0
    return {
        "rate": done / (t1 - t0),
        "wcu": (wcu1 - wcu0) / done if done else float("nan"),
        "bytes": item_bytes(after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--increments", type=int, default=20_000)
    parser.add_argument(
        "--writers", default="1,100,1000,10000", help="writer counts for the per-writer table"
    )
    parser.add_argument("--per-writer", type=int, default=4, help="increments each writer sends")
    parser.add_argument("--pools", type=int, default=16, help="pools of the busy phase")
    parser.add_argument("--callers", type=int, default=8, help="callers per pool, busy phase")
    parser.add_argument("--seconds", type=float, default=3.0, help="busy phase measured (s)")
    parser.add_argument("--warmup", type=float, default=1.5, help="busy phase unmeasured (s)")
    parser.add_argument(
        "--price-per-million-writes",
        type=float,
        default=WRITE_PRICE,
        metavar="USD",
        help=f"on-demand price of a million write request units (default {WRITE_PRICE})",
    )
    parser.add_argument("--modes", default=",".join(MODES), help="modes to run")
    parser.add_argument(
        "--design-increments", type=int, default=4_000, help="increments per design compared"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.writers.split(",") if n]
    modes = [m for m in args.modes.split(",") if m]
    if (
        not 0 < args.seconds <= 60
        or not 0 <= args.warmup <= 60
        or args.price_per_million_writes < 0
    ):
        parser.error("--seconds in (0, 60], --warmup in [0, 60], a price >= 0")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "async_counters.local",
            "--backend",
            "memory",
            "--latency-ms",
            "2",
            "--partition-wcu",
            "1000",
            "--table-wcu",
            "1000000",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        rows = {mode: asyncio.run(run(endpoint, mode, args.increments)) for mode in (False, True)}
        designs = {
            design: asyncio.run(design_row(endpoint, design, args.design_increments, args.pools))
            for design in DESIGNS
        }
        table: dict[tuple[int, str], dict[str, float]] = {}
        for n in counts:
            for mode in modes:
                started = time.perf_counter()
                cell = asyncio.run(writers_row(endpoint, n, mode, args.per_writer))
                cell.update(
                    {
                        f"busy_{k}": v
                        for k, v in asyncio.run(
                            busy_row(
                                endpoint,
                                n,
                                mode,
                                pools=args.pools,
                                callers=args.callers,
                                warmup=args.warmup,
                                seconds=args.seconds,
                            )
                        ).items()
                    }
                )
                table[(n, mode)] = cell
                print(
                    f"  {n:,} writers, {mode}: {time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
    price = args.price_per_million_writes
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
    print(
        f"\nExactly-once designs: {args.pools} writers on one key capped at 1,000 WCU/s, one "
        "increment after another each (the transactions retried on throttling by this script)\n"
    )
    print("| design | WCU/inc | $/M inc | increments/s | value after in the answer |")
    print("|---|---:|---:|---:|---|")
    for design, row in designs.items():
        print(
            f"| {design} | {row['wcu']:.2f} | {row['wcu'] * price:.3f} | {row['rate']:,.0f} "
            f"| {'yes' if design.startswith('fence') else 'no'} |"
        )
    print(
        f"\nOne key capped at 1,000 WCU/s (2 ms latency). Writers: one pool each, 16 at a time, "
        f"{args.per_writer} increments each at once. Then {args.pools} pools x {args.callers} "
        f"callers on the same key for {args.seconds:g} s after {args.warmup:g} s (no coalescing "
        f"unless the mode says so). $/M: a million increments at ${price:g} per million write "
        "units (on-demand).\n"
    )
    print(
        "| writers | mode | WCU/inc (writers) | $/M inc (writers) | item bytes | client CPU "
        f"µs/inc | pools opened/s | increments/s ({args.pools} pools, cap 1,000 WCU/s) "
        "| WCU/inc (busy) | $/M inc (busy) | item bytes after |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (n, mode), cell in table.items():
        print(
            f"| {n:,} | {mode} | {cell['wcu']:.2f} | {cell['wcu'] * price:.3f} "
            f"| {cell['bytes']:.0f} | {cell['cpu_us']:.0f} | {cell['pools_per_s']:.0f} "
            f"| {cell['busy_rate']:,.0f} | {cell['busy_wcu']:.2f} "
            f"| {cell['busy_wcu'] * price:.3f} | {cell['busy_bytes']:.0f} |"
        )
    ratio = rows[True]["cpu_us"] / rows[False]["cpu_us"]
    print(f"\nexactly_once / plain CPU per increment: {ratio:.2f}")


if __name__ == "__main__":
    main()

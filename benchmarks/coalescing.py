"""One hot key, 10,000 tasks each awaiting increments in a loop: merged writes beside plain ones.

The embedded DynamoDB runs in its own process (memory backend, 5 ms latency); the client runs on one
event loop (uvloop). Printed in one run:

- the pool with ``coalesce=True``: acknowledged increments/s, requests/s sent to the key, and
  whether the value read back equals the increments acknowledged;
- the same workload without coalescing;
- the ceiling: the same 10,000 tasks awaiting futures that a resolver completes as fast as it can
  (no I/O at all), and the pool's ratio to it.

    python benchmarks/coalescing.py [--tasks 10000] [--seconds 10] [--latency-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from async_counters import CounterPool

TABLE = "coalescing-bench"


async def _loop_tasks(
    tasks: int, seconds: float, increment: Callable[[], Coroutine[Any, Any, int]]
) -> tuple[int, float]:
    done = 0
    deadline = time.monotonic() + seconds

    async def task() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await increment()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(tasks)))
    return done, time.perf_counter() - started


async def pool_run(endpoint: str, key: str, args: argparse.Namespace, coalesce: bool) -> str:
    async with CounterPool(TABLE, endpoint_url=endpoint, coalesce=coalesce) as pool:
        await pool.ensure_table()
        before = await pool.get(key)
        cpu = time.process_time()
        done, elapsed = await _loop_tasks(args.tasks, args.seconds, lambda: pool.increment(key))
        cpu = time.process_time() - cpu
        stats = pool.stats
        after = await pool.get(key)
    exact = after - before == done == stats.acknowledged_amount
    return (
        f"| {'coalesce=True' if coalesce else 'coalesce=False'} | {done / elapsed:,.0f} "
        f"| {stats.requests / elapsed:,.0f} | {cpu / max(done, 1) * 1e6:.1f} "
        f"| {'yes' if exact else f'NO ({after - before} vs {done})'} |"
    )


async def ceiling_run(args: argparse.Namespace) -> float:
    """10,000 tasks awaiting futures in a loop, completed in bulk by a resolver: no I/O at all."""
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[int]] = []
    stop = False

    async def resolver() -> None:
        while not stop:
            batch = waiting[:]
            waiting.clear()
            for future in batch:
                future.set_result(1)
            await asyncio.sleep(0)

    async def increment() -> int:
        future: asyncio.Future[int] = loop.create_future()
        waiting.append(future)
        return await future

    running = asyncio.create_task(resolver())
    done, elapsed = await _loop_tasks(args.tasks, args.seconds, increment)
    stop = True
    await running
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    args = parser.parse_args()
    try:
        import uvloop

        run: Callable[[Coroutine[Any, Any, Any]], Any] = uvloop.run
        loop_name = "uvloop"
    except ImportError:
        run, loop_name = asyncio.run, "asyncio"

    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "async_counters.local", "--backend", "memory", "--port", "0"),
            *("--latency-ms", str(args.latency_ms)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        rows = [
            run(pool_run(endpoint, f"hot:{int(time.time())}:{c}", args, c)) for c in (True, False)
        ]
    finally:
        server.terminate()
        server.wait(timeout=30)
    ceiling = run(ceiling_run(args))

    print(
        f"\nOne hot key, {args.tasks:,} tasks awaiting increments in a loop, {args.seconds:g} s "
        f"each, {loop_name}, embedded DynamoDB (memory backend, own process, "
        f"{args.latency_ms:g} ms latency)\n"
    )
    print("| client | acknowledged increments/s | requests/s | client CPU µs/increment | exact |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        print(row)
    print(f"| ceiling: awaiting futures, no I/O | {ceiling:,.0f} | - | - | - |")
    coalesced = float(rows[0].split("|")[2].replace(",", ""))
    print(f"\ncoalesced / ceiling = {coalesced / ceiling:.2f}")


if __name__ == "__main__":
    main()

"""`RateLimiter` under contention: three processes, 300 tasks, one key, 1,000 hits per 10 s window.

The embedded DynamoDB (memory backend) runs in its own process. Each worker process runs its tasks
in a closed loop for ``--seconds``, then reports per window what it admitted and denied, its
requests, its CPU and a latency histogram; the parent reads each window's count back from the
server. Rows (``--modes``):

- ``hit``: ``limiter.hit(key)`` on a plain pool; verified per window: admitted <= limit, and
  admitted == limit whenever some hit was denied (demand exceeded it);
- ``hit-coalesce``: the same on a pool with ``coalesce=True`` (merged admission), verified alike;
- ``hit-written``: a limit no hit reaches, so that every decision is one conditional write: the
  CPU of a decision that needs a request, to hold against a plain increment's;
- ``hit-refused``: the limit reached, with the limiter's known counts forgotten before each hit,
  so that every denial is a write the server refuses (the path a denial takes before a limiter
  has seen its window full);
- ``increment``: one plain ``increment`` per call, the yardstick.

    python benchmarks/rate_limit.py [--seconds 12] [--processes 3] [--tasks 300] [--limit 1000]
        [--modes hit,hit-coalesce,hit-written,hit-refused,increment]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter

from async_counters import CounterPool, RateLimiter
from async_counters.windows import Window

TABLE = "rate-limit-bench"
KEY = "api:user-42"
MODES = ("hit", "hit-coalesce", "hit-written", "hit-refused", "increment")


class Stamped:
    """The pool's wall clock (microseconds): the time it was last stamped with."""

    def __init__(self) -> None:
        self.us = time.time_ns() // 1000

    def __call__(self) -> int:
        return self.us

    def stamp(self) -> int:
        self.us = time.time_ns() // 1000
        return self.us


async def worker(
    endpoint: str, mode: str, tasks: int, seconds: float, limit: int, per: int
) -> None:
    admitted: Counter[int] = Counter()
    denied: Counter[int] = Counter()
    histogram: Counter[int] = Counter()  # latency in 0.1 ms buckets: no per-hit records
    coalesce = mode == "hit-coalesce"
    key = f"{KEY}:{mode}"
    if mode == "hit-written":
        limit = 10**15  # never reached: every hit is admitted by one write
    wall = Stamped()
    async with CounterPool(
        TABLE, endpoint_url=endpoint, max_in_flight=tasks, coalesce=coalesce, wall_us=wall
    ) as pool:
        limiter = RateLimiter(pool, limit=limit, per=per)
        known = getattr(getattr(limiter, "_admission", None), "known", {})
        forget = known.clear if mode == "hit-refused" else None
        stop = time.monotonic() + seconds
        cpu = time.process_time()

        async def run() -> None:
            while time.monotonic() < stop:
                start = time.perf_counter()
                if mode == "increment":
                    await pool.increment(key)
                    admitted[0] += 1
                else:
                    if forget is not None:
                        forget()
                    # The limiter reads the stamped time before its first suspension: the
                    # window tallied here is the one the hit went to, even at a window's edge.
                    window = int(wall.stamp() / 1e6 // per) * per
                    decision = await limiter.hit(key)
                    (admitted if decision.allowed else denied)[window] += 1
                histogram[int((time.perf_counter() - start) * 10_000)] += 1

        await asyncio.gather(*(run() for _ in range(tasks)))
        cpu = time.process_time() - cpu
        requests = pool.stats.requests
    print(
        json.dumps(
            {
                "admitted": admitted,
                "denied": denied,
                "requests": requests,
                "cpu": cpu,
                "histogram": histogram,
            }
        )
    )


def p99(histogram: Counter[int]) -> float:
    total, seen = sum(histogram.values()), 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= 0.99 * total:
            return bucket / 10
    return 0.0


def run_workers(endpoint: str, mode: str, args: argparse.Namespace) -> list[dict[str, object]]:
    per_process = args.tasks // args.processes
    command = [sys.executable, __file__, "--worker", endpoint, mode, str(per_process)]
    command += [str(args.seconds), str(args.limit), str(args.per)]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(args.processes)
    ]
    return [json.loads(proc.communicate()[0]) for proc in procs]


async def read_windows(
    endpoint: str, rows: dict[str, list[dict[str, object]]], per: int
) -> dict[str, dict[int, int]]:
    """Each hit row's window counts, read back from the server (strongly consistent)."""
    stored: dict[str, dict[int, int]] = {}
    async with CounterPool(TABLE, endpoint_url=endpoint) as pool:
        for mode in ("hit", "hit-coalesce"):
            starts = {int(k) for row in rows.get(mode, []) for k in row["admitted"]}  # type: ignore[attr-defined]
            starts |= {int(k) for row in rows.get(mode, []) for k in row["denied"]}  # type: ignore[attr-defined]
            stored[mode] = {
                start: await pool._reads.get(Window(per, start).item(f"{KEY}:{mode}"))
                for start in sorted(starts)
            }
    return stored


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        endpoint, mode, tasks, seconds, limit, per = sys.argv[2:8]
        asyncio.run(worker(endpoint, mode, int(tasks), float(seconds), int(limit), int(per)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--per", type=int, default=10)
    parser.add_argument("--modes", default=",".join(MODES), help="rows to run, comma-separated")
    args = parser.parse_args()
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))} (of {', '.join(MODES)})")
    server = subprocess.Popen(
        [sys.executable, "-m", "async_counters.local", "--backend", "memory"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()

        async def create() -> None:
            async with CounterPool(TABLE, endpoint_url=endpoint) as pool:
                await pool.ensure_table(ttl=True)

        asyncio.run(create())
        rows = {mode: run_workers(endpoint, mode, args) for mode in modes}
        stored = asyncio.run(read_windows(endpoint, rows, args.per))
    finally:
        server.terminate()
        server.wait(timeout=30)

    def total(rows: list[dict[str, object]], field: str) -> Counter[int]:
        out: Counter[int] = Counter()
        for row in rows:
            out.update({int(k): v for k, v in row[field].items()})  # type: ignore[attr-defined]
        return out

    print(
        f"\n{args.processes} processes, {args.tasks} tasks, one key, limit {args.limit} per "
        f"{args.per} s window, memory backend (own process), {args.seconds:g} s per row\n"
    )
    ok = True
    for mode in ("hit", "hit-coalesce"):
        if mode not in rows:
            continue
        admitted, denied = total(rows[mode], "admitted"), total(rows[mode], "denied")
        print(f"{mode}:\n")
        print("| window start | admitted | denied | count read back | verified |")
        print("|---|---:|---:|---:|---|")
        for window in sorted(set(admitted) | set(denied)):
            count = stored[mode].get(window, 0)
            good = count == admitted[window] <= args.limit and (
                not denied[window] or count == args.limit
            )
            ok &= good
            print(
                f"| {window} | {admitted[window]:,} | {denied[window]:,} | {count:,} | "
                f"{'yes' if good else 'NO'} |"
            )
        print()
    print("| row | calls | requests per call | client CPU per call | p99 latency |")
    print("|---|---:|---:|---:|---:|")
    for mode, got in rows.items():
        calls = sum(total(got, "admitted").values()) + sum(total(got, "denied").values())
        requests = sum(int(row["requests"]) for row in got)  # type: ignore[call-overload]
        cpu = sum(float(row["cpu"]) for row in got)  # type: ignore[arg-type]
        print(
            f"| {mode} | {calls:,} | {requests / calls:.3f} | {cpu / calls * 1e6:.0f} µs | "
            f"{p99(total(got, 'histogram')):.1f} ms |"
        )
    print("\nverified exact" if ok else "\nNOT EXACT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

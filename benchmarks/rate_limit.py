"""`RateLimiter` under contention: three processes, 300 tasks, one key, 1,000 hits per 10 s window.

The embedded DynamoDB (memory backend) runs in its own process. Each worker process runs its tasks
in a closed loop of ``limiter.hit(key)`` for ``--seconds``, then reports per window what it
admitted and denied, its requests, its CPU and a latency histogram. Verified per window: admitted
<= limit, and admitted == limit whenever some hit was denied (demand exceeded it). Beside it, the
client CPU of one plain ``increment`` in the same setup.

    python benchmarks/rate_limit.py [--seconds 12] [--processes 3] [--tasks 300] [--limit 1000]
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

TABLE = "rate-limit-bench"
KEY = "api:user-42"


async def worker(
    endpoint: str, mode: str, tasks: int, seconds: float, limit: int, per: int
) -> None:
    admitted: Counter[int] = Counter()
    denied: Counter[int] = Counter()
    histogram: Counter[int] = Counter()  # latency in 0.1 ms buckets: no per-hit records
    async with CounterPool(TABLE, endpoint_url=endpoint, max_in_flight=tasks) as pool:
        limiter = RateLimiter(pool, limit=limit, per=per)
        stop = time.monotonic() + seconds
        cpu = time.process_time()

        async def run() -> None:
            while time.monotonic() < stop:
                start = time.perf_counter()
                if mode == "increment":
                    await pool.increment(KEY + ":plain")
                    admitted[0] += 1
                else:
                    window = int(time.time() // per) * per
                    decision = await limiter.hit(KEY)
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
    args = parser.parse_args()
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
        hits = run_workers(endpoint, "hit", args)
        plain = run_workers(endpoint, "increment", args)
    finally:
        server.terminate()
        server.wait(timeout=30)

    def total(rows: list[dict[str, object]], field: str) -> Counter[int]:
        out: Counter[int] = Counter()
        for row in rows:
            out.update({int(k): v for k, v in row[field].items()})  # type: ignore[attr-defined]
        return out

    admitted, denied = total(hits, "admitted"), total(hits, "denied")
    n_hits = sum(admitted.values()) + sum(denied.values())
    ok = True
    print(
        f"\n{args.processes} processes, {args.tasks} tasks, one key, limit {args.limit} per "
        f"{args.per} s window, memory backend (own process), {args.seconds:g} s\n"
    )
    print("| window start | admitted | denied | verified |")
    print("|---|---:|---:|---|")
    for window in sorted(set(admitted) | set(denied)):
        good = admitted[window] <= args.limit and (
            not denied[window] or admitted[window] == args.limit
        )
        ok &= good
        print(
            f"| {window} | {admitted[window]:,} | {denied[window]:,} | {'yes' if good else 'NO'} |"
        )
    requests = sum(int(row["requests"]) for row in hits)  # type: ignore[call-overload]
    cpu = sum(float(row["cpu"]) for row in hits)  # type: ignore[arg-type]
    plain_n = sum(total(plain, "admitted").values())
    plain_cpu = sum(float(row["cpu"]) for row in plain)  # type: ignore[arg-type]
    print(f"\nhits: {n_hits:,}; requests per hit: {requests / n_hits:.3f}")
    print(
        f"client CPU per hit: {cpu / n_hits * 1e6:.0f} µs; per plain increment: "
        f"{plain_cpu / plain_n * 1e6:.0f} µs"
    )
    print(
        f"p99 decision latency: {p99(total(hits, 'histogram')):.1f} ms; "
        f"plain increment p99: {p99(total(plain, 'histogram')):.1f} ms"
    )
    print("verified exact" if ok else "NOT EXACT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

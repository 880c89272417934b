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

Then the same load through `limits`' own strategies on our storage (``async+dynamodb://``, needs
the ``[limits]`` extra): ``FixedWindowRateLimiter`` (windows start at their first hit, so hits are
placed in windows counted from the first admitted hit), ``MovingWindowRateLimiter`` (verified:
no span of ``--per`` seconds admits more than the limit, and the first admits exactly the limit)
and ``SlidingWindowCounterRateLimiter`` (per epoch window: at most the limit). ``--no-limits``
skips them; ``--limits fixed,moving`` picks some.

    python benchmarks/rate_limit.py [--seconds 12] [--processes 3] [--tasks 300] [--limit 1000]
        [--modes hit,hit-coalesce,hit-written,hit-refused,increment]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from async_counters import CounterPool, RateLimiter
from async_counters.windows import Window

#: The `limits` strategies measured beside ours, by their `limits.aio.strategies.STRATEGIES` names.
LIMITS_STRATEGIES = {
    "fixed": "fixed-window",
    "moving": "moving-window",
    "sliding": "sliding-window-counter",
}

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
    through_limits = mode.startswith("limits-")  # those read the pool's own, running clock
    clock = {} if through_limits else {"wall_us": wall}
    async with CounterPool(
        TABLE, endpoint_url=endpoint, max_in_flight=tasks, coalesce=coalesce, **clock
    ) as pool:
        limiter = RateLimiter(pool, limit=limit, per=per)
        known = getattr(getattr(limiter, "_admission", None), "known", {})
        forget = known.clear if mode == "hit-refused" else None
        hit_limits = limits_hit(pool, mode, limit, per, admitted) if through_limits else None
        stop = time.monotonic() + seconds
        cpu = time.process_time()

        async def run() -> None:
            while time.monotonic() < stop:
                start = time.perf_counter()
                if hit_limits is not None:  # hits by the millisecond of their clock reading
                    now = int(time.time() * 1000)
                    allowed = await hit_limits()
                    if not (allowed and mode == "limits-moving"):  # those record their stamp
                        (admitted if allowed else denied)[now] += 1
                    await asyncio.sleep(0)  # a hit denied without a request never yields
                elif mode == "increment":
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
                    await asyncio.sleep(0)  # a hit denied without a request never yields
                histogram[int((time.perf_counter() - start) * 10_000)] += 1

        await asyncio.gather(*(run() for _ in range(tasks)))
        cpu = time.process_time() - cpu
        requests = pool.stats.requests
        write_units = pool.stats.write_units
    print(
        json.dumps(
            {
                "admitted": admitted,
                "denied": denied,
                "requests": requests,
                "write_units": write_units,
                "cpu": cpu,
                "histogram": histogram,
            }
        )
    )


def limits_hit(
    pool: CounterPool, mode: str, limit: int, per: int, admitted: Counter[int]
) -> Callable[[], Awaitable[bool]]:
    """One hit through a `limits` strategy on our storage, sharing ``pool``.

    A moving window's guarantee is about the times written into its slots (a hit that waited
    for another's probe writes a later time than it started at): those are what is recorded,
    through the storage's one place that writes them."""
    from limits import RateLimitItemPerSecond
    from limits.aio.strategies import STRATEGIES

    from async_counters.limits_storage import DynamoDBStorage

    class Recording(DynamoDBStorage):
        async def _take(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            taken = await super()._take(*args, **kwargs)
            if taken:
                now = args[5] if len(args) > 5 else kwargs["now"]
                admitted[now] += 1
            return taken

    storage = Recording(f"async+dynamodb://{TABLE}", pool=pool)
    strategy = STRATEGIES[LIMITS_STRATEGIES[mode.removeprefix("limits-")]](storage)
    item = RateLimitItemPerSecond(limit, per)

    def hit() -> Awaitable[bool]:
        return strategy.hit(item, KEY)

    return hit


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
    parser.add_argument("--limits", default=",".join(LIMITS_STRATEGIES))
    parser.add_argument("--no-limits", action="store_true")
    args = parser.parse_args()
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))} (of {', '.join(MODES)})")
    strategies = [] if args.no_limits else [s for s in args.limits.split(",") if s]
    unknown = set(strategies) - set(LIMITS_STRATEGIES)
    if unknown:
        parser.error(f"--limits takes {', '.join(LIMITS_STRATEGIES)}, not {', '.join(unknown)}")
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
        through_limits = {
            name: run_workers(endpoint, f"limits-{name}", args) for name in strategies
        }
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
    if through_limits:
        ours = rows.get("hit", [])
        n_hits = sum(total(ours, "admitted").values()) + sum(total(ours, "denied").values())
        cpu = sum(float(row["cpu"]) for row in ours)  # type: ignore[arg-type]
        our_cpu = cpu / n_hits if n_hits else float("nan")
        ok &= report_limits(through_limits, args, our_cpu, p99(total(ours, "histogram")))
        print("all verified exact" if ok else "NOT EXACT")
    sys.exit(0 if ok else 1)


def report_limits(
    runs: dict[str, list[dict[str, object]]],
    args: argparse.Namespace,
    our_cpu: float,
    our_p99: float,
) -> bool:
    """The `limits` strategies' table; whether each admitted what it must."""
    ok = True
    span = args.per * 1000
    print(
        f"\nThe same load through `limits` on async+dynamodb:// ({args.limit} per {args.per} s)\n"
    )
    print(
        "| strategy | hits | admitted per window | verified | requests per hit "
        "| requests per admitted hit | write units per hit | write units per admitted hit "
        "| CPU per hit | p99 |"
    )
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| ours: RateLimiter | | (above) | (above) | | | | | {our_cpu * 1e6:.0f} µs "
        f"| {our_p99:.1f} ms |"
    )
    for name, rows in runs.items():
        admitted: Counter[int] = Counter()
        denied: Counter[int] = Counter()
        for row in rows:
            admitted.update({int(k): v for k, v in row["admitted"].items()})  # type: ignore[attr-defined]
            denied.update({int(k): v for k, v in row["denied"].items()})  # type: ignore[attr-defined]
        n_hits = sum(admitted.values()) + sum(denied.values())
        if name == "moving":
            windows, good = moving_windows(admitted, span, args.limit)
        else:
            windows, good = fixed_windows(
                admitted, denied, span, args.limit, aligned=name == "sliding"
            )
        ok &= good
        requests = sum(int(row["requests"]) for row in rows)  # type: ignore[call-overload]
        units = sum(float(row["write_units"]) for row in rows)  # type: ignore[arg-type]
        cpu = sum(float(row["cpu"]) for row in rows)  # type: ignore[arg-type]
        histogram: Counter[int] = Counter()
        for row in rows:
            histogram.update({int(k): v for k, v in row["histogram"].items()})  # type: ignore[attr-defined]
        n_admitted = sum(admitted.values())
        print(
            f"| {LIMITS_STRATEGIES[name]} | {n_hits:,} | {windows} | {'yes' if good else 'NO'} "
            f"| {requests / n_hits:.3f} | {requests / max(1, n_admitted):.2f} "
            f"| {units / n_hits:.2f} | {units / max(1, n_admitted):.2f} "
            f"| {cpu / n_hits * 1e6:.0f} µs | {p99(histogram):.1f} ms |"
        )
    return ok


def fixed_windows(
    admitted: Counter[int], denied: Counter[int], span: int, limit: int, *, aligned: bool
) -> tuple[str, bool]:
    """Admitted per window: at most the limit, and exactly it in every window where some hit was
    denied (but for the sliding estimate, which denies earlier by design).

    Sliding windows are the epoch's. `limits`' fixed windows start at their first hit: a window
    starts at the first admitted hit (its clock reading), the next at the first one ``span``
    later or more, and every hit belongs to the window its clock reading falls in."""
    if aligned:
        starts = sorted({ms // span * span for ms in admitted})
    else:
        starts = []
        for ms in sorted(admitted):
            if not starts or ms >= starts[-1] + span:
                starts.append(ms)
    per_window: Counter[int] = Counter()
    denials: Counter[int] = Counter()
    for counts, into in ((admitted, per_window), (denied, denials)):
        for ms, n in counts.items():
            window = bisect.bisect_right(starts, ms) - 1
            if window >= 0 and ms < starts[window] + span:
                into[window] += n
    good = all(n <= limit for n in per_window.values())
    if not aligned:
        good &= all(per_window[w] == limit for w in denials)
    return ", ".join(f"{per_window[w]:,}" for w in sorted(per_window)), good


def moving_windows(admitted: Counter[int], span: int, limit: int) -> tuple[str, bool]:
    """The most admitted in any span (must not pass the limit) and in the first span from the
    first admitted hit (must equal it: demand exceeded it there)."""
    if not admitted:
        return "none", False
    stamps = sorted(admitted)
    first = sum(n for ms, n in admitted.items() if ms < stamps[0] + span)
    most, inside, left = 0, 0, 0
    for ms in stamps:  # every span ending at an admitted hit's millisecond
        inside += admitted[ms]
        while stamps[left] <= ms - span:
            inside -= admitted[stamps[left]]
            left += 1
        most = max(most, inside)
    return f"first span {first:,}; most in any span {most:,}", most <= limit and first == limit


if __name__ == "__main__":
    main()

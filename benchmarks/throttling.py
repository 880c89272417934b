"""One hot key against a partition's cap: the pool beside botocore's own retry modes, in one run.

The embedded DynamoDB runs in its own process (memory backend, capacity model on: 1,000 WCU/s per
partition key, 5 ms +- 1 ms latency). Each contender, in a process of its own, runs 256 concurrent
callers incrementing one key of its own for the same duration:

- the pool (adaptive per-key pacing, jittered backoff, deadline-bounded retries), and the pool
  with pacing off, to show what the pacing adds;
- aioboto3 ``Table.update_item`` with botocore's default (legacy) retries, then the ``standard``
  and ``adaptive`` retry modes, each with its defaults (aioboto3 lives in its own environment,
  `peers.py`, since it pins an older aiobotocore).

Requests and throttles are counted by the server; "exact" compares the value read back with the
increments the contender saw acknowledged, and with the server's ledger of what it applied.

    python benchmarks/throttling.py [--seconds 20] [--callers 256] [--cap 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

THROTTLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
}
TABLE = "throttling-bench"

CONTENDERS: list[tuple[str, str]] = [
    ("pool", "CounterPool (per-key pacing)"),
    ("pool-unpaced", "CounterPool, pacing off"),
    ("legacy", "aioboto3 update_item, legacy retries (default)"),
    ("standard", "aioboto3 update_item, standard retries"),
    ("adaptive", "aioboto3 update_item, adaptive retries"),
]


# -- contenders (each runs in its own process) ------------------------------------------------


async def _callers(
    callers: int, seconds: float, increment: Any
) -> tuple[int, int, dict[str, int], float]:
    acked = failed = 0
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal acked, failed
        while time.monotonic() < deadline:
            try:
                await increment()
            except Exception as exc:
                failed += 1
                name = getattr(exc, "code", None) or type(exc).__name__
                errors[name] = errors.get(name, 0) + 1
            else:
                acked += 1

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return acked, failed, errors, time.monotonic() - started


async def run_pool(
    endpoint: str, key: str, callers: int, seconds: float, paced: bool
) -> dict[str, Any]:
    from async_counters import CounterPool

    async with CounterPool(TABLE, endpoint_url=endpoint, adaptive=paced) as pool:
        acked, failed, errors, elapsed = await _callers(
            callers, seconds, lambda: pool.increment(key)
        )
        stats = pool.stats
    return {
        "acked": acked,
        "failed": failed,
        "errors": errors,
        "elapsed": elapsed,
        "client_requests": stats.requests,
        "final_rate": stats.key_rates.get(key),
    }


async def run_aioboto3(
    endpoint: str, key: str, callers: int, seconds: float, mode: str
) -> dict[str, Any]:
    import aioboto3
    from botocore.config import Config

    session = aioboto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    )
    config = Config(retries={"mode": mode})  # each mode with its own defaults, as users get it
    async with session.resource("dynamodb", endpoint_url=endpoint, config=config) as resource:
        table = await resource.Table(TABLE)

        async def increment() -> None:
            await table.update_item(
                Key={"pk": key},
                UpdateExpression="ADD #v :n",
                ExpressionAttributeNames={"#v": "count"},
                ExpressionAttributeValues={":n": 1},
                ReturnValues="UPDATED_NEW",
            )

        acked, failed, errors, elapsed = await _callers(callers, seconds, increment)
    return {"acked": acked, "failed": failed, "errors": errors, "elapsed": elapsed}


def contender_main(args: argparse.Namespace) -> None:
    if args.contender in ("pool", "pool-unpaced"):
        coroutine = run_pool(
            args.endpoint, args.key, args.callers, args.seconds, args.contender == "pool"
        )
    else:
        coroutine = run_aioboto3(
            args.endpoint, args.key, args.callers, args.seconds, args.contender
        )
    try:
        import uvloop

        result = uvloop.run(coroutine)
    except ImportError:
        result = asyncio.run(coroutine)
    print(json.dumps(result))


# -- the orchestrator -------------------------------------------------------------------------


def _admin(endpoint: str, name: str) -> Any:
    with urllib.request.urlopen(f"{endpoint}/_local/{name}", timeout=10) as response:
        return json.load(response)


async def _prepare_and_read(endpoint: str, keys: list[str]) -> dict[str, int]:
    from async_counters import CounterPool

    async with CounterPool(TABLE, endpoint_url=endpoint) as pool:
        await pool.ensure_table()
        return await pool.get_many(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--callers", type=int, default=256)
    parser.add_argument(
        "--caps",
        default="1000,100",
        help="WCU/s per partition key, one table each (default: DynamoDB's 1,000, and 100, "
        "where one core of botocore can overrun the cap and its retry modes show)",
    )
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--only", help="comma-separated contenders to run")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        contender_main(args)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peers import peer_python

    aioboto3_python = str(peer_python())
    chosen = [c for c in CONTENDERS if not args.only or c[0] in args.only.split(",")]
    for cap in (float(c) for c in args.caps.split(",")):
        rows = [(label, *_measure(args, cap, name, aioboto3_python)) for name, label in chosen]
        _print_table(rows, args, cap)


def _measure(args: argparse.Namespace, cap: float, name: str, peer: str) -> tuple[Any, ...]:
    """Run one contender against a fresh server (so each starts with the same full bucket)."""
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "async_counters.local", "--backend", "memory", "--capacity"),
            *("--partition-wcu", str(cap), "--table-wcu", str(cap * 40)),
            *("--latency-ms", str(args.latency_ms), "--jitter-ms", "1", "--port", "0"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        key = f"hot:{name}"
        asyncio.run(_prepare_and_read(endpoint, [key]))
        before = _admin(endpoint, "stats")
        output = subprocess.run(
            [
                *(sys.executable if name.startswith("pool") else peer, __file__),
                *("--contender", name, "--endpoint", endpoint, "--key", key),
                *("--callers", str(args.callers), "--seconds", str(args.seconds)),
            ],
            capture_output=True,
            text=True,
            timeout=args.seconds * 4 + 120,
            check=True,
        )
        result = json.loads(output.stdout.strip().splitlines()[-1])
        after = _admin(endpoint, "stats")
        value = asyncio.run(_prepare_and_read(endpoint, [key]))[key]
        ledger_sum = _ledger_sum(_admin(endpoint, f"ledger?table={TABLE}"), key)
        print(f"done: {name} at {cap:g}/s", file=sys.stderr)
        return result, before, after, value, ledger_sum
    finally:
        server.terminate()
        server.wait(timeout=30)


def _ledger_sum(ledger: Any, key: str) -> int:
    entry = ledger["tables"].get(TABLE, {}).get(key, {"sum": 0})
    return int(entry["sum"])


def _print_table(rows: list[Any], args: argparse.Namespace, cap: float) -> None:
    print(
        f"\nOne hot key capped at {cap:,.0f} WCU/s, {args.callers} callers, "
        f"{args.latency_ms:g} ms latency, {args.seconds:g} s each (memory backend, own process)\n"
    )
    header = (
        "| client | goodput (share of cap) | requests per acknowledged increment "
        "| share of requests throttled | increments failed after retries | totals exact |"
    )
    print(header)
    print("|---|---:|---:|---:|---:|---|")
    for label, result, before, after, value, ledger_sum in rows:
        acked = result["acked"]
        requests = after["requests"] - before["requests"]
        throttled = after["throttled"] - before["throttled"]
        goodput = acked / result["elapsed"]
        exact = value == acked == ledger_sum
        print(
            f"| {label} | {goodput:,.0f}/s ({goodput / cap:.0%}) "
            f"| {requests / max(acked, 1):.2f} | {throttled / max(requests, 1):.0%} "
            f"| {result['failed']:,} | {'yes' if exact else f'NO: read {value}, acked {acked}'} |"
        )


if __name__ == "__main__":
    main()

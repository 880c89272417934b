"""Hot keys against a partition's cap: the pool beside botocore's retry modes, over two buckets.

Each row is one contender, in a process of its own, running ``--callers`` concurrent callers
that increment one key of its own for ``--seconds``, against a fresh embedded DynamoDB (memory
backend, 5 ms +- 1 ms latency) whose partition keys are capped at ``cap`` writes/s with a bucket
holding ``burst`` seconds of it. With ``--scopes table`` the cap is the table's instead (a
provisioned table's capacity, throttles naming ``TableWriteProvisionedThroughputExceeded``) and
the callers spread over ``--keys`` keys, none of them hot. The bucket is either

- ``server``: the embedded server's own capacity model (``--capacity --burst-seconds``), or
- ``proxy``: `bucket_proxy.py`, an independently written bucket (GCRA) in front of the same
  server with its capacity model off, so that the pool is not tuned to one model's shape.

Contenders: the pool (adaptive per-key pacing), the pool with pacing off, the pool sharding
the key over ``--shards`` items (its goodput is a share of shards x cap), aioboto3
``Table.update_item`` with botocore's legacy (default), ``standard`` and ``adaptive`` retry
modes, each with its defaults (in their own environment, `peers.py`, as aioboto3 pins an older
botocore), and the SDKs' 2026 retry defaults: aiobotocore's ``update_item`` in this project's
environment with ``AWS_NEW_RETRIES_2026=true`` (the installed botocore honours it: standard
mode, 4 attempts, 25 ms / 1 s bases, a 500-token quota; the row says if it did not).

And a yardstick, ``fixed``: no client, but a pace told the cap, run at each of
``--fixed-shares`` of it (a row each) over as many keys as ``--shards`` (or the table), a
throttled write sent again at its key's next slot. It has nothing to learn and no cold start,
so its best row shows what arrival jitter leaves of a shallow bucket: the yardstick for a
pacer that has to learn the cap.

Goodput counts increments acknowledged inside the window; "drain" is how long the callers
still waiting at its end took to finish. Latency is that of acknowledged increments (a
histogram with 2 % buckets, no record per operation). Requests and throttles are counted by the
bucket, not the client. "callers/cap" is the mean wait that closed-loop callers cannot avoid
at the cap (Little's law), the yardstick for p50; a window shorter than a few times it measures
mostly the start. "exact" compares the value read back with the increments acknowledged
and with the server's ledger of what it applied.

    python benchmarks/throttling.py [--seconds 20] [--caps 1000,100] [--bursts 1]
        [--callers 256] [--buckets server,proxy] [--only pool,retry-2026] [--quick]
        [--scopes partition,table] [--keys 32] [--only fixed --fixed-shares 0.9,0.95]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TABLE = "throttling-bench"
BUCKETS = ("server", "proxy")
SCOPES = ("partition", "table")

CONTENDERS: dict[str, str] = {
    "pool": "CounterPool (adaptive pacing)",
    "pool-unpaced": "CounterPool, pacing off",
    "pool-sharded": "CounterPool, {shards} shards (% of {shards} x cap)",
    "legacy": "aioboto3, legacy retries (default)",
    "standard": "aioboto3, standard retries",
    "adaptive": "aioboto3, adaptive retries",
    "retry-2026": "aiobotocore, 2026 retry defaults",
    "fixed": "fixed pace told the cap",
}
PEER_CONTENDERS = ("legacy", "standard", "adaptive")
QUOTA = "RetryQuotaExceeded"


# -- contenders (each runs in its own process; stdlib only above the clients' imports) --------


class Latencies:
    """A log histogram of seconds (buckets 2 % wide) and the exact maximum: bounded memory."""

    STEPS_PER_E = 50  # e ** (1 / 50) = 1.02

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.max = 0.0

    def add(self, seconds: float) -> None:
        index = math.floor(math.log(max(seconds, 1e-6)) * self.STEPS_PER_E)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.max = max(self.max, seconds)

    def quantile(self, q: float) -> float:
        total = sum(self.counts.values())
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= q * total:
                return min(math.exp((index + 0.5) / self.STEPS_PER_E), self.max)
        return 0.0

    def summary(self) -> dict[str, float]:
        return {"p50": self.quantile(0.5), "p99": self.quantile(0.99), "max": self.max}


def error_name(exc: BaseException) -> str:
    """A failure's name: botocore's quota refusal apart from the service code it carries."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        if response.get("ResponseMetadata", {}).get("RetryQuotaReached"):
            return QUOTA
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return str(getattr(exc, "code", None) or type(exc).__name__)


def bucket_requests(args: argparse.Namespace) -> int | None:
    """Requests the bucket has seen so far (None when the run was not told where to ask)."""
    if not getattr(args, "stats_url", None):
        return None
    with urllib.request.urlopen(args.stats_url, timeout=10) as response:
        stats = json.load(response)
    return int((stats["totals"] if args.stats_totals else stats)["requests"])


async def run_callers(
    callers: int, seconds: float, increment: Any, args: argparse.Namespace | None = None
) -> dict[str, Any]:
    acked = acked_late = failed = acked_steady = 0
    errors: dict[str, int] = {}
    latencies = Latencies()
    started = time.monotonic()
    deadline = started + seconds
    steady_from = started + (args.steady_from if args is not None else 0.0)
    marks: dict[str, int | None] = {}

    async def mark() -> None:
        # The bucket's request count when the steady part starts and when the window ends.
        if args is None:
            return
        await asyncio.sleep(max(0.0, steady_from - time.monotonic()))
        marks["steady"] = await asyncio.to_thread(bucket_requests, args)
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        marks["end"] = await asyncio.to_thread(bucket_requests, args)

    async def caller(index: int) -> None:
        nonlocal acked, acked_late, failed, acked_steady
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                await increment(index)
            except Exception as exc:
                failed += 1
                name = error_name(exc)
                errors[name] = errors.get(name, 0) + 1
                continue
            done = time.monotonic()
            latencies.add(done - sent)
            if done <= deadline:
                acked += 1
                acked_steady += done > steady_from
            else:
                acked_late += 1

    await asyncio.gather(mark(), *(caller(i) for i in range(callers)))
    steady, end = marks.get("steady"), marks.get("end")
    return {
        "acked": acked,
        "acked_steady": acked_steady,
        "steady_seconds": deadline - steady_from,
        "requests_steady": None if steady is None or end is None else end - steady,
        "acked_late": acked_late,
        "failed": failed,
        "errors": errors,
        "window": seconds,
        "drain": max(0.0, time.monotonic() - deadline),
        "latency": latencies.summary(),
    }


async def run_pool(args: argparse.Namespace) -> dict[str, Any]:
    from async_counters import CounterPool

    shards = args.shards if args.contender == "pool-sharded" else 1
    paced = args.contender != "pool-unpaced"
    async with CounterPool(
        TABLE, endpoint_url=args.endpoint, adaptive=paced, shards=shards
    ) as pool:
        keys = contender_keys(args.key, args.keys)
        result = await run_callers(
            args.callers, args.seconds, lambda i: pool.increment(keys[i % len(keys)]), args
        )
    return result


def contender_keys(key: str, keys: int) -> list[str]:
    """The keys a contender's callers write: its one hot key, or ``keys`` of them."""
    return [key] if keys == 1 else [f"{key}:{i}" for i in range(keys)]


def update_params(key: str) -> dict[str, Any]:
    return {
        "Key": {"pk": key},
        "UpdateExpression": "ADD #v :n",
        "ExpressionAttributeNames": {"#v": "count"},
        "ExpressionAttributeValues": {":n": 1},
        "ReturnValues": "UPDATED_NEW",
    }


async def run_fixed(args: argparse.Namespace) -> dict[str, Any]:
    """A yardstick, not a client: told the cap, it paces each item (or the table) at a fixed
    share of it from the first write, and sends a throttled write again at its item's next slot.
    Nothing to learn and no cold start: what arrival jitter leaves of a shallow bucket."""
    from async_counters import CounterPool, RetryPolicy, ThrottledError

    loop = asyncio.get_running_loop()
    keys = contender_keys(args.key, args.keys)
    interval = 1.0 / (args.fixed_share * args.cap)
    # The next free slot of each item, or of the whole table (one lane, its keys in turn).
    per_key = args.scope == "partition"
    lanes = [loop.time()] * (len(keys) if per_key else 1)

    async with CounterPool(
        TABLE, endpoint_url=args.endpoint, adaptive=False, retry=RetryPolicy(attempts=1)
    ) as pool:

        async def increment(i: int) -> int:
            while True:
                lane = min(range(len(lanes)), key=lanes.__getitem__)  # the one free soonest
                now = loop.time()
                at = max(lanes[lane], now)
                lanes[lane] = at + interval
                if at > now:
                    await asyncio.sleep(at - now)
                try:
                    return await pool.increment(keys[lane] if per_key else keys[i % len(keys)])
                except ThrottledError:
                    continue  # not applied: the next slot

        return await run_callers(args.callers, args.seconds, increment, args)


async def run_aioboto3(args: argparse.Namespace) -> dict[str, Any]:
    import aioboto3
    from botocore.config import Config

    session = aioboto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    )
    # Each mode with its own defaults, as users get it.
    config = Config(retries={"mode": args.contender})
    async with session.resource("dynamodb", endpoint_url=args.endpoint, config=config) as db:
        table = await db.Table(TABLE)
        params = [update_params(key) for key in contender_keys(args.key, args.keys)]
        return await run_callers(
            args.callers,
            args.seconds,
            lambda i: table.update_item(**params[i % len(params)]),
            args,
        )


async def run_retry_2026(args: argparse.Namespace) -> dict[str, Any]:
    from aiobotocore.session import get_session
    from botocore import configprovider

    session = get_session()
    async with session.create_client(
        "dynamodb",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ) as client:  # no retry configuration: the defaults, as the environment sets them
        params = [
            {
                **update_params(key),
                "TableName": TABLE,
                "Key": {"pk": {"S": key}},
                "ExpressionAttributeValues": {":n": {"N": "1"}},
            }
            for key in contender_keys(args.key, args.keys)
        ]
        result = await run_callers(
            args.callers,
            args.seconds,
            lambda i: client.update_item(**params[i % len(params)]),
            args,
        )
    result["new_retries"] = bool(getattr(configprovider, "NEW_RETRIES_ENABLED", False))
    return result


def contender_main(args: argparse.Namespace) -> None:
    runs: dict[str, Callable[[argparse.Namespace], Any]] = {
        "retry-2026": run_retry_2026,
        "fixed": run_fixed,
        **dict.fromkeys(PEER_CONTENDERS, run_aioboto3),
    }
    coroutine = runs.get(args.contender, run_pool)(args)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coroutine)
    else:
        result = uvloop.run(coroutine)
    print(json.dumps(result))


# -- the orchestrator -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Case:
    bucket: str
    scope: str
    cap: float
    burst: float
    callers: int


@dataclass(frozen=True, kw_only=True)
class Row:
    case: Case
    contender: str
    result: dict[str, Any]
    requests: int
    throttled: int
    value: int
    ledger_sum: int
    shards: int
    share: float = 0.0  # the fixed pace's share of the cap


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


async def prepare_and_read(endpoint: str, keys: list[str], shards: int) -> int:
    """The sum of ``keys``' values (the table created first if need be)."""
    from async_counters import CounterPool

    async with CounterPool(TABLE, endpoint_url=endpoint, shards=shards) as pool:
        await pool.ensure_table()
        return sum((await pool.get_many(keys)).values())


def start(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    """A server process that prints its endpoint on its first line."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    endpoint = process.stdout.readline().strip()
    if not endpoint.startswith("http"):
        process.kill()
        process.wait(timeout=30)
        raise SystemExit(f"error: {command[2]} did not start (see its output above)")
    return process, endpoint


@contextmanager
def bucket(args: argparse.Namespace, case: Case) -> Iterator[tuple[str, Callable[[], Any]]]:
    """A fresh capped endpoint (so each row starts with a full bucket) and its counts."""
    server_command = [
        *(sys.executable, "-m", "async_counters.local", "--backend", "memory"),
        *("--latency-ms", str(args.latency_ms), "--jitter-ms", "1", "--port", "0"),
    ]
    if case.bucket == "server":
        partition, table = (
            (case.cap, case.cap * 40) if case.scope == "partition" else (case.cap * 40, case.cap)
        )
        server_command += [
            *("--capacity", "--partition-wcu", str(partition)),
            *("--table-wcu", str(table), "--burst-seconds", str(case.burst)),
        ]
    processes = []
    try:
        server, endpoint = start(server_command)
        processes.append(server)
        if case.bucket == "server":
            yield endpoint, lambda: get_json(f"{endpoint}/_local/stats")
            return
        proxy, proxy_endpoint = start(
            [
                *(sys.executable, str(HERE / "bucket_proxy.py"), "--upstream", endpoint),
                *("--rate", str(case.cap), "--burst-seconds", str(case.burst)),
                *("--scope", "key" if case.scope == "partition" else "table"),
            ]
        )
        processes.append(proxy)
        yield proxy_endpoint, lambda: get_json(f"{proxy_endpoint}/_proxy/stats")["totals"]
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)


def measure(args: argparse.Namespace, case: Case, name: str, peer: str, share: float = 0.0) -> Row:
    shards = args.shards if name == "pool-sharded" else 1
    key = f"hot:{name}"
    # The fixed pace writes items of its own, as many as the sharded pool's shards.
    own = args.shards if name == "fixed" else 1
    keys = contender_keys(key, own if case.scope == "partition" else args.keys)
    with bucket(args, case) as (endpoint, counts):
        asyncio.run(prepare_and_read(endpoint, keys, shards))
        before = counts()
        environment = {**os.environ, "AWS_NEW_RETRIES_2026": str(name == "retry-2026").lower()}
        output = subprocess.run(
            [
                *(peer if name in PEER_CONTENDERS else sys.executable, __file__),
                *("--contender", name, "--endpoint", endpoint, "--key", key),
                *("--callers", str(case.callers), "--seconds", str(args.seconds)),
                *("--shards", str(args.shards), "--steady-from", str(args.steady_from)),
                *("--keys", str(len(keys)), "--scope", case.scope),
                *("--cap", str(case.cap), "--fixed-share", str(share or 1.0)),
                *(
                    ("--stats-url", f"{endpoint}/_local/stats")
                    if case.bucket == "server"
                    else ("--stats-url", f"{endpoint}/_proxy/stats", "--stats-totals")
                ),
            ],
            capture_output=True,
            text=True,
            timeout=args.seconds * 4 + 120,
            env=environment,
        )
        if output.returncode != 0:
            raise SystemExit(f"error: {name} failed:\n{output.stderr.strip()[-2000:]}")
        result = json.loads(output.stdout.strip().splitlines()[-1])
        after = counts()
        value = asyncio.run(prepare_and_read(endpoint, keys, shards))
        ledger = get_json(f"{endpoint}/_local/ledger?table={TABLE}")["tables"].get(TABLE, {})
        # The proxy forwards the ledger's admin path untouched, so this is the server's.
        from async_counters.builders import shard_key

        items = [shard_key(k, s) for k in keys for s in range(shards)]
        ledger_sum = sum(int(ledger.get(item, {"sum": 0})["sum"]) for item in items)
    print(
        f"done: {name} ({case.bucket}, {case.scope}, {case.cap:g}/s, {case.burst:g} s)",
        file=sys.stderr,
    )
    return Row(
        case=case,
        contender=name,
        result=result,
        requests=after["requests"] - before["requests"],
        throttled=after["throttled"] - before["throttled"],
        value=value,
        ledger_sum=ledger_sum,
        # Shards (and the fixed pace's items) share a table's cap.
        shards=(shards * own) if case.scope == "partition" else 1,
        share=share,
    )


def fixed_label(row: Row) -> str:
    """What the fixed pace was told, and over what."""
    if row.case.scope == "table":
        return f"fixed pace told the table's cap: {row.share:.0%} of it"
    if row.shards == 1:
        return f"fixed pace told the cap: {row.share:.0%} of it"
    return (
        f"fixed pace told the cap: {row.share:.0%} of it on each of {row.shards} keys "
        f"(% of {row.shards} x cap)"
    )


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\nOne hot key per contender (a partition's cap), or {args.keys} keys (a table's), "
        f"{args.latency_ms:g} ms +- 1 ms latency, "
        f"{args.seconds:g} s window each (memory backend, own processes); shards = {args.shards}; "
        f"the steady columns leave out the first {args.steady_from:g} s (the cold start)\n"
    )
    print(
        "| bucket | scope | cap/s | burst s | callers | client | goodput % of cap "
        "| requests per ack "
        "| steady goodput % | steady requests per ack "
        "| throttled | failed | p50 ms | p99 ms | max ms | callers/cap ms | drain s | exact |"
    )
    print("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        result, case = row.result, row.case
        acked = result["acked"]
        acknowledged = acked + result["acked_late"]
        label = CONTENDERS[row.contender].format(shards=args.shards)
        if row.contender == "fixed":
            label = fixed_label(row)
        if row.contender == "retry-2026" and not result.get("new_retries"):
            label += " (NOT honoured by this botocore)"
        goodput = acked / result["window"] / (case.cap * row.shards)
        quota = result["errors"].get(QUOTA, 0)
        failed = f"{result['failed']:,}" + (f" ({quota:,} quota)" if quota else "")
        exact = row.value == acknowledged == row.ledger_sum
        verdict = "yes" if exact else f"NO: read {row.value}, acked {acknowledged}"
        latency = result["latency"]
        # Callers that wait for each answer queue for callers / cap on average (Little's law),
        # however well paced: the latency any client that fails nothing must show.
        floor = case.callers / (case.cap * row.shards)
        steady = result["acked_steady"] / result["steady_seconds"] / (case.cap * row.shards)
        requests_steady = result.get("requests_steady")
        per_ack_steady = (
            "-"
            if requests_steady is None
            else f"{requests_steady / max(result['acked_steady'], 1):.2f}"
        )
        print(
            f"| {case.bucket} | {case.scope} | {case.cap:,.0f} | {case.burst:g} "
            f"| {case.callers:,} | {label} "
            f"| {goodput:.0%} | {row.requests / max(acknowledged, 1):.2f} "
            f"| {steady:.0%} | {per_ack_steady} "
            f"| {row.throttled / max(row.requests, 1):.0%} | {failed} "
            f"| {latency['p50'] * 1e3:,.0f} | {latency['p99'] * 1e3:,.0f} "
            f"| {latency['max'] * 1e3:,.0f} | {floor * 1e3:,.0f} | {result['drain']:.2f} "
            f"| {verdict} |"
        )
    failures: dict[str, int] = {}
    for row in rows:
        for name, count in row.result["errors"].items():
            failures[name] = failures.get(name, 0) + count
    if failures:
        print("\nfailures by kind: " + ", ".join(f"{k} {v:,}" for k, v in failures.items()))


def numbers(text: str, kind: Callable[[str], Any], flag: str) -> list[Any]:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"error: {flag} takes comma-separated numbers, got {text!r}") from None
    if not values or any(not 0 < v < math.inf for v in values):
        raise SystemExit(f"error: {flag} takes positive numbers, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="window per row")
    parser.add_argument(
        "--caps",
        default="1000,100",
        help="writes/s per partition key (default: DynamoDB's 1,000, and 100, where one core "
        "of botocore can overrun the cap and its retry modes show)",
    )
    parser.add_argument("--bursts", default="1", help="seconds of the cap a bucket holds")
    parser.add_argument("--callers", default="256", help="concurrent callers per contender")
    parser.add_argument("--buckets", default=",".join(BUCKETS), help="server, proxy or both")
    parser.add_argument("--shards", type=int, default=8, help="shards of the sharded pool row")
    parser.add_argument(
        "--scopes",
        default="partition",
        help="what the cap limits: partition (each contender's one hot key), table (the "
        "whole table, over --keys keys), or both",
    )
    parser.add_argument(
        "--keys", type=int, default=32, help="keys the callers spread over under a table's cap"
    )
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--only", help=f"comma-separated contenders: {', '.join(CONTENDERS)}")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 3 s a row, cap 100, bursts 0.05 and 1, 64 callers",
    )
    parser.add_argument(
        "--steady-from",
        type=float,
        default=None,
        help="seconds left out of the steady columns (the cold start; default: a quarter "
        "of the window, at most 5)",
    )
    parser.add_argument(
        "--fixed-shares",
        default="0.9,0.95",
        help="shares of the cap the fixed pace (--only fixed) is run at, a row each: a "
        "yardstick told the cap, over as many keys as --shards",
    )
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--scope", default="partition", help=argparse.SUPPRESS)
    parser.add_argument("--cap", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--fixed-share", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--stats-url", help=argparse.SUPPRESS)
    parser.add_argument("--stats-totals", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        args.callers = int(args.callers)
        contender_main(args)
        return
    if args.quick:
        args.seconds, args.caps, args.bursts, args.callers = 3.0, "100", "0.05,1", "64"
    if not 0 < args.seconds <= 3600:
        parser.error("--seconds must be > 0 and at most 3600")
    if args.steady_from is None:
        args.steady_from = min(5.0, args.seconds / 4)
    if not 0 <= args.steady_from < args.seconds:
        parser.error("--steady-from must be >= 0 and less than --seconds")
    if args.shards < 1:
        parser.error("--shards must be >= 1")
    if not 1 <= args.keys <= 10_000:
        parser.error("--keys must be from 1 to 10000")
    scopes = [v for v in args.scopes.split(",") if v]
    if not scopes or set(scopes) - set(SCOPES):
        parser.error(f"--scopes takes {' and/or '.join(SCOPES)}, got {args.scopes!r}")
    caps = numbers(args.caps, float, "--caps")
    bursts = numbers(args.bursts, float, "--bursts")
    if any(not 0.05 <= b <= 300 for b in bursts):
        parser.error("--bursts must be from 0.05 to 300 seconds")
    callers = numbers(args.callers, int, "--callers")
    shares = numbers(args.fixed_shares, float, "--fixed-shares")
    if any(share > 2 for share in shares):
        parser.error("--fixed-shares are shares of the cap: from 0 to 2, e.g. 0.9,0.95")
    buckets = [b for b in args.buckets.split(",") if b]
    if not buckets or set(buckets) - set(BUCKETS):
        parser.error(f"--buckets takes {' and/or '.join(BUCKETS)}, got {args.buckets!r}")
    chosen = [c for c in CONTENDERS if not args.only or c in args.only.split(",")]
    if args.only and set(args.only.split(",")) - set(CONTENDERS):
        parser.error(f"--only takes some of {', '.join(CONTENDERS)}, got {args.only!r}")

    sys.path.insert(0, str(HERE))
    from peers import peer_python

    peer = str(peer_python()) if set(chosen) & set(PEER_CONTENDERS) else ""
    rows = []
    for scope in scopes:
        for b in buckets:
            for cap in caps:
                for burst in bursts:
                    for n in callers:
                        case = Case(bucket=b, scope=scope, cap=cap, burst=burst, callers=n)
                        for name in chosen:
                            for share in shares if name == "fixed" else (0.0,):
                                rows.append(measure(args, case, name, peer, share))
    print_table(rows, args)


if __name__ == "__main__":
    main()

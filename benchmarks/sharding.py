"""One logical counter hotter than a partition: N = 8 shards beside N = 1, in one run.

Runs ``async-counters bench`` twice on the embedded DynamoDB (memory backend, capacity model on:
``--partition-wcu`` per partition key, the table's own limit lifted out of the way), one key,
many concurrent writers, no coalescing, and prints acknowledged increments/s against the cap
times N. Each run verifies its total.

    python benchmarks/sharding.py [--partition-wcu 500] [--processes 2] [--seconds 15]

The cap defaults to 500 WCU/s, not DynamoDB's 1,000: on a 2-core machine the server and two
client processes share the cores, and 8 x 1,000 = 8,000 requests/s is more than they can send
and serve together (measured: ~5,200/s with no throttles at all, so the cap was never reached).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def bench(args: argparse.Namespace, shards: int, out: Path) -> dict[str, object]:
    command = [
        *(sys.executable, "-m", "async_counters.cli", "bench", "--quiet"),
        *("--keys", "1", "--shards", str(shards), "--no-coalesce"),
        *("--duration", str(args.seconds), "--concurrency", str(args.concurrency)),
        *("--processes", str(args.processes), "--max-in-flight", "128"),
        *("--capacity", "--partition-wcu", str(args.partition_wcu)),
        *("--table-wcu", str(args.partition_wcu * 100)),
        *("--json", str(out)),
    ]
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
    data: dict[str, object] = json.loads(out.read_text())
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partition-wcu", type=int, default=500)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shards in (1, 8):
            data = bench(args, shards, Path(tmp) / f"{shards}.json")
            results = data["results"]
            assert isinstance(results, dict)
            verification = data["verification"]
            assert isinstance(verification, dict)
            rate = results["throughput"]["acknowledged_per_s"]
            rows.append((shards, rate, results["counts"], verification["status"]))
    print(
        f"\nOne counter, {args.concurrency} writers in {args.processes} process(es), no "
        f"coalescing, memory backend, {args.partition_wcu:,} WCU/s per partition key, "
        f"{args.seconds:g} s each\n"
    )
    print("| shards | acknowledged/s | share of N x cap | throttles | verification |")
    print("|---:|---:|---:|---:|---|")
    for shards, rate, counts, status in rows:
        cap = shards * args.partition_wcu
        print(f"| {shards} | {rate:,.0f} | {rate / cap:.0%} | {counts['throttles']:,} | {status} |")


if __name__ == "__main__":
    main()

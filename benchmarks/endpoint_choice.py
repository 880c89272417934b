"""CPU spent choosing DynamoDB's endpoint when a fast transport opens, against aiobotocore's own
client creation (which resolves it the same way), in one run.

Each figure is process CPU time (``time.process_time``), the median of ``--repeat`` fresh
processes for the first one (botocore's data files read and parsed for the first time), and of
``--warm`` more in each, each from a new session, for the later ones. No
request is sent; there is no network.

    python benchmarks/endpoint_choice.py
    python benchmarks/endpoint_choice.py --repeat 9 --warm 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_ACCOUNT_ID": "123456789012",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _measure(what: str, warm: int) -> dict[str, float]:
    """In this fresh process: the first ``what`` ("choose" or "client"), then the median of
    ``warm`` more, each from a new session (as a pool made without one does), in ms."""
    from aiobotocore.session import get_session

    from async_counters.transport import endpoints

    async def once() -> float:
        session = get_session()
        session.get_scoped_config()  # the config files, read by any client: not this cost
        start = time.process_time()
        if what == "choose":
            chosen = endpoints.choose(
                session, region_name=None, endpoint_url=None, account_id="123456789012"
            )
            assert chosen.url == "https://123456789012.ddb.eu-west-1.amazonaws.com", chosen
        else:
            async with session.create_client("dynamodb"):
                pass
        return (time.process_time() - start) * 1000

    async def run() -> dict[str, float]:
        first = await once()
        later = [await once() for _ in range(warm)]
        return {f"{what}_cold": first, f"{what}_warm": statistics.median(later)}

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes (default 5)")
    parser.add_argument("--warm", type=int, default=20, help="later ones each (default 20)")
    parser.add_argument("--child", choices=("choose", "client"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1 or args.warm < 1:
        parser.error("--repeat and --warm must be at least 1")
    if args.child:
        print(json.dumps(_measure(args.child, args.warm)))
        return
    runs: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        run: dict[str, Any] = {}
        for what in ("choose", "client"):
            done = subprocess.run(
                [sys.executable, __file__, "--child", what, "--warm", str(args.warm)],
                env={**os.environ, **_ENVIRONMENT},
                capture_output=True,
                text=True,
                check=True,
            )
            run.update(json.loads(done.stdout))
        runs.append(run)
    figure = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    print("| what | CPU ms, first in a process | CPU ms, later |")
    print("|---|---:|---:|")
    print(
        f"| fast transport: `endpoints.choose` (botocore's rule set) | "
        f"{figure['choose_cold']:.1f} | {figure['choose_warm']:.2f} |"
    )
    print(
        f"| aiobotocore `create_client('dynamodb')` (its own resolution included) | "
        f"{figure['client_cold']:.1f} | {figure['client_warm']:.2f} |"
    )
    first = figure["choose_cold"] / figure["client_cold"]
    later = figure["choose_warm"] / figure["client_warm"]
    print(f"\nchoosing costs {first:.0%} of creating a client the first time, {later:.1%} later")


if __name__ == "__main__":
    main()

"""``async-counters verify --run-id ID``: check the totals of every worker of a recorded run.

    async-counters verify --run-id nightly-1 --endpoint-url http://127.0.0.1:8000 --table bench
    async-counters verify --run-id nightly-1 --aws --region eu-west-1 --table bench --json v.json

Workers of ``async-counters bench --run-id ID`` (any number of invocations, processes and hosts)
record in the table what they acknowledged; this reads those records and every counter of the run,
and checks that each counter equals the sum of what all workers acknowledged.

Exit status: 0 exact; 1 a counter differs (each is printed); 2 bad usage; 3 not provably exact
(ambiguous outcomes, workers still running, or nothing recorded for that run id).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import IO, Any

from async_counters.redact import redact

from .config import DEFAULT_TABLE, RunConfig, Target, safe_url
from .verify import EXIT_INCONCLUSIVE, EXIT_USAGE, SHOWN_MISMATCHES, Verification

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1] if __doc__ else None
    parser.add_argument("--run-id", required=True, metavar="ID", help="the run to check")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--endpoint-url", metavar="URL", help="a DynamoDB-speaking endpoint")
    where.add_argument(
        "--aws", action="store_true", help="real DynamoDB with the default credential chain"
    )
    parser.add_argument("--region", help="AWS region (implies --aws without --endpoint-url)")
    parser.add_argument("--table", default=DEFAULT_TABLE, help="table (default %(default)s)")
    parser.add_argument("--key-attribute", help="the table's partition key (default pk)")
    parser.add_argument("--value-attribute", help="the counter attribute (default count)")
    parser.add_argument("--json", metavar="PATH", help="write the verdict and every key here")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the verdict")


def _config(args: argparse.Namespace) -> RunConfig:
    if args.endpoint_url is not None:
        target = Target(
            kind="endpoint", endpoint_url=args.endpoint_url, region=args.region, table=args.table
        )
    elif args.aws or args.region is not None:
        target = Target(kind="aws", region=args.region, table=args.table)
    else:
        raise ValueError(
            "give --endpoint-url URL or --aws/--region: the embedded server of a bench run "
            "forgets its tables when the run ends"
        )
    options = {
        name: getattr(args, name)
        for name in ("key_attribute", "value_attribute")
        if getattr(args, name) is not None
    }
    return RunConfig(target=target, pool_options=options, run_id=args.run_id)


async def _verify(config: RunConfig) -> tuple[Verification, Any]:
    from .ledger import RunLedger, verify_run
    from .probe import probe
    from .worker import open_pool

    assert config.run_id is not None
    endpoint_url = config.target.endpoint_url
    await probe(config, endpoint_url, f"bench:{config.run_id}:0")
    async with (
        open_pool(config, endpoint_url, max_in_flight=16) as pool,
        RunLedger.open(config, endpoint_url, config.run_id) as ledger,
    ):
        return await verify_run(ledger, pool.get_many)


def run(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except (TypeError, ValueError) as exc:
        sys.stderr.write(f"async-counters verify: error: {exc}\n")
        return EXIT_USAGE
    from .probe import TargetUnreachable

    try:
        verification, records = asyncio.run(_verify(config))
    except TargetUnreachable as exc:
        sys.stderr.write(f"async-counters verify: {exc}\n")
        return EXIT_INCONCLUSIVE
    except Exception as exc:
        sys.stderr.write(redact(f"async-counters verify: {type(exc).__name__}: {exc}\n"))
        return EXIT_INCONCLUSIVE
    out = sys.stdout
    if not args.quiet:
        _print_workers(records, out)
    print(verification.headline(), file=out)
    mismatches = verification.mismatches
    for check in mismatches[:SHOWN_MISMATCHES]:
        print(f"  {check.describe()}", file=out)
    if len(mismatches) > SHOWN_MISMATCHES:
        print(f"  ... and {len(mismatches) - SHOWN_MISMATCHES} more (see --json)", file=out)
    if args.json is not None:
        data = {
            "schema": "async-counters/verify/1",
            "run_id": config.run_id,
            "target": {
                "kind": config.target.kind,
                "table": config.target.table,
                "endpoint_url": safe_url(config.target.endpoint_url),
                "region": config.target.region,
            },
            "workers": records.workers,
            "missing": records.missing,
            "verification": verification.to_dict(),
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return verification.exit_status


def _print_workers(records: Any, out: IO[str]) -> None:
    workers = records.workers
    print(f"run {records.run_id}: {len(workers)} worker(s) recorded", file=out)
    for worker_id, record in sorted(workers.items()):
        counts = record["counts"]
        print(
            f"  {worker_id}: {record['state']}, {counts.get('acknowledged', 0):,} acknowledged, "
            f"{counts.get('ambiguous', 0):,} ambiguous",
            file=out,
        )

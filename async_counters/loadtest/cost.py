"""What a bench run cost at DynamoDB's prices: capacity units per increment, the run, a million.

The units are the pool's own (`PoolStats.write_units`/``read_units``, from every answer's
ConsumedCapacity), summed over the workers. What the bench itself sends to check the run (the
counters read before and after, the ``--run-id`` ledger) is charged too, and reported apart
(``bench_*``): it is the measurement's cost, not the workload's. Prices are us-east-1's,
overridable by flag: on-demand $0.625 per million write request units and $0.125 per million
read request units (since the price cut of 1 November 2024), provisioned $0.00065 per WCU-hour.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Prices", "add_arguments", "cost_summary", "prices_from_args"]

#: us-east-1 on-demand, since 1 November 2024: dollars per million request units.
WRITE_PRICE: Final = 0.625
READ_PRICE: Final = 0.125
#: us-east-1 provisioned: dollars per WCU-hour.
WCU_HOUR_PRICE: Final = 0.00065


@dataclass(frozen=True, slots=True)
class Prices:
    per_million_writes: float = WRITE_PRICE
    per_million_reads: float = READ_PRICE
    provisioned_wcu: int | None = None
    per_wcu_hour: float = WCU_HOUR_PRICE

    def __post_init__(self) -> None:
        for name in ("per_million_writes", "per_million_reads", "per_wcu_hour"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name.replace('_', '-')} must be >= 0")
        if self.provisioned_wcu is not None and self.provisioned_wcu < 1:
            raise ValueError("--provisioned-wcu must be >= 1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cost (us-east-1 prices by default)")
    group.add_argument(
        "--price-per-million-writes",
        type=float,
        metavar="USD",
        help=f"on-demand price of a million write request units (${WRITE_PRICE}, since 2024-11-01)",
    )
    group.add_argument(
        "--price-per-million-reads",
        type=float,
        metavar="USD",
        help=f"on-demand price of a million read request units (${READ_PRICE}, since 2024-11-01)",
    )
    group.add_argument(
        "--provisioned-wcu",
        type=int,
        metavar="N",
        help=f"also the cost of N provisioned WCU for the run's duration (${WCU_HOUR_PRICE}/WCU-h)",
    )


def prices_from_args(args: argparse.Namespace) -> Prices:
    """The prices the flags give (`ValueError` for a negative one)."""
    writes = getattr(args, "price_per_million_writes", None)
    reads = getattr(args, "price_per_million_reads", None)
    return Prices(
        per_million_writes=WRITE_PRICE if writes is None else writes,
        per_million_reads=READ_PRICE if reads is None else reads,
        provisioned_wcu=getattr(args, "provisioned_wcu", None),
    )


def cost_summary(
    *,
    write_units: float,
    read_units: float,
    acknowledged: int,
    seconds: float,
    prices: Prices,
    bench_write_units: float = 0.0,
    bench_read_units: float = 0.0,
) -> dict[str, Any]:
    """The ``cost`` section of the results: units, per acknowledged increment, dollars; and the
    bench's own requests' units and dollars, outside those."""
    run_usd = (
        write_units * prices.per_million_writes + read_units * prices.per_million_reads
    ) / 1e6
    per_increment = write_units / acknowledged if acknowledged else None
    reads_per_increment = read_units / acknowledged if acknowledged else None
    summary: dict[str, Any] = {
        "write_units": write_units,
        "read_units": read_units,
        "write_units_per_increment": _round(per_increment),
        "read_units_per_increment": _round(reads_per_increment),
        "price_per_million_writes": prices.per_million_writes,
        "price_per_million_reads": prices.per_million_reads,
        "run_usd": run_usd,
        "per_million_increments_usd": (None if not acknowledged else run_usd / acknowledged * 1e6),
        "provisioned_wcu": prices.provisioned_wcu,
        "provisioned_usd": None,
        "bench_write_units": bench_write_units,
        "bench_read_units": bench_read_units,
        "bench_usd": (
            bench_write_units * prices.per_million_writes
            + bench_read_units * prices.per_million_reads
        )
        / 1e6,
    }
    if prices.provisioned_wcu is not None:
        summary["provisioned_usd"] = prices.provisioned_wcu * prices.per_wcu_hour * seconds / 3600
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)

"""The results of a run: the summary table, and the JSON that holds everything.

JSON outline (``"schema": "async-counters/bench/1"``)::

    config        the RunConfig (target, server, workload, processes, loop, pool_options, run_id)
    argv          the command line, environment (versions, platform, CPUs), started_at
    target        kind, table, endpoint_url (never credentials), region, backend
    results       seconds, planned, counts (operations, acknowledged, increments, decrements,
                  floor_refused, ambiguous, throttled, unreachable, cancelled, errors, requests,
                  retries, throttles, started, dropped), errors by code, throughput per second,
                  acknowledged_amount, cost (write_units, read_units, per increment, prices,
                  run_usd, per_million_increments_usd, provisioned_wcu/usd; bench_write_units,
                  bench_read_units, bench_usd: the bench's own reads and ledger, apart),
                  latency_ms (count, mean, p50, p90, p99, p99.9, max),
                  histogram (HdrHistogram, base64), stopped_early, failures, rate_target (open
                  loop: rate, due, started, dropped, started_per_s, held)
    timeline      one row per second: t, rate, counts, p50/p90/p99/p99.9/max in ms
    workers       per worker process: id, seconds, counts, latency_ms
    verification  status (exact | bounded | mismatch | incomplete | not verified), exit_status,
                  totals, ambiguous bound, mismatches, and every key (before, acknowledged,
                  expected, actual, status)
    run           with --run-id: the workers the table's ledger knows and their states
    exit_status
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Final

from .cost import cost_summary
from .live import rate_text
from .metrics import COUNT_NAMES
from .runner import RunOutcome, describe_target, environment
from .verify import SHOWN_MISMATCHES

__all__ = ["SCHEMA", "print_summary", "results_json", "write_json"]

SCHEMA: Final = "async-counters/bench/1"


def throughput(outcome: RunOutcome) -> dict[str, float]:
    seconds = outcome.seconds or 0.0

    def per_second(count: int) -> float:
        return round(count / seconds, 1) if seconds > 0 else 0.0

    counts = outcome.counts
    return {
        "acknowledged_per_s": per_second(counts.get("acknowledged", 0)),
        "operations_per_s": per_second(counts.get("operations", 0)),
        "requests_per_s": per_second(counts.get("requests", 0)),
    }


def cost(outcome: RunOutcome) -> dict[str, Any]:
    return cost_summary(
        write_units=outcome.write_units,
        read_units=outcome.read_units,
        acknowledged=outcome.counts.get("acknowledged", 0),
        seconds=outcome.seconds,
        prices=outcome.prices,
        bench_write_units=outcome.own_write_units,
        bench_read_units=outcome.own_read_units,
    )


def results_json(outcome: RunOutcome) -> dict[str, Any]:
    verification = outcome.verification
    return {
        "schema": SCHEMA,
        "config": outcome.config.to_dict(),
        "argv": list(outcome.argv),
        "environment": environment(),
        "started_at": outcome.started_at,
        "target": outcome.target,
        "results": {
            "seconds": round(outcome.seconds, 3),
            "planned": outcome.planned,
            "counts": {name: outcome.counts.get(name, 0) for name in COUNT_NAMES},
            "errors_by_code": outcome.errors,
            "throughput": throughput(outcome),
            "acknowledged_amount": outcome.acknowledged_amount,
            "cost": cost(outcome),
            "latency_ms": outcome.histogram.summary_ms(),
            "histogram": outcome.histogram.encode(),
            "stopped_early": outcome.stopped_early,
            "failures": outcome.failures,
            "rate_target": outcome.rate_target,
        },
        "timeline": outcome.timeline,
        "workers": outcome.workers,
        "verification": (
            verification.to_dict()
            if verification is not None
            else {"status": "not verified", "exact": False, "headline": "NOT VERIFIED"}
        ),
        "run": outcome.run_records,
        "exit_status": outcome.exit_status,
    }


def write_json(path: str | os.PathLike[str], outcome: RunOutcome) -> None:
    data = results_json(outcome)
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    temporary.replace(target)


def _ms(value: float) -> str:
    return f"{value:,.2f}"


def rate_verdict(target: dict[str, Any]) -> str:
    """``RATE MISSED: 20,000/s asked, 3,211/s started; 50,400 of 60,000 due were dropped``."""
    if target["held"]:
        return f"rate held: {rate_text(target['rate'])}, all {target['due']:,} due started"
    share = 100.0 * target["dropped"] / target["due"] if target["due"] else 0.0
    return (
        f"RATE MISSED: {rate_text(target['rate'])} asked, "
        f"{target['started_per_s']:,.0f}/s started; "
        f"{target['dropped']:,} of {target['due']:,} due ({share:.0f}%) could not start on time "
        "and were dropped (never sent)"
    )


def print_summary(outcome: RunOutcome, stream: IO[str]) -> None:
    """The results table and the verification verdict."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, highlight=False, soft_wrap=True)
    counts = outcome.counts
    if outcome.failures and not counts.get("operations"):
        for text in outcome.failures:
            console.print(f"[red]failed[/]: {text}")
        console.print("[bold red]NOT VERIFIED[/]: the run failed before any operation finished")
        return
    rates = throughput(outcome)
    latency = outcome.histogram.summary_ms()

    table = Table(title="async-counters bench", show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("", style="dim")
    table.add_row("target", outcome.target["kind"], describe_target(outcome.target))
    table.add_row(
        "time",
        f"{outcome.seconds:,.2f} s",
        f"{outcome.config.processes} process(es), {outcome.config.loop}",
    )
    table.add_row(
        "throughput",
        f"{rates['acknowledged_per_s']:,.0f}/s",
        "acknowledged increments and decrements",
    )
    target = outcome.rate_target
    if target is not None:
        table.add_row(
            "target rate",
            f"{rate_text(target['rate'])}",
            f"held: {target['started']:,} started on schedule"
            if target["held"]
            else f"MISSED: {target['started_per_s']:,.0f}/s started, {target['dropped']:,} of "
            f"{target['due']:,} due dropped",
        )
    workload = outcome.config.workload
    if workload.limit is not None:
        table.add_row(
            "operations",
            f"{counts.get('operations', 0):,}",
            f"rate-limiter hits: {counts.get('increments', 0):,} admitted, "
            f"{counts.get('denied', 0):,} denied (limit {workload.limit:,} per "
            f"{workload.window} s window and key)",
        )
    else:
        table.add_row(
            "operations",
            f"{counts.get('operations', 0):,}",
            f"{counts.get('increments', 0):,} increments, {counts.get('decrements', 0):,} "
            f"decrements acknowledged; {counts.get('floor_refused', 0):,} refused by the floor"
            + (f" (per {workload.window} s window)" if workload.window is not None else ""),
        )
    table.add_row("requests", f"{counts.get('requests', 0):,}", f"{rates['requests_per_s']:,.0f}/s")
    for name in ("p50", "p90", "p99", "p99.9", "max"):
        table.add_row(f"latency {name}", f"{_ms(latency[name])} ms", "")
    spent = cost(outcome)
    per = spent["write_units_per_increment"]
    table.add_row(
        "write units",
        f"{spent['write_units']:,.1f}",
        f"{per:g} per acknowledged increment" if per is not None else "",
    )
    table.add_row(
        "cost",
        f"${spent['run_usd']:.6f}",
        f"on demand; ${spent['per_million_increments_usd']:.3f} per million increments"
        if spent["per_million_increments_usd"] is not None
        else "on demand",
    )
    if spent["read_units"]:
        reads = spent["read_units_per_increment"]
        table.add_row(
            "read units",
            f"{spent['read_units']:,.1f}",
            f"{reads:g} per acknowledged increment" if reads is not None else "",
        )
    if spent["provisioned_usd"] is not None:
        table.add_row(
            "provisioned",
            f"${spent['provisioned_usd']:.6f}",
            f"{spent['provisioned_wcu']:,} WCU for the run's duration",
        )
    table.add_row(
        "bench's own",
        f"${spent['bench_usd']:.6f}",
        f"{spent['bench_write_units']:,.1f} write, {spent['bench_read_units']:,.1f} read units: "
        "reading counters to verify, the ledger (not in the cost above)",
    )
    table.add_row("throttles", f"{counts.get('throttles', 0):,}", "throttled responses")
    table.add_row("retries", f"{counts.get('retries', 0):,}", "")
    failed = sum(counts.get(name, 0) for name in ("throttled", "unreachable", "errors"))
    detail = ", ".join(f"{code} {n:,}" for code, n in sorted(outcome.errors.items()))
    table.add_row("errors", f"{failed:,}", detail or "not applied")
    verification = outcome.verification
    down, up = verification.ambiguous_bound if verification else (0, 0)
    table.add_row(
        "ambiguous",
        f"{counts.get('ambiguous', 0):,}",
        f"total may differ by {down:+,}..{up:+,}" if (down or up) else "",
    )
    table.add_row(
        "verification",
        verification.status.upper() if verification else "NOT VERIFIED",
        (
            f"{len(verification.checks):,} "
            + ("windows (key and window)" if workload.windowed else "keys")
        )
        if verification
        else "",
    )
    console.print(table)

    for text in outcome.stopped_early:
        console.print(f"[yellow]stopped early[/]: {text}")
    for text in outcome.failures:
        console.print(f"[red]failed[/]: {text}")
    if verification is None:
        console.print("[bold red]NOT VERIFIED[/]: the run did not get as far as verification")
        return
    style = {"exact": "green", "mismatch": "red"}.get(verification.status, "yellow")
    console.print(f"[bold {style}]{verification.headline()}[/]")
    if target is not None and not target["held"]:
        console.print(f"[bold red]{rate_verdict(target)}[/]")
    mismatches = verification.mismatches
    for check in mismatches[:SHOWN_MISMATCHES]:
        console.print(f"  [red]{check.describe()}[/]")
    for broken in verification.limits_broken[:SHOWN_MISMATCHES]:
        console.print(f"  [red]{broken.describe()}[/]")
    if len(mismatches) > SHOWN_MISMATCHES:
        console.print(f"  ... and {len(mismatches) - SHOWN_MISMATCHES} more (see --json)")

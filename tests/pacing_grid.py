"""The pacer over a grid of simulated partitions, in virtual time: the grid the README cites.

    python -m tests.pacing_grid --out grid.txt                   # all 196 cases, a line each
    python -m tests.pacing_grid --only 10:,25: --against grid.txt  # some, against a saved run
    python -m tests.pacing_grid --trace 10:1:16:30:10:1:gcra:2     # where one case's throttles go
    python -m tests.pacing_grid --table                          # a provisioned table's 144

A case is ``cap:burst:callers:seconds:warmup:shards:shape:seed``: one key (or a counter over
``shards``) capped at ``cap`` writes/s a partition, holding ``burst`` seconds of it, under
``callers`` closed-loop callers for ``seconds``, the steady part after ``warmup``; ``shape`` is the
bucket (``tokens``: the embedded server's, ``gcra``: the proxy's). Written ``tN`` in place of
``shards``, the cap is a provisioned table's instead, shared by ``N`` keys (caller i writes the
i-th modulo N), and its throttles name the table: what the pool's table pace answers, not a
key's. ``--table`` runs a grid of those (caps of 10, 25 and 100/s, one key or 32), apart from the
196 of one partition, which stay what the README cites. Each runs a real `CounterPool`
against `tests/unit/partition_sim.py` on the virtual loop, so a run is the same on any machine, at
any load: the grid tells what a change to the pacer does everywhere in a few minutes, where real
runs take hours and vary. (Real runs stay the measure: `benchmarks/throttling.py`.) The runs of
a case repeat exactly: the simulator seeds the pool's draws (which of a counter's shards) too.

A case misses a target when it makes under 95 % of the cap over the whole window or its steady
part, more than 1.10 requests per acknowledged increment over the whole window, or fails an
increment. ``--against`` lists the cases that moved, by the same measures.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.unit.partition_sim import Result, Scope, Shape, Timeline, load
from tests.unit.virtual_loop import run_virtual

#: The targets of a case (issue 17): goodput over the whole window and steady, requests per ack.
GOODPUT = 0.95
PER_ACK = 1.10
#: How far a measure must move, against a saved run, to count as better or worse.
MOVED_GOODPUT = 2.0  # points of the cap
MOVED_PER_ACK = 0.03
MOVED_STEADY_PER_ACK = 0.02
#: The trace's bins (seconds since the first request): fine where a cold start spends its
#: throttles, then a second each.
EDGES = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, *(float(s) for s in range(2, 61)))
SHAPES: dict[str, Shape] = {"tokens": "tokens", "gcra": "gcra"}


def cases() -> Iterator[str]:
    for cap in (10, 25, 100, 1000):
        for burst in (0.05, 1, 10, 300):
            for callers in (16, 256, 1024):
                if cap >= 100 and callers == 16 and burst == 300:
                    continue
                seconds, warmup = (30, 10) if cap <= 25 else (12, 3)
                for shape in ("tokens", "gcra"):
                    for seed in (1, 2):
                        yield f"{cap}:{burst}:{callers}:{seconds}:{warmup}:1:{shape}:{seed}"
    for shape in ("tokens", "gcra"):
        for seed in (1, 2):
            yield f"20:0.05:64:30:10:8:{shape}:{seed}"
            yield f"100:0.05:256:12:3:8:{shape}:{seed}"
            yield f"20:1:64:30:10:8:{shape}:{seed}"


def table_cases() -> Iterator[str]:
    """A provisioned table's capacity, shared by one key or 32: caps of the free tier's order."""
    for cap in (10, 25, 100):
        for burst in (0.05, 1, 10, 300):
            for callers in (16, 256, 1024):
                for keys in (1, 32):
                    for shape in ("tokens", "gcra"):
                        yield f"{cap}:{burst}:{callers}:30:10:t{keys}:{shape}:1"


@dataclass(frozen=True)
class Case:
    rate: float
    burst: float
    callers: int
    seconds: float
    warmup: float
    shards: int
    shape: Shape
    seed: int
    scope: Scope = "partition"
    keys: int = 1

    def run(self, timeline: Timeline | None = None) -> Result:
        return run_virtual(
            load(
                shape=self.shape,
                rate=self.rate,
                burst=self.burst,
                callers=self.callers,
                seconds=self.seconds,
                warmup=self.warmup,
                shards=self.shards,
                seed=self.seed,
                scope=self.scope,
                keys=self.keys,
                timeline=timeline,
            )
        )


def parse_case(case: str) -> Case:
    form = f"pacing_grid: {case!r} is not cap:burst:callers:seconds:warmup:shards:shape:seed"
    fields = case.split(":")
    shape = SHAPES.get(fields[6]) if len(fields) == 8 else None
    if shape is None:
        raise SystemExit(f"{form}, shape tokens or gcra")
    where = fields[5]
    table = where.startswith("t")
    try:
        count = int(where[1:] if table else where)
        parsed = Case(
            rate=float(fields[0]),
            burst=float(fields[1]),
            callers=int(fields[2]),
            seconds=float(fields[3]),
            warmup=float(fields[4]),
            shards=1 if table else count,
            shape=shape,
            seed=int(fields[7]),
            scope="table" if table else "partition",
            keys=count if table else 1,
        )
    except ValueError:
        raise SystemExit(form) from None
    if count < 1:
        raise SystemExit(f"{form}, shards (or keys of a table, tN) at least 1")
    return parsed


def run_case(case: str) -> str:
    result = parse_case(case).run()
    throttled = result.requests - result.acks_total
    return f"{case:30s} {result.line()} thr {throttled}"


@dataclass
class Row:
    goodput: float  # % of the cap
    steady: float
    per_ack: float
    steady_per_ack: float
    failed: int

    @property
    def misses(self) -> bool:
        return (
            self.goodput < 100 * GOODPUT
            or self.steady < 100 * GOODPUT
            or self.per_ack > PER_ACK
            or self.failed > 0
        )


_ROW = re.compile(
    r"^(\S+)\s+good (\d+)% steady (\d+)% req/ack ([\d.]+) steady ([\d.]+) failed (\d+)"
)


def parse_rows(lines: list[str]) -> dict[str, Row]:
    rows = {}
    for line in lines:
        match = _ROW.match(line)
        if match:
            case, good, steady, per_ack, steady_per_ack, failed = match.groups()
            rows[case] = Row(
                float(good), float(steady), float(per_ack), float(steady_per_ack), int(failed)
            )
    return rows


def summary(rows: dict[str, Row]) -> str:
    missed = [case for case, row in rows.items() if row.misses]
    worst = max(row.per_ack for row in rows.values())
    mean = sum(row.per_ack for row in rows.values()) / len(rows)
    return (
        f"{len(missed)} of {len(rows)} cases miss a target; requests per ack over the whole "
        f"window: worst {worst:.3f}, mean {mean:.4f}"
    )


def compare(before: dict[str, Row], after: dict[str, Row]) -> list[str]:
    lines, worse, better = [], 0, 0
    for case, new in after.items():
        old = before.get(case)
        if old is None:
            continue
        if (
            new.steady_per_ack > old.steady_per_ack + MOVED_STEADY_PER_ACK
            or new.steady < old.steady - MOVED_GOODPUT
            or new.per_ack > old.per_ack + MOVED_PER_ACK
            or new.failed > old.failed
        ):
            verdict, worse = "worse", worse + 1
        elif (
            new.per_ack < old.per_ack - MOVED_PER_ACK
            or new.steady > old.steady + MOVED_GOODPUT
            or new.steady_per_ack < old.steady_per_ack - MOVED_STEADY_PER_ACK
        ):
            verdict, better = "better", better + 1
        else:
            continue
        lines.append(
            f"{case:30s} good {old.goodput:.0f}->{new.goodput:.0f}% "
            f"steady {old.steady:.0f}->{new.steady:.0f}% "
            f"req/ack {old.per_ack:.3f}->{new.per_ack:.3f} "
            f"steady {old.steady_per_ack:.3f}->{new.steady_per_ack:.3f} "
            f"failed {old.failed}->{new.failed}  {verdict}"
        )
    misses = sum(row.misses for row in before.values())
    lines.append(
        f"against the saved run: {worse} worse, {better} better of {len(after)}; "
        f"it missed a target in {misses} of {len(before)}"
    )
    return lines


def trace(case: str) -> None:
    timeline = Timeline(EDGES)
    result = parse_case(case).run(timeline)
    print(f"{case}  {result.line()}")
    print(f"{'answered from s':>16} {'to s':>6} {'requests':>9} {'throttled':>10}")
    ends = [*EDGES[1:], float("inf")]
    for start, end, requests, throttled in zip(
        EDGES, ends, timeline.requests, timeline.throttled, strict=True
    ):
        if requests:
            print(f"{start:16g} {end:6g} {requests:9d} {throttled:10d}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.pacing_grid", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, help="write a line per case here too")
    parser.add_argument(
        "--only", default="", help="comma-separated prefixes of the cases to run, e.g. 10:,25:"
    )
    parser.add_argument("--against", type=Path, help="a saved run to compare with")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--trace", metavar="CASE", help="one case's throttles by time")
    parser.add_argument(
        "--table", action="store_true", help="the grid of a provisioned table's cases instead"
    )
    args = parser.parse_args(argv)
    if args.trace:
        trace(args.trace)
        return 0
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    before: dict[str, Row] | None = None
    if args.against is not None:
        try:
            before = parse_rows(args.against.read_text().splitlines())
        except OSError as exc:
            parser.error(f"cannot read --against {args.against}: {exc.strerror}")
        if not before:
            parser.error(f"--against {args.against} holds no line of a grid run")
    prefixes = [p for p in args.only.split(",") if p]
    grid = table_cases() if args.table else cases()
    selected = [c for c in grid if not prefixes or any(c.startswith(p) for p in prefixes)]
    if not selected:
        parser.error(f"--only {args.only} selects no case")
    out = args.out.open("w") if args.out is not None else None
    lines = []
    try:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for line in pool.map(run_case, selected):
                lines.append(line)
                print(line, flush=True)
                if out is not None:
                    out.write(line + "\n")
                    out.flush()
    finally:
        if out is not None:
            out.close()
    rows = parse_rows(lines)
    print(summary(rows))
    if before is not None:
        print("\n".join(compare(before, rows)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # its output went to a reader that stopped early (head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)

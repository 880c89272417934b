"""`async-counters bench` with one worker process against two, on the same workload, in one session.

    python benchmarks/bench_processes.py                    # plain bench vs --processes 2, x3
    python benchmarks/bench_processes.py --repeat 5 -- --backend moto --increments 10000

Each run is the real command (its own embedded server in its own process, verified at the end),
alternating 1 and 2 processes so that drift on a shared machine hits both alike. Arguments after
``--`` are passed to every run. Prints one row per run and the medians; a run that is not
verified exact is reported and makes the script exit 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run_bench(processes: int, extra: list[str], directory: Path, index: int) -> dict[str, Any]:
    path = directory / f"run-{index}-p{processes}.json"
    command = [
        sys.executable, "-m", "async_counters.cli", "bench", "--quiet",
        "--processes", str(processes), "--json", str(path), *extra,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not path.exists():
        sys.stderr.write(finished.stdout + finished.stderr)
        raise SystemExit(f"bench with {processes} process(es) wrote no results")
    data: dict[str, Any] = json.loads(path.read_text())
    data["_wall"] = wall
    data["_exit"] = finished.returncode
    data["_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return data


def row(data: dict[str, Any]) -> list[str]:
    results = data["results"]
    latency = results["latency_ms"]
    return [
        str(data["config"]["processes"]),
        f"{results['throughput']['acknowledged_per_s']:,.0f}",
        f"{latency['p50']:.1f}",
        f"{latency['p99']:.1f}",
        f"{latency['max']:.1f}",
        f"{results['seconds']:.1f}",
        f"{data['_wall']:.1f}",
        f"{data['_cpu']:.1f}",
        data["verification"]["status"],
    ]


HEADER = [
    "processes",
    "ack/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "load s",
    "wall s",
    "cpu s",
    "verified",
]


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    for r in [HEADER, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.rjust(width) for cell, width in zip(r, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("extra", nargs="*", help="flags passed to every bench run (after --)")
    args = parser.parse_args()
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as directory:
        for index in range(args.repeat):
            order = (1, 2) if index % 2 == 0 else (2, 1)
            for processes in order:
                runs[processes].append(run_bench(processes, args.extra, Path(directory), index))
    first = runs[1][0]
    workload = first["config"]["workload"]
    backend = first["config"]["server"]["backend"]
    print(
        f"async-counters bench, {workload['increments'] or workload['duration']} "
        f"{'operations' if workload['increments'] else 's'}, "
        f"{workload['concurrency']} in flight in total, {workload['keys']} keys "
        f"{workload['distribution']}, embedded server backend {backend}, "
        f"{first['environment']['cpus']} CPUs, extra flags: {' '.join(args.extra) or 'none'}"
    )
    print_table([row(data) for processes in (1, 2) for data in runs[processes]])
    print()
    print("medians")
    medians = []
    for processes in (1, 2):
        results = [data["results"] for data in runs[processes]]
        medians.append(
            [
                str(processes),
                f"{statistics.median(r['throughput']['acknowledged_per_s'] for r in results):,.0f}",
                f"{statistics.median(r['latency_ms']['p50'] for r in results):.1f}",
                f"{statistics.median(r['latency_ms']['p99'] for r in results):.1f}",
                f"{statistics.median(r['latency_ms']['max'] for r in results):.1f}",
                f"{statistics.median(r['seconds'] for r in results):.1f}",
                f"{statistics.median(d['_wall'] for d in runs[processes]):.1f}",
                f"{statistics.median(d['_cpu'] for d in runs[processes]):.1f}",
                "all exact"
                if all(d["verification"]["status"] == "exact" for d in runs[processes])
                else "NOT ALL EXACT",
            ]
        )
    print_table(medians)
    exact = all(d["_exit"] == 0 for ds in runs.values() for d in ds)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())

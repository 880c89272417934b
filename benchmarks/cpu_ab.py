"""Before and after, back to back: the CPU per call of one client of `client_cpu.py`, measured
in several source trees (git worktrees of other commits) in turns, on the same fake DynamoDB.

Each round runs every tree once, in a fresh process pinned to one core (the fake on the other),
and reports process CPU time per call (`time.process_time`); rounds alternate the order. The
summary gives each tree's median and spread and, the steadier figure on a shared machine, the
median of the per-round ratios to the first tree: a slow moment slows the runs of a round alike.

A tree whose code asks ``ReturnConsumedCapacity`` gets an answer that carries it (as DynamoDB
answers it), suffix ``:consumed``:

    python benchmarks/cpu_ab.py --rounds 15 /tmp/before /tmp/after:consumed

``--instructions`` counts instead the instructions each tree's client executes per call, under
valgrind (cachegrind, ``--cache-sim=no``, ``PYTHONHASHSEED=0``): the difference between a run of
``--calls`` and one of ``--calls / 6``, so that start-up and warm-up cancel out. Load on the
machine does not move that count (two runs of the same tree agree within 0.2 %), where it moves
CPU time by 20 %; it takes a minute or so per tree.

    python benchmarks/cpu_ab.py --instructions --calls 7680 /tmp/before /tmp/after:consumed
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", help="source trees; ':consumed' for a tree that asks")
    parser.add_argument("--client", default="pool-fast")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=40_000)
    parser.add_argument("--warmup", type=int, default=4_000)
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--instructions", action="store_true", help="count them (valgrind)")
    args = parser.parse_args()

    trees = []
    for spec in args.trees:
        path, _, flag = spec.partition(":")
        trees.append((spec, Path(path).resolve(), flag == "consumed"))
    cores = sorted(os.sched_getaffinity(0))
    client_cpu, server_cpu = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    servers: dict[bool, tuple[subprocess.Popen[str], str]] = {}
    try:
        for consumed in {flag for _, _, flag in trees}:
            command = [sys.executable, str(HERE / "client_cpu.py"), "serve"]
            if consumed:
                command.append("--consumed-capacity")
            if server_cpu is not None:
                command = ["taskset", "-c", str(server_cpu), *command]
            server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            assert server.stdout is not None
            servers[consumed] = (server, f"http://127.0.0.1:{int(server.stdout.readline())}")
        if args.instructions:
            _instructions(args, trees, {flag: url for flag, (_, url) in servers.items()})
            return
        runs: dict[str, list[float]] = {spec: [] for spec, _, _ in trees}
        for round_ in range(args.rounds):
            order = trees if round_ % 2 == 0 else trees[::-1]
            for spec, path, consumed in order:
                command = [
                    sys.executable, str(path / "benchmarks" / "client_cpu.py"), "client",
                    args.client, "--loop", args.loop, "--url", servers[consumed][1],
                    "--calls", str(args.calls), "--warmup", str(args.warmup),
                ]  # fmt: skip
                if client_cpu is not None:
                    command += ["--cpu", str(client_cpu)]
                env = {**os.environ, "PYTHONPATH": str(path)}
                out = subprocess.run(
                    command, capture_output=True, text=True, env=env, timeout=600, check=True
                )
                cpu = json.loads(out.stdout.strip().splitlines()[-1])["cpu_us"]
                runs[spec].append(cpu)
                print(f"round {round_ + 1:2} {spec:28} {cpu:7.2f} µs CPU/call", flush=True)
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait()

    first = trees[0][0]
    print(f"\n{args.client}, {args.loop}, {args.calls} calls a run, {args.rounds} rounds")
    print("| tree | median µs/call | min..max | IQR | median ratio to first | ratios IQR |")
    print("|---|---:|---:|---:|---:|---:|")
    for spec, _, _ in trees:
        values = runs[spec]
        q1, _, q3 = statistics.quantiles(values, n=4)
        ratios = [a / b for a, b in zip(values, runs[first], strict=True)]
        r1, _, r3 = statistics.quantiles(ratios, n=4)
        print(
            f"| {spec} | {statistics.median(values):.2f} | {min(values):.1f}..{max(values):.1f} "
            f"| {q1:.1f}..{q3:.1f} | {statistics.median(ratios):.3f} | {r1:.3f}..{r3:.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


def _instructions(
    args: argparse.Namespace, trees: list[tuple[str, Path, bool]], urls: dict[bool, str]
) -> None:
    short = max(1, args.calls // 6)
    warmup = min(args.warmup, short)
    print(f"{args.client}, {args.loop}: instructions per call, runs of {args.calls} and {short}")
    first: float | None = None
    for spec, path, consumed in trees:
        counts = []
        for calls in (short, args.calls):
            command = [
                "valgrind", "--tool=cachegrind", "--cache-sim=no",
                "--cachegrind-out-file=/dev/null",
                sys.executable, str(path / "benchmarks" / "client_cpu.py"), "client",
                args.client, "--loop", args.loop, "--url", urls[consumed],
                "--calls", str(calls), "--warmup", str(warmup),
            ]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": str(path), "PYTHONHASHSEED": "0"}
            out = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=1800, check=True
            )
            found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
            assert found is not None, out.stderr[-2000:]
            counts.append(int(found.group(1).replace(",", "")))
        per_call = (counts[1] - counts[0]) / (args.calls - short)
        first = per_call if first is None else first
        print(f"| {spec} | {per_call:,.0f} | {per_call / first:.3f} |", flush=True)


if __name__ == "__main__":
    main()

"""Peak memory of an `async-counters bench` run: nothing in it may grow with the operation count.

    python benchmarks/bench_memory.py                        # 1,000,000 operations
    python benchmarks/bench_memory.py --increments 200000 -- --processes 2

Runs the real command under ``/usr/bin/time -v`` (its "Maximum resident set size" is the largest
single process of the tree) and samples every process of the tree from /proc each 0.5 s, so the
table gives both each process's peak and the peak of their sum. Linux only. Exits 1 if the run is
not verified exact or a process went over ``--limit-mb``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def tree(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children(current))
    return found


def rss_kb(pid: int) -> tuple[str, int]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "", 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return command.strip(), int(match.group(1)) if match else 0


def role(command: str) -> str:
    if "async_counters.local" in command:
        return "embedded server"
    if "loadtest.worker" in command:
        return "worker"
    if " bench" in command and "time -v" not in command:
        return "bench (parent)"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--increments", type=int, default=1_000_000)
    parser.add_argument("--limit-mb", type=float, default=200.0)
    parser.add_argument("extra", nargs="*", help="flags passed to the bench run (after --)")
    args = parser.parse_args()
    time_v = shutil.which("time") or "/usr/bin/time"
    with tempfile.TemporaryDirectory() as directory:
        results = Path(directory) / "results.json"
        command = [
            time_v, "-v", sys.executable, "-m", "async_counters.cli", "bench", "--quiet",
            "--increments", str(args.increments), "--json", str(results), *args.extra,
        ]  # fmt: skip
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        peaks: dict[str, int] = {}
        peak_sum = [0]

        def sample() -> None:
            while process.poll() is None:
                total = 0
                for pid in tree(process.pid):
                    name, kb = rss_kb(pid)
                    who = role(name)
                    if who:
                        key = f"{who} {pid}"
                        peaks[key] = max(peaks.get(key, 0), kb)
                        total += kb
                peak_sum[0] = max(peak_sum[0], total)
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, err = process.communicate()
        sampler.join()
        wall = time.monotonic() - started
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
        time_v_kb = int(match.group(1)) if match else 0
        data = json.loads(results.read_text()) if results.exists() else {}
    verification = data.get("verification", {}).get("status", "not verified")
    counts = data.get("results", {}).get("counts", {})
    print(" ".join(command[2:]).replace(directory, "$TMP"))
    print(
        f"operations {counts.get('operations', 0):,} in {wall:.0f} s wall, "
        f"{data.get('results', {}).get('throughput', {}).get('acknowledged_per_s', 0):,.0f} "
        f"acknowledged/s, verification {verification}, exit {process.returncode}"
    )
    print(f"{'process':<28} {'peak RSS MB':>12}")
    for name, kb in sorted(peaks.items()):
        print(f"{name:<28} {kb / 1024:>12.1f}")
    print(f"{'sum of the tree (sampled)':<28} {peak_sum[0] / 1024:>12.1f}")
    print(f"{'/usr/bin/time -v max RSS':<28} {time_v_kb / 1024:>12.1f}")
    largest = max([time_v_kb, *peaks.values()]) / 1024
    ok = process.returncode == 0 and verification == "exact" and largest < args.limit_mb
    if not ok:
        sys.stderr.write(out[-2000:] + err[-2000:])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

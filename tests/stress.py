"""Rerun the timing-sensitive tests N times while burner processes keep cores busy.

    python tests/stress.py --repeat 5 --burn 1            # the tests marked `timing`
    python tests/stress.py --repeat 3 --burn 2 -- -k throttl   # more pytest arguments

A test that depends on how fast the machine runs (marked ``@pytest.mark.timing``) must pass on a
machine that is slower, or busier, than the one it was written on. This runs them ``--repeat``
times in a row, each time in a fresh pytest process, with ``--burn`` processes spinning at 100 %
of a core each (started here and always stopped here, however the run ends). It prints one row
per test: runs, failures, skips, and exits 1 if any run of any test failed (or none ran).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: One pytest run of the marked tests takes a minute or two; this only stops a hung one.
RUN_TIMEOUT = 1800
#: How long a burner gets to stop before it is killed.
STOP_TIMEOUT = 5


@dataclass
class Tally:
    runs: int = 0
    failures: int = 0
    skips: int = 0
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)


@contextmanager
def burners(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` processes that each keep one core at 100 %, stopped when the block ends."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_once(marker: str, extra: Sequence[str], report: Path) -> tuple[int, float, str]:
    """One pytest process over the marked tests; its exit status, wall time and output."""
    command = [
        sys.executable, "-m", "pytest", "-m", marker, "-q", "-p", "no:cacheprovider",
        "-n", "0", "--junitxml", str(report), *extra,
    ]  # fmt: skip
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as timeout:
        output = timeout.stdout if isinstance(timeout.stdout, str) else ""
        return -1, time.monotonic() - started, output + f"\ntimed out after {RUN_TIMEOUT} s"
    return done.returncode, time.monotonic() - started, done.stdout + done.stderr


def read_report(report: Path, tallies: dict[str, Tally]) -> None:
    """Add one run's outcomes, from pytest's JUnit XML, to ``tallies`` (keyed by test id)."""
    if not report.exists():
        return
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        name = f"{module}.py::{case.get('name', '')}"
        tally = tallies.setdefault(name, Tally())
        tally.runs += 1
        tally.seconds += float(case.get("time", "0"))
        if case.find("skipped") is not None:
            tally.skips += 1
        for problem in (case.find("failure"), case.find("error")):
            if problem is not None:
                tally.failures += 1
                tally.messages.append((problem.get("message") or "").splitlines()[0][:160])
                break


def table(tallies: dict[str, Tally]) -> str:
    width = max([len(name) for name in tallies] + [4])
    lines = [f"{'test':<{width}}  runs  failures  skips  mean s", "-" * (width + 31)]
    for name, tally in sorted(tallies.items()):
        mean = tally.seconds / tally.runs if tally.runs else 0.0
        lines.append(
            f"{name:<{width}}  {tally.runs:>4}  {tally.failures:>8}  {tally.skips:>5}  {mean:>6.1f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Rerun the timing-sensitive tests with cores kept busy."
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs of every test (default 5)")
    parser.add_argument(
        "--burn", type=int, default=1, help="processes keeping a core busy each (default 1)"
    )
    parser.add_argument("--marker", default="timing", help="the pytest marker (default timing)")
    parser.add_argument("pytest_args", nargs="*", help="after --: more arguments for pytest")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.burn < 0:
        parser.error("--burn must be >= 0")

    tallies: dict[str, Tally] = {}
    statuses: Counter[int] = Counter()
    print(
        f"{args.repeat} run(s) of the tests marked {args.marker!r}, "
        f"{args.burn} burner process(es) on {os.cpu_count()} core(s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as directory, burners(args.burn):
        for index in range(args.repeat):
            report = Path(directory) / f"run-{index}.xml"
            status, seconds, output = run_once(args.marker, args.pytest_args, report)
            statuses[status] += 1
            read_report(report, tallies)
            print(f"run {index + 1}/{args.repeat}: exit {status} in {seconds:.0f} s", flush=True)
            if status not in (0, 5):
                sys.stdout.write(output[-4000:] + "\n")
    print(table(tallies))
    failed = {name: t for name, t in tallies.items() if t.failures}
    for name, tally in failed.items():
        print(f"FAILED {name}: " + " | ".join(tally.messages))
    total_failures = sum(t.failures for t in tallies.values())
    bad_runs = sum(count for status, count in statuses.items() if status != 0)
    print(
        f"{len(tallies)} test(s) x {args.repeat} run(s): {total_failures} failure(s), "
        f"{bad_runs} run(s) not green"
    )
    if not tallies:
        print("no test ran: is the marker right?")
        return 1
    return 1 if total_failures or bad_runs else 0


if __name__ == "__main__":
    sys.exit(main())

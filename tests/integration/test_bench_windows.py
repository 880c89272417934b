"""`async-counters bench --window` and `--limit` through the real CLI, in short runs.

A windowed run is verified per window: the count read back from each window's item equals what
was acknowledged (admitted) in it; with ``--limit``, each window also admitted at most the limit,
and all of it wherever a hit was denied.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from async_counters import CounterPool
from async_counters.loadtest.windowed import split_name
from async_counters.windows import Window
from tests.integration.test_bench_cli import bench, load


def test_windowed_increments_are_verified_per_window(tmp_path: Path) -> None:
    results = tmp_path / "window.json"
    run = bench(
        "-n", "300", "--window", "1", "--keys", "4", "--concurrency", "16", "--amount", "1:3",
        "--json", str(results), "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    data = load(results)
    counts = data["results"]["counts"]
    assert counts["operations"] == counts["acknowledged"] == counts["increments"] == 300
    verification = data["verification"]
    assert verification["status"] == "exact" and verification["mismatches"] == []
    windows = verification["keys"]
    assert all("@" in check["key"] and check["before"] == 0 for check in windows)
    assert all(check["actual"] == check["acknowledged"] for check in windows)
    assert sum(check["actual"] for check in windows) == data["results"]["acknowledged_amount"]
    assert "windows (key and window)" in run.stdout


async def test_rate_limited_hits_admit_exactly_the_limit_per_window(
    tmp_path: Path, endpoint_url: str, table_name: str
) -> None:
    """Two processes hit 2 keys with a limit of 15 per 1 s window; each window item, read back
    by another pool once the run is over, holds exactly what was admitted, never more than 15,
    and 15 wherever a hit was denied."""
    results = tmp_path / "limit.json"
    run = bench(
        "--endpoint-url", endpoint_url, "--table", table_name, "--window", "1", "--limit", "15",
        "--duration", "1", "--keys", "2", "--concurrency", "24", "--processes", "2",
        "--coalesce", "--json", str(results), "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    data = load(results)
    verification = data["verification"]
    assert verification["status"] == "exact", verification["headline"]
    limits = verification["limits"]
    assert limits["broken"] == [] and limits["windows_denied"] >= 1
    checks = {check["key"]: check for check in limits["checks"]}
    assert set(checks) == {check["key"] for check in verification["keys"]}
    async with CounterPool(table_name, endpoint_url=endpoint_url) as pool:
        for name, check in checks.items():
            key, start = split_name(name)
            stored = await pool._reads.get(Window(1, start).item(key))
            assert stored == check["admitted"] <= 15
            if check["denied"]:
                assert stored == 15
    counts = data["results"]["counts"]
    assert counts["denied"] == sum(check["denied"] for check in checks.values()) > 0
    assert counts["increments"] == sum(check["admitted"] for check in checks.values())
    assert "rate-limiter hits" in run.stdout and "admitted <= 15" in run.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--limit", "5"], "--limit needs --window S"),
        (["--window", "5", "--limit", "5", "--exactly-once"], "cannot run with --exactly-once"),
        (["--window", "5", "--exactly-once"], "cannot run with --exactly-once"),
        (["--window", "5", "--decrements", "0.1"], "--decrements with --window"),
        (["--window", "5", "--limit", "2", "--amount", "3"], "exceeds --limit 2"),
        (["--window", "5", "--key-prefix", "p:"], "--key-prefix cannot be combined"),
    ],
)
def test_bad_windowed_runs_exit_2_in_one_line(flags: list[str], message: str) -> None:
    run = bench(*flags)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("async-counters bench: error: ") and message in line
    assert run.stdout == ""

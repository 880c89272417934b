"""`async-counters bench` and `verify` as a user runs them: subprocesses on real servers.

Runs without an endpoint start their own embedded server (in its own process, as users get it);
runs that need a second writer or a table that outlives them point at the suite's server.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from async_counters import CounterPool

#: Every run here is small; this only stops a hung run from hanging the suite.
TIMEOUT = 120
#: The longest a run that the test ends itself may go on (the test ends it in seconds).
HELD_RUN = 90


def bench(*args: str, command: str = "bench") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "async_counters.cli", command, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def assert_exact(data: dict[str, Any], operations: int) -> None:
    counts = data["results"]["counts"]
    assert counts["operations"] == operations
    assert counts["acknowledged"] + counts["floor_refused"] == operations
    assert counts["ambiguous"] == 0
    verification = data["verification"]
    assert verification["status"] == "exact" and verification["exit_status"] == 0
    assert verification["mismatches"] == []
    # The server's totals, read back, are what the workers acknowledged, to the unit.
    assert verification["actual_total"] == verification["expected_total"]
    before = sum(key["before"] for key in verification["keys"])
    assert verification["actual_total"] - before == data["results"]["acknowledged_amount"]
    assert data["exit_status"] == 0


def test_closed_loop_run_exits_0_with_a_verified_json(tmp_path: Path) -> None:
    results, plot = tmp_path / "closed.json", tmp_path / "closed.png"
    run = bench(
        "-n", "800", "--keys", "20", "--concurrency", "16", "--amount", "1:5",
        "--decrements", "0.2", "--seed", "3", "--json", str(results), "--plot", str(plot),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "EXACT" in run.stdout and "latency p99.9" in run.stdout
    data = load(results)
    assert_exact(data, 800)
    assert data["results"]["counts"]["decrements"] > 0
    config = data["config"]
    assert config["workload"]["increments"] == 800
    assert config["workload"]["amount_min"] == 1 and config["workload"]["amount_max"] == 5
    assert config["server"]["backend"] == "memory"
    assert data["target"]["kind"] == "embedded"
    latency = data["results"]["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p99.9"]
    assert latency["p99.9"] <= latency["max"]
    assert data["timeline"] and sum(row["operations"] for row in data["timeline"]) == 800
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_open_loop_run_exits_0_with_a_verified_json(tmp_path: Path) -> None:
    results = tmp_path / "open.json"
    run = bench(
        "--rate", "300", "--duration", "2", "--keys", "10", "--distribution", "hot",
        "--json", str(results),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    data = load(results)
    assert data["results"]["planned"] == 600
    assert_exact(data, 600)
    assert data["config"]["workload"]["rate"] == 300
    assert "open loop at 300/s" in run.stdout


def test_processes_2_aggregates_results_and_verification(tmp_path: Path) -> None:
    results = tmp_path / "p2.json"
    run = bench("-n", "1000", "-p", "2", "-c", "16", "--keys", "10", "--json", str(results))
    assert run.returncode == 0, run.stdout + run.stderr
    data = load(results)
    assert_exact(data, 1000)
    workers = data["workers"]
    assert len(workers) == 2 and len({w["worker_id"] for w in workers}) == 2
    assert [w["counts"]["operations"] for w in workers] == [500, 500]
    for name in ("acknowledged", "requests", "floor_refused"):
        assert sum(w["counts"][name] for w in workers) == data["results"]["counts"][name]
    latency_count = data["results"]["latency_ms"]["count"]
    assert latency_count == sum(w["latency_ms"]["count"] for w in workers) == 1000


async def _start_bench(*args: str) -> asyncio.subprocess.Process:
    """A bench run the test ends itself (SIGINT, as Ctrl-C), so that it is still going for as
    long as the test needs it; ``HELD_RUN`` seconds bound it if the test never does."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "async_counters.cli", "bench", *args, "--duration", str(HELD_RUN),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def _progress_lines(process: asyncio.subprocess.Process, count: int) -> str:
    """Read the output until ``count`` progress lines have shown (the workers are writing)."""
    assert process.stdout is not None
    output: list[str] = []
    seen = 0
    while seen < count:
        line = (await process.stdout.readline()).decode()
        assert line, "the bench ended early:\n" + "".join(output)
        output.append(line)
        seen += line.startswith("[")
    return "".join(output)


async def _end_run(process: asyncio.subprocess.Process, output: str) -> str:
    """Stop the run as Ctrl-C does (after what is in flight); its verdict follows."""
    process.send_signal(signal.SIGINT)
    rest, _ = await process.communicate()
    text = output + rest.decode()
    assert "interrupted" in text, text
    return text


@pytest.mark.timing
async def test_another_writer_mid_run_exits_1_naming_the_key(
    endpoint_url: str, table_name: str, tmp_path: Path
) -> None:
    results = tmp_path / "writer.json"
    process = await _start_bench(
        "--endpoint-url", endpoint_url, "--table", table_name, "--key-prefix", "victim:",
        "--keys", "4", "--concurrency", "8", "--json", str(results),
    )  # fmt: skip
    async with asyncio.timeout(TIMEOUT):
        # The first progress line: the bench has read every counter and is writing.
        output = await _progress_lines(process, 1)
        async with CounterPool(table_name, endpoint_url=endpoint_url) as other_writer:
            await other_writer.increment("victim:0", 7)
        text = await _end_run(process, output)  # only once the other write is in
    assert process.returncode == 1, text
    assert "MISMATCH: 1 of 4 keys" in text
    assert "victim:0: expected " in text and "(difference +7)" in text
    mismatches = load(results)["verification"]["mismatches"]
    assert [m["key"] for m in mismatches] == ["victim:0"]
    assert mismatches[0]["actual"] - mismatches[0]["expected"] == 7


async def test_run_id_and_verify_across_two_invocations(
    endpoint_url: str, table_name: str, tmp_path: Path
) -> None:
    target = ["--endpoint-url", endpoint_url, "--table", table_name]
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    runs = [
        bench(*target, "--run-id", "r1", "-n", "300", "-c", "8", "--keys", "10",
              "--json", str(first)),
        bench(*target, "--run-id", "r1", "-n", "200", "-c", "8", "-p", "2", "--keys", "10",
              "--decrements", "0.3", "--json", str(second)),
    ]  # fmt: skip
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
        assert "verify --run-id r1" in run.stdout
    acknowledged = sum(load(p)["results"]["acknowledged_amount"] for p in (first, second))

    verdict = tmp_path / "verify.json"
    check = bench(*target, "--run-id", "r1", "--json", str(verdict), command="verify")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "3 worker(s) recorded" in check.stdout
    data = load(verdict)
    assert [w["state"] for w in data["workers"].values()] == ["final"] * 3
    assert data["verification"]["status"] == "exact"
    assert data["verification"]["actual_total"] == acknowledged

    # Changed behind the run's back: verify names the key.
    async with CounterPool(table_name, endpoint_url=endpoint_url) as other_writer:
        await other_writer.increment("bench:r1:3", 2)
    check = bench(*target, "--run-id", "r1", command="verify")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "bench:r1:3: expected" in check.stdout and "(difference +2)" in check.stdout

    unknown = bench(*target, "--run-id", "never-ran", command="verify")
    assert unknown.returncode == 3 and "no worker has recorded" in unknown.stdout


def test_bad_flags_exit_2_with_a_clear_message() -> None:
    run = bench("--processes", "0")
    assert run.returncode == 2
    assert "--processes must be >= 1" in run.stderr
    run = bench("--distribution", "pareto")
    assert run.returncode == 2
    assert "invalid choice: 'pareto'" in run.stderr


@pytest.mark.timing
async def test_verify_during_a_run_reports_workers_still_running(
    endpoint_url: str, table_name: str
) -> None:
    target = ["--endpoint-url", endpoint_url, "--table", table_name]
    process = await _start_bench(
        *target, "--run-id", "live", "--keys", "5", "--concurrency", "4", "--record-every", "0.5",
    )  # fmt: skip
    async with asyncio.timeout(TIMEOUT):
        # Two progress lines (a second apart): a periodic record is in the table.
        output = await _progress_lines(process, 2)
        verify = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "async_counters.cli", "verify", *target, "--run-id", "live",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        during, _ = await verify.communicate()
        text = await _end_run(process, output)  # only once verify has answered
    # Mid-run, a worker's in-flight operations only bound its counters: never a false verdict.
    assert verify.returncode == 3, during.decode()
    assert "running" in during.decode() and "has not finished" in during.decode()
    assert process.returncode == 0, text
    after = bench(*target, "--run-id", "live", command="verify")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "final" in after.stdout


def _serves(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_killed_bench_leaves_no_server_behind() -> None:
    """SIGKILL gives the bench no chance to stop its embedded server: the server notices that
    its standard input (a pipe from the bench) closed, and stops by itself."""
    script = (
        "import time\n"
        "from async_counters.loadtest.config import ServerOptions\n"
        "from async_counters.loadtest.embedded import EmbeddedServer\n"
        "server = EmbeddedServer(ServerOptions(backend='memory')).__enter__()\n"
        "print(server.endpoint_url, flush=True)\n"
        "time.sleep(TIMEOUT)\n".replace("TIMEOUT", str(TIMEOUT))
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as bench_process:
        try:
            assert bench_process.stdout is not None
            url = bench_process.stdout.readline().strip()
            assert _serves(url)
        finally:
            bench_process.kill()
    deadline = time.monotonic() + 15
    while _serves(url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _serves(url)


def test_the_local_server_stops_when_its_input_closes() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "async_counters.local", "--backend", "memory", "--exit-with-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None and server.stdin is not None
            url = server.stdout.readline().strip()
            assert _serves(url)
            server.stdin.close()
            assert server.wait(15) == 0
            assert not _serves(url)
        finally:
            if server.poll() is None:
                server.kill()

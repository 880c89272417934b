"""`benchmarks/throttling.py`'s fixed pace, the yardstick told the cap, against the embedded
server over HTTP: it paces each key (or the table) at its share of the cap, and a throttled
write is sent again, never counted twice."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from async_counters import CounterPool
from async_counters.local import LocalDynamo
from async_counters.local.config import Capacity
from benchmarks.throttling import TABLE, run_fixed

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "throttling.py"


def fixed_args(
    endpoint: str, *, share: float, cap: float, scope: str, keys: int
) -> argparse.Namespace:
    return argparse.Namespace(
        endpoint=endpoint,
        key="hot",
        keys=keys,
        scope=scope,
        cap=cap,
        fixed_share=share,
        callers=8,
        seconds=0.5,
        steady_from=0.0,
        stats_url=None,
    )


@asynccontextmanager
async def capped(capacity: Capacity) -> AsyncIterator[LocalDynamo]:
    """The embedded server with ``capacity``, its table made."""
    async with LocalDynamo(backend="memory", capacity=capacity) as server:
        async with CounterPool(TABLE, endpoint_url=server.endpoint_url) as pool:
            await pool.ensure_table()
        yield server


async def values(endpoint: str, keys: list[str]) -> dict[str, int]:
    async with CounterPool(TABLE, endpoint_url=endpoint) as pool:
        return await pool.get_many(keys)


@pytest.mark.timing
async def test_the_fixed_pace_sends_its_share_of_the_cap_a_key_and_is_exact() -> None:
    # Deep buckets (2 s of 40/s a key): nothing is throttled, so every request counts.
    async with capped(Capacity(partition_write_units=40, burst_seconds=2)) as server:
        before = server.stats()["requests"]
        started = time.monotonic()
        result = await run_fixed(
            fixed_args(server.endpoint_url, share=0.5, cap=40, scope="partition", keys=2)
        )
        took = time.monotonic() - started  # the window and its drain, however slow the machine
        requests = server.stats()["requests"] - before
        got = await values(server.endpoint_url, ["hot:0", "hot:1"])
    acked = result["acked"] + result["acked_late"]
    assert result["failed"] == 0 and acked > 0
    assert sum(got.values()) == acked  # read back from the server
    assert requests == acked  # under the cap: nothing throttled, nothing sent twice
    # 20/s a key, two keys, each lane's first slot at once: never more, whatever the speed.
    assert requests <= 2 * (20 * took + 1)
    assert abs(got["hot:0"] - got["hot:1"]) <= 1  # each write to the key free soonest


@pytest.mark.timing
async def test_a_throttled_write_goes_again_at_the_next_slot_and_counts_once() -> None:
    # A provisioned table's cap of 20/s (a shallow bucket: a token), paced at 1.5 times it
    # over three keys: throttles.
    async with capped(Capacity(table_write_units=20, burst_seconds=0.05)) as server:
        before = server.stats()
        result = await run_fixed(
            fixed_args(server.endpoint_url, share=1.5, cap=20, scope="table", keys=3)
        )
        after = server.stats()
        got = await values(server.endpoint_url, ["hot:0", "hot:1", "hot:2"])
        ledger = server.ledger(TABLE)
    acked = result["acked"] + result["acked_late"]
    assert result["failed"] == 0
    assert sum(got.values()) == acked == sum(entry.sum for entry in ledger.values())
    throttled = after["throttled"] - before["throttled"]
    assert after["requests"] - before["requests"] == acked + throttled


def test_fixed_shares_out_of_range_get_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--only", "fixed", "--fixed-shares", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--fixed-shares are shares of the cap" in done.stderr
    assert "Traceback" not in done.stderr

"""The pool against the embedded DynamoDB's faults and capacity model, its ledger the ground truth."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest

from async_counters import AmbiguousWriteError, CounterPool, RetryPolicy
from async_counters.local import Capacity, Faults, LocalDynamo


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[LocalDynamo]:
    with LocalDynamo(backend="fast") as server:
        yield server


async def test_every_fault_after_apply_is_ambiguous_and_nothing_is_silent(
    faulty_server: LocalDynamo, table_name: str, transport_name: str
) -> None:
    faults = Faults(
        error_before_apply=0.03,
        error_after_apply=0.05,
        drop_after_apply=0.02,
        delay_after_apply=0.01,
        delay=1.0,
        seed=7,
    )
    keys = ["a", "b", "c"]
    acked: dict[str, int] = defaultdict(int)
    ambiguous: dict[str, int] = defaultdict(int)
    async with CounterPool(
        table_name,
        endpoint_url=faulty_server.endpoint_url,
        transport=transport_name,
        read_timeout=0.3,
    ) as pool:
        await pool.ensure_table()
        before = faulty_server.stats()
        faulty_server.set_faults(faults)
        try:

            async def caller(i: int) -> None:
                for j in range(40):
                    key = keys[(i + j) % 3]
                    try:
                        await pool.increment(key, 1 + j % 3)
                    except AmbiguousWriteError as error:
                        assert error.applied is None
                        ambiguous[key] += error.amount
                    else:
                        acked[key] += 1 + j % 3

            await asyncio.gather(*(caller(i) for i in range(64)))
        finally:
            faulty_server.set_faults(Faults())
        stats = pool.stats
    after = faulty_server.stats()
    injected = {
        kind: after[kind] - before[kind]
        for kind in (
            "error_before_apply",
            "error_after_apply",
            "drop_after_apply",
            "delay_after_apply",
        )
    }
    assert all(n > 0 for n in injected.values()), injected
    # Every fault reached the caller as AmbiguousWriteError: none retried, none hidden.
    assert stats.ambiguous == sum(injected.values())
    assert stats.acknowledged + stats.ambiguous == stats.calls == 64 * 40
    ledger = faulty_server.ledger(table_name)
    for key in keys:
        applied = ledger[key].sum
        # What was applied is what was acknowledged, plus some of what was ambiguous.
        assert acked[key] <= applied <= acked[key] + ambiguous[key]
    applied_ambiguous = sum(ledger[k].sum for k in keys) - sum(acked.values())
    failed_before_apply = sum(ambiguous.values()) - applied_ambiguous
    assert 0 < failed_before_apply < sum(ambiguous.values())


@pytest.fixture
def capped_server() -> Iterator[LocalDynamo]:
    capacity = Capacity(partition_write_units=200, burst_seconds=0.2)
    with LocalDynamo(backend="fast", capacity=capacity) as server:
        yield server


async def _hammer(pool: CounterPool, key: str, callers: int, seconds: float) -> int:
    done = 0
    deadline = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await pool.increment(key)
            done += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    return done


async def test_a_throttled_key_is_paced_while_cold_keys_keep_their_speed(
    capped_server: LocalDynamo, table_name: str
) -> None:
    """One key capped at 200 writes/s: the pool paces it and leaves the others alone; a noisy
    neighbour on the same partition shrinks its pace, which recovers when the neighbour leaves."""
    endpoint = capped_server.endpoint_url
    policy = RetryPolicy(deadline=60.0)
    async with (
        CounterPool(table_name, endpoint_url=endpoint, max_in_flight=16, retry=policy) as pool,
        CounterPool(table_name, endpoint_url=endpoint, adaptive=False, retry=policy) as neighbour,
    ):
        await pool.ensure_table()

        async def cold_rate(seconds: float) -> float:
            return await _hammer_keys(pool, [f"cold:{i}" for i in range(8)], seconds) / seconds

        alone = await cold_rate(1.5)
        hot = asyncio.create_task(_hammer(pool, "hot", 64, 9.0))
        await asyncio.sleep(1.5)  # the hot key meets its cap and gets paced
        beside_hot = await cold_rate(1.5)
        paced = pool.stats.key_rates["hot"]
        storm = asyncio.create_task(_hammer(neighbour, "hot", 32, 2.5))
        await asyncio.sleep(2.0)
        during_storm = pool.stats.key_rates["hot"]
        await storm
        await asyncio.sleep(3.5)
        after_storm = pool.stats.key_rates.get("hot", float("inf"))
        hot_done = await hot
        stats = pool.stats

    assert beside_hot >= 0.7 * alone, (alone, beside_hot)
    assert 100 <= paced <= 400, paced
    assert during_storm < 0.75 * paced, (paced, during_storm)
    assert after_storm >= 0.8 * paced, (paced, after_storm)
    # Every increment landed exactly once: the server's ledger agrees with what was acknowledged.
    ledger = capped_server.ledger(table_name)
    assert ledger["hot"].sum == hot_done + storm.result()
    assert stats.throttled == 0 and stats.ambiguous == 0


async def _hammer_keys(pool: CounterPool, keys: list[str], seconds: float) -> int:
    done = 0
    deadline = time.monotonic() + seconds

    async def caller(key: str) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await pool.increment(key)
            done += 1

    await asyncio.gather(*(caller(key) for key in keys for _ in range(2)))
    return done

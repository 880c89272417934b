"""exactly_once against faults that lose answers: every increment applied once, none ambiguous.

The embedded DynamoDB throttles, fails after applying, drops connections after applying and holds
answers past the client's timeout; its ledger says what was really applied. The same workload in
plain mode shows the ambiguous writes it has to surface, so the difference is measured here.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest
from aiobotocore.session import get_session

from async_counters import AmbiguousWriteError, CounterFloorError, CounterPool
from async_counters.local import Faults, LocalDynamo
from async_counters.pool import PRUNE_AFTER, WRITER_SEQ_PREFIX, WRITER_VALUE_PREFIX
from tests.integration.local_fixtures import dynalite_package

__all__ = ["dynalite_package"]

FAULTS = Faults(
    throttle=0.2,
    error_after_apply=0.05,
    drop_after_apply=0.02,
    delay_after_apply=0.01,
    delay=0.5,
    seed=1,
)
KEYS = [f"k{i}" for i in range(5)]


@pytest.fixture(scope="module", params=["memory", "moto", "dynalite"])
def server(request: pytest.FixtureRequest) -> Iterator[LocalDynamo]:
    if request.param == "dynalite":
        request.getfixturevalue("dynalite_package")  # skips when node is missing
    with LocalDynamo(backend=request.param) as server:
        yield server


def _increments(server: LocalDynamo) -> int:
    """8,000 on the memory backend; fewer where each request costs the server more. Each
    fault still happens dozens of times (20 % throttles, 8 % lost or failed answers)."""
    return 8_000 if server.config.backend == "memory" else 2_400


async def _run(
    server: LocalDynamo, table: str, *, tasks: int, increments: int, **options: object
) -> tuple[dict[str, int], dict[str, int], CounterPool]:
    acknowledged: dict[str, int] = defaultdict(int)
    ambiguous: dict[str, int] = defaultdict(int)
    pool = CounterPool(table, endpoint_url=server.endpoint_url, read_timeout=0.25, **options)
    async with pool:
        await pool.ensure_table()
        server.set_faults(FAULTS)
        try:

            async def task(seed: int) -> None:
                rng = random.Random(seed)
                for _ in range(increments // tasks):
                    key, amount = rng.choice(KEYS), rng.randint(1, 3)
                    try:
                        await pool.increment(key, amount)
                    except AmbiguousWriteError:
                        ambiguous[key] += amount
                    else:
                        acknowledged[key] += amount

            await asyncio.gather(*(task(seed) for seed in range(tasks)))
        finally:
            server.set_faults(Faults())
    return acknowledged, ambiguous, pool


async def test_exactly_once_under_faults_and_the_difference_from_plain_mode(
    server: LocalDynamo, table_name: str
) -> None:
    n = _increments(server)
    started = time.perf_counter()
    acknowledged, ambiguous, pool = await _run(
        server, table_name, tasks=300, increments=n, exactly_once=True, coalesce=True
    )
    elapsed = time.perf_counter() - started
    stats = pool.stats
    assert not ambiguous, "no AmbiguousWriteError reaches callers"
    assert sum(acknowledged.values()) == stats.acknowledged_amount
    assert stats.acknowledged == n - n % 300
    async with CounterPool(table_name, endpoint_url=server.endpoint_url) as reader:
        assert await reader.get_many(KEYS) == dict(acknowledged)
    ledger = server.ledger(table_name)
    assert {k: ledger[k].sum for k in KEYS} == dict(acknowledged)  # each applied exactly once
    assert stats.recovered > 0  # lost answers that a retry found applied

    plain_table = table_name + "-plain"
    plain_acked, plain_ambiguous, plain = await _run(
        server, plain_table, tasks=300, increments=n, coalesce=True
    )
    plain_ledger = server.ledger(plain_table)
    for key in KEYS:
        assert plain_acked[key] <= plain_ledger[key].sum <= plain_acked[key] + plain_ambiguous[key]
    assert plain.stats.ambiguous > 0
    print(
        f"\nexactly_once on {server.config.backend}: {stats.acknowledged} increments in "
        f"{elapsed:.1f}s, {stats.requests} requests, {stats.recovered} lost answers recovered, "
        f"0 ambiguous; plain mode: {plain.stats.ambiguous} ambiguous "
        f"({sum(plain_ambiguous.values())} in amounts) surfaced to callers"
    )


@pytest.mark.timing
async def test_exactly_once_without_merging_keeps_one_write_in_flight_per_key(
    server: LocalDynamo, table_name: str
) -> None:
    # One write in flight per key makes this run serial per key, through every backoff: 60
    # increments a key on the memory backend, 30 where each request costs the server more.
    increments = 300 if server.config.backend == "memory" else 150
    acknowledged, ambiguous, pool = await _run(
        server, table_name, tasks=30, increments=increments, exactly_once=True
    )
    assert not ambiguous
    ledger = server.ledger(table_name)
    assert {k: ledger[k].sum for k in KEYS} == dict(acknowledged)
    assert pool.stats.requests >= pool.stats.acknowledged  # one write per increment


@pytest.mark.timing
async def test_floors_hold_with_exactly_once_under_faults(
    server: LocalDynamo, table_name: str
) -> None:
    async with CounterPool(
        table_name,
        endpoint_url=server.endpoint_url,
        exactly_once=True,
        coalesce=True,
        read_timeout=0.25,
    ) as pool:
        await pool.ensure_table()
        await pool.increment("stock", 40)
        server.set_faults(FAULTS)
        try:
            results = await asyncio.gather(
                *(pool.decrement("stock", 1, floor=0) for _ in range(120)), return_exceptions=True
            )
        finally:
            server.set_faults(Faults())
        assert await pool.get("stock") == 0
    assert sum(isinstance(r, int) for r in results) == 40
    assert sum(isinstance(r, CounterFloorError) for r in results) == 80
    assert server.ledger(table_name)["stock"].sum == 0


async def test_stale_writers_are_pruned_and_live_ones_kept(
    server: LocalDynamo, table_name: str
) -> None:
    now_us = time.time_ns() // 1000
    stale_seq = now_us - int((PRUNE_AFTER + 60) * 1_000_000)
    live_seq = now_us - 60 * 1_000_000
    async with CounterPool(table_name, endpoint_url=server.endpoint_url) as pool:
        await pool.ensure_table()
    item = {
        "pk": {"S": "k"},
        "count": {"N": "10"},
        f"{WRITER_SEQ_PREFIX}old": {"N": str(stale_seq)},
        f"{WRITER_VALUE_PREFIX}old": {"N": "10"},
        f"{WRITER_SEQ_PREFIX}live": {"N": str(live_seq)},
        f"{WRITER_VALUE_PREFIX}live": {"N": "7"},
    }
    session = get_session()
    async with session.create_client(
        "dynamodb",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ) as client:
        await client.put_item(TableName=table_name, Item=item)
        async with CounterPool(
            table_name, endpoint_url=server.endpoint_url, exactly_once=True
        ) as pool:
            assert await pool.increment("k", 5) == 15
            await pool.flush()
            assert pool.stats.pruned == 1
            writer = pool.writer_id
        stored = (await client.get_item(TableName=table_name, Key={"pk": {"S": "k"}}))["Item"]
    names = set(stored)
    assert f"{WRITER_SEQ_PREFIX}old" not in names and f"{WRITER_VALUE_PREFIX}old" not in names
    assert {f"{WRITER_SEQ_PREFIX}live", f"{WRITER_VALUE_PREFIX}live"} <= names
    # Its one write was answered on its first attempt: no copy can arrive, the record is gone.
    assert not {f"{WRITER_SEQ_PREFIX}{writer}", f"{WRITER_VALUE_PREFIX}{writer}"} & names
    assert stored["count"] == {"N": "15"}


def test_exactly_once_needs_a_deadline_shorter_than_pruning() -> None:
    from async_counters import RetryPolicy

    with pytest.raises(ValueError, match="deadline"):
        CounterPool("t", exactly_once=True, retry=RetryPolicy(attempts=3, deadline=None))
    with pytest.raises(ValueError, match="deadline"):
        CounterPool("t", exactly_once=True, retry=RetryPolicy(deadline=PRUNE_AFTER))

"""`RateLimiter` against the embedded server: exact admission across pools, by one write a hit.

Several pools (separate connection pools, as separate processes would have) hit one key at once;
the test's wall clock decides the window, and moves only when the test moves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from async_counters import CounterPool, Decision, RateLimiter
from async_counters import windows as w
from tests.integration.test_windows import WallClock, _raw

LIMIT = 25
TASKS = 90


@pytest.fixture
def wall() -> WallClock:
    return WallClock(1_800_000_000.0 + 1)


@pytest.fixture
async def pools(
    endpoint_url: str, table_name: str, wall: WallClock
) -> AsyncIterator[list[CounterPool]]:
    async with contextlib.AsyncExitStack() as stack:
        pools = [
            await stack.enter_async_context(
                CounterPool(table_name, endpoint_url=endpoint_url, transport=kind, wall_us=wall)
            )
            for kind in ("fast", "botocore", "fast")
        ]
        await pools[0].ensure_table()
        yield pools


async def _hits(limiters: list[RateLimiter], key: str, n: int) -> list[Decision]:
    return await asyncio.gather(*(limiters[i % len(limiters)].hit(key) for i in range(n)))


def _sends(pools: list[CounterPool]) -> int:
    return sum(pool.stats.requests for pool in pools)


async def test_exactly_limit_admitted_per_window_across_pools(
    pools: list[CounterPool], wall: WallClock
) -> None:
    limiters = [RateLimiter(pool, limit=LIMIT, per=10) for pool in pools]
    window = w.Window.at(10, wall.now)
    before = _sends(pools)
    decisions = await _hits(limiters, "api:user-42", TASKS)
    assert _sends(pools) - before == TASKS  # one request per hit, allowed or denied
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == LIMIT
    assert sorted(d.remaining for d in allowed) == list(range(LIMIT))
    denied = [d for d in decisions if not d.allowed]
    assert all(d.remaining == 0 and 0 < d.reset_after <= 10 for d in denied)
    stored = await _raw(pools[0], window.item("api:user-42"))
    assert stored["count"] == {"N": str(LIMIT)}  # the denied hits changed nothing
    assert stored["expires_at"] == {"N": str(w.expires_at(window.item("api:user-42")))}
    assert await pools[1].get("api:user-42", window=10) == LIMIT

    wall.now = window.end + 0.5  # the next window admits the limit again, exactly
    decisions = await _hits(limiters, "api:user-42", TASKS)
    assert sum(d.allowed for d in decisions) == LIMIT
    assert await pools[2].get("api:user-42", window=10) == LIMIT
    wall.now = window.start + 1  # and the first window stays full
    assert not (await limiters[0].hit("api:user-42")).allowed
    assert await pools[0].get("api:user-42", window=10) == LIMIT


async def test_costs_are_admitted_whole_or_not_at_all(pools: list[CounterPool]) -> None:
    limiter = RateLimiter(pools[0], limit=10, per=60)
    assert (await limiter.hit("k", cost=7)).remaining == 3
    denied = await limiter.hit("k", cost=4)
    assert not denied.allowed
    assert await pools[0].get("k", window=60) == 7
    last = await limiter.hit("k", cost=3)
    assert (last.allowed, last.remaining) == (True, 0)
    assert last.reset_after > 0


async def test_sliding_window_weighs_the_previous_window(
    pools: list[CounterPool], wall: WallClock
) -> None:
    limiters = [RateLimiter(pool, limit=20, per=10, sliding=True) for pool in pools]
    first = w.Window.at(10, wall.now)
    assert sum(d.allowed for d in await _hits(limiters, "s", 40)) == 20
    wall.now = first.end + 2.5  # a quarter in: the previous window weighs 20 * 0.75 = 15
    before = _sends(pools)
    assert sum(d.allowed for d in await _hits(limiters, "s", 40)) == 5
    assert _sends(pools) - before <= 40 + len(pools)  # one read of the previous count per pool
    denied = await limiters[0].hit("s")
    assert not denied.allowed
    assert 0 < denied.reset_after <= 7.5
    wall.now = first.end + 7.5  # three quarters in: 20 * 0.25 = 5, plus the 5 already admitted
    assert sum(d.allowed for d in await _hits(limiters, "s", 40)) == 10
    assert await pools[0].get("s", window=10) == 15


async def test_a_hot_key_is_admitted_exactly_with_far_fewer_writes_than_hits(
    endpoint_url: str, table_name: str, wall: WallClock
) -> None:
    """Coalesced admission: 2 pools, 600 concurrent hits on one key, limit 250: exactly 250 are
    admitted, each with its own ``remaining``, by a handful of merged writes; a limit high
    enough for every hit admits them all, still merged."""
    hits = 600
    async with contextlib.AsyncExitStack() as stack:
        pools = [
            await stack.enter_async_context(
                CounterPool(
                    table_name,
                    endpoint_url=endpoint_url,
                    transport=kind,
                    coalesce=True,
                    wall_us=wall,
                )
            )
            for kind in ("fast", "botocore")
        ]
        await pools[0].ensure_table()
        limiters = [RateLimiter(pool, limit=250, per=10) for pool in pools]
        before = _sends(pools)
        decisions = await _hits(limiters, "hot", hits)
        writes = _sends(pools) - before
        allowed = [d for d in decisions if d.allowed]
        assert len(allowed) == 250
        assert sorted(d.remaining for d in allowed) == list(range(250))
        assert await pools[1].get("hot", window=10) == 250  # read back from the server
        assert writes * 20 <= hits, writes
        print(f"\nhot key: {hits} hits, limit 250: {writes} requests")

        wide = [RateLimiter(pool, limit=10_000, per=1) for pool in pools]
        before = _sends(pools)
        decisions = await _hits(wide, "wide", hits)
        assert all(d.allowed for d in decisions)
        assert await pools[0].get("wide", window=1) == hits
        assert (_sends(pools) - before) * 20 <= hits


async def test_a_limiter_s_writes_are_charged_in_the_pool_s_units(
    pools: list[CounterPool],
) -> None:
    pool = pools[0]
    limiter = RateLimiter(pool, limit=3, per=60)
    before = pool.stats.write_units
    decisions = [await limiter.hit("units") for _ in range(3)]
    assert all(d.allowed for d in decisions)
    assert pool.stats.write_units - before == 3.0  # one unit per admitted hit, from the server

"""The `limits` storage against the embedded server, through `limits`' own strategies.

Several storages, each with its own pool and connections (as separate processes would have), hit
one key at once; the test's wall clock decides the windows and moves only when the test moves
it. Totals are read back from the server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("limits")

from limits import RateLimitItemPerSecond
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

from async_counters import CounterPool, TableNotFoundError
from async_counters.limits_storage import DynamoDBStorage, StorageURIError
from async_counters.local import LocalDynamo
from tests.integration.test_rate_limit import pools
from tests.integration.test_windows import WallClock, _raw

__all__ = ["pools"]  # the fixture, shared

LIMIT = 25
TASKS = 90
START = 1_800_000_000.0 + 1  # 1 s into a 10 s window aligned to the epoch
#: Makes the modules named in $ASYNC_COUNTERS_TEST_UNINSTALLED unimportable (sitecustomize).
WITHOUT_EXTRAS = Path(__file__).with_name("without_extras")


@pytest.fixture
def wall() -> WallClock:
    return WallClock(START)


@pytest.fixture
async def storages(table_name: str, pools: list[CounterPool]) -> list[DynamoDBStorage]:
    """One storage on each of `test_rate_limit`'s three pools (fast, botocore, fast)."""
    return [DynamoDBStorage(f"async+dynamodb://{table_name}", pool=pool) for pool in pools]


def _requests(storages: list[DynamoDBStorage]) -> int:
    return sum(storage.pool.stats.requests for storage in storages)


async def _hits(limiters: list, item: RateLimitItemPerSecond, n: int) -> int:
    """How many of ``n`` concurrent hits, spread over ``limiters``, were admitted."""
    results = await asyncio.gather(
        *(limiters[i % len(limiters)].hit(item, "user-42") for i in range(n))
    )
    return sum(results)


async def test_scheme_is_registered_and_works_from_the_uri_alone(
    endpoint_url: str, table_name: str
) -> None:
    uri = f"async+dynamodb://{table_name}?endpoint_url={endpoint_url}&region=us-east-1"
    storage = storage_from_string(uri + "&create_table=true")
    assert isinstance(storage, DynamoDBStorage)
    try:
        limiter = FixedWindowRateLimiter(storage)
        item = RateLimitItemPerSecond(3, 60)
        assert [await limiter.hit(item, "a") for _ in range(4)] == [True, True, True, False]
        stats = await limiter.get_window_stats(item, "a")
        assert stats.remaining == 0
        assert await storage.check()
    finally:
        await storage.aclose()


async def test_fixed_window_admits_exactly_the_limit_across_pools(
    storages: list[DynamoDBStorage], wall: WallClock
) -> None:
    limiters = [FixedWindowRateLimiter(storage) for storage in storages]
    item = RateLimitItemPerSecond(LIMIT, 10)
    key = item.key_for("user-42")
    before = _requests(storages)
    assert await _hits(limiters, item, TASKS) == LIMIT
    # Hits that found no window running tried once more, after one start per pool.
    assert _requests(storages) - before <= 2 * TASKS + 2 * len(storages)
    stored = await _raw(storages[0].pool, f"limits/fixed/{key}")
    assert stored["count"] == {"N": str(TASKS)}  # every hit counted, as `limits` counts them
    assert stored["end_ms"] == {"N": str(int(START * 1000) + 10_000)}
    assert await storages[1].get(key) == TASKS
    assert await storages[2].get_expiry(key) == START + 10

    wall.now = START + 10  # the window ended; its item is still on the server
    assert await storages[0].get(key) == 0
    assert (await _raw(storages[0].pool, f"limits/fixed/{key}"))["count"] == {"N": str(TASKS)}
    assert await _hits(limiters, item, TASKS) == LIMIT
    stored = await _raw(storages[0].pool, f"limits/fixed/{key}")
    assert stored["count"] == {"N": str(TASKS)}
    assert stored["end_ms"] == {"N": str(int(START * 1000) + 20_000)}


async def test_moving_window_admits_exactly_the_limit_in_any_span(
    storages: list[DynamoDBStorage], wall: WallClock
) -> None:
    limiters = [MovingWindowRateLimiter(storage) for storage in storages]
    item = RateLimitItemPerSecond(LIMIT, 10)
    key = item.key_for("user-42")
    assert await _hits(limiters, item, TASKS) == LIMIT
    stored = await _raw(storages[0].pool, f"limits/moving/{key}")
    slots = {name: value for name, value in stored.items() if name.startswith("s")}
    assert slots == {f"s{i}": {"N": str(int(START * 1000))} for i in range(LIMIT)}
    assert await storages[1].get_moving_window(key, LIMIT, 10) == (START, LIMIT)

    wall.now = START + 9.999  # still inside the span of the first hits: nothing more
    before = _requests(storages)
    assert await _hits(limiters, item, TASKS) == 0
    assert _requests(storages) == before  # each pool saw it full: denied without a request
    wall.now = START + 10  # they have all left the window: the limit again, exactly
    assert await _hits(limiters, item, TASKS) == LIMIT
    assert await storages[2].get_moving_window(key, LIMIT, 10) == (START + 10, LIMIT)

    # A window half full of old hits admits what the old hits leave free.
    small = RateLimitItemPerSecond(10, 10)
    assert await _hits(limiters, small, 4) == 4
    wall.now = START + 15
    assert await _hits(limiters, small, 20) == 6
    wall.now = START + 20  # the first 4 left: 4 more, no more
    assert await _hits(limiters, small, 20) == 4
    assert await storages[0].get_moving_window(small.key_for("user-42"), 10, 10) == (
        START + 15,
        10,
    )
    stats = await limiters[0].get_window_stats(small, "user-42")
    assert (stats.reset_time, stats.remaining) == (START + 25, 0)


async def test_sliding_window_counter_weighs_the_previous_window(
    storages: list[DynamoDBStorage], wall: WallClock
) -> None:
    limiters = [SlidingWindowCounterRateLimiter(storage) for storage in storages]
    item = RateLimitItemPerSecond(20, 10)
    key = item.key_for("user-42")
    first = int(START // 10 * 10)
    assert await _hits(limiters, item, 40) == 20
    wall.now = first + 12.5  # a quarter in: the previous window weighs 20 * 0.75 = 15
    before = _requests(storages)
    assert await _hits(limiters, item, 40) == 5
    assert _requests(storages) - before <= 40 + len(storages)  # one read per pool and window
    wall.now = first + 17.5  # three quarters in: 20 * 0.25 = 5, plus the 5 admitted
    assert await _hits(limiters, item, 40) == 10
    previous, previous_ttl, current, current_ttl = await storages[1].get_sliding_window(key, 10)
    assert (previous, current) == (20, 15)
    assert (previous_ttl, current_ttl) == (2.5, 12.5)
    raw = await _raw(storages[0].pool, f"limits/sliding/10/{first + 10}/{key}")
    assert raw["count"] == {"N": "15"}
    assert raw["expires_at"] == {"N": str(first + 30 + 60)}


async def test_clear_and_reset_forget_what_was_counted(
    storages: list[DynamoDBStorage], wall: WallClock
) -> None:
    storage = storages[0]
    fixed, moving = FixedWindowRateLimiter(storage), MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(2, 10)
    for limiter in (fixed, moving):
        assert [await limiter.hit(item, "a") for _ in range(3)] == [True, True, False]
    await storage.clear(item.key_for("a"))
    for limiter in (fixed, moving):
        assert await limiter.hit(item, "a")
        await limiter.hit(item, "b")
    assert await storage.reset() == 4  # a and b, fixed and moving
    assert await storage.get(item.key_for("a")) == 0
    assert await storage.get_moving_window(item.key_for("b"), 2, 10) == (START, 0)


async def test_errors_are_the_pools_or_wrapped_for_limits(endpoint_url: str) -> None:
    async with CounterPool("no-such-table", endpoint_url=endpoint_url) as pool:
        storage = DynamoDBStorage("async+dynamodb://no-such-table", pool=pool)
        with pytest.raises(TableNotFoundError):
            await storage.incr("k", 10)
        assert not await storage.check()
        wrapped = DynamoDBStorage("async+dynamodb://no-such-table", wrap_exceptions=True, pool=pool)
        with pytest.raises(StorageError):
            await MovingWindowRateLimiter(wrapped).hit(RateLimitItemPerSecond(1, 1), "k")


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("async+dynamodb://", "names no table"),
        ("async+dynamodb://ab", "not a DynamoDB table name"),
        ("async+dynamodb://t!x", "not a DynamoDB table name"),
        ("async+dynamodb://counters/more", "path or fragment"),
        ("async+dynamodb://counters?regoin=us-east-1", "unknown option 'regoin'"),
        ("async+dynamodb://counters?region=a&region=b", "given 2 times"),
        ("async+dynamodb://counters?region=", "non-empty"),
        ("async+dynamodb://counters?region=a&region_name=b", "not both"),
        ("async+dynamodb://counters?endpoint_url=ftp://x", "http(s) URL"),
        ("async+dynamodb://counters?max_in_flight=lots", "whole number"),
        ("async+dynamodb://counters?max_in_flight=0", ">= 1"),
        ("async+dynamodb://counters?create_table=maybe", "true or false"),
        ("async+dynamodb://counters?transport=carrier-pigeon", "'fast' or 'botocore'"),
        ("async+dynamodb://counters?ttl_attribute=s3", "moving-window slot"),
        ("async+dynamodb://AKIDEXAMPLE:wJalrXUtnFEMI@counters", "must not carry credentials"),
        ("async+redis://counters", "scheme must be"),
    ],
)
def test_bad_uris_are_refused_before_anything_is_sent(uri: str, words: str) -> None:
    with pytest.raises(StorageURIError, match=words.replace("(", r"\(").replace(")", r"\)")) as e:
        DynamoDBStorage(uri)
    assert isinstance(e.value, ConfigurationError)
    assert isinstance(e.value, ValueError)
    assert "wJalrXUtnFEMI" not in str(e.value)


async def test_options_that_conflict_with_a_given_pool_are_refused(endpoint_url: str) -> None:
    async with CounterPool("counters", endpoint_url=endpoint_url) as pool:
        with pytest.raises(StorageURIError, match="drop region"):
            DynamoDBStorage("async+dynamodb://counters?region=us-east-1", pool=pool)
        with pytest.raises(StorageURIError, match="pool's is 'counters'"):
            DynamoDBStorage("async+dynamodb://others", pool=pool)
        with pytest.raises(StorageURIError, match="both in the URI and as a keyword"):
            storage_from_string("async+dynamodb://counters?prefix=a", prefix="b", pool=pool)


def test_the_core_install_neither_needs_nor_imports_limits() -> None:
    script = (
        "import sys, async_counters, async_counters.ratelimit, async_counters.pool\n"
        "assert 'limits' not in sys.modules, 'the core imported limits'\n"
        "try:\n"
        "    import async_counters.limits_storage\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "ASYNC_COUNTERS_TEST_UNINSTALLED": "limits"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(WITHOUT_EXTRAS), env.get("PYTHONPATH")]))
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (
        "async_counters.limits_storage needs limits: pip install 'async-counters[limits]'"
    )


@pytest.mark.parametrize(
    "strategy", [FixedWindowRateLimiter, MovingWindowRateLimiter, SlidingWindowCounterRateLimiter]
)
async def test_every_strategy_on_the_memory_backend(strategy: type, wall: WallClock) -> None:
    """The requests use only what the memory backend models (top-level paths, ALL_OLD/ALL_NEW),
    which the benchmark runs on."""
    async with (
        LocalDynamo(backend="memory") as server,
        CounterPool("limits", endpoint_url=server.endpoint_url, wall_us=wall) as pool,
    ):
        await pool.ensure_table(ttl=True)
        limiter = strategy(DynamoDBStorage("async+dynamodb://limits", pool=pool))
        item = RateLimitItemPerSecond(3, 10)
        assert await _hits([limiter], item, 10) == 3
        wall.now = START + 20  # two windows on: the limit again, exactly
        assert await _hits([limiter], item, 10) == 3
        stats = await limiter.get_window_stats(item, "user-42")
        assert stats.remaining == 0

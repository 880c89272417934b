"""The pool against the embedded DynamoDB's faults and capacity model; its ledger is the truth."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import pytest

from async_counters import AmbiguousWriteError, CounterPool, RetryPolicy
from async_counters.local import Capacity, Faults, Latency, LocalDynamo


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[LocalDynamo]:
    with LocalDynamo(backend="memory") as server:
        yield server


#: Callers in `test_every_fault_after_apply_is_ambiguous_and_nothing_is_silent`, and the
#: increments each sends one after another (1,280 requests: each fault a dozen times or more).
FAULT_CALLERS, FAULT_ROUNDS = 64, 20


async def _slowest_answer(server: LocalDynamo, table: str, transport: str) -> float:
    """The slowest answer, in seconds, to ``FAULT_CALLERS`` callers here, with no faults."""
    async with CounterPool(table, endpoint_url=server.endpoint_url, transport=transport) as pool:
        await pool.ensure_table()

        async def caller(i: int) -> None:
            for j in range(4):
                await pool.increment(f"warm:{(i + j) % 3}")

        await asyncio.gather(*(caller(i) for i in range(FAULT_CALLERS)))
        return pool.stats.latency.max


@pytest.mark.timing
async def test_every_fault_after_apply_is_ambiguous_and_nothing_is_silent(
    faulty_server: LocalDynamo, table_name: str, transport_name: str
) -> None:
    # Only the held answers may time out: the read timeout is far above the slowest natural
    # answer just measured here (the server shares this process, and the botocore transport's
    # CPU, with the callers), and the held answers far above the timeout.
    slowest = await _slowest_answer(faulty_server, table_name, transport_name)
    read_timeout = max(1.0, 10 * slowest)
    faults = Faults(
        error_before_apply=0.03,
        error_after_apply=0.05,
        drop_after_apply=0.02,
        delay_after_apply=0.01,
        delay=2.5 * read_timeout,
        seed=7,
    )
    keys = ["a", "b", "c"]
    acked: dict[str, int] = defaultdict(int)
    ambiguous: dict[str, int] = defaultdict(int)
    async with CounterPool(
        table_name,
        endpoint_url=faulty_server.endpoint_url,
        transport=transport_name,
        read_timeout=read_timeout,
    ) as pool:
        await pool.ensure_table()
        before = faulty_server.stats()
        faulty_server.set_faults(faults)
        try:

            async def caller(i: int) -> None:
                for j in range(FAULT_ROUNDS):
                    key = keys[(i + j) % 3]
                    try:
                        await pool.increment(key, 1 + j % 3)
                    except AmbiguousWriteError as error:
                        assert error.applied is None
                        ambiguous[key] += error.amount
                    else:
                        acked[key] += 1 + j % 3

            await asyncio.gather(*(caller(i) for i in range(FAULT_CALLERS)))
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
    assert stats.acknowledged + stats.ambiguous == stats.calls == FAULT_CALLERS * FAULT_ROUNDS
    ledger = faulty_server.ledger(table_name)
    for key in keys:
        applied = ledger[key].sum
        # What was applied is what was acknowledged, plus some of what was ambiguous.
        assert acked[key] <= applied <= acked[key] + ambiguous[key]
    applied_ambiguous = sum(ledger[k].sum for k in keys) - sum(acked.values())
    failed_before_apply = sum(ambiguous.values()) - applied_ambiguous
    assert 0 < failed_before_apply < sum(ambiguous.values())


#: The hot key's cap, unless this machine is too slow to overrun it 4x over (see `hot_cap`).
HOT_CAP = 200.0
#: Each pool's callers on the hot key, and on the cold keys.
HOT_CALLERS, COLD_KEYS = 64, 4
#: The cold keys are compared over the time the control pool takes for this many increments.
COLD_WINDOW = 600
#: How long the second pool hammers the hot key (a workload, not an expectation of speed).
STORM_SECONDS = 2.5
#: A generous bound on anything the test waits for (pacing, the pace's return).
PATIENCE = 30.0
#: 5 ms per request: the cold keys' callers are bound by round trips, not by this machine's CPU.
LATENCY = Latency(mean=0.005)


async def _hammer(
    pool: CounterPool, keys: list[str], stop: asyncio.Event, *, until_done: int | None = None
) -> int:
    """One caller per entry of ``keys`` looping increments until ``stop`` is set (which this
    sets itself after ``until_done`` increments); how many were acknowledged."""
    done = 0

    async def caller(key: str) -> None:
        nonlocal done
        while not stop.is_set():
            await pool.increment(key)
            done += 1
            if until_done is not None and done >= until_done:
                stop.set()

    await asyncio.gather(*(caller(key) for key in keys))
    return done


async def _hammer_for(pool: CounterPool, keys: list[str], seconds: float) -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await _hammer(pool, keys, stop)


@pytest.fixture
async def hot_cap(table_name: str) -> float:
    """`HOT_CAP`, or a quarter of what ``HOT_CALLERS`` get through an uncapped server here if
    that is less: the hot key must be throttled, and stay so on a machine 4x slower."""
    async with (
        LocalDynamo(backend="memory", latency=LATENCY) as server,
        CounterPool(table_name, endpoint_url=server.endpoint_url, adaptive=False) as pool,
    ):
        await pool.ensure_table()
        started = time.perf_counter()
        done = await _hammer(pool, ["hot"] * HOT_CALLERS, asyncio.Event(), until_done=1_000)
        served = done / (time.perf_counter() - started)
    return min(HOT_CAP, served / 4)


@pytest.fixture
def capped_server(hot_cap: float) -> Iterator[LocalDynamo]:
    capacity = Capacity(partition_write_units=hot_cap, burst_seconds=0.2)
    with LocalDynamo(backend="memory", capacity=capacity, latency=LATENCY) as server:
        yield server


async def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after `PATIENCE` seconds."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {PATIENCE} s"
        await asyncio.sleep(0.05)


@pytest.mark.timing
async def test_a_throttled_key_is_paced_while_cold_keys_keep_their_speed(
    capped_server: LocalDynamo, hot_cap: float, table_name: str
) -> None:
    """One key capped (at 200 writes/s): the pool paces it and leaves the others alone; a second
    pool (another process of the same app) writing the same key for a while wastes little, and
    the pace is back when it leaves. (Shrinking and recovering under a squeezed partition is shown
    exactly, in virtual time, in tests/unit/test_limiter.py.)

    The cold keys' speed is compared with a control pool's, measured in the same moments on the
    same machine, so a busy neighbour slows both alike."""
    endpoint = capped_server.endpoint_url
    policy = RetryPolicy(deadline=60.0)
    async with (
        CounterPool(table_name, endpoint_url=endpoint, max_in_flight=16, retry=policy) as pool,
        CounterPool(table_name, endpoint_url=endpoint, max_in_flight=16, retry=policy) as control,
        CounterPool(table_name, endpoint_url=endpoint, retry=policy) as neighbour,
    ):
        await pool.ensure_table()
        stop_hot = asyncio.Event()
        hot = asyncio.create_task(_hammer(pool, ["hot"] * HOT_CALLERS, stop_hot))
        try:
            # Paced near its cap: the first cuts may go deeper (to an eighth of the best rate
            # seen) and the probe then climbs back, slower when this machine is busy.
            paced = 0.0

            def near_the_cap() -> bool:
                nonlocal paced
                paced = pool.stats.key_rates.get("hot", 0.0)
                return hot_cap / 2 <= paced <= 2 * hot_cap

            await _wait_for(near_the_cap, f"the hot key paced near {hot_cap:.0f}/s")
            stop_cold = asyncio.Event()
            beside_hot, alone = await asyncio.gather(
                _hammer(pool, [f"cold:{i}" for i in range(COLD_KEYS)], stop_cold),
                _hammer(
                    control,
                    [f"control:{i}" for i in range(COLD_KEYS)],
                    stop_cold,
                    until_done=COLD_WINDOW,
                ),
            )
            paced = pool.stats.key_rates.get("hot", paced)
            before_storm = pool.stats
            neighbour_done = await _hammer_for(neighbour, ["hot"] * HOT_CALLERS, STORM_SECONDS)
            during_storm = pool.stats
            # The pace comes back: within a few seconds (a hold of up to 3 s after a run of cuts
            # judged useless, then the regain or the probe), to near what it was, or near the cap
            # if it was caught high in its swing above it.
            back = 0.8 * min(paced, hot_cap)
            after_storm = 0.0

            def pace_is_back() -> bool:
                nonlocal after_storm
                rate = pool.stats.key_rates.get("hot", float("inf"))
                after_storm = max(after_storm, rate)
                return after_storm >= back

            await _wait_for(pace_is_back, f"the pace back to {back:.0f}/s")
        finally:
            stop_hot.set()
            hot_done = await hot
        stats = pool.stats

    print(
        f"\ncap {hot_cap:.0f}/s, paced at {paced:.0f}/s, back to {after_storm:.0f}/s after the"
        f" storm; cold keys {beside_hot} beside the hot key, {alone} in the control pool"
    )
    assert beside_hot >= 0.7 * alone, (alone, beside_hot)
    sent = during_storm.requests - before_storm.requests
    acknowledged = during_storm.acknowledged - before_storm.acknowledged
    assert sent <= 2.5 * acknowledged, (sent, acknowledged)
    # Every increment landed exactly once: the server's ledger agrees with what was acknowledged.
    ledger = capped_server.ledger(table_name)
    assert ledger["hot"].sum == hot_done + neighbour_done
    assert stats.throttled == 0 and stats.ambiguous == 0


@pytest.mark.timing
async def test_a_throttling_storm_delays_but_never_drops(
    faulty_server: LocalDynamo, table_name: str
) -> None:
    """30 % of writes throttled at random: 5,000 increments from 200 tasks at 128 in flight,
    default policy."""
    async with CounterPool(
        table_name, endpoint_url=faulty_server.endpoint_url, max_in_flight=128
    ) as pool:
        await pool.ensure_table()
        before = faulty_server.stats()
        faulty_server.set_faults(Faults(throttle=0.3, seed=3))
        try:

            async def caller(i: int) -> None:
                for j in range(25):
                    await pool.increment(f"k{(i + j) % 4}")

            await asyncio.gather(*(caller(i) for i in range(200)))
        finally:
            faulty_server.set_faults(Faults())
        values = await pool.get_many([f"k{i}" for i in range(4)])
        stats = pool.stats
    throttles_sent = faulty_server.stats()["throttle"] - before["throttle"]
    assert sum(values.values()) == 5_000
    ledger = faulty_server.ledger(table_name)
    assert {k: ledger[k].sum for k in values} == values
    assert stats.acknowledged == 5_000 and stats.throttled == 0 and not stats.errors
    assert stats.throttles == throttles_sent > 5_000 * 0.3 * 0.9


async def test_exhausted_retries_raise_and_nothing_is_applied(
    faulty_server: LocalDynamo, table_name: str
) -> None:
    from async_counters import ThrottledError

    async with CounterPool(
        table_name,
        endpoint_url=faulty_server.endpoint_url,
        retry=RetryPolicy(attempts=2, base=0.001, cap=0.005),
    ) as pool:
        await pool.ensure_table()
        faulty_server.set_faults(Faults(throttle=0.9, seed=11))
        try:
            results = await asyncio.gather(
                *(pool.increment("k", 3) for _ in range(300)), return_exceptions=True
            )
        finally:
            faulty_server.set_faults(Faults())
        value = await pool.get("k")
    acknowledged = [r for r in results if isinstance(r, int)]
    throttled = [r for r in results if isinstance(r, ThrottledError)]
    assert len(acknowledged) + len(throttled) == 300
    assert len(throttled) > 200  # about 0.9 ** 2 of them
    assert all(error.attempts == 2 and error.applied is False for error in throttled)
    # The ledger confirms: only the acknowledged increments were applied.
    assert faulty_server.ledger(table_name)["k"].sum == 3 * len(acknowledged) == value

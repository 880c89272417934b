"""A whole pool (pacing, retries, shards) against partitions of either bucket shape, in virtual
time: the embedded server's token bucket (checked after the latency) and the proxy's GCRA
(throttles answered at once), from a fraction of a token to minutes of burst.

Each run reports its whole window and its steady part apart: many callers starting at once on a
cold key, into a bucket of about one token, is a loss no client can avoid (they send before any
answer can tell them), so the targets are judged on the window after the start.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from async_counters import CounterPool, RetryPolicy

from .partition_sim import TABLE, Partitions, Result, load
from .virtual_loop import run_virtual

CASES = [
    (10.0, 0.05),  # one token: a request arriving even slightly early is throttled
    (10.0, 1.0),
    (25.0, 0.05),
    (25.0, 1.0),
    (100.0, 0.05),
    (100.0, 1.0),
    (10.0, 300.0),
    (1_000.0, 0.05),
    (1_000.0, 1.0),
]


@pytest.mark.parametrize("shape", ["tokens", "gcra"])
@pytest.mark.parametrize(("cap", "burst"), CASES)
def test_a_hot_key_holds_its_cap_whatever_the_bucket(shape: str, cap: float, burst: float) -> None:
    # At 10/s a steady ack is 1 % of 10 s: 20 s of steady window make the share measurable.
    seconds = 40.0 if cap <= 10 else 20.0 if cap < 1_000 else 5.0
    warmup = seconds / 2  # 3,000 tokens (10/s for 300 s) are drained well before
    result = run_virtual(
        load(shape=shape, rate=cap, burst=burst, callers=64, seconds=seconds, warmup=warmup)  # type: ignore[arg-type]
    )
    assert result.failed == 0, result.line()
    assert result.value == result.acks_total  # exact: the server holds every acknowledged one
    assert result.steady_goodput >= 0.95, result.line()
    assert result.steady_per_ack <= 1.10, result.line()


@pytest.mark.parametrize(
    ("cap", "callers", "seconds", "most"), [(25.0, 16, 30.0, 1.08), (100.0, 256, 12.0, 1.07)]
)
@pytest.mark.parametrize("seed", [1, 3])
def test_refusals_at_once_do_not_read_as_a_slower_partition(
    cap: float, callers: int, seconds: float, most: float, seed: int
) -> None:
    """The proxy's bucket (``gcra``) refuses at once, and acks a round trip later. Counted as
    they came back, a window's refusals of its last round trip were in and its acks were not:
    a crowd's first windows on a bucket holding 1 s read as more throttled, and slower, than
    they were, and were cut too deep. Now such a refusal waits until its ack would be back.
    Over the whole window, the cold start included, that was 1.09-1.11 requests per ack at 25/s
    over 30 s, and 1.06-1.10 at 100/s over 12 s with 256 callers; it is 1.04-1.07 now (seeds
    1-4)."""
    result = run_virtual(
        load(
            shape="gcra",
            rate=cap,
            burst=1.0,
            callers=callers,
            seconds=seconds,
            warmup=seconds / 3,
            seed=seed,
        )
    )
    assert result.failed == 0 and result.value == result.acks_total, result.line()
    assert result.per_ack <= most, result.line()
    assert result.steady_goodput >= 0.95, result.line()


@pytest.mark.parametrize(
    ("shape", "cap", "seed"),
    [("gcra", 16.0, 1), ("gcra", 16.0, 4), ("gcra", 18.0, 6), ("tokens", 20.0, 3)],
)
def test_a_slow_one_token_key_is_not_judged_throttled_at_random(
    shape: str, cap: float, seed: int
) -> None:
    """8 callers on one token at 16-20/s (each shard of a counter over 8, 64 callers). A
    window of such a key lasts its full second and holds fewer than 20 responses, so a run of
    cuts never ended on 20 held in a row: its steps ran out, each probe over the edge was cut
    to the accepted rate (an overrun token reads as half its rate), and after three of those
    the key was judged throttled at random and let loose: 75-88 % of the cap at 1.66-1.90
    requests per ack. A window of 10 or more without a throttle, unlikely luck at the share
    that started the cut, now ends the run."""
    result = run_virtual(
        load(shape=shape, rate=cap, burst=0.05, callers=8, seconds=30.0, warmup=10.0, seed=seed)  # type: ignore[arg-type]
    )
    assert result.failed == 0, result.line()
    assert result.value == result.acks_total
    assert result.steady_goodput >= 0.93, result.line()
    assert result.steady_per_ack <= 1.05, result.line()


@pytest.mark.parametrize(
    ("shape", "burst", "callers", "seed"),
    [
        ("tokens", 1.0, 256, 1),
        ("tokens", 10.0, 256, 2),
        ("gcra", 10.0, 16, 2),
        ("gcra", 300.0, 256, 1),
    ],
)
def test_a_bucket_spent_at_the_start_is_not_regained_after_each_clean_window(
    shape: str, burst: float, callers: int, seed: int
) -> None:
    """25/s after a burst: the pace that held while the bucket emptied is a third or more
    above its rate, and was kept as the pace from before a storm. Each window without a
    throttle then probed fast towards it, overran the rate, and eased back: 1.06 requests per
    ack, steady. A cut by a third is no storm, and that pace is no longer kept as one to
    regain."""
    seconds, warmup = 30.0 + 1.2 * burst, 10.0 + 1.2 * burst
    result = run_virtual(
        load(
            shape=shape,  # type: ignore[arg-type]
            rate=25.0,
            burst=burst,
            callers=callers,
            seconds=seconds,
            warmup=warmup,
            seed=seed,
        )
    )
    assert result.failed == 0, result.line()
    assert result.value == result.acks_total
    assert result.steady_goodput >= 0.95, result.line()
    assert result.steady_per_ack <= 1.03, result.line()


@pytest.mark.parametrize("shape", ["tokens", "gcra"])
def test_a_counter_over_8_shards_reaches_8_caps_and_drains_at_once(shape: str) -> None:
    result = run_virtual(
        load(shape=shape, rate=100.0, burst=0.05, callers=64, seconds=8.0, warmup=2.0, shards=8)  # type: ignore[arg-type]
    )
    assert result.failed == 0
    assert result.value == result.acks_total
    assert result.steady_goodput >= 0.95  # of 8 x 100/s
    assert result.steady_per_ack <= 1.10
    assert result.drain <= 1.0  # the 64 calls pending at the end: 64 / 800/s is 0.08 s


def test_a_crowd_on_a_new_sharded_counter_records_its_width_once() -> None:
    """Before: every caller arriving before the first record was answered sent one of its own,
    all to the first item and unpaced (a storm of 1,000 throttles on that item)."""
    records = 0
    original = Partitions.call

    async def counting(self: Partitions, operation: str, params: dict) -> dict:  # type: ignore[type-arg]
        nonlocal records
        records += "ConditionExpression" in params and operation == "UpdateItem"
        return await original(self, operation, params)

    Partitions.call = counting  # type: ignore[method-assign,assignment]
    try:
        run_virtual(load(shape="gcra", rate=100.0, burst=1.0, callers=256, seconds=1.0, shards=8))
    finally:
        Partitions.call = original  # type: ignore[method-assign]
    assert records == 1


TABLE_CASES = [
    # cap/s, burst s, callers, keys
    (25.0, 0.05, 16, 16),  # the free tier's 25 WCU, a bucket of about a token
    (25.0, 300.0, 64, 16),  # ... with the 300 s of burst a provisioned table keeps
    (100.0, 1.0, 1_024, 256),
    (1_000.0, 1.0, 256, 64),
]


@pytest.mark.parametrize("shape", ["tokens", "gcra"])
@pytest.mark.parametrize(("cap", "burst", "callers", "keys"), TABLE_CASES)
def test_a_provisioned_tables_limit_is_paced_as_a_whole(
    shape: str, cap: float, burst: float, callers: int, keys: int
) -> None:
    """Throttles that name the table's capacity (``TableWriteProvisionedThroughputExceeded``),
    over many keys none of them hot: pacing each key would not help, backing off each write
    sent 3-10 requests per ack with a p99 of 5 times callers/cap. The table gets one pace."""
    seconds = 40.0 if cap <= 25 else 20.0 if cap < 1_000 else 5.0
    warmup = seconds / 2
    if burst * cap > 1_000:  # drain the bucket first: its burst is not the steady state
        warmup += 1.2 * burst
        seconds += 1.2 * burst
    result = run_virtual(
        load(
            shape=shape,  # type: ignore[arg-type]
            rate=cap,
            burst=burst,
            callers=callers,
            seconds=seconds,
            warmup=warmup,
            scope="table",
            keys=keys,
        )
    )
    assert result.failed == 0, result.line()
    assert result.value == result.acks_total  # exact, read back over every key
    assert result.steady_goodput >= 0.95, result.line()
    assert result.steady_per_ack <= 1.10, result.line()
    assert result.latency.percentile(0.99) <= 1.5 * callers / cap + 0.5, result.line()


def _deep_table(shape: str, cap: float, callers: int, seed: int) -> Result:
    """``callers`` over 32 keys on a provisioned table of ``cap`` writes/s holding 10 s of it,
    for 30 s: the crowd spends the burst at the pool's bound, 64 writes at once, and every one
    on the wire when it runs out is throttled. Its description gives no capacity (as on demand):
    the table's pace finds the rate itself, as these tests measure."""
    result = run_virtual(
        load(
            shape=shape,  # type: ignore[arg-type]
            rate=cap,
            burst=10.0,
            callers=callers,
            seconds=30.0,
            warmup=10.0,
            scope="table",
            keys=32,
            seed=seed,
            described=False,
        )
    )
    assert result.failed == 0 and result.value == result.acks_total, result.line()
    return result


@pytest.mark.parametrize("seed", [1, 2])
def test_a_refusal_at_once_holds_its_pool_slot_until_its_ack_would_be_back(seed: int) -> None:
    """The proxy's bucket refuses at once. A refusal used to free its pool slot as it came
    back, and a waiting caller's first write took it: the pool's bound of 64 let out a new
    write for every refusal, 548 in the 10 ms after a deep table ran dry under 1,024 callers,
    where it means 64 a round trip. Over 30 s at 100/s: 1.15-1.18 requests per ack (seeds
    1-3); 1.03-1.04 now."""
    result = _deep_table("gcra", 100.0, 1_024, seed)
    assert result.per_ack <= 1.10, result.line()
    assert result.steady_goodput >= 0.95, result.line()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_crowd_wider_than_a_window_is_judged_before_a_second_round_goes_out(seed: int) -> None:
    """The first window of a limit not yet paced lasts 10 ms, two round trips of 5 ms: when a
    deep table ran dry under the pool's 64 writes at once, the window heard the first round
    throttled and sent a second into the empty bucket. It is now judged once it heard two
    windows' worth, mostly throttled (a key's gate holds its crowd under that: only a crowd
    over many keys is this wide). Over 30 s at 25/s with 1,024 callers: 1.12-1.13 requests per
    ack (seeds 1-3); 1.05 now."""
    result = _deep_table("tokens", 25.0, 1_024, seed)
    assert result.per_ack <= 1.10, result.line()
    assert result.steady_goodput >= 0.95, result.line()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_tables_first_throttle_stops_new_writes_for_a_round_trip(seed: int) -> None:
    """A throttle naming the table says every key's writes meet the same empty bucket. The 64
    on the wire when it ran dry are throttled whatever the pool does; but each that came back
    freed its slot for a new write, sent into that bucket before the table's first window was
    judged. The table's limiter now sends nothing new for a round trip after its first
    throttle. 256 callers over 32 keys at 25/s holding 10 s, over 30 s: 143-145 throttles,
    1.114-1.116 requests per ack (seeds 1-3); 104-106 and 1.083-1.084 now."""
    result = _deep_table("tokens", 25.0, 256, seed)
    assert result.requests - result.acks_total <= 120, result.line()
    assert result.per_ack <= 1.10, result.line()
    assert result.steady_goodput >= 0.95, result.line()


async def _shared_table(pools: int, described: bool, seed: int) -> tuple[int, int, int]:
    """``pools`` pools (processes) of 64 callers each over 32 keys, on one provisioned table of
    50 writes/s holding a second of it, for 25 s: (acknowledged, requests, value read back)."""
    loop = asyncio.get_running_loop()
    random.seed(seed)
    table = Partitions(shape="tokens", rate=50.0, burst=1.0, seed=seed, scope="table")
    table.described = described
    await table.create_table(TABLE)
    names = [f"k{i}" for i in range(32)]
    end = loop.time() + 25.0
    acked = 0

    async def caller(pool: CounterPool, i: int) -> None:
        nonlocal acked
        while loop.time() < end:
            await pool.increment(names[i % len(names)])  # a failure fails the test
            acked += 1
            i += 1

    opened = [
        CounterPool(
            TABLE,
            transport=table,
            retry=RetryPolicy(clock=loop.time, rng=random.Random(seed + n).random, deadline=30),
        )
        for n in range(pools)
    ]
    for pool in opened:
        await pool.open()
    await asyncio.gather(*(caller(pool, i) for pool in opened for i in range(64)))
    value = sum((await opened[0].get_many(names)).values())
    for pool in opened:
        await pool.aclose()
    return acked, table.counts.requests, value


@pytest.mark.parametrize("described", [True, False])
@pytest.mark.parametrize("seed", [5, 6])
def test_processes_sharing_a_table_each_pace_their_share_without_a_storm(
    described: bool, seed: int
) -> None:
    """Throttles naming the table are its rate's: each pool's table pace follows them down to
    its share. Judged by their share, as a key's may be (faults), one pool's cuts were undone
    by the others' rate, pacing looked not to help, and the pace from before the run was put
    back or the limit let loose: these seeds stormed at 5.6 and 9.4 requests per ack (4.5 and
    6.0 told the table's capacity), 7 of 16 seeds in all; 1.18-1.25 now."""
    acked, requests, value = run_virtual(_shared_table(4, described, seed))
    assert value == acked  # exact, read back
    assert requests / acked <= 1.30, (requests, acked)


def paced_and_unpaced(**load_args: Any) -> tuple[Result, Result]:
    """The same load on an uncapped key (throttled only at random), by a pool pacing and by one
    not: the paced run exact and without a failure."""
    paced, unpaced = (
        run_virtual(
            load(shape="tokens", rate=1e9, burst=1.0, seed=1, adaptive=adaptive, **load_args)
        )
        for adaptive in (True, False)
    )
    assert paced.failed == 0 and paced.value == paced.acks_total, paced.line()
    return paced, unpaced


def test_a_pace_put_back_under_random_throttles_is_not_eased_down_while_it_holds() -> None:
    """5 % of writes throttled at random, 64 callers on one key: a pace a quarter under the one
    that held, throttled as much, puts that one back and holds it. Each window held at the edge
    still eased it by 1 % a throttle meanwhile, about 5 % a window of 20, so the pace was back
    down within 0.4 s of its 3 s hold: 17 % of the unpaced pool's goodput (25 % without the
    eases). And the pace put back, set while the crowd's slow start still grew, was held flat
    far under what 64 callers ask for; the probe above it now goes on through the hold: 75 %."""
    paced, unpaced = paced_and_unpaced(
        callers=64, keys=1, seconds=4.0, warmup=1.0, random_throttles=0.05
    )
    assert paced.acked_steady >= 0.5 * unpaced.acked_steady, (paced.line(), unpaced.line())


@pytest.mark.parametrize(
    ("latency", "cycle", "kept"),
    [(0.04, False, 0.85), (0.08, False, 0.85), (0.02, True, 0.75), (0.08, True, 0.4)],
)
def test_a_storm_of_random_throttles_on_slow_round_trips_does_not_pace_keys_down(
    latency: float, cycle: bool, kept: float
) -> None:
    """30 % of writes throttled at random, 200 callers over 4 keys: pacing cannot help, so the
    pool must do about as well as without it. With slow round trips (a busy machine) a pace
    holds a few responses a window, and one without a throttle (luck) ended the run of cuts
    that could tell: keys were paced to 1 write/s and their callers queued for over a minute.
    With ``cycle`` each caller writes the 4 keys in turn (the throttling storm integration
    test), so a caller held up on a paced key writes none of the others: their windows then
    measure the few writes that still reach them, their paces fall to that, and the slowest
    key holds every caller. A key found again and again where pacing does not help is let
    loose for longer each time (3 s, doubling); 0.08 s is still a known loss (README)."""
    paced, unpaced = paced_and_unpaced(
        callers=200, keys=4, seconds=20.0, latency=latency, random_throttles=0.3, cycle=cycle
    )
    assert paced.acked_steady >= kept * unpaced.acked_steady, (paced.line(), unpaced.line())
    # Before, at 0.08 s: the last calls took 64 s to drain (0.8 s unpaced), the slowest 67 s;
    # with cycle, 57-276 s, and some failed.
    slowest = unpaced.latency.percentile(1.0)
    assert paced.latency.percentile(1.0) <= 4 * slowest and paced.drain <= 4 * slowest

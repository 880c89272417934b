"""Which shard a write goes to: the one that can take it soonest, judged by the shards' state."""

from __future__ import annotations

import random
from collections import Counter

from async_counters import builders
from async_counters.limiter import KeyLimiter
from async_counters.sharding import soonest
from async_counters.transport import Outcome

from .fake_time import VirtualTime

N = 8


def names(key: str = "views") -> list[str]:
    return [builders.shard_key(key, i) for i in range(N)]


def test_a_paced_or_queued_shard_is_not_chosen_while_an_idle_one_exists() -> None:
    items = names()
    loads = {item: (0.02, 0) for item in items}  # paced
    loads.update({items[i]: (0.0, 3) for i in (1, 2, 3)})  # queued
    loads[items[5]] = (0.0, 0)  # the one idle shard
    pick = soonest(lambda item: loads[item], rng=random.Random(7))
    assert {pick("views", N) for _ in range(500)} == {5}


def test_when_every_shard_is_busy_the_least_held_back_is_chosen() -> None:
    items = names()
    loads = {item: (0.05, 1) for item in items}
    loads[items[2]] = (0.0, 4)  # not paced: it leaves first, however queued
    loads[items[6]] = (0.0, 2)  # not paced and less queued: soonest of all
    pick = soonest(lambda item: loads[item], rng=random.Random(3))
    assert {pick("views", N) for _ in range(200)} == {6}


def test_ties_are_broken_at_random_so_uniform_load_spreads_evenly() -> None:
    for level in [(0.0, 0), (0.0, 5), (0.01, 2)]:
        pick = soonest(lambda item, level=level: level, rng=random.Random(11))
        spread = Counter(pick("views", N) for _ in range(8_000))
        assert set(spread) == set(range(N))
        assert max(spread.values()) < 1.15 * min(spread.values())


def test_writes_in_flight_spread_evenly_when_each_adds_to_its_shard() -> None:
    """Closed loop: every pick adds a write to its shard; the picks stay level, never piled."""
    outstanding = Counter[str]()
    pick = soonest(lambda item: (0.0, outstanding[item]), rng=random.Random(5))
    items = names()
    for _ in range(80):
        outstanding[items[pick("views", N)]] += 1
    assert set(outstanding.values()) == {10}


async def test_the_limiters_delay_steers_writes_off_a_paced_shard_in_virtual_time() -> None:
    time = VirtualTime()
    limiter = KeyLimiter(clock=time, sleep=time.sleep)
    items = names()
    hot = items[4]
    for _ in range(40):  # a crowd throttled on shard 4: it is paced, the others are not
        limiter.observe(hot, Outcome.THROTTLED, 0)
        time.now += 0.001
    assert limiter.rates().keys() == {hot}
    assert limiter.delay(hot) == 0.0  # paced, but its next slot is free: it may send now
    await limiter.acquire(hot)  # it sent: its next slot is ahead
    assert limiter.delay(hot) > 0.0 and limiter.delay(items[0]) == 0.0
    pick = soonest(lambda item: (limiter.delay(item), 0), rng=random.Random(1))
    chosen = Counter(pick("views", N) for _ in range(700))
    assert 4 not in chosen and set(chosen) == set(range(N)) - {4}


async def test_delay_is_the_wait_for_the_paces_next_slot() -> None:
    time = VirtualTime()
    limiter = KeyLimiter(clock=time, sleep=time.sleep)
    for _ in range(40):
        limiter.observe("hot", Outcome.THROTTLED, 0)
        time.now += 0.001
    epoch = limiter.unpaced_epoch("hot")
    assert epoch is None  # paced
    rate = limiter.rates()["hot"]
    await limiter.acquire("hot")  # takes the next slot: the one after it is up to 1/rate away
    waited = limiter.delay("hot")
    assert 0.0 < waited <= 1 / rate
    time.now += waited
    assert limiter.delay("hot") == 0.0

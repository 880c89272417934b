"""The per-key pacing, driven in virtual time against a simulated partition.

One sender with unlimited demand sends to the simulated server as fast as the limiter lets it; the
server is a token bucket (a partition's capacity) with an optional random throttle rate. Time only
moves when the sender sleeps or a request takes its round trip, so these runs are exact and instant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from async_counters.limiter import KeyLimiter
from async_counters.transport import Outcome

from .fake_time import VirtualTime


@dataclass
class Partition:
    """A token bucket of ``rate`` per second holding at most ``burst``, plus random throttles."""

    rate: float
    burst: float
    random_throttles: float = 0.0
    tokens: float = 0.0
    updated: float = 0.0

    def serve(self, now: float, rng: random.Random) -> Outcome:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if rng.random() < self.random_throttles or self.tokens < 1:
            return Outcome.THROTTLED
        self.tokens -= 1
        return Outcome.ACKNOWLEDGED


@dataclass
class Run:
    sent: int = 0
    acked: int = 0


async def drive(
    limiter: KeyLimiter,
    time: VirtualTime,
    partition: Partition,
    seconds: float,
    *,
    key: str = "hot",
    gap: float = 0.0002,
    seed: int = 1,
) -> Run:
    """Send to ``partition`` for ``seconds`` of virtual time, one request every ``gap`` at most."""
    rng = random.Random(seed)
    run = Run()
    end = time.now + seconds
    while time.now < end:
        epoch = await limiter.acquire(key)
        outcome = partition.serve(time.now, rng)
        run.sent += 1
        run.acked += outcome is Outcome.ACKNOWLEDGED
        limiter.observe(key, outcome, epoch)
        time.now += gap
    return run


@pytest.fixture
def time() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def limiter(time: VirtualTime) -> KeyLimiter:
    return KeyLimiter(clock=time, sleep=time.sleep)


@pytest.mark.parametrize("cap", [100.0, 1_000.0, 3_000.0])
async def test_a_capped_key_reaches_the_cap_with_few_throttles(
    limiter: KeyLimiter, time: VirtualTime, cap: float
) -> None:
    partition = Partition(rate=cap, burst=cap * 0.3)
    await drive(limiter, time, partition, 3.0)  # settle in
    run = await drive(limiter, time, partition, 20.0)
    goodput = run.acked / 20.0
    assert goodput >= 0.95 * cap
    assert run.sent / run.acked <= 1.15
    assert 0.8 * cap <= limiter.rates()["hot"] <= 2 * cap


@pytest.mark.parametrize("cap", [10.0, 25.0])
@pytest.mark.parametrize("burst_seconds", [0.2, 1.0])
async def test_a_slow_key_probes_over_as_many_requests_as_a_fast_one(
    limiter: KeyLimiter, time: VirtualTime, cap: float, burst_seconds: float
) -> None:
    """A free-tier partition (25 writes/s) throttles too rarely to see a probe too far within a
    second: probing over a fixed number of requests keeps it under 1.10 requests per ack."""
    partition = Partition(rate=cap, burst=cap * burst_seconds)
    await drive(limiter, time, partition, 5.0)  # settle in
    run = await drive(limiter, time, partition, 40.0)
    assert run.acked / 40.0 >= 0.95 * cap
    assert run.sent / run.acked <= 1.10


async def test_without_pacing_the_same_sender_mostly_hits_the_wall(time: VirtualTime) -> None:
    """The control above is what makes the difference: unpaced, most requests are throttled."""
    unpaced = KeyLimiter(clock=time, sleep=time.sleep)
    unpaced.observe = lambda key, outcome, epoch: None  # type: ignore[method-assign]
    run = await drive(unpaced, time, Partition(rate=1_000.0, burst=300.0), 5.0)
    assert run.sent / run.acked > 3


async def test_the_rate_shrinks_under_a_storm_and_recovers_after_it(
    limiter: KeyLimiter, time: VirtualTime
) -> None:
    partition = Partition(rate=1_000.0, burst=300.0)
    await drive(limiter, time, partition, 3.0)
    before = limiter.rates()["hot"]
    partition.rate = 100.0  # the partition is squeezed
    storm = await drive(limiter, time, partition, 5.0)
    during = limiter.rates()["hot"]
    assert during < before / 3
    # Seeing a tenfold drop takes one window of throttles at the old rate, then a few cuts.
    assert storm.sent / storm.acked <= 1.5
    partition.rate = 1_000.0
    calm = await drive(limiter, time, partition, 10.0)
    assert limiter.rates()["hot"] >= 0.9 * 1_000.0
    assert calm.acked / 10.0 >= 0.7 * 1_000.0  # the cubic probe takes ~3.5 s to grow tenfold


async def test_random_throttles_do_not_collapse_the_rate(
    limiter: KeyLimiter, time: VirtualTime
) -> None:
    """30 % of requests throttled whatever the rate: pacing cannot help, so it must not hurt."""
    partition = Partition(rate=1e9, burst=1e9, random_throttles=0.3)
    run = await drive(limiter, time, partition, 10.0, gap=0.001)  # demand: 1,000 requests/s
    assert run.sent / 10.0 >= 0.8 * 1_000.0
    assert run.acked / run.sent == pytest.approx(0.7, abs=0.03)


async def _random_run(cap: float, gap: float, share: float, seed: int) -> float:
    """Acknowledged increments per second over 20 s (after 3 s to settle) of one sender with a
    demand of ``1 / gap``, against a partition of ``cap`` that also throttles ``share`` of
    requests at random."""
    time = VirtualTime()
    limiter = KeyLimiter(clock=time, sleep=time.sleep)
    partition = Partition(rate=cap, burst=min(cap * 0.3, 1e9), random_throttles=share)
    await drive(limiter, time, partition, 3.0, gap=gap, seed=seed)
    run = await drive(limiter, time, partition, 20.0, gap=gap, seed=seed)
    return run.acked / 20.0


async def _random_share(cap: float, gap: float, share: float) -> tuple[float, list[float]]:
    """`_random_run` over seeds 1-3: the mean's share of what could be acknowledged (the demand
    or the cap, less the share throttled at random), and the runs."""
    runs = [await _random_run(cap, gap, share, seed) for seed in (1, 2, 3)]
    possible = min(cap, 1 / gap) * (1 - share)
    return sum(runs) / len(runs) / possible, runs


@pytest.mark.parametrize("share", [0.05, 0.1])
@pytest.mark.parametrize(("cap", "gap"), [(1e9, 0.001), (1_000.0, 0.0005)])
async def test_a_few_random_throttles_do_not_wear_the_pace_down(
    share: float, cap: float, gap: float
) -> None:
    """5-10 % of requests throttled whatever the rate, with no cap (1,000/s asked for) or a cap
    of 1,000/s (2,000/s asked for). Each such window eased or cut the pace a little and each
    window that held ended the run of cuts that could tell: the pace fell to a third (5 %) or a
    tenth (10 %, capped). A pace that fell a quarter under one that held, and is throttled as
    much as it was there, is put back, and the probe above it goes on while it holds: 85-98 %
    of what could be acknowledged, mean of 3 seeds (69-89 % with the pace held flat, 14-30 %
    before it was put back at all)."""
    kept, runs = await _random_share(cap, gap, share)
    assert kept >= 0.8, runs


@pytest.mark.xfail(
    strict=True,
    reason="known: at 100/s a few per cent of random throttles still hold a pace down (README)",
)
@pytest.mark.parametrize("share", [0.05, 0.1])
async def test_a_few_random_throttles_at_100_per_second(share: float) -> None:
    """At 100/s (a cap of 100/s, as much asked for) a window is 20 requests: the first ones may
    set the pace under the cap, and each window with a throttle or two eases it and restarts
    the probe, which at 300 requests for its time constant never climbs back: 65 % (5 %) and
    60 % (10 %) of what could be acknowledged."""
    kept, runs = await _random_share(100.0, 0.01, share)
    assert kept >= 0.65, runs


async def test_a_window_cut_short_does_not_outweigh_full_ones_near_the_pace_that_held() -> None:
    """10 % at random at 100/s: the pace put back once a pace a quarter under the one that held
    is throttled as much, unless the last windows near it were throttled well beyond its share
    there. That share was a mean of windows: one cut short at its third throttle (3 of 6) stood
    for as much as a full one (2 of 20), read as a capacity that fell, and kept the pace down:
    50 % of what could be acknowledged, mean of 3 seeds. Weighed by the responses each heard:
    60 %."""
    kept, runs = await _random_share(100.0, 0.01, 0.1)
    assert kept >= 0.55, runs


@pytest.mark.parametrize(("to", "gap"), [(650.0, 0.0005), (700.0, 0.0002), (750.0, 0.0002)])
async def test_a_capacity_drop_is_followed_down_and_stays_followed(
    limiter: KeyLimiter, time: VirtualTime, to: float, gap: float
) -> None:
    """A partition whose capacity falls by a quarter to a third, under a demand of 2-5 times
    it: the pace follows it down within a few windows, and nothing puts it back above the new
    capacity. (A first try at telling a few per cent of random throttles apart restored the
    pace that held before such a drop: 1.29-1.43 requests per ack for seconds.)"""
    partition = Partition(rate=1_000.0, burst=300.0)
    await drive(limiter, time, partition, 5.0, gap=gap)
    partition.rate = to
    first = await drive(limiter, time, partition, 5.0, gap=gap)
    run = await drive(limiter, time, partition, 10.0, gap=gap)
    assert first.sent / first.acked <= 1.10
    assert run.acked / 10.0 >= 0.95 * to
    assert run.sent / run.acked <= 1.10


@pytest.mark.parametrize(("step", "every"), [(50.0, 1.0), (100.0, 2.0)])
async def test_a_capacity_that_slides_down_is_followed_without_overruns(
    limiter: KeyLimiter, time: VirtualTime, step: float, every: float
) -> None:
    """A partition losing 5-10 % of its capacity at a time, from 1,000/s to 600/s: each step
    throttles a few per cent, as random throttles do, and the pace eases down without a
    measured cut. Putting back the pace that held (as for random throttles) overran the new
    capacity: 1.21 requests per ack while it slid. A restore that its first window finds
    overrun is undone, and the pace it came from is the one that holds."""
    partition = Partition(rate=1_000.0, burst=300.0)
    await drive(limiter, time, partition, 5.0, gap=0.0002)
    sent = acked = 0
    while partition.rate > 600.0:
        partition.rate -= step
        run = await drive(limiter, time, partition, every, gap=0.0002)
        sent, acked = sent + run.sent, acked + run.acked
    after = await drive(limiter, time, partition, 10.0, gap=0.0002)
    assert sent / acked <= 1.10
    assert after.sent / after.acked <= 1.10
    assert after.acked / 10.0 >= 0.95 * partition.rate


async def test_keys_are_paced_apart(limiter: KeyLimiter, time: VirtualTime) -> None:
    await drive(limiter, time, Partition(rate=200.0, burst=60.0), 3.0, key="hot")
    assert set(limiter.rates()) == {"hot"}
    cold = await drive(limiter, time, Partition(rate=1e9, burst=1e9), 1.0, key="cold", gap=0.0002)
    assert cold.sent >= 4_900  # 5,000 at the sender's own speed: no pacing for the cold key
    assert set(limiter.rates()) == {"hot"}


async def test_a_key_that_calms_down_is_released_and_forgotten(
    limiter: KeyLimiter, time: VirtualTime
) -> None:
    await drive(limiter, time, Partition(rate=200.0, burst=60.0), 3.0)
    assert "hot" in limiter.rates()
    await drive(limiter, time, Partition(rate=1e9, burst=1e9), 3.0, gap=0.05)  # 20 requests/s
    assert limiter.rates() == {}
    time.now += 60
    limiter.observe("other", Outcome.THROTTLED, 0)  # a new throttled key triggers the sweep
    assert set(limiter._keys) == {"other"}


async def test_a_released_key_still_written_is_forgotten_once_calm(
    limiter: KeyLimiter, time: VirtualTime
) -> None:
    """A key released and written on, never throttled again, is forgotten after `IDLE` seconds
    although never idle (the table's pace has one key that every write answers to: kept, it
    would cost every ack an `observe` for the life of the process)."""
    await drive(limiter, time, Partition(rate=200.0, burst=60.0), 3.0)
    calm = Partition(rate=1e9, burst=1e9)
    await drive(limiter, time, calm, 3.0, gap=0.05)  # 20 requests/s: released
    assert limiter.rates() == {} and limiter.known("hot")
    await drive(limiter, time, calm, 12.0, gap=0.05)
    assert not limiter.known("hot") and not limiter.held


async def test_a_never_throttled_key_costs_no_state(limiter: KeyLimiter) -> None:
    for _ in range(1_000):
        limiter.observe("k", Outcome.ACKNOWLEDGED, await limiter.acquire("k"))
    assert limiter._keys == {}


async def test_no_run_of_cuts_paces_a_key_to_a_standstill(
    limiter: KeyLimiter, time: VirtualTime
) -> None:
    partition = Partition(rate=1_000.0, burst=300.0)
    await drive(limiter, time, partition, 3.0)
    best = limiter.rates()["hot"]
    partition.rate = 5.0  # a two-hundredth of it gets through, for a while
    await drive(limiter, time, partition, 1.0)
    # Cuts stop at 1/8 of the best accepted rate, halved every 10 s since it was seen: a sudden
    # collapse is followed only as fast as that, so a key is never paced to a standstill.
    assert limiter.rates()["hot"] >= best / 8 * 0.5 ** (1.5 / 10) * 0.9


async def test_mostly_random_throttles_do_not_pace_a_key_to_the_floor(
    limiter: KeyLimiter, time: VirtualTime
) -> None:
    """90 % throttled whatever the rate: too few acks for a measured cut, so only blind cuts are
    made. The pace falling under what was accepted without the share falling lets the key loose."""
    partition = Partition(rate=1e9, burst=1e9, random_throttles=0.9)
    run = await drive(limiter, time, partition, 10.0, gap=0.001)  # demand: 1,000 requests/s
    assert run.sent / 10.0 >= 0.5 * 1_000.0


async def test_throttles_in_one_instant_close_no_window(
    limiter: KeyLimiter, time: VirtualTime
) -> None:
    """In a silence after a first pace, three throttles end a window early; not while the clock
    has not moved since the window began (a coarse clock: a window of no time would measure a
    rate by dividing by zero)."""
    epoch = 0
    while not limiter.stale("hot", epoch):  # a crowd on a cold key, all throttled: cut blind
        time.now += 0.001
        limiter.observe("hot", Outcome.THROTTLED, epoch)
    epoch += 1  # the epoch counts cuts
    await limiter.acquire("hot")  # a request leaves at the new pace: the silence begins
    time.now += 0.01
    while not limiter.stale("hot", epoch):  # no ack: the silence cuts again, a window begins
        limiter.observe("hot", Outcome.THROTTLED, epoch)
    epoch += 1
    for _ in range(5):
        limiter.observe("hot", Outcome.THROTTLED, epoch)  # answered in that same instant
    assert not limiter.stale("hot", epoch)  # no window closed
    time.now += 0.001
    for _ in range(3):
        limiter.observe("hot", Outcome.THROTTLED, epoch)
    assert limiter.stale("hot", epoch)  # one did now, and cut


@pytest.mark.parametrize("rtt", [0.0, 0.005])
async def test_throttles_faster_than_an_ack_are_no_silence(
    limiter: KeyLimiter, time: VirtualTime, rtt: float
) -> None:
    """A proxy, or a partition, may answer a throttle at once while an ack takes the round
    trip. Throttles that come back within it say nothing of the pace just set: cut on them, and
    a key of 1,000/s behind such a bucket lost a third of its goodput."""
    for i in range(40):  # a first pace, measured: 30 acks and 10 throttles in 20 ms
        time.now += 0.0005
        limiter.observe("hot", Outcome.THROTTLED if i % 4 == 0 else Outcome.ACKNOWLEDGED, 0, rtt)
    assert "hot" in limiter.rates()
    epoch = await limiter.acquire("hot")
    for _ in range(6):  # throttles within 3 ms of the pace, no ack yet
        time.now += 0.0005
        limiter.observe("hot", Outcome.THROTTLED, epoch, rtt)
    assert limiter.stale("hot", epoch) is (rtt == 0.0)  # with no round trip to wait, a cut


async def test_a_refusal_at_once_waits_until_its_ack_would_be_back(
    limiter: KeyLimiter, time: VirtualTime
) -> None:
    """A bucket in front of the server refuses at once; an ack takes the round trip. Counted as
    it comes, a window's refusals of its last round trip are in and its acks are not, and the
    window reads as more throttled, and slower, than it was. So a refusal back in under half
    the round trip waits the rest of it; one as slow as an ack, or on a key paced under one
    request a round trip (no ack on the way to wait for), does not."""
    assert limiter.refusal_wait("hot", 0.001, 0.01) == pytest.approx(0.009)
    assert limiter.refusal_wait("hot", 0.008, 0.01) == 0.0
    for i in range(40):  # paced: 30 acks and 10 throttles in 20 ms measure about 1,500/s
        time.now += 0.0005
        limiter.observe("hot", Outcome.THROTTLED if i % 4 == 0 else Outcome.ACKNOWLEDGED, 0)
    rate = limiter.rates()["hot"]
    assert limiter.refusal_wait("hot", 0.0, 2.0 / rate) > 0.0
    assert limiter.refusal_wait("hot", 0.0, 0.5 / rate) == 0.0


async def test_a_deep_bucket_run_dry_after_a_climb_is_not_taken_for_random_throttles() -> None:
    """A key paced at 322/s climbs for 1.5 s on a partition with room to spare, to 562/s. Its
    partition is then capped at 100/s and holds a second of it, full: the first over window
    is accepted at the bucket's last 590/s, so that a pace cut under half of that, and still
    throttled, looks as if pacing did not help. The pace from before the run (667/s) was put
    back for 3 s: 972 throttles in 2 s and 6.1 requests per ack in the next 4 s. A pace put
    back is now on trial: throttled far beyond the share it was judged on, it is undone."""
    time = VirtualTime(1_000.0)  # a clock far from 0, as a monotonic clock is
    limiter = KeyLimiter(clock=time, sleep=time.sleep)
    for i in range(40):  # a first pace, measured: 30 acks and 10 throttles in 100 ms
        time.now += 0.0025
        limiter.observe("hot", Outcome.THROTTLED if i % 4 == 0 else Outcome.ACKNOWLEDGED, 0)
    room = Partition(rate=10_000.0, burst=10_000.0, tokens=10_000.0, updated=time.now)
    await drive(limiter, time, room, 1.5)
    assert limiter.rates()["hot"] > 500.0
    capped = Partition(rate=100.0, burst=100.0, tokens=100.0, updated=time.now)
    dry = await drive(limiter, time, capped, 2.0)
    assert dry.sent - dry.acked <= 150, dry
    after = await drive(limiter, time, capped, 4.0)
    assert after.sent <= 1.10 * after.acked, after
    assert limiter.rates()["hot"] <= 1.2 * 100.0


async def test_a_guessed_pace_read_as_half_the_cap_is_halved_only_halfway(
    limiter: KeyLimiter, time: VirtualTime
) -> None:
    """A crowd's blind cuts may land a few per cent over a bucket of one token, which then takes
    every other request and reads as half the cap. The first measure of a guessed pace goes
    halfway to what was accepted (at 10/s a cut to half took 5 s to climb back, a quarter of a
    12 s run's goodput); if that still does not hold, the next cut goes all the way."""
    epoch = 0
    while not limiter.stale("hot", epoch):  # a crowd on a cold key, all throttled: a guess
        time.now += 0.001
        limiter.observe("hot", Outcome.THROTTLED, epoch)
    while limiter.rates()["hot"] > 20:  # nothing gets through: the silence cuts the guess
        epoch = await limiter.acquire("hot")
        limiter.observe("hot", Outcome.THROTTLED, epoch)
    epoch = await limiter.acquire("hot")
    limiter.observe("hot", Outcome.ACKNOWLEDGED, epoch)  # one got through: no more silence

    async def every_other_throttled() -> float:
        """One window at the pace, half of it throttled; the pace it ran at."""
        epoch = await limiter.acquire("hot")
        pace = limiter.rates()["hot"]
        for i in range(40):
            limiter.observe("hot", Outcome.THROTTLED if i % 2 else Outcome.ACKNOWLEDGED, epoch)
            if limiter.stale("hot", epoch):
                return pace
            await limiter.acquire("hot")
        raise AssertionError("no window closed")

    guessed = await every_other_throttled()
    assert limiter.rates()["hot"] >= 0.7 * guessed  # halfway: 0.76 of it; down to half before
    halfway = await every_other_throttled()
    assert limiter.rates()["hot"] <= 0.6 * halfway  # measured again: down to what was accepted


@pytest.mark.parametrize("pause", [True, False])
async def test_a_pausing_limiters_first_throttle_holds_new_requests_for_a_round_trip(
    time: VirtualTime, pause: bool
) -> None:
    """With ``pause`` (the table's limiter), a key's first throttle sends nothing new for the
    sender's round trip: a request admitted before it goes round again, and one asked for now
    leaves when the round trip is over, unpaced. Without it (a key's limiter), nothing waits."""
    limiter = KeyLimiter(clock=time, sleep=time.sleep, pause=pause)
    epoch = await limiter.acquire("hot")
    limiter.observe("hot", Outcome.THROTTLED, epoch, 0.01)
    assert limiter.stale("hot", epoch) is pause
    assert (limiter.unpaced_epoch("hot") is None) is pause
    assert limiter.delay("hot") == pytest.approx(0.01 if pause else 0.0)
    start = time.now
    assert await limiter.acquire("hot") == epoch
    assert time.now - start == pytest.approx(0.01 if pause else 0.0)
    assert not limiter.stale("hot", epoch) and limiter.unpaced_epoch("hot") == epoch
    assert not limiter.paced("hot")  # one throttle is no pace: the round after it is judged

"""The load loops, in virtual time: bounded in count and time, and no coordinated omission."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from async_counters.loadtest.drivers import Stop, closed_loop, open_loop
from async_counters.loadtest.metrics import WorkerRecorder

from .fake_time import VirtualTime


class FakeCounters:
    """Answers instantly in virtual time, except that call number ``stall_at`` takes ``stall``."""

    def __init__(self, time: VirtualTime, *, stall_at: int = -1, stall: float = 0.0) -> None:
        self.time = time
        self.stall_at = stall_at
        self.stall = stall
        self.calls = 0
        self.values: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    async def _apply(self, key: str, delta: int) -> int:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.calls == self.stall_at:
                await self.time.sleep(self.stall)
            else:
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        self.values[key] = self.values.get(key, 0) + delta
        return self.values[key]

    async def increment(self, key: str, amount: int = 1) -> int:
        return await self._apply(key, amount)

    async def decrement(self, key: str, amount: int = 1, *, floor: int | None = None) -> int:
        return await self._apply(key, -amount)


def ones() -> Callable[[], tuple[str, int]]:
    return lambda: ("k", 1)


async def test_closed_loop_runs_exactly_the_count_with_the_concurrency() -> None:
    time = VirtualTime()
    pool = FakeCounters(time)
    recorder = WorkerRecorder()
    stop = Stop(1000, deadline=60.0)
    await time.run(
        closed_loop(pool, recorder, ones(), concurrency=8, stop=stop, floor=0, clock=time.clock)
    )
    assert pool.calls == 1000 and pool.values == {"k": 1000}
    assert pool.max_in_flight == 8
    assert recorder.histogram.count == 1000
    assert stop.reason is None


async def test_closed_loop_stops_at_the_time_limit() -> None:
    time = VirtualTime()
    pool = FakeCounters(time, stall_at=5, stall=30.0)
    stop = Stop(10_000, deadline=10.0)
    await time.run(
        closed_loop(
            pool, WorkerRecorder(), ones(), concurrency=1, stop=stop, floor=0, clock=time.clock
        )
    )
    assert pool.calls == 5
    assert stop.reason == "time limit"


async def test_open_loop_follows_the_schedule() -> None:
    time = VirtualTime()
    pool = FakeCounters(time)
    recorder = WorkerRecorder()
    stop = Stop(None, deadline=2.0, deadline_is_limit=False)
    await time.run(
        open_loop(
            pool,
            recorder,
            ones(),
            rate=100.0,
            start=0.0,
            stop=stop,
            floor=0,
            max_outstanding=100,
            clock=time.clock,
            sleep=time.sleep,
        )
    )
    assert pool.calls == 200  # 2 s at 100/s
    assert stop.reason is None
    assert recorder.histogram.summary_ms()["max"] == 0.001  # hdrh's 1 µs floor


async def test_open_loop_counts_a_stall_against_every_operation_it_delayed() -> None:
    # One in-flight operation at most, and call 11 stalls for 1 s: the 100 operations scheduled
    # during the stall start late, and their latency counts from when they were scheduled.
    time = VirtualTime()
    pool = FakeCounters(time, stall_at=11, stall=1.0)
    recorder = WorkerRecorder()
    stop = Stop(300, deadline=60.0)
    await time.run(
        open_loop(
            pool,
            recorder,
            ones(),
            rate=100.0,
            start=0.0,
            stop=stop,
            floor=0,
            max_outstanding=1,
            clock=time.clock,
            sleep=time.sleep,
        )
    )
    assert pool.calls == 300
    latency = recorder.histogram.summary_ms()
    assert 999 <= latency["max"] <= 1001  # the stalled call itself
    # Operations 12..110 were due during the stall: ~1/3 of all of them, latencies spread
    # from ~1 s down to 0. A closed loop would have shown one slow operation out of 300.
    assert 600 <= latency["p90"] <= 800
    assert latency["p50"] < 1

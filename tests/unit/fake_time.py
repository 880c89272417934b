"""Time for unit tests, so that none of them waits on the real clock or depends on its speed.

- `VirtualTime`: one virtual clock (``clock()`` or call it) and its ``sleep``. Outside `run`, a
  sleep moves the clock at once (one task drives time, as the limiter's sender does); inside
  `run`, sleepers wake in order of their wake-up times once every task is waiting.
- `Sleeps`: an injected sleep that records the delays asked for and returns at once.
- `until`: wait for a condition in turns of the event loop, never in seconds.

    time = VirtualTime()
    limiter = KeyLimiter(clock=time, sleep=time.sleep)
    await time.run(closed_loop(..., clock=time.clock, sleep=time.sleep))
    await until(lambda: pool.stats.in_progress == 31)
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

#: How many loop turns `until` and `VirtualTime.run` give the tasks before deciding: far more
#: than any test needs (a handful), and still instant.
TURNS = 10_000
#: Turns `VirtualTime.run` lets everything runnable run before it moves the clock.
SETTLE_TURNS = 50


class VirtualTime:
    """A virtual clock: it moves only when something sleeps on it (or a test sets ``now``)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._running = False

    def __call__(self) -> float:
        return self.now

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if not self._running:
            self.now += seconds  # the only task on this clock: nobody else to let run
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    async def run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` (and the tasks it starts), jumping the clock to the next wake-up
        whenever everything runnable has run."""
        self._running = True
        task = asyncio.ensure_future(coroutine)
        idle = 0
        try:
            while not task.done():
                for _ in range(SETTLE_TURNS):  # let everything runnable run first
                    await asyncio.sleep(0)
                if task.done():
                    break
                if self._sleepers:
                    idle = 0
                    self.now, _, future = heapq.heappop(self._sleepers)
                    future.set_result(None)
                elif (idle := idle + 1) * SETTLE_TURNS > TURNS:
                    task.cancel()
                    raise AssertionError("stuck: nothing runs and nothing sleeps in virtual time")
            await task
        finally:
            self._running = False


class Sleeps:
    """An injected sleep that records the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], *, turns: int = TURNS) -> None:
    """Yield to the event loop until ``condition()`` holds; fail after ``turns`` turns."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    if not condition():
        raise AssertionError(f"the condition did not hold within {turns} loop turns")

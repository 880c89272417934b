"""The load loops: closed (a fixed number of callers) and open (a fixed arrival schedule).

Both are bounded in count and in time. Latency is measured by the driver, not the pool: in the
closed loop from when a caller starts its operation, in the open loop from when the schedule said
the operation should start, so that a stalled server shows up as latency instead of as operations
never sent (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from async_counters.errors import CounterError

from .keys import Operation
from .metrics import WorkerRecorder

__all__ = ["Counters", "Stop", "closed_loop", "open_loop"]


class Counters(Protocol):
    """The part of `CounterPool` the drivers use."""

    async def increment(self, key: str, amount: int = 1) -> int: ...

    async def decrement(self, key: str, amount: int = 1, *, floor: int | None = None) -> int: ...


class Stop:
    """When to stop starting operations: a count, a time, or a request from outside.

    ``reason`` says why a run stopped before its planned end: ``"time limit"`` when the deadline
    is a limit rather than the planned duration, ``"interrupted"`` on request.
    """

    def __init__(
        self, operations: int | None, deadline: float, *, deadline_is_limit: bool = True
    ) -> None:
        self.remaining = math.inf if operations is None else operations
        self.deadline = deadline
        self.deadline_is_limit = deadline_is_limit
        self.requested = False
        self.reason: str | None = None

    def take(self, now: float) -> bool:
        """Claim the next operation; False once the count, the time or a request says stop."""
        if self.requested:
            self.reason = self.reason or "interrupted"
            return False
        if now >= self.deadline:
            if self.deadline_is_limit and self.remaining > 0:
                self.reason = self.reason or "time limit"
            return False
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


async def _operate(
    pool: Counters,
    recorder: WorkerRecorder,
    operation: Operation,
    floor: int,
    started: float,
    clock: Callable[[], float],
) -> None:
    key, delta = operation
    recorder.sending(key, delta)
    try:
        if delta > 0:
            await pool.increment(key, delta)
        else:
            await pool.decrement(key, -delta, floor=floor)
    except CounterError:
        pass  # the pool's hooks have counted the outcome, ambiguous or not
    recorder.record_latency(clock() - started)


async def closed_loop(
    pool: Counters,
    recorder: WorkerRecorder,
    source: Callable[[], Operation],
    *,
    concurrency: int,
    stop: Stop,
    floor: int,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """``concurrency`` callers, each starting its next operation as soon as the last ended."""

    async def caller() -> None:
        while stop.take(clock()):
            await _operate(pool, recorder, source(), floor, clock(), clock)

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def open_loop(
    pool: Counters,
    recorder: WorkerRecorder,
    source: Callable[[], Operation],
    *,
    rate: float,
    start: float,
    stop: Stop,
    floor: int,
    max_outstanding: int,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Start operation ``j`` at ``start + j / rate`` (`time.monotonic`) whatever came before.

    At most ``max_outstanding`` operations are unfinished at once (memory stays bounded); when
    the bound holds the schedule back, latency still counts from the scheduled start.
    ``clock`` and ``sleep`` are injectable so that tests run in virtual time.
    """
    loop = asyncio.get_running_loop()
    room = asyncio.Semaphore(max_outstanding)
    tasks: set[asyncio.Task[None]] = set()

    async def run(operation: Operation, scheduled: float) -> None:
        try:
            await _operate(pool, recorder, operation, floor, scheduled, clock)
        finally:
            room.release()

    index = 0
    while True:
        scheduled = start + index / rate
        now = clock()
        if scheduled > now:
            if stop.requested or scheduled >= stop.deadline:
                stop.take(scheduled)  # records why it stopped
                break
            await sleep(scheduled - now)
            continue
        if not stop.take(scheduled):
            break
        await room.acquire()
        task = loop.create_task(run(source(), scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        index += 1
    if tasks:
        await asyncio.gather(*tasks)

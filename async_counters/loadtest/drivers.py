"""The load loops: closed (a fixed number of callers) and open (a fixed arrival schedule).

Both are bounded in count and in time. Latency is measured by the driver, not the pool: in the
closed loop from when a caller starts its operation, in the open loop from when the schedule said
the operation should start, so that a stalled server shows up as latency instead of as operations
never sent (no coordinated omission). An open loop that falls behind its schedule starts late
operations as soon as it can (as wrk2 does), but never after the run's end: what was due and
could not start by then is dropped and counted (as k6 counts ``dropped_iterations``), so that a
machine that cannot hold the rate says so instead of running on past its duration.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from async_counters.errors import CounterError

from .keys import Operation
from .metrics import WorkerRecorder

__all__ = ["LATE_START_GRACE", "Counters", "Stop", "closed_loop", "open_loop"]

#: Open loop: how long after the run's end an operation scheduled before it may still start
#: (a timer that fires a little late must not drop the last one); later, it is dropped.
LATE_START_GRACE: Final = 1.0
#: Open loop, behind schedule: yield to the event loop after starting this many in a row, so
#: that ticks and answers are not starved while the loop catches up.
_BURST: Final = 64


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
    the bound holds the schedule back, latency still counts from the scheduled start. An
    operation scheduled before ``stop.deadline`` that has not started `LATE_START_GRACE` after
    it is dropped: never sent, counted in the recorder's ``dropped``. Returns once every started
    operation has finished. ``clock`` and ``sleep`` are injectable (tests run in virtual time).
    """
    loop = asyncio.get_running_loop()
    room = asyncio.Semaphore(max_outstanding)
    tasks: set[asyncio.Task[None]] = set()
    cutoff = stop.deadline + LATE_START_GRACE

    async def run(operation: Operation, scheduled: float) -> None:
        try:
            await _operate(pool, recorder, operation, floor, scheduled, clock)
        finally:
            room.release()

    async def wait_for_room() -> bool:
        """Take a slot; False if the run's end came first."""
        if not room.locked():
            await room.acquire()
            return True
        try:
            async with asyncio.timeout(max(0.0, cutoff - clock())):
                await room.acquire()
        except TimeoutError:
            return False
        return True

    index = 0
    burst = 0
    while True:
        scheduled = start + index / rate
        now = clock()
        if scheduled > now:
            if stop.requested or scheduled >= stop.deadline:
                stop.take(scheduled)  # records why it stopped
                break
            burst = 0
            await sleep(scheduled - now)
            continue
        if now >= cutoff or not stop.take(scheduled):
            break
        if not await wait_for_room():
            stop.remaining += 1  # claimed, never started: counted with the dropped below
            break
        task = loop.create_task(run(source(), scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        index += 1
        burst += 1
        if burst >= _BURST:
            burst = 0
            await sleep(0)
    if not stop.requested:
        # Everything due before the end that never started: the rate was not held.
        due = max(0, math.ceil((stop.deadline - start) * rate - 1e-9) - index)
        recorder.drop(int(min(due, stop.remaining)))
    if tasks:
        await asyncio.gather(*tasks)

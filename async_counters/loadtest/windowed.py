"""The bench's windowed modes: ``--window S`` (windowed increments) and ``--limit L`` (hits).

What the drivers call instead of the pool (`WindowedLoad`, a `drivers.Counters`). Each operation
is tallied under ``key@start``, the window it landed in, so that the run is verified per window:
the count read back from each window's item must equal what was acknowledged (admitted) in it.

Which window an operation lands in is decided by the pool from its wall clock, at the call.
The pool of a windowed run reads a `StampedWall`: before each operation the driver stamps it
with the time, and the pool's window (computed before the call's first suspension) is the one
the driver tallies, to the microsecond, even at a window's edge.
"""

from __future__ import annotations

import asyncio
from typing import Final

from async_counters import CounterPool, RateLimiter
from async_counters.clock import wall_microseconds
from async_counters.errors import AmbiguousWriteError, CounterError
from async_counters.transport import Outcome
from async_counters.windows import Window

from .metrics import WorkerRecorder

__all__ = ["SEPARATOR", "StampedWall", "WindowedLoad", "split_name"]

#: Between the counter and its window's start in a tally's name: ``bench:ab12:07@1800000000``.
SEPARATOR: Final = "@"


def split_name(name: str) -> tuple[str, int]:
    """``key@start`` -> ``(key, start)``."""
    key, _, start = name.rpartition(SEPARATOR)
    return key, int(start)


class StampedWall:
    """A wall clock (microseconds) that says the time it was last stamped with."""

    __slots__ = ("us",)

    def __init__(self) -> None:
        self.us = wall_microseconds()

    def __call__(self) -> int:
        return self.us

    def stamp(self) -> int:
        self.us = us = wall_microseconds()
        return us


class WindowedLoad:
    """Windowed increments, or rate-limiter hits (with ``limit``), tallied per window."""

    def __init__(
        self,
        pool: CounterPool,
        recorder: WorkerRecorder,
        wall: StampedWall,
        *,
        window: int,
        limit: int | None,
    ) -> None:
        self._pool = pool
        self._recorder = recorder
        self._wall = wall
        self._window = window
        self._limiter = None if limit is None else RateLimiter(pool, limit=limit, per=window)

    async def increment(self, key: str, amount: int = 1) -> int:
        recorder = self._recorder
        now = self._wall.stamp() / 1e6  # read by the pool at the call below, before it waits
        name = f"{key}{SEPARATOR}{Window.at(self._window, now).start}"
        recorder.window_sending(name, amount)
        limiter = self._limiter
        if limiter is not None:
            try:
                decision = await limiter.hit(key, amount)
            except asyncio.CancelledError:
                raise  # still pending: it bounds the window's count
            except BaseException:
                recorder.window_settled(name, amount, Outcome.AMBIGUOUS, hit=True)
                raise
            if decision.unsure:
                outcome = Outcome.AMBIGUOUS
            elif decision.allowed:
                outcome = Outcome.ACKNOWLEDGED
            else:
                outcome = Outcome.CONDITION_FAILED
            recorder.window_settled(name, amount, outcome, hit=True)
            return decision.remaining
        try:
            value = await self._pool.increment(key, amount, window=self._window)
        except AmbiguousWriteError:
            recorder.window_settled(name, amount, Outcome.AMBIGUOUS, hit=False)
            raise
        except CounterError:
            recorder.window_settled(name, amount, Outcome.REJECTED, hit=False)
            raise
        recorder.window_settled(name, amount, Outcome.ACKNOWLEDGED, hit=False)
        return value

    async def decrement(self, key: str, amount: int = 1, *, floor: int | None = None) -> int:
        raise AssertionError("windowed runs only add (the workload has no decrements)")

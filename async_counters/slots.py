"""The bound on requests in flight, shared in shape by the pool and the fast transport."""

from __future__ import annotations

import asyncio
import collections
import contextlib

__all__ = ["Slots"]


class Slots:
    """A bound on requests in flight: a semaphore whose uncontended path is a plain call, not a
    coroutine (this is on every request's path). Waiters are served in order, and a waiter
    cancelled just as it was handed a slot passes it on (none is ever lost)."""

    __slots__ = ("free", "waiters")

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_take(self) -> bool:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter  # release() hands its slot straight to the first waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot, then cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1

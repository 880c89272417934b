"""An event loop whose clock is virtual: when nothing is ready it jumps to the next timer.

Every ``asyncio.sleep``, ``loop.call_later`` and timeout then runs instantly and exactly, so a
whole pool (pacing, retries, shards, key queues) can be driven for minutes of its own time in a
fraction of a second, against a simulated partition:

    result = run_virtual(main())          # main() sees loop.time() in virtual seconds
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that never blocks: a wait for ``timeout`` moves the loop's clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready and timeout and self.loop is not None:
            self.loop.now += timeout
        return ready


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = 0.0

    def time(self) -> float:
        return self.now


def run_virtual(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end on a fresh `VirtualLoop`."""
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()

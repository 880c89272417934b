"""The pool's background tasks: each direct write's, each key queue's, each record and prune.

Held here until done (the event loop keeps only weak references to tasks), and awaited by
``flush()`` with `asyncio.wait`, which never cancels what it waits for: a time-limited
``aclose()`` must not cancel writes already on the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["Tasks"]


class Tasks:
    """Tasks started on the pool's loop (set when the pool opens), until each is done."""

    __slots__ = ("_tasks", "loop")

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` in its own task; its failure, if any, is retrieved and dropped
        (every stage settles its own calls before it ends)."""
        assert self.loop is not None, "the pool opens before it starts anything"
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def hold(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` until its owner calls `release` (cheaper than a done callback: one
        turn of the loop less per write)."""
        self._tasks.add(task)

    def release(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here: nobody else will look

    async def wait(self) -> None:
        """Until every task held is done, those started meanwhile included; never cancels one."""
        while self._tasks:
            done, _ = await asyncio.wait(set(self._tasks))
            self._tasks -= done  # a write's caller releases it on resuming: no need to wait

"""The pool's one source of time, injected at the top and handed down to every stage.

``now`` is monotonic seconds (latencies, retry deadlines, pacing, the wait for a table), ``sleep``
waits in the same time, and ``wall_us`` is microseconds since the epoch: exactly-once sequence
numbers must keep growing across a restart of the writer, which a monotonic clock does not promise.
The pool builds its clock from its `RetryPolicy` (``clock`` and ``sleep``), so a test that injects
virtual time there moves every stage at once; a stage's own unit test hands it a `Clock` directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Clock", "wall_microseconds"]


def wall_microseconds() -> int:
    """Microseconds since the epoch (the default ``wall_us``)."""
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Clock:
    """Monotonic ``now``, its ``sleep``, and the wall clock in microseconds.

    >>> clock = Clock()
    >>> clock.now() <= clock.now()
    True
    """

    now: Callable[[], float] = field(default=time.monotonic)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    wall_us: Callable[[], int] = field(default=wall_microseconds)

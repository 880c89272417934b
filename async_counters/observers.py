"""The one place that fans out what the pool did: its stats first, then every user hook.

No stage writes a counter by hand: the sender reports requests (answered or failed) and retries
here, settlement reports how each call ended, and the pool's own events (a call begun, a caller
detached, a background addition unwritten, a write recovered, an item pruned) go to the stats
alone, since `PoolHooks` does not have them. A hook that raises is logged and ignored: observing
the pool must never change what it does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .consumed import REFUSED_WRITE, charged
from .stats import PoolHooks, PoolStats, StatsRecorder
from .transport import Outcome

__all__ = ["Observers", "Timed"]

logger = logging.getLogger("async_counters")


class Timed(Protocol):
    """A write operation as observers see it: its amount and when it began."""

    @property
    def delta(self) -> int: ...

    @property
    def start(self) -> float: ...


class Observers:
    """The pool's stats and the user's hooks, told of every event in that order.

    A request's events reach each hook in one order: `PoolHooks.on_consumed` (when it was
    charged), then `PoolHooks.on_request_detail`, so that a span can carry what it cost.
    """

    def __init__(self, stats: StatsRecorder | None = None, hooks: Sequence[PoolHooks] = ()) -> None:
        self.stats = StatsRecorder() if stats is None else stats
        self.hooks = tuple(hooks)
        if not self.hooks:  # stats alone: every request and every write calls it straight
            self.answered = self.stats.answered  # type: ignore[method-assign]
            self.settled = self.stats.on_settled  # type: ignore[method-assign]

    def opened(self, stats: Callable[[], PoolStats]) -> None:
        """The pool opened: hooks may read its stats from now on."""
        for hook in self.hooks:
            _tell(hook.on_open, stats)

    def answered(
        self, operation: str, key: str | None, seconds: float, response: Mapping[str, Any]
    ) -> None:
        """A request was answered after ``seconds``; its ConsumedCapacity says what it cost."""
        stats = self.stats
        stats.on_request(operation, Outcome.ACKNOWLEDGED, seconds)
        consumed = response.get("ConsumedCapacity")
        write, read = charged(operation, consumed)
        charge = write or read
        if charge:
            stats.on_consumed(operation, write, read)
        for hook in self.hooks:
            if charge:
                _tell(hook.on_consumed, operation, write, read)
            _tell(hook.on_request_detail, operation, key, Outcome.ACKNOWLEDGED, seconds, consumed)

    def failed(self, operation: str, key: str | None, outcome: Outcome, seconds: float) -> None:
        """A request failed in ``outcome``; a conditional write refused is charged all the same,
        though its answer does not say so."""
        stats = self.stats
        stats.on_request(operation, outcome, seconds)
        refused = outcome is Outcome.CONDITION_FAILED
        if refused:
            stats.on_consumed(operation, REFUSED_WRITE, 0.0)
        for hook in self.hooks:
            if refused:
                _tell(hook.on_consumed, operation, REFUSED_WRITE, 0.0)
            _tell(hook.on_request_detail, operation, key, outcome, seconds, None)

    def retry(
        self, operation: str, key: str | None, outcome: Outcome, attempt: int, delay: float
    ) -> None:
        self.stats.on_retry(operation, key, outcome, attempt, delay)
        for hook in self.hooks:
            _tell(hook.on_retry, operation, key, outcome, attempt, delay)

    def settled(
        self, key: str, delta: int, outcome: Outcome, seconds: float, code: str = ""
    ) -> None:
        """A write operation of ``delta`` to counter ``key`` ended, after any retries."""
        self.stats.on_settled(key, delta, outcome, seconds, code)
        for hook in self.hooks:
            _tell(hook.on_settled, key, delta, outcome, seconds)

    def acknowledged(self, key: str, calls: Sequence[Timed], total: int, now: float) -> None:
        """A batch of write operations to ``key``, adding ``total``, was acknowledged at ``now``
        (the coalescing hot path: the stats in bulk, latencies one by one)."""
        stats = self.stats
        stats.acknowledge(len(calls), total)
        record = stats.latency.record
        for call in calls:
            record(now - call.start)
        for hook in self.hooks:
            _tell(hook.on_coalesced, key, len(calls))
            for call in calls:
                _tell(hook.on_settled, key, call.delta, Outcome.ACKNOWLEDGED, now - call.start)

    def called(self) -> None:
        """A write operation began (it settles later, exactly once)."""
        counts = self.stats.counts
        counts["calls"] += 1
        counts["in_progress"] += 1

    def detached(self, delta: int) -> None:
        """A caller left after its write of ``delta`` was sent; the write settles on its own."""
        self.stats.add("detached", amount=delta)

    def unwritten(self, delta: int) -> None:
        """A background addition of ``delta`` ended without being acknowledged."""
        self.stats.add("unwritten", amount=delta)

    def recovered(self) -> None:
        """An exactly-once write whose answer was lost was found applied by its retry."""
        self.stats.add("recovered")

    def pruned(self) -> None:
        """An item was cleaned of stale exactly-once writers' records."""
        self.stats.add("pruned")


def _tell(method: Any, *args: Any) -> None:
    try:
        method(*args)
    except Exception:
        logger.exception("a pool hook raised; ignored")

"""Per-key queues: at most one write in flight per item, calls arriving meanwhile wait for the next.

Used when the pool coalesces (everything waiting merges into the next write, sent as soon as the
previous returns) or writes exactly once (a writer numbers its writes per item, one at a time),
and for background additions (``add_nowait``) always. How a batch is taken from a queue is the
`Merge` the pool chose; the batch goes out as one write of its sum through the write strategy,
its floors granted in arrival order (`batching`), and every call in it ends through `Settlement`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import batching, builders
from .clock import Clock
from .errors import CounterFloorError, DynamoError
from .sender import Failed, Sender
from .settlement import Call, Settlement, errors_of, same
from .tasks import Tasks
from .transport import Outcome
from .writes import Refused, Unreadable, WriteStrategy, counter_value

__all__ = ["KeyQueues", "Merge", "merge_all", "merge_background"]

logger = logging.getLogger("async_counters")

#: How the next batch is taken from a queue's calls: the calls that go, those whose callers left
#: before anything was sent, and those that wait for the next write.
Merge = Callable[[list[Call]], tuple[list[Call], list[Call], list[Call]]]


def merge_all(calls: list[Call]) -> tuple[list[Call], list[Call], list[Call]]:
    """Coalescing: everything waiting goes in one write, as long as the sum fits a number."""
    batch: list[Call] = []
    gone: list[Call] = []
    total = 0
    limit = builders.MAX_NUMBER
    for index, call in enumerate(calls):
        future = call.future
        if future is not None and future.cancelled():
            gone.append(call)
            continue
        total += call.delta
        if total > limit or total < -limit:
            return batch, gone, calls[index:]
        batch.append(call)
    return batch, gone, []


def merge_background(calls: list[Call]) -> tuple[list[Call], list[Call], list[Call]]:
    """Without coalescing an awaited call goes alone (exactly-once queues only to keep one write
    in flight per item); background additions still merge with each other."""
    batch: list[Call] = []
    gone: list[Call] = []
    total = 0
    limit = builders.MAX_NUMBER
    for index, call in enumerate(calls):
        future = call.future
        if future is not None and future.cancelled():
            gone.append(call)
            continue
        total += call.delta
        if batch and (future is not None or batch[0].future is not None or abs(total) > limit):
            return batch, gone, calls[index:]
        batch.append(call)
    return batch, gone, []


class _Batch:
    """A merged write's mark for the sender: on the wire while a request of it awaits."""

    __slots__ = ("on_wire",)

    def __init__(self) -> None:
        self.on_wire = False


class _Queue:
    __slots__ = ("calls", "name")

    def __init__(self, name: str) -> None:
        self.name = name  # the counter, for observers and errors (the item may be a shard)
        self.calls: list[Call] = []


class KeyQueues:
    """One queue per item with calls waiting; its task writes batches until it is empty."""

    def __init__(
        self,
        strategy: WriteStrategy,
        sender: Sender,
        settlement: Settlement,
        tasks: Tasks,
        clock: Clock,
        *,
        merge: Merge,
        linger: float,
        table: str,
        key_attribute: str,
        value_attribute: str,
    ) -> None:
        self._strategy = strategy
        self._sender = sender
        self._settlement = settlement
        self._tasks = tasks
        self._clock = clock
        self._now = clock.now
        self._observers = settlement.observers
        self._merge = merge
        self._linger = linger
        self._table = table
        self._key_attribute = key_attribute
        self._value_attribute = value_attribute
        self._queues: dict[str, _Queue] = {}

    def start(self, name: str, item: str, delta: int, floor: int | None) -> Call:
        """Count and queue a write; its caller awaits ``call.future``."""
        loop = self._tasks.loop
        assert loop is not None
        call = Call(delta, floor, loop.create_future(), self._now())
        self._put(name, item, call)
        return call

    def add(self, name: str, item: str, delta: int) -> None:
        """Count and queue a background addition (nobody awaits it)."""
        self._put(name, item, Call(delta, None, None, self._now()))

    def _put(self, name: str, item: str, call: Call) -> None:
        self._observers.called()
        queue = self._queues.get(item)
        if queue is None:
            queue = self._queues[item] = _Queue(name)
            self._tasks.start(self._drain(item, queue))
        queue.calls.append(call)

    def left(self, name: str, call: Call) -> None:
        """The caller was cancelled: its wait ends, never the write (still queued, it is skipped;
        sent, it is detached when it settles)."""
        self._settlement.caller_left(call)

    async def _drain(self, item: str, queue: _Queue) -> None:
        """Write the item's queued calls, one merged write at a time, until none are left."""
        settlement = self._settlement
        name = queue.name
        try:
            while queue.calls:
                if self._linger:
                    await self._clock.sleep(self._linger)
                batch, gone, queue.calls = self._merge(queue.calls)
                if gone:  # callers cancelled before anything was sent
                    settlement.ended(name, gone, Outcome.CANCELLED)
                if not batch:
                    continue
                try:
                    await self._write(name, item, batch)
                except Exception as bug:  # a bug: its callers must hear of it, not wait forever
                    logger.exception("merged write to %r failed unexpectedly", name)
                    settlement.ended(name, batch, Outcome.REJECTED, same(bug), "Internal")
        finally:
            if self._queues.get(item) is queue:
                del self._queues[item]
            # Only when cancelled (the loop shutting down): nothing of these was sent.
            settlement.ended(name, queue.calls, Outcome.CANCELLED)
            queue.calls = []

    async def _write(self, name: str, item: str, batch: list[Call]) -> None:
        """One merged write for ``batch``; floors granted in arrival order (`batching`)."""
        settlement = self._settlement
        marker = _Batch()
        current: int | None = None
        try:
            while True:
                plan = batching.plan([c.delta for c in batch], [c.floor for c in batch], current)
                if plan.refused:
                    for index, value in plan.refused:
                        call = batch[index]
                        settlement.ended(
                            name, [call], Outcome.CONDITION_FAILED, _floor_error(name, value)
                        )
                    batch = [batch[i] for i in plan.granted]
                if not batch:
                    return
                floor = None if plan.minimum is None else plan.minimum + plan.total
                try:
                    after = await self._strategy.apply(item, plan.total, floor, marker)
                except Refused as refused:
                    current = refused.current
                    if current is None:  # no ALL_OLD: read the value the condition met
                        current = await self._read_value(item)
                    continue
                settlement.acknowledged(name, batch, after, plan.total)
                return
        except Failed as failure:
            errors = errors_of(failure, table=self._table, key=name)
            settlement.ended(name, batch, failure.error.outcome, errors, failure.error.code)
        except Unreadable as unreadable:
            settlement.ended(name, batch, Outcome.ACKNOWLEDGED, same(unreadable.error))
        except DynamoError as exc:  # the value read back is not whole; nothing was applied
            settlement.ended(name, batch, Outcome.REJECTED, same(exc), exc.code)
        except asyncio.CancelledError:
            outcome = Outcome.AMBIGUOUS if marker.on_wire else Outcome.CANCELLED
            settlement.ended(name, batch, outcome)
            raise

    async def _read_value(self, item: str) -> int:
        """The counter's value, read consistently (where a refusal does not return ALL_OLD)."""
        params = builders.get_item(self._table, self._key_attribute, self._value_attribute, item)
        response = await self._sender.send("GetItem", params, idempotent=True, key=item)
        return counter_value(response.get("Item"), self._value_attribute, item)


def _floor_error(name: str, current: int) -> Callable[[Call], CounterFloorError]:
    def error(call: Call) -> CounterFloorError:
        assert call.floor is not None
        return CounterFloorError(key=name, amount=-call.delta, floor=call.floor, current=current)

    return error

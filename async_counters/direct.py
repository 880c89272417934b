"""Direct writes: each call is its own write, in its own task, with no order between calls.

The pool's path when it neither coalesces nor writes exactly once: the common case of many
distinct keys, where nothing can be merged and the CPU of one call is the throughput. The write
runs in a task of its own so that a cancelled caller never cancels a write already on the wire;
one cancelled before its request left sends nothing.
"""

from __future__ import annotations

import asyncio
import logging

from .clock import Clock
from .errors import CounterFloorError
from .sender import Failed
from .settlement import Call, Settlement, errors_of, same
from .tasks import Tasks
from .transport import Outcome
from .writes import Refused, Unreadable, WriteStrategy

__all__ = ["DirectWrites"]

logger = logging.getLogger("async_counters")


class DirectWrites:
    """``submit`` runs one write in its own task and answers its caller."""

    __slots__ = ("_now", "_observers", "_settlement", "_strategy", "_table", "_tasks")

    def __init__(
        self,
        strategy: WriteStrategy,
        settlement: Settlement,
        tasks: Tasks,
        clock: Clock,
        *,
        table: str,
    ) -> None:
        self._strategy = strategy
        self._settlement = settlement
        self._tasks = tasks
        self._now = clock.now
        self._observers = settlement.observers
        self._table = table

    def start(self, name: str, item: str, delta: int, floor: int | None) -> Call:
        """Count a write and start its task; its caller awaits ``call.future``."""
        loop = self._tasks.loop
        assert loop is not None
        call = Call(delta, floor, loop.create_future(), self._now())
        self._observers.called()
        task = call.task = loop.create_task(self._write(name, item, call))
        self._tasks.hold(task)  # released by the task itself (cheaper than a done callback)
        return call

    def left(self, name: str, call: Call) -> None:
        """The caller was cancelled: a write on the wire completes (the caller is detached), one
        not sent yet (a slot, the pace, a backoff, or not even started) is never sent."""
        settlement = self._settlement
        if settlement.caller_left(call):
            return
        if call.on_wire:
            settlement.detach(call)
            return
        task = call.task
        assert task is not None
        task.cancel()
        self._tasks.release(task)  # a task cancelled before its first step never runs at all
        settlement.ended(name, (call,), Outcome.CANCELLED)

    async def _write(self, name: str, item: str, call: Call) -> None:
        settlement = self._settlement
        try:
            value = await self._strategy.apply(item, call.delta, call.floor, call)
        except Refused as refused:
            floor = call.floor
            assert floor is not None
            error = CounterFloorError(
                key=name, amount=-call.delta, floor=floor, current=refused.current
            )
            settlement.ended(name, (call,), Outcome.CONDITION_FAILED, same(error))
        except Failed as failure:
            errors = errors_of(failure, table=self._table, key=name)
            settlement.ended(name, (call,), failure.error.outcome, errors, failure.error.code)
        except Unreadable as unreadable:
            settlement.ended(name, (call,), Outcome.ACKNOWLEDGED, same(unreadable.error))
        except asyncio.CancelledError:
            settlement.ended(
                name, (call,), Outcome.AMBIGUOUS if call.on_wire else Outcome.CANCELLED
            )
            raise
        except Exception as bug:  # a bug: its caller must hear of it, not wait forever
            logger.exception("write to %r failed unexpectedly", name)
            settlement.ended(name, (call,), Outcome.REJECTED, same(bug), "Internal")
        else:
            settlement.acknowledged_one(name, call, value)
        finally:
            task = call.task
            assert task is not None
            self._tasks.release(task)

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

    __slots__ = ("_now", "_settlement", "_strategy", "_table", "_tasks")

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
        self._table = table

    async def submit(self, name: str, item: str, delta: int, floor: int | None) -> int:
        loop = self._tasks.loop
        assert loop is not None
        future: asyncio.Future[int] = loop.create_future()
        call = Call(delta, floor, future, self._now())
        settlement = self._settlement
        settlement.observers.called()
        tasks = self._tasks
        task = loop.create_task(self._write(name, item, call))
        tasks.hold(task)  # released by this caller (cheaper than a done callback per write)
        try:
            value = await future
        except asyncio.CancelledError:
            if settlement.caller_left(call):
                tasks.release(task)  # answered: the task is done with the call
            elif call.on_wire:
                settlement.detach(call)  # it completes, and is counted, on its own
                task.add_done_callback(tasks.release)
            else:  # not sent yet (a slot, the pace, a backoff, or not even started)
                task.cancel()
                tasks.release(task)
                settlement.ended(name, (call,), Outcome.CANCELLED)
            raise
        except BaseException:
            tasks.release(task)
            raise
        tasks.release(task)
        return value

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

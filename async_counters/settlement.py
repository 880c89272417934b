"""How every call ends: once, as acknowledged, refused, ambiguous or cancelled.

A `Call` is one increment or decrement from the moment it is counted to its end. Every stage that
ends calls ends them here, so the promise "every call settles exactly once, and callers plus
``detached`` account for every applied amount" is kept in one place:

- its outcome goes to the observers (the stats among them) exactly once;
- a caller still waiting gets its value or its error;
- a caller that left after its write was sent is counted ``detached`` exactly once: whether it
  left while the write was on the wire, while it rode a merged write, or after its answer was
  set but before it resumed (it then never saw the answer);
- a background addition (no caller) that did not apply is counted ``unwritten``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from .errors import AmbiguousWriteError, CounterError
from .observers import Observers
from .sender import Failed, public_error
from .transport import Outcome

__all__ = ["Call", "Settlement", "errors_of", "same", "write_error"]


class Call:
    """One increment or decrement of ``delta``, with its ``floor``, the ``future`` its caller
    awaits (None for a background addition) and when it began. ``on_wire`` is the sender's mark
    while a direct write's request awaits its answer; ``detached`` that its caller was counted
    as gone; ``settled`` that it ended (a second end is ignored: every call ends once);
    ``task`` the task a direct write runs in."""

    __slots__ = ("delta", "detached", "floor", "future", "on_wire", "settled", "start", "task")

    def __init__(
        self, delta: int, floor: int | None, future: asyncio.Future[int] | None, start: float
    ) -> None:
        self.delta = delta
        self.floor = floor
        self.future = future
        self.start = start
        self.on_wire = False
        self.detached = False
        self.settled = False
        self.task: asyncio.Task[None] | None = None


class Settlement:
    """Ends calls and tells the observers; the one path every outcome takes."""

    __slots__ = ("_now", "observers")

    def __init__(self, observers: Observers, now: Callable[[], float]) -> None:
        self.observers = observers
        self._now = now

    def acknowledged(self, name: str, calls: Sequence[Call], after: int, total: int) -> None:
        """``calls`` to counter ``name`` applied together, adding ``total`` and leaving ``after``:
        each caller gets its value in the batch's serial order (arrival order), so increments
        get distinct values, as a ticket counter hands out."""
        now = self._now()
        observers = self.observers
        running = after - total
        for call in calls:
            running += call.delta
            call.settled = True
            future = call.future
            if future is None:
                continue
            if future.cancelled():  # the caller left while its write was being sent
                if not call.detached:
                    call.detached = True
                    observers.detached(call.delta)
            else:
                future.set_result(running)
        observers.acknowledged(name, calls, total, now)

    def acknowledged_one(self, name: str, call: Call, value: int) -> None:
        """`acknowledged` for a call written alone (the direct path: one call, no batch)."""
        call.settled = True
        future = call.future
        if future is not None:
            if future.cancelled():
                if not call.detached:
                    call.detached = True
                    self.observers.detached(call.delta)
            else:
                future.set_result(value)
        self.observers.settled(name, call.delta, Outcome.ACKNOWLEDGED, self._now() - call.start)

    def ended(
        self,
        name: str,
        calls: Sequence[Call],
        outcome: Outcome,
        error: Callable[[Call], BaseException] | None = None,
        code: str = "",
    ) -> None:
        """``calls`` ended in ``outcome``; each waiting caller gets ``error(call)`` (None: the
        caller is cancelled, for calls that were never sent)."""
        now = self._now()
        observers = self.observers
        for call in calls:
            if call.settled:
                continue
            call.settled = True
            observers.settled(name, call.delta, outcome, now - call.start, code)
            future = call.future
            if future is None:
                if outcome is not Outcome.ACKNOWLEDGED:
                    observers.unwritten(call.delta)
            elif future.cancelled():
                if outcome is not Outcome.CANCELLED and not call.detached:
                    call.detached = True
                    observers.detached(call.delta)
            elif error is None:
                future.cancel()
            else:
                future.set_exception(error(call))

    def caller_left(self, call: Call) -> bool:
        """The caller of ``call`` was cancelled. If its answer was already set (it would have
        resumed to it), the caller is detached now and True is returned; else the stage decides
        (a write not yet sent must then not be sent)."""
        future = call.future
        assert future is not None
        if not future.done() or future.cancelled():
            return False
        future.exception()  # retrieved: the caller will never look
        if not call.detached:
            call.detached = True
            self.observers.detached(call.delta)
        return True

    def detach(self, call: Call) -> None:
        """The caller left while the write was on the wire: it completes, and is counted."""
        if not call.detached:
            call.detached = True
            self.observers.detached(call.delta)


def write_error(failure: Failed, *, table: str, key: str, delta: int) -> CounterError:
    """The error the caller of a write of ``delta`` to ``key`` sees for ``failure``."""
    error = failure.error
    if error.outcome is Outcome.AMBIGUOUS:
        return AmbiguousWriteError(
            key=key, amount=delta, attempts=failure.attempts, reason=str(error)
        )
    return public_error(failure, table=table, key=key)


def errors_of(failure: Failed, *, table: str, key: str) -> Callable[[Call], CounterError]:
    """Each call's error for a write that finally failed (an ambiguous one names its amount)."""
    return lambda call: write_error(failure, table=table, key=key, delta=call.delta)


def same(error: BaseException) -> Callable[[Call], BaseException]:
    """The same error for every call."""
    return lambda _call: error

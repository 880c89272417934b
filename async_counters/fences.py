"""How long an exactly-once writer's record stays on an item: only while a copy may still arrive.

A writer's record (``~s:<id>``, ``~v:<id>``) is what makes a late copy of one of its writes fail
its condition. It is needed only while such a copy may exist:

- every attempt of the writer's writes to the item since the record was set got an answer that
  says what became of it (applied, refused, or throttled and so not applied): no copy exists,
  and once the writer has nothing more in flight for the item (a few turns of the loop after its
  write), the record is removed at once;
- some attempt was ambiguous (a timeout, a dropped connection, a 500 after which the write may
  have applied, a cancellation on the wire): the record is a *fence* and stays `FENCE_LIFETIME`
  after that write ended, since a copy is refused by its signature's age (`SIGNATURE_WINDOW`)
  only then; the margin covers the skew left between the client's and the server's clocks.
  Under throttling alone no fence is kept, so the item never holds one record per writer.

The removal is one ``UpdateItem`` (``REMOVE`` of both attributes) on the condition that the stored
sequence is at most the writer's last on the item: a lost answer, or a late copy of it, can never
remove a newer record. A busy writer overwrites its record with each write and pays 1 WCU per
increment; a writer idle after each write pays 2. What a writer leaves behind: fences younger than
`FENCE_LIFETIME` (one per item at most) when it closes, and one record per item it was writing when
killed; other writers prune those after `PRUNE_AFTER` (see `writes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from . import builders
from .clock import Clock
from .sender import Failed, Sender, Wire
from .tasks import Tasks
from .transport.skew import SIGNATURE_WINDOW

__all__ = ["CLOSE_WAIT", "FENCE_LIFETIME", "IDLE_TURNS", "Attempts", "Records", "remove_record"]

logger = logging.getLogger("async_counters")

FENCE_MARGIN = 60.0
#: A record kept after an ambiguous attempt stays this long after its write ended.
FENCE_LIFETIME = SIGNATURE_WINDOW + FENCE_MARGIN
#: Turns of the event loop a record waits for a next write (which would overwrite it) before going.
IDLE_TURNS = 4
#: ``aclose()`` waits at most this long for the last removals.
CLOSE_WAIT = 5.0


class Attempts:
    """A write's wire marker that also remembers whether any attempt's fate was unclear.

    The sender leaves the mark on after an ambiguous answer (a timeout, a dropped connection, a
    500), so an attempt sent while it is still on follows an unclear one. ``ambiguous``: a copy
    of the write may still arrive (an unclear attempt, or cancelled on the wire). Throttles and
    other answers that prove the write was not applied leave it False: no fence is needed.
    """

    __slots__ = ("_wire", "count", "unclear")

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self.count = 0
        self.unclear = False

    @property
    def on_wire(self) -> bool:
        return self._wire.on_wire

    @on_wire.setter
    def on_wire(self, value: bool) -> None:
        if value:
            self.count += 1
            if self._wire.on_wire:  # sent again while the last attempt's fate is unknown
                self.unclear = True
        self._wire.on_wire = value

    @property
    def ambiguous(self) -> bool:
        return self.unclear or self._wire.on_wire


def remove_record(
    table: str, key_attribute: str, key: str, writer: tuple[str, str], seq: int
) -> dict[str, Any]:
    """UpdateItem removing a writer's record, only if its sequence is at most ``seq``."""
    return {
        "TableName": table,
        "Key": {key_attribute: {"S": key}},
        "UpdateExpression": "REMOVE #ws, #wv",
        "ConditionExpression": "#ws <= :seq",
        "ExpressionAttributeNames": {"#ws": writer[0], "#wv": writer[1]},
        "ExpressionAttributeValues": {":seq": {"N": str(seq)}},
        "ReturnConsumedCapacity": builders.CONSUMED,
    }


class Records:
    """One writer's records: which items may hold one, which are fenced, and their removal.

    Memory: an entry per item with a record not yet removed (none once the writer is idle).
    """

    def __init__(
        self,
        sender: Sender,
        tasks: Tasks,
        clock: Clock,
        *,
        table: str,
        key_attribute: str,
        writer: tuple[str, str],
    ) -> None:
        self._sender = sender
        self._tasks = tasks
        self._clock = clock
        self._table = table
        self._key_attribute = key_attribute
        self._writer = writer
        self._busy: set[str] = set()
        self._left: dict[str, int] = {}  # item -> the last sequence written there
        self._fenced: dict[str, float] = {}  # item -> until when its record must stay
        self._waiters: dict[str, asyncio.Task[None]] = {}
        self._sweeping = False
        self._closed = False

    def begin(self, item: str) -> None:
        self._busy.add(item)

    def end(self, item: str, seq: int, *, ambiguous: bool) -> None:
        """The write ``seq`` to ``item`` ended; ``ambiguous``: a copy of it may still arrive."""
        self._busy.discard(item)
        self._left[item] = seq
        if ambiguous:
            self._fenced[item] = self._clock.now() + FENCE_LIFETIME
            if item not in self._waiters and self._tasks.loop is not None:
                self._waiters[item] = self._tasks.loop.create_task(self._wait_fence(item))
            return
        if item not in self._fenced:
            self._sweep_soon()

    @property
    def fenced(self) -> int:
        """Items whose record stays as a fence."""
        return len(self._fenced)

    def _sweep_soon(self) -> None:
        if not self._sweeping and not self._closed:
            self._sweeping = True
            self._tasks.start(self._sweep())

    async def _sweep(self) -> None:
        try:
            for _ in range(IDLE_TURNS):  # a next write to the item overwrites the record anyway
                await asyncio.sleep(0)
        finally:
            self._sweeping = False
        for item, seq in self._ready():
            self._tasks.start(self._remove(item, seq))

    def _ready(self) -> list[tuple[str, int]]:
        now = self._clock.now()
        ready = [
            (item, seq)
            for item, seq in self._left.items()
            if item not in self._busy and self._fenced.get(item, now) <= now
        ]
        for item, _ in ready:
            del self._left[item]
            self._fenced.pop(item, None)
        return ready

    async def _wait_fence(self, item: str) -> None:
        try:
            while (until := self._fenced.get(item)) is not None:
                delay = until - self._clock.now()
                if delay <= 0:
                    break
                await self._clock.sleep(delay)
        finally:
            self._waiters.pop(item, None)
        self._sweep_soon()

    async def _remove(self, item: str, seq: int) -> None:
        params = remove_record(self._table, self._key_attribute, item, self._writer, seq)
        try:
            await self._sender.send("UpdateItem", params, idempotent=True, key=item)
        except Failed as failure:  # a newer write replaced it, or it was already gone
            logger.debug("removing writer record of %r: %s", item, failure.error)

    async def close(self) -> None:
        """Stop the fence timers and remove the records that may go now (bounded wait)."""
        self._closed = True
        for waiter in list(self._waiters.values()):
            waiter.cancel()
        self._waiters.clear()
        ready = self._ready()
        if ready:
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(self._remove(item, seq) for item, seq in ready)), CLOSE_WAIT
                )

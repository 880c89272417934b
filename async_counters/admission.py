"""Admission: how a rate limiter's hits reach their window item, chosen once per limiter.

Both ways send the same request: ``ADD count :total`` on condition ``count <= budget - total``
(or the count was never written), where ``budget`` is what the window admits in all (the limit,
less the previous window's weight when sliding). DynamoDB applies conditional writes to one item
one at a time, so the count never passes ``budget``, however many processes write.

Each item's count only grows within its window, so every answer is a lower bound of it for the
rest of the window: the count after an admitted write, the count a refusal met. ``known`` keeps
the highest seen per item, and a hit that cannot fit even above that bound is denied here, with no
request (a full window costs no more writes). A decrement of a window's count made elsewhere is
not seen by this bound until the window ends.

- `DirectAdmission`: one write per hit.
- `CoalescedAdmission`: one write in flight per item; hits arriving meanwhile wait, and the next
  write carries the sum of their costs. How exactness holds when merged hits straddle the limit:
  a batch is taken in arrival order only while ``known + total`` fits the smallest budget in it,
  so its write is never doomed by what is known. The write applies whole or not at all: admitted,
  every hit in it is admitted (the count after each is assigned in arrival order, so each hit's
  ``remaining`` is its own); refused, the refusal returns the count ``c`` the condition met, which
  is higher than anything known before (the condition was ``count <= budget - total``, and
  ``known <= budget - total``). The hits go back to the front of the queue, the next batch is
  taken against ``c``, and a hit is denied only when ``c + cost`` passes its budget: when the
  server's own count shows it can never fit in this window. Each refusal raises ``known``
  strictly, so the rounds end; with unit costs the window fills to exactly ``budget``.
"""

from __future__ import annotations

import asyncio
from typing import Final

from . import builders
from .sender import Failed, Sender
from .tasks import Tasks
from .transport import Outcome

__all__ = ["MAX_KNOWN", "CoalescedAdmission", "DirectAdmission"]

#: The most items whose count is kept (one per key and window) before starting over.
MAX_KNOWN: Final = 10_000
_CONDITION: Final = "attribute_not_exists(#v) OR #v <= :max"
_UPDATE: Final = "ADD #v :n SET #ttl = :ttl"


class _Marker:
    __slots__ = ("on_wire",)

    def __init__(self) -> None:
        self.on_wire = False


class _Admission:
    """The request, and what the answers tell of each item's count."""

    __slots__ = ("_key_attribute", "_names", "_sender", "_table", "_value", "known")

    def __init__(
        self,
        sender: Sender,
        *,
        table: str,
        key_attribute: str,
        value_attribute: str,
        ttl_attribute: str,
    ) -> None:
        self._sender = sender
        self._table = table
        self._key_attribute = key_attribute
        self._value = value_attribute
        # Shared by every request: nothing downstream mutates a request's parts.
        self._names = {"#v": value_attribute, "#ttl": ttl_attribute}
        self.known: dict[str, int] = {}  # item -> the highest count an answer showed

    def learn(self, item: str, count: int) -> None:
        known = self.known
        if count > known.get(item, 0):
            if len(known) >= MAX_KNOWN and item not in known:
                known.clear()  # old windows' counts: never needed again
            known[item] = count

    async def write(
        self, item: str, total: int, ceiling: int, expires: int, *, read_unknown: bool
    ) -> tuple[bool, int | None]:
        """Add ``total`` if the count is at most ``ceiling``: ``(True, count after)``, or
        ``(False, count met)`` when refused (None when the server did not say and
        ``read_unknown`` is off). Raises `Failed` on any other outcome."""
        params = {
            "TableName": self._table,
            "Key": {self._key_attribute: {"S": item}},
            "UpdateExpression": _UPDATE,
            "ConditionExpression": _CONDITION,
            "ExpressionAttributeNames": self._names,
            "ExpressionAttributeValues": {
                ":n": {"N": str(total)},
                ":max": {"N": str(ceiling)},
                ":ttl": {"N": str(expires)},
            },
            "ReturnValues": "UPDATED_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            "ReturnConsumedCapacity": builders.CONSUMED,  # the units reach pool.stats
        }
        sender = self._sender
        try:
            response = await sender.send(
                "UpdateItem", params, idempotent=False, key=item, wire=_Marker()
            )
        except Failed as failure:
            error = failure.error
            if error.outcome is not Outcome.CONDITION_FAILED:
                raise
            old = error.item
            if old is not None:
                current = builders.parse_number(old, self._value)
            elif read_unknown:  # a server that ignores ALL_OLD (dynalite): read the count
                got = await sender.send(
                    "GetItem",
                    builders.get_item(self._table, self._key_attribute, self._value, item),
                    idempotent=True,
                    key=item,
                )
                current = builders.parse_number(got.get("Item"), self._value)
            else:
                return False, None
            self.learn(item, current)
            return False, current
        count = builders.parse_number(response.get("Attributes"), self._value)
        self.learn(item, count)
        return True, count


class DirectAdmission(_Admission):
    """One conditional write per hit (none when the known count already rules it out)."""

    __slots__ = ()

    async def admit(self, item: str, cost: int, budget: int, expires: int) -> tuple[bool, int]:
        """``(True, the count right after this hit)`` or ``(False, the count it met)``."""
        known = self.known.get(item, 0)
        if known + cost > budget:
            return False, known
        allowed, count = await self.write(item, cost, budget - cost, expires, read_unknown=False)
        return allowed, known if count is None else count


class _Hit:
    __slots__ = ("budget", "cost", "future")

    def __init__(self, cost: int, budget: int, future: asyncio.Future[tuple[bool, int]]) -> None:
        self.cost = cost
        self.budget = budget
        self.future = future


class CoalescedAdmission(_Admission):
    """Concurrent hits on one item merged into one write of their total (module docstring)."""

    __slots__ = ("_queues", "_tasks")

    def __init__(self, sender: Sender, tasks: Tasks, **names: str) -> None:
        super().__init__(sender, **names)
        self._tasks = tasks
        self._queues: dict[str, list[_Hit]] = {}

    async def admit(self, item: str, cost: int, budget: int, expires: int) -> tuple[bool, int]:
        known = self.known.get(item, 0)
        if known + cost > budget:
            return False, known
        loop = self._tasks.loop
        assert loop is not None
        hit = _Hit(cost, budget, loop.create_future())
        queue = self._queues.get(item)
        if queue is None:
            queue = self._queues[item] = [hit]
            self._tasks.start(self._drain(item, expires, queue))
        else:
            queue.append(hit)
        return await hit.future

    async def _drain(self, item: str, expires: int, queue: list[_Hit]) -> None:
        """Write the item's waiting hits, one merged write at a time, until none are left."""
        batch: list[_Hit] = []
        try:
            while queue:
                known = self.known.get(item, 0)
                batch, total, budget = self._take(queue, known)
                if not batch:
                    continue
                ceiling = budget - total
                try:
                    allowed, count = await self.write(
                        item, total, ceiling, expires, read_unknown=True
                    )
                except Failed as failure:
                    for hit in batch:
                        _fail(
                            hit,
                            Failed(
                                failure.error, failure.attempts, failure.elapsed, failure.queued
                            ),
                        )
                    continue
                except Exception as error:  # a count that is not a number: each caller hears
                    for hit in batch:
                        _fail(hit, error)
                    continue
                assert count is not None
                if allowed:
                    count -= total
                    for hit in batch:
                        count += hit.cost
                        _answer(hit, True, count)
                elif count > ceiling:  # the count passed what is known: take again against it
                    queue[:0] = batch
                else:  # refused below its ceiling: only a count that is not a number does that
                    for hit in batch:
                        _answer(hit, False, count)
                batch = []
        finally:
            if self._queues.get(item) is queue:
                del self._queues[item]
            for hit in (*batch, *queue):  # only when cancelled: the loop is shutting down
                hit.future.cancel()

    @staticmethod
    def _take(queue: list[_Hit], known: int) -> tuple[list[_Hit], int, int]:
        """The next batch from the front of ``queue`` (taken out of it), its total and budget.

        A hit that cannot fit above ``known`` is denied here; the first one that fits alone but
        not beside the batch stays queued, with everything after it."""
        batch: list[_Hit] = []
        total = 0
        budget = 0
        taken = len(queue)
        for index, hit in enumerate(queue):
            if hit.future.done():  # its caller was cancelled before anything was sent
                continue
            if known + hit.cost > hit.budget:
                hit.future.set_result((False, known))
                continue
            smallest = hit.budget if not batch else min(budget, hit.budget)
            if known + total + hit.cost > smallest:
                taken = index
                break
            budget = smallest
            total += hit.cost
            batch.append(hit)
        del queue[:taken]
        return batch, total, budget


def _answer(hit: _Hit, allowed: bool, count: int) -> None:
    if not hit.future.done():
        hit.future.set_result((allowed, count))


def _fail(hit: _Hit, error: BaseException) -> None:
    if not hit.future.done():
        hit.future.set_exception(error)

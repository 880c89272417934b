"""Write strategies: how one write of an amount reaches its item, chosen once per pool.

A strategy's ``apply(item, delta, floor, wire)`` sends one write through the `Sender` and returns
the counter's value right after it. It raises `Refused` when the floor refused it (with the value
met, when known), `Failed` when it finally failed, and `Unreadable` when it applied but the value
it left is not a whole number (someone else wrote the attribute).

- `PlainWrites`: ``ADD``; a lost answer is ambiguous and never retried.
- `ExactlyOnceWrites`: each pool is a writer with a random id that numbers its writes per item;
  a write also sets, on the item, the writer's last sequence and the value its write left, on the
  condition that the stored sequence is older. A lost answer is retried with the same sequence:
  if it had applied, the condition fails, the item shows the sequence, and the write is answered
  with the value *it* left. It needs one write in flight per item (the key queue gives that).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from . import builders
from .clock import Clock
from .errors import DynamoError
from .fences import Attempts, Records
from .observers import Observers
from .sender import Failed, Sender, Wire
from .tasks import Tasks
from .transport import Outcome

__all__ = [
    "MAX_EXACTLY_ONCE_DEADLINE",
    "PRUNE_AFTER",
    "WRITER_SEQ_PREFIX",
    "WRITER_VALUE_PREFIX",
    "ExactlyOnceWrites",
    "PlainWrites",
    "Refused",
    "Unreadable",
    "WriteStrategy",
    "counter_value",
]

logger = logging.getLogger("async_counters")

#: exactly_once: each writer keeps two attributes on an item, its last sequence and the value its
#: last write left. A writer silent this long is pruned by the next new writer of the item.
WRITER_SEQ_PREFIX = "~s:"
WRITER_VALUE_PREFIX = "~v:"
PRUNE_AFTER = 3600.0
#: A retry must never outlive the record it relies on: the retry deadline stays well inside.
MAX_EXACTLY_ONCE_DEADLINE = PRUNE_AFTER / 4
MAX_PRUNED_PER_WRITE = 50
#: First characters of the reserved item names (shards, windows): only those may need a stamp.
_RESERVED = "\ufdd0\ufdd1"


class Refused(Exception):
    """The floor's condition refused the write; ``current`` is the value it met (None: unknown)."""

    def __init__(self, current: int | None) -> None:
        super().__init__(current)
        self.current = current


class Unreadable(Exception):
    """The write applied, but the value it left is not a whole number (``error`` says so)."""

    def __init__(self, error: DynamoError) -> None:
        super().__init__(str(error))
        error.applied = True
        self.error = error


class WriteStrategy(Protocol):
    async def apply(self, item: str, delta: int, floor: int | None, wire: Wire) -> int:
        """Write ``delta`` to ``item`` (kept ``>= floor``); the value right after it."""
        ...


def counter_value(item: Mapping[str, Any] | None, attribute: str, key: str) -> int:
    """The whole number in ``item[attribute]`` (0 if absent), or `DynamoError` ``NotAnInteger``."""
    try:
        return builders.parse_number(item, attribute)
    except ValueError as exc:
        raise DynamoError("NotAnInteger", f"counter {key!r}: {exc}", key=key) from None


def _current(item: Mapping[str, Any] | None, attribute: str) -> int | None:
    """The value a refused condition met, from the item it returned (None when unknown)."""
    if not item:
        return None
    with contextlib.suppress(ValueError):
        return builders.parse_number(item, attribute)
    return None


class PlainWrites:
    """One ``ADD`` per write (see the module docstring)."""

    __slots__ = ("_add", "_key_attribute", "_sender", "_stamp", "_table", "_value_attribute")

    def __init__(
        self,
        sender: Sender,
        *,
        table: str,
        key_attribute: str,
        value_attribute: str,
        stamp: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self._sender = sender
        self._stamp = stamp  # adds a window item's TTL (`windows.stamp`)
        self._table = table
        self._key_attribute = key_attribute
        self._value_attribute = value_attribute
        self._add = builders.adder(table, key_attribute, value_attribute)

    async def apply(self, item: str, delta: int, floor: int | None, wire: Wire) -> int:
        if floor is None:
            params = self._add(item, delta)
        else:
            params = builders.update(
                self._table, self._key_attribute, self._value_attribute, item, delta, floor=floor
            )
        if item[0] in _RESERVED and self._stamp is not None:  # a shard or a window item
            params = self._stamp(item, params)
        try:
            response = await self._sender.send(
                "UpdateItem", params, idempotent=False, key=item, wire=wire
            )
        except Failed as failure:
            error = failure.error
            if floor is not None and error.outcome is Outcome.CONDITION_FAILED:
                raise Refused(_current(error.item, self._value_attribute)) from None
            raise
        try:
            return int(response["Attributes"][self._value_attribute]["N"])
        except (KeyError, TypeError, ValueError):  # absent, or not written as an integer
            pass
        try:
            return counter_value(response.get("Attributes"), self._value_attribute, item)
        except DynamoError as exc:
            raise Unreadable(exc) from None


def new_writer_id() -> str:
    """A short random name for a pool as an exactly-once writer (60 bits, base 32)."""
    return base64.b32encode(secrets.token_bytes(8)).decode()[:12].lower()


class ExactlyOnceWrites:
    """Numbered writes whose lost answers are retried safely (see the module docstring).

    Sequences are the wall clock's microseconds (at least one more than the last per item), so a
    writer that restarts under the same id still numbers above its old writes.
    """

    def __init__(
        self,
        sender: Sender,
        *,
        table: str,
        key_attribute: str,
        value_attribute: str,
        observers: Observers,
        tasks: Tasks,
        clock: Clock,
        writer_id: str | None = None,
    ) -> None:
        self._sender = sender
        self._table = table
        self._key_attribute = key_attribute
        self._value_attribute = value_attribute
        self._observers = observers
        self._tasks = tasks
        self._wall_us = clock.wall_us
        self.writer_id = new_writer_id() if writer_id is None else writer_id
        self._writer = (
            f"{WRITER_SEQ_PREFIX}{self.writer_id}",
            f"{WRITER_VALUE_PREFIX}{self.writer_id}",
        )
        self._seqs: dict[str, int] = {}  # the last sequence used, per item (memory: per key)
        self.records = Records(
            sender, tasks, clock, table=table, key_attribute=key_attribute, writer=self._writer
        )

    async def apply(self, item: str, delta: int, floor: int | None, wire: Wire) -> int:
        """`_apply`, its record's lifetime kept by `Records`: fenced if any attempt was unclear."""
        attempts = Attempts(wire)
        records = self.records
        records.begin(item)
        try:
            return await self._apply(item, delta, floor, attempts)
        finally:
            records.end(item, self._seqs[item], ambiguous=attempts.ambiguous)

    async def _apply(self, item: str, delta: int, floor: int | None, wire: Wire) -> int:
        first = item not in self._seqs
        seq = max(self._seqs.get(item, 0) + 1, self._wall_us())
        self._seqs[item] = seq
        params = builders.update_once(
            self._table,
            self._key_attribute,
            self._value_attribute,
            item,
            delta,
            writer=self._writer,
            seq=seq,
            floor=floor,
            return_all=first,  # the first write to an item looks for stale writers to prune
        )
        try:
            response = await self._sender.send(
                "UpdateItem", params, idempotent=True, key=item, wire=wire
            )
        except Failed as failure:
            if failure.error.outcome is not Outcome.CONDITION_FAILED:
                raise
            stored = failure.error.item or await self._read_writer(item)
            seq_attribute, value_after = self._writer
            if stored and _current(stored, seq_attribute) == seq:
                self._observers.recovered()
                try:  # the value *this* write left, not the counter's value now
                    return counter_value(stored, value_after, item)
                except DynamoError as exc:
                    raise Unreadable(exc) from None
            raise Refused(_current(stored, self._value_attribute) or 0) from None
        attributes = response.get("Attributes") or {}
        if first:
            self._prune_stale_writers(item, attributes)
        try:
            return counter_value(attributes, self._value_attribute, item)
        except DynamoError as exc:
            raise Unreadable(exc) from None

    async def _read_writer(self, item: str) -> dict[str, Any]:
        """The counter and this writer's record, read consistently (for servers without ALL_OLD)."""
        params = builders.get_attributes(
            self._table, self._key_attribute, item, [self._value_attribute, *self._writer]
        )
        response = await self._sender.send("GetItem", params, idempotent=True, key=item)
        found: dict[str, Any] = response.get("Item") or {}
        return found

    def _prune_stale_writers(self, item: str, attributes: Mapping[str, Any]) -> None:
        """Remove, in the background, the records of writers silent for `PRUNE_AFTER` seconds."""
        cutoff = self._wall_us() - int(PRUNE_AFTER * 1_000_000)
        stale: dict[str, tuple[str, int]] = {}
        for name in attributes:
            if not name.startswith(WRITER_SEQ_PREFIX) or name == self._writer[0]:
                continue
            with contextlib.suppress(ValueError, TypeError, KeyError):
                seq = builders.parse_number(attributes, name)
                if seq < cutoff:
                    writer = name[len(WRITER_SEQ_PREFIX) :]
                    stale[name] = (f"{WRITER_VALUE_PREFIX}{writer}", seq)
            if len(stale) >= MAX_PRUNED_PER_WRITE:
                break
        if stale:
            params = builders.prune_writers(self._table, self._key_attribute, item, stale)
            self._tasks.start(self._prune(item, params))

    async def _prune(self, item: str, params: Mapping[str, Any]) -> None:
        try:
            await self._sender.send("UpdateItem", params, idempotent=True, key=item)
        except Failed as failure:  # a writer came back, or the server refused: prune later
            logger.debug("pruning stale writers of %r: %s", item, failure.error)
        else:
            self._observers.pruned()

"""Reads of counters: one item, or every shard of a sharded one summed, through the sender.

A counter's total is the sum of its items: its own (shard 0), the shards this pool writes, and
whatever its first item records that other writers used: ``~shard-count`` (the widest sharding
ever used, reserved shard names) and ``~shards`` (the same for the old names ``key#n``, which
pools wrote before shard names were reserved: still read, never written). Batch reads go 100 keys
a call, their ``UnprocessedKeys`` retried by the sender's one retry loop. Sums are Python ints.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import builders
from .sender import Failed, Sender, public_error
from .writes import counter_value

__all__ = ["Reads"]


class Reads:
    """``get`` and ``get_many`` of a pool."""

    __slots__ = ("_key_attribute", "_sender", "_shards_of", "_table", "_value_attribute")

    def __init__(
        self,
        sender: Sender,
        *,
        table: str,
        key_attribute: str,
        value_attribute: str,
        shards_of: Callable[[str], int],
    ) -> None:
        self._sender = sender
        self._table = table
        self._key_attribute = key_attribute
        self._value_attribute = value_attribute
        self._shards_of = shards_of

    async def get(self, key: str) -> int:
        if self._shards_of(key) > 1:
            return (await self.get_many([key]))[key]
        params = builders.get_attributes(
            self._table,
            self._key_attribute,
            key,
            [self._value_attribute, builders.SHARDS_ATTRIBUTE, builders.LEGACY_SHARDS_ATTRIBUTE],
        )
        try:
            response = await self._sender.send("GetItem", params, idempotent=True, key=key)
        except Failed as failure:
            raise public_error(failure, table=self._table, key=key) from None
        item = response.get("Item")
        value = counter_value(item, self._value_attribute, key)
        others = self._recorded_items(key, item, 1)
        if others:  # written sharded by some pool: the other shards count too
            items = await self._items(others)
            value += sum(
                counter_value(items.get(name), self._value_attribute, key) for name in others
            )
        return value

    async def get_many(self, keys: Iterable[str]) -> dict[str, int]:
        """Keys must be checked already, and unique."""
        wanted = list(keys)
        shards_of = self._shards_of
        shard_key = builders.shard_key
        items = await self._items(
            [shard_key(key, shard) for key in wanted for shard in range(shards_of(key))]
        )
        attribute = self._value_attribute
        values: dict[str, int] = {}
        more: dict[str, list[str]] = {}
        for key in wanted:
            n = shards_of(key)
            values[key] = sum(
                counter_value(items.get(shard_key(key, shard)), attribute, key)
                for shard in range(n)
            )
            others = self._recorded_items(key, items.get(key), n)
            if others:  # sharded wider before, or the old way: those items hold part of it
                more[key] = others
        if more:
            found = await self._items([name for names in more.values() for name in names])
            for key, names in more.items():
                values[key] += sum(counter_value(found.get(name), attribute, key) for name in names)
        return values

    def _recorded_items(self, key: str, first: Mapping[str, Any] | None, read: int) -> list[str]:
        """The items of ``key`` beyond the ``read`` first shards that its first item records."""
        names = [
            builders.shard_key(key, shard)
            for shard in range(read, _width(first, builders.SHARDS_ATTRIBUTE))
        ]
        names += [
            builders.legacy_shard_key(key, shard)
            for shard in range(1, _width(first, builders.LEGACY_SHARDS_ATTRIBUTE))
        ]
        return names

    async def _items(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Items by key (absent when never written), read consistently, 100 keys per call."""
        unique = list(dict.fromkeys(names))
        items: dict[str, dict[str, Any]] = {}
        size = builders.MAX_BATCH_GET
        chunks = [unique[i : i + size] for i in range(0, len(unique), size)]
        if len(chunks) == 1:
            await self._batch(chunks[0], items)
            return items
        outcomes = await asyncio.gather(
            *(self._batch(chunk, items) for chunk in chunks), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return items

    async def _batch(self, names: list[str], items: dict[str, dict[str, Any]]) -> None:
        table, key_attribute = self._table, self._key_attribute

        def more(response: dict[str, Any]) -> Mapping[str, Any] | None:
            for item in response.get("Responses", {}).get(table, []):
                items[item[key_attribute]["S"]] = item
            unprocessed = response.get("UnprocessedKeys") or {}
            if not unprocessed.get(table, {}).get("Keys"):
                return None
            return {"RequestItems": unprocessed}

        params = builders.batch_get(table, key_attribute, self._value_attribute, names)
        try:
            await self._sender.send("BatchGetItem", params, idempotent=True, more=more)
        except Failed as failure:
            raise public_error(failure, table=table, key=None) from None


def _width(item: Mapping[str, Any] | None, attribute: str) -> int:
    """The widest sharding recorded in ``attribute`` of a counter's first item (1: none)."""
    if not item or attribute not in item:
        return 1
    try:
        return min(max(1, builders.parse_number(item, attribute)), 1000)
    except ValueError:
        return 1

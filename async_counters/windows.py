"""Windowed counters: one item per counter and fixed window, with a time-to-live attribute.

Windows are fixed and aligned to the Unix epoch: the window of ``W`` seconds holding wall time
``t`` starts at ``floor(t / W) * W``, so every process agrees on it without talking. The count of
``key`` in that window lives in its own item, named

    WINDOW_PREFIX + f"{W}:{start}:" + key

``WINDOW_PREFIX`` is a Unicode noncharacter that no user key may begin with (`builders.check_key`),
different from the shard prefix, so that no user key, and no shard of one, can name a window item;
``W`` and ``start`` are digits, so the first two ``:`` split them off. A window item carries
``ttl_attribute`` = window end + one more window + `GRACE` (epoch seconds): DynamoDB deletes it
some time after that, and the previous window is still there for a sliding-window estimate.

Reads never count an expired window, whatever TTL has or has not deleted yet: a reader computes
the current window's item from the clock and reads that one; an old window's item, expired or
not, is simply never the one read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import builders
from .checks import whole

__all__ = [
    "GRACE",
    "MAX_WINDOW",
    "WINDOW_PREFIX",
    "PreviousCounts",
    "Window",
    "check_window",
    "expires_at",
    "stamp",
    "window_item",
]

#: Window items' names begin with this noncharacter (shards use U+FDD0).
WINDOW_PREFIX = builders.WINDOW_PREFIX
#: Seconds a window item outlives the window after its own (kept for sliding estimates).
GRACE = 60
#: The longest window: about 100 years, far beyond any quota period.
MAX_WINDOW = 100 * 366 * 24 * 3600
#: Room a window item's name must leave for a shard's suffix.
_NAME_ROOM = builders.MAX_KEY_BYTES - builders.SHARD_NAME_BYTES


def check_window(window: object) -> int:
    """A window is a whole number of seconds, >= 1 (TypeError / ValueError otherwise)."""
    window = whole(window, "window", what="an int number of seconds")
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window must be within [1, {MAX_WINDOW}] seconds, got {window}")
    return window


@dataclass(frozen=True, slots=True)
class Window:
    """One fixed window: ``[start, start + length)`` in epoch seconds."""

    length: int
    start: int

    @classmethod
    def at(cls, length: int, now: float) -> Window:
        """The window of ``length`` seconds holding wall time ``now`` (epoch seconds)."""
        return cls(length, int(now // length) * length)

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def previous(self) -> Window:
        return Window(self.length, self.start - self.length)

    def item(self, key: str) -> str:
        """The item holding ``key``'s count in this window."""
        name = f"{WINDOW_PREFIX}{self.length}:{self.start}:{key}"
        if len(name.encode()) > _NAME_ROOM:
            raise ValueError(
                f"counter key is too long for a windowed counter: its window item's name would "
                f"exceed DynamoDB's {builders.MAX_KEY_BYTES} bytes less room for shards"
            )
        return name

    def elapsed(self, now: float) -> float:
        """The fraction of the window elapsed at ``now``, within [0, 1]."""
        return min(1.0, max(0.0, (now - self.start) / self.length))


def window_item(key: str, window: int, now: float) -> str:
    """The item of ``key`` for the ``window``-second window holding ``now``."""
    return Window.at(window, now).item(key)


def expires_at(item: str) -> int | None:
    """The TTL value of a window item (or a shard of one); None for any other item."""
    name = item[1:] if item.startswith(builders.SHARD_PREFIX) else item
    if not name.startswith(WINDOW_PREFIX):
        return None
    length, start, _ = name[1:].split(":", 2)
    return int(start) + 2 * int(length) + GRACE


def stamp(ttl_attribute: str) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """``stamp(item, params)``: an UpdateItem that also sets a window item's TTL attribute.

    Other items' params come back unchanged. The params' names are copied, never mutated: a
    builder may share them between requests.
    """

    def add_ttl(item: str, params: dict[str, Any]) -> dict[str, Any]:
        expires = expires_at(item)
        if expires is None:
            return params
        return {
            **params,
            "UpdateExpression": params["UpdateExpression"] + " SET #ttl = :ttl",
            "ExpressionAttributeNames": {
                **params["ExpressionAttributeNames"],
                "#ttl": ttl_attribute,
            },
            "ExpressionAttributeValues": {
                **params["ExpressionAttributeValues"],
                ":ttl": {"N": str(expires)},
            },
        }

    return add_ttl


def update_time_to_live(table: str, ttl_attribute: str) -> dict[str, Any]:
    """UpdateTimeToLive turning TTL on for ``ttl_attribute``."""
    return {
        "TableName": table,
        "TimeToLiveSpecification": {"Enabled": True, "AttributeName": ttl_attribute},
    }


class PreviousCounts:
    """The previous window's count per key, for sliding estimates: one read per key and window,
    shared by the hits that need it at once; a failed read is tried again by the next hit.
    Memory: at most ``limit`` keys, then it starts over."""

    __slots__ = ("_cached", "_limit")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        # key -> (the previous window's start, the read of its count)
        self._cached: dict[str, tuple[int, asyncio.Future[int]]] = {}

    async def get(self, key: str, start: int, read: Callable[[], Awaitable[int]]) -> int:
        """The count of ``key``'s window that began at ``start``, read by ``read`` once."""
        cached = self._cached.get(key)
        if cached is None or cached[0] != start:
            if len(self._cached) >= self._limit:
                self._cached.clear()
            cached = self._cached[key] = (start, asyncio.ensure_future(read()))
        try:
            return await asyncio.shield(cached[1])
        except BaseException:
            if cached[1].done() and self._cached.get(key) is cached:
                del self._cached[key]  # a failed read is tried again by the next hit
            raise

    def forget(self, key: str) -> None:
        self._cached.pop(key, None)

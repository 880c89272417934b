"""Sharding: which item a write to a counter goes to, spreading one counter over N items.

Shard 0 is the counter's own item; the others have reserved names (`builders.shard_key`). Before
a pool first writes a sharded counter it records, on the first item, the widest N ever used
(``~shard-count``, a conditional ``SET``), so that any reader finds every shard, however each
writer was configured. A write goes to the shard that can take it soonest (`soonest`): the one
least held back by its pace, then with the fewest writes waiting or on the wire, ties broken at
random; never a shard paced or queued behind others while one is idle, never a fixed one by rule.

Exactly-once writers pick the same way: a writer numbers its writes per *item* and the key queue
keeps one write in flight per item, so a writer may use every shard (it then keeps its two writer
attributes on each shard it wrote, pruned as on any item).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import zlib
from collections.abc import Callable, Mapping

from . import builders, windows
from .checks import whole
from .sender import Failed, Sender, public_error
from .tasks import Tasks
from .transport import Outcome

__all__ = [
    "MAX_SHARDS",
    "Load",
    "Pick",
    "Sharding",
    "check_shards",
    "round_robin",
    "soonest",
    "writer_shard",
]

#: The most items one counter may be spread over.
MAX_SHARDS = 1000

#: How a write picks a shard of a counter spread over ``n`` items: ``pick(key, n)``.
Pick = Callable[[str, int], int]


#: What a shard (by item name) has ahead of a new write: (its pace's delay in seconds, writes
#: waiting or on the wire). ``Sender.load``.
Load = Callable[[str], tuple[float, int]]

#: Counters whose shard names are kept for `soonest` (beyond it, names are rebuilt per write).
NAMES_KEPT = 10_000


def soonest(load: Load, *, rng: random.Random | None = None) -> Pick:
    """The shard that can take a write soonest: least paced, then least loaded, ties at random.

    Shards are looked at from a random one on, and the first with nothing ahead of it is taken
    at once (under light load that is a uniform spread); otherwise the one with the least ahead.
    Without ``rng``, the draws are the `random` module's: a run seeded there repeats.
    """
    draw = rng.randrange if rng is not None else random.randrange
    names: dict[str, list[str]] = {}

    def pick(key: str, n: int) -> int:
        items = names.get(key)
        if items is None or len(items) != n:
            items = [builders.shard_key(key, i) for i in range(n)]
            if len(names) < NAMES_KEPT:
                names[key] = items
        start = draw(n)
        best, best_load = start, load(items[start])
        if best_load == (0.0, 0):
            return start
        for step in range(1, n):
            i = (start + step) % n
            here = load(items[i])
            if here < best_load:
                if here == (0.0, 0):
                    return i
                best, best_load = i, here
        return best

    return pick


def round_robin() -> Pick:
    """Shards in turn, over all counters: writes spread evenly."""
    turns = itertools.count()
    return lambda key, n: next(turns) % n


def writer_shard(writer_id: str) -> Pick:
    """The same shard of a counter for every write of this writer."""
    return lambda key, n: zlib.crc32(f"{writer_id}/{key}".encode()) % n


def check_shards(shards: object) -> tuple[int, dict[str, int]]:
    """``shards=`` as (the default count, counts per key)."""

    def count(value: object, what: str) -> int:
        value = whole(value, what)
        if not 1 <= value <= MAX_SHARDS:
            raise ValueError(f"{what} must be within [1, {MAX_SHARDS}], got {value}")
        return value

    if isinstance(shards, Mapping):
        return 1, {builders.check_key(k): count(v, f"shards[{k!r}]") for k, v in shards.items()}
    return count(shards, "shards"), {}


class Sharding:
    """Counter to item, for the writes of a pool with ``shards`` other than 1."""

    __slots__ = (
        "_default",
        "_key_attribute",
        "_per_key",
        "_pick",
        "_recorded",
        "_recording",
        "_sender",
        "_table",
        "_tasks",
        "_ttl_attribute",
    )

    def __init__(
        self,
        default: int,
        per_key: Mapping[str, int],
        *,
        pick: Pick,
        sender: Sender,
        tasks: Tasks,
        table: str,
        key_attribute: str,
        ttl_attribute: str | None = None,
    ) -> None:
        self._ttl_attribute = ttl_attribute  # set on a window item's record (`windows`)
        self._default = default
        self._per_key = dict(per_key)
        self._pick = pick
        self._sender = sender
        self._tasks = tasks
        self._table = table
        self._key_attribute = key_attribute
        self._recorded: set[str] = set()  # counters whose width this pool recorded (per key)
        self._recording: dict[str, asyncio.Future[None]] = {}  # records on their way

    def of(self, key: str) -> int:
        """How many items ``key``'s writes are spread over (1: not sharded)."""
        return self._per_key.get(key, self._default)

    def check(self, key: str, floor: int | None = None) -> int:
        """The key's width, once its write is known to be possible sharded (before sending)."""
        n = self.of(key)
        if n > 1:
            if floor is not None:
                raise ValueError(
                    f"counter {key!r} is sharded: a floor holds on one item, not on a sum "
                    "spread over several (use an unsharded counter for stock and the like)"
                )
            if len(key.encode()) + builders.SHARD_NAME_BYTES > builders.MAX_KEY_BYTES:
                raise ValueError(
                    f"counter key is too long to be sharded: its shards' names would exceed "
                    f"DynamoDB's {builders.MAX_KEY_BYTES} bytes"
                )
        return n

    async def item(self, key: str, n: int) -> str:
        """The item a write to ``key`` (spread over ``n``) goes to; recorded before its first.

        Callers that arrive while the record is being written wait for that one write: a crowd
        on a new counter must not send a record each (all to the first item, unpaced)."""
        if key not in self._recorded:
            recording = self._recording.get(key)
            if recording is None:
                recording = self._recording[key] = asyncio.ensure_future(self._record(key, n))
                recording.add_done_callback(functools.partial(self._recorded_one, key))
            await asyncio.shield(recording)
            self._recorded.add(key)
        return builders.shard_key(key, self._pick(key, n))

    def item_nowait(self, key: str, n: int) -> str:
        """The same for a background addition: the record goes ahead of it in the background."""
        if key not in self._recorded:
            self._recorded.add(key)
            self._tasks.start(self._record(key, n))
        return builders.shard_key(key, self._pick(key, n))

    def _recorded_one(self, key: str, _: object) -> None:
        self._recording.pop(key, None)

    async def _record(self, key: str, n: int) -> None:
        """Record on the key's first item that it is spread over ``n`` items (never fewer)."""
        expires = None if self._ttl_attribute is None else windows.expires_at(key)
        params = builders.record_shards(
            self._table,
            self._key_attribute,
            key,
            n,
            ttl=None
            if expires is None or self._ttl_attribute is None
            else (self._ttl_attribute, expires),
        )
        try:
            await self._sender.send("UpdateItem", params, idempotent=True, key=key)
        except Failed as failure:
            if failure.error.outcome is not Outcome.CONDITION_FAILED:  # wider already: fine
                raise public_error(failure, table=self._table, key=key) from None

"""A `limits` storage on DynamoDB: fixed window, moving window and sliding-window counter.

    import async_counters.limits_storage  # registers the scheme (needs the [limits] extra)
    from limits import parse
    from limits.aio.strategies import MovingWindowRateLimiter
    from limits.storage import storage_from_string

    storage = storage_from_string("async+dynamodb://counters?region=eu-west-1")
    limiter = MovingWindowRateLimiter(storage)
    allowed = await limiter.hit(parse("100/minute"), "user-42")

The URI names the table (``async+dynamodb://TABLE``) and takes ``region``, ``endpoint_url``,
``transport``, ``max_in_flight``, ``key_attribute``, ``value_attribute``, ``ttl_attribute``,
``prefix`` (of every item name, default ``limits/``) and ``create_table=true`` (create the table
and turn TTL on at first use) as query parameters, or the same names as keyword options; or
``pool=`` an open `CounterPool` instead of the connection options. An owned pool opens on first
use, on the running event loop; ``await storage.aclose()`` closes it.

Each limit and key has its own item, written by ONE conditional ``UpdateItem`` per decision, never
a read and then a write, so the limits hold exactly under any concurrency, across processes:

- **Fixed window** (``incr``): ``ADD count`` on condition that the window has not ended
  (``end_ms > now``). The window starts at its first hit, as in `limits`' own storages: when it
  has ended, a second conditional write (``SET count = n, end_ms = now + expiry`` on condition
  that it has ended) starts the next; of concurrent starters one wins and the others add to its
  window. The strategy admits a hit when the count it returns is within the limit (denied hits
  are counted too, as in every `limits` storage).
- **Moving window** (``acquire_entry``): the item has ``limit`` slots ``s0 .. s{limit-1}``, each
  holding one hit's time (ms). A hit writes its time into a slot on condition that the slot is
  free (absent, or older than ``now - expiry``). Each slot holds at most one hit of any span of
  ``expiry`` seconds, so no such span ever holds more than ``limit`` hits, whatever the order of
  arrival (spans as the hits' own clocks read them: between clocks ``d`` apart, a span of
  ``expiry - d`` real seconds). A refusal returns the item as it was
  (``ReturnValuesOnConditionCheckFailure=ALL_OLD``): if it shows no free slot the hit is denied
  (the window was full then); else the hit tries again on a slot that was free, which fails
  only if some other hit took that slot meanwhile. A window seen full stays full until its
  oldest hit leaves it (nothing but time frees a slot), so until then this storage denies hits
  on it without a request (a ``clear`` from another process is seen only after that time);
  then one hit per process tries the slot that frees first, asking for the item as it is
  after, and the others wait for it: one request per freed slot, not one per waiting hit.
  The slots are a bounded list of timestamps in top-level attributes: DynamoDB can neither trim
  a list nor test and rewrite the same list in one update, and the embedded memory backend
  takes no nested paths.
- **Sliding-window counter** (``acquire_sliding_window_entry``): fixed windows aligned to the
  epoch, one item each; the previous window's final count is read once per key and window (and
  shared by concurrent hits), then ``ADD count`` on condition ``count <= limit - cost -
  floor(previous * (1 - elapsed))``, `limits`' weighted estimate.

Reads never count an expired window, whatever TTL has or has not deleted yet: a fixed window is
counted only while ``end_ms > now``, a moving slot only while younger than ``expiry``, a sliding
window only when its item is the current (or previous) window by the clock. Every item carries
``ttl_attribute`` so that DynamoDB deletes it some time after it stops mattering.

Errors are the pool's (`CounterError`), or `limits.errors.StorageError` wrapping them with
``wrap_exceptions=True``. A write whose outcome is unknown raises `AmbiguousWriteError`: the hit
may or may not have been counted. ``reset()`` scans the table for the items named with ``prefix``
and deletes them: a full scan, for tests and maintenance.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs, unquote, urlsplit

from . import builders
from .errors import AmbiguousWriteError, CounterError
from .pool import CounterPool
from .sender import Failed, public_error
from .transport import Outcome
from .windows import GRACE, PreviousCounts, Window

try:
    from limits.aio.storage import MovingWindowSupport, SlidingWindowCounterSupport, Storage
    from limits.errors import ConfigurationError
except ImportError:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "async_counters.limits_storage needs limits: pip install 'async-counters[limits]'"
    ) from None

__all__ = ["DynamoDBStorage", "StorageURIError"]

SCHEME: Final = "async+dynamodb"
#: What every item this storage writes is named with, unless ``prefix=`` says otherwise.
DEFAULT_PREFIX: Final = "limits/"
#: The attribute holding a fixed window's end (epoch milliseconds).
END_ATTRIBUTE: Final = "end_ms"
#: The most slots a moving window may have: its item must stay far below DynamoDB's 400 KB.
MAX_MOVING_LIMIT: Final = 20_000
#: The most entries one moving-window hit may take (each is a term of its condition).
MAX_MOVING_COST: Final = 64
#: How many keys' previous-window counts a storage caches before starting over.
MAX_CACHED: Final = 10_000
#: Concurrent deletes of ``reset()`` and ``clear()``.
_DELETES: Final = 32
_TABLE: Final = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_SLOT: Final = re.compile(r"s[0-9]+")
_TEXT_OPTIONS: Final = (
    "region",
    "endpoint_url",
    "transport",
    "key_attribute",
    "value_attribute",
    "ttl_attribute",
    "prefix",
)
_OPTIONS: Final = frozenset({*_TEXT_OPTIONS, "region_name", "max_in_flight", "create_table"})
_POOL_OPTIONS: Final = frozenset(_OPTIONS - {"prefix"})
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


class StorageURIError(ConfigurationError, ValueError):
    """The storage URI or an option cannot configure the storage (raised before any request)."""


def _refuse(message: str) -> StorageURIError:
    return StorageURIError(
        f"{message} (expected {SCHEME}://TABLE?region=REGION[&endpoint_url=URL&...])"
    )


def parse_uri(uri: str, options: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """The table and the options a storage URI and keyword options name (pure; refuses nonsense).

    The message never repeats the URI: it could carry a secret someone put in it.
    """
    if not isinstance(uri, str):
        raise _refuse(f"the storage URI must be a str, not {type(uri).__name__}")
    try:
        parts = urlsplit(uri)
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise _refuse("the storage URI cannot be parsed") from None
    if parts.scheme != SCHEME:
        raise _refuse(f"the scheme must be {SCHEME!r}, not {parts.scheme!r}")
    if "@" in parts.netloc:
        raise _refuse("the storage URI must not carry credentials: the pool finds its own")
    table = unquote(parts.netloc)
    if not table:
        raise _refuse("the storage URI names no table")
    if not _TABLE.fullmatch(table):
        raise _refuse(f"{table!r} is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)")
    if parts.path not in ("", "/") or parts.fragment:
        raise _refuse("the table is the URI's host part; a path or fragment means nothing here")
    merged: dict[str, object] = {}
    for name, given in query.items():
        if name not in _OPTIONS:
            raise _refuse(f"unknown option {name!r} (known: {', '.join(sorted(_OPTIONS))})")
        if len(given) != 1:
            raise _refuse(f"option {name!r} is given {len(given)} times")
        merged[name] = given[0]
    for name, value in options.items():
        if name not in _OPTIONS:
            raise _refuse(f"unknown option {name!r} (known: {', '.join(sorted(_OPTIONS))})")
        if name in merged:
            raise _refuse(f"option {name!r} is given both in the URI and as a keyword")
        merged[name] = value
    if "region_name" in merged:
        if "region" in merged:
            raise _refuse("give region or region_name, not both")
        merged["region"] = merged.pop("region_name")
    for name in _TEXT_OPTIONS:
        if name in merged and (not isinstance(merged[name], str) or not merged[name]):
            raise _refuse(f"option {name!r} must be a non-empty str")
    if "max_in_flight" in merged:
        merged["max_in_flight"] = _integer(merged["max_in_flight"], "max_in_flight")
    if "create_table" in merged:
        merged["create_table"] = _boolean(merged["create_table"], "create_table")
    endpoint = merged.get("endpoint_url")
    if isinstance(endpoint, str) and urlsplit(endpoint).scheme not in ("http", "https"):
        raise _refuse("option 'endpoint_url' must be an http(s) URL")
    if "transport" in merged and merged["transport"] not in ("fast", "botocore"):
        raise _refuse("option 'transport' must be 'fast' or 'botocore'")
    for name in ("key_attribute", "ttl_attribute"):
        if isinstance(merged.get(name), str) and _SLOT.fullmatch(str(merged[name])):
            raise _refuse(f"option {name!r} must not look like a moving-window slot (s0, s1...)")
    if isinstance(merged.get("prefix"), str):
        builders.check_key(merged["prefix"])
    return table, merged


def _integer(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _refuse(f"option {name!r} must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise _refuse(f"option {name!r} must be a whole number, not {value!r}") from None
    if number < 1:
        raise _refuse(f"option {name!r} must be >= 1")
    return number


def _boolean(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise _refuse(f"option {name!r} must be true or false, not {value!r}")


class _Marker:
    __slots__ = ("on_wire",)

    def __init__(self) -> None:
        self.on_wire = False


class DynamoDBStorage(Storage, MovingWindowSupport, SlidingWindowCounterSupport):
    """`limits`' async storage on a DynamoDB table, through a `CounterPool` (see the module)."""

    STORAGE_SCHEME: ClassVar[list[str]] = [SCHEME]  # type: ignore[misc]

    def __init__(
        self,
        uri: str,
        wrap_exceptions: bool = False,
        *,
        pool: CounterPool | None = None,
        **options: float | str | bool,
    ) -> None:
        table, settings = parse_uri(uri, options)
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.prefix = str(settings.pop("prefix", DEFAULT_PREFIX))
        self._create_table = bool(settings.pop("create_table", False))
        if pool is not None:
            if not isinstance(pool, CounterPool):
                raise _refuse(f"pool must be a CounterPool, not {type(pool).__name__}")
            if settings.keys() & _POOL_OPTIONS:
                names = ", ".join(sorted(settings.keys() & _POOL_OPTIONS))
                raise _refuse(f"with pool=, the pool's own options apply; drop {names}")
            if pool.table != table:
                raise _refuse(f"the URI names table {table!r} but the pool's is {pool.table!r}")
            self.pool = pool
            self._owned = False
        else:
            region = settings.pop("region", None)
            try:
                self.pool = CounterPool(table, region_name=region, **settings)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                raise _refuse(str(exc)) from None
            self._owned = True
        self._opening: asyncio.Future[None] | None = None
        self._creating: asyncio.Future[None] | None = None
        # fixed-window item -> the start of its next window under way (one at a time)
        self._starting: dict[str, asyncio.Future[None]] = {}
        # moving-window item seen full -> (when its oldest hit leaves it, that hit's slot)
        self._full: dict[str, tuple[int, int]] = {}
        # moving-window item -> the attempt under way on the slot that freed itself
        self._probes: dict[str, asyncio.Future[None]] = {}
        self._previous = PreviousCounts(MAX_CACHED)  # for sliding windows

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return CounterError

    # -- lifecycle ---------------------------------------------------------------------------

    async def _ready(self) -> CounterPool:
        """The pool, opened (and the table created, if asked) on first use."""
        pool = self.pool
        if self._owned:
            if self._opening is None:
                self._opening = asyncio.ensure_future(pool.open())
            await asyncio.shield(self._opening)  # an open that failed keeps failing
        if pool._transport is None or pool.closed:
            raise pool._not_open()
        if self._create_table:
            if self._creating is None:
                self._creating = asyncio.ensure_future(pool.ensure_table(ttl=True))
            try:
                await asyncio.shield(self._creating)
            except BaseException:
                if self._creating.done():
                    self._creating = None  # tried again by the next call
                raise
            self._create_table = False
        return pool

    async def aclose(self) -> None:
        """Close the pool this storage built (one it was given stays open)."""
        if self._owned:
            waited = [f for f in (self._opening, self._creating) if f is not None]
            await asyncio.gather(*waited, return_exceptions=True)
            await self.pool.aclose()

    # -- items and requests ------------------------------------------------------------------

    def _item(self, kind: str, key: str) -> str:
        builders.check_key(key)
        return builders.check_key(f"{self.prefix}{kind}/{key}")

    def _now_ms(self, pool: CounterPool) -> int:
        return pool._clock.wall_us() // 1000

    async def _update(
        self, pool: CounterPool, item: str, params: dict[str, Any], amount: int
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """One conditional write: (its response, None), or (None, the item as it was) when its
        condition failed. Anything else raises the pool's error."""
        try:
            return await pool._sender.send(
                "UpdateItem", params, idempotent=False, key=item, wire=_Marker()
            ), None
        except Failed as failure:
            error = failure.error
            if error.outcome is Outcome.CONDITION_FAILED:
                return None, dict(error.item or {})
            if error.outcome is Outcome.AMBIGUOUS:
                raise AmbiguousWriteError(
                    key=item, amount=amount, attempts=failure.attempts, reason=str(error)
                ) from None
            raise public_error(failure, table=pool.table, key=item) from None

    async def _get_item(self, pool: CounterPool, item: str) -> dict[str, Any]:
        params = {**_base(pool, item), "ConsistentRead": True}
        try:
            response = await pool._sender.send("GetItem", params, idempotent=True, key=item)
        except Failed as failure:
            raise public_error(failure, table=pool.table, key=item) from None
        found: dict[str, Any] = response.get("Item") or {}
        return found

    async def _delete(self, pool: CounterPool, items: list[str]) -> None:
        async def delete(item: str) -> None:
            try:
                await pool._sender.send("DeleteItem", _base(pool, item), idempotent=True, key=item)
            except Failed as failure:
                raise public_error(failure, table=pool.table, key=item) from None

        for start in range(0, len(items), _DELETES):
            await asyncio.gather(*(delete(item) for item in items[start : start + _DELETES]))

    # -- Storage: fixed window ---------------------------------------------------------------

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s window (started now if none is running); the count after."""
        pool = await self._ready()
        expiry = _seconds(expiry, "expiry")
        amount = _amount(amount)
        item = self._item("fixed", key)
        for _ in range(3):  # each lost round means another caller started a window meanwhile
            response, _old = await self._update(
                pool, item, fixed_add(pool, item, amount, self._now_ms(pool)), amount
            )
            if response is not None:
                return builders.parse_number(response.get("Attributes"), pool.value_attribute)
            starting = self._starting.get(item)
            if starting is not None:  # one start per key at a time in this process; then add
                await asyncio.shield(starting)
                continue
            starting = self._starting[item] = asyncio.get_running_loop().create_future()
            try:
                params = fixed_start(pool, item, amount, self._now_ms(pool), expiry)
                response, _old = await self._update(pool, item, params, amount)
            finally:
                del self._starting[item]
                starting.set_result(None)
            if response is not None:
                return amount
        raise CounterError(f"{key!r}: its window kept restarting under this call", key=key)

    async def get(self, key: str) -> int:
        """The count of ``key``'s running window (0 when it ended, even if still stored)."""
        pool = await self._ready()
        found = await self._get_item(pool, self._item("fixed", key))
        if builders.parse_number(found, END_ATTRIBUTE) <= self._now_ms(pool):
            return 0
        return builders.parse_number(found, pool.value_attribute)

    async def get_expiry(self, key: str) -> float:
        """When ``key``'s running window ends (epoch seconds; now, when none is running)."""
        pool = await self._ready()
        found = await self._get_item(pool, self._item("fixed", key))
        now, end = self._now_ms(pool), builders.parse_number(found, END_ATTRIBUTE)
        return (end if end > now else now) / 1000

    async def clear(self, key: str) -> None:
        """Forget ``key``'s fixed and moving windows."""
        pool = await self._ready()
        moving = self._item("moving", key)
        self._full.pop(moving, None)
        await self._delete(pool, [self._item("fixed", key), moving])

    async def check(self) -> bool:
        """Whether the table answers and is active."""
        try:
            pool = await self._ready()
            described = await pool._send("DescribeTable", {"TableName": pool.table})
        except Exception:  # a health check answers, it does not raise
            return False
        return bool(described.get("Table", {}).get("TableStatus") == "ACTIVE")

    async def reset(self) -> int | None:
        """Delete every item named with this storage's prefix (a scan of the whole table)."""
        pool = await self._ready()
        params: dict[str, Any] = {
            "TableName": pool.table,
            "FilterExpression": "begins_with(#k, :p)",
            "ProjectionExpression": "#k",
            "ExpressionAttributeNames": {"#k": pool.key_attribute},
            "ExpressionAttributeValues": {":p": {"S": self.prefix}},
            "ConsistentRead": True,
            "ReturnConsumedCapacity": builders.CONSUMED,
        }
        self._full.clear()
        deleted = 0
        while True:
            try:
                page = await pool._sender.send("Scan", params, idempotent=True)
            except Failed as failure:
                raise public_error(failure, table=pool.table, key=None) from None
            items = [found[pool.key_attribute]["S"] for found in page.get("Items", [])]
            await self._delete(pool, items)
            deleted += len(items)
            if not page.get("LastEvaluatedKey"):
                return deleted
            params = {**params, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    # -- MovingWindowSupport -----------------------------------------------------------------

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Take ``amount`` of ``limit`` slots for ``expiry`` seconds, if that many are free."""
        pool = await self._ready()
        limit, expiry, amount = _moving(limit, expiry, amount)
        if amount > limit:
            return False
        item = self._item("moving", key)
        while True:
            now = self._now_ms(pool)
            full = self._full.get(item)
            if full is None:
                return await self._take(pool, item, limit, expiry, amount, now, None)
            if now < full[0]:  # seen full, and no slot can free itself before then
                return False
            probe = self._probes.get(item)
            if probe is None:
                break
            await asyncio.shield(probe)  # one hit a process tries the slot that freed itself
        probe = self._probes[item] = asyncio.get_running_loop().create_future()
        try:
            return await self._take(pool, item, limit, expiry, amount, now, full[1])
        finally:
            del self._probes[item]
            probe.set_result(None)

    async def _take(
        self,
        pool: CounterPool,
        item: str,
        limit: int,
        expiry: int,
        amount: int,
        now: int,
        freed: int | None,
    ) -> bool:
        """Conditional writes of ``now`` into free slots until one is admitted or the item is
        seen without enough free slots. ``freed``: a probe's slot, the oldest of a full item;
        a probe asks for the item after its write, to know whether it is full again."""
        cutoff = now - expiry * 1000
        free: range | list[int] = range(limit)  # nothing known yet: any slot may be free
        slots = [freed] if freed is not None and amount == 1 else random.sample(free, amount)
        # A lost race means another hit took a slot that was free: at most `limit` of those.
        for _ in range(limit + 1):
            params = moving_take(pool, item, slots, now, cutoff, expiry, after=freed is not None)
            response, old = await self._update(pool, item, params, amount)
            state = old if response is None else response.get("Attributes")
            if state is not None:
                stamps = [_slot(state, slot) for slot in range(limit)]
                free = [slot for slot, stamp in enumerate(stamps) if stamp <= cutoff]
                self._seen(item, stamps, free, expiry)
            if response is not None:
                return True
            if len(free) < amount:
                return False
            slots = random.sample(free, amount)
        return False

    def _seen(self, item: str, stamps: list[int], free: list[int], expiry: int) -> None:
        """Remember a moving-window item seen full: until when, and which slot frees first."""
        if free:
            self._full.pop(item, None)
            return
        oldest = min(range(len(stamps)), key=stamps.__getitem__)
        if len(self._full) >= MAX_CACHED and item not in self._full:
            self._full.clear()
        self._full[item] = (stamps[oldest] + expiry * 1000, oldest)

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(the oldest hit still in the window, epoch seconds; how many hits are in it)."""
        pool = await self._ready()
        limit, expiry, _ = _moving(limit, expiry, 1)
        found = await self._get_item(pool, self._item("moving", key))
        now = self._now_ms(pool)
        cutoff = now - expiry * 1000
        live = [stamp for stamp in (_slot(found, s) for s in range(limit)) if stamp > cutoff]
        return (min(live) if live else now) / 1000, len(live)

    # -- SlidingWindowCounterSupport ---------------------------------------------------------

    def _sliding_item(self, key: str, window: Window) -> str:
        return self._item(f"sliding/{window.length}/{window.start}", key)

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Count ``amount`` in the current window if the weighted count stays within ``limit``."""
        pool = await self._ready()
        limit = _limit(limit)
        expiry = _seconds(expiry, "expiry")
        amount = _amount(amount)
        now = pool._clock.wall_us() / 1e6
        window = Window.at(expiry, now)
        item = self._sliding_item(key, window)
        previous = await self._previous_count(pool, key, window.previous)
        ceiling = limit - amount - math.floor(previous * (1.0 - window.elapsed(now)))
        if ceiling < 0:  # the previous window alone fills it: no write could be admitted
            return False
        params = sliding_add(pool, item, amount, ceiling, window)
        response, _old = await self._update(pool, item, params, amount)
        return response is not None

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        """(previous count, its weight in seconds left, current count, seconds to its expiry)."""
        pool = await self._ready()
        expiry = _seconds(expiry, "expiry")
        now = pool._clock.wall_us() / 1e6
        window = Window.at(expiry, now)
        previous, current = await asyncio.gather(
            pool._reads.get(self._sliding_item(key, window.previous)),
            pool._reads.get(self._sliding_item(key, window)),
        )
        left = window.end - now
        return previous, (left if previous else 0.0), current, left + expiry

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        """Forget ``key``'s current and previous sliding windows."""
        pool = await self._ready()
        window = Window.at(_seconds(expiry, "expiry"), pool._clock.wall_us() / 1e6)
        self._previous.forget(key)
        await self._delete(
            pool, [self._sliding_item(key, window), self._sliding_item(key, window.previous)]
        )

    async def _previous_count(self, pool: CounterPool, key: str, previous: Window) -> int:
        """The previous window's count: one read per key and window, shared by concurrent hits."""
        item = self._sliding_item(key, previous)
        return await self._previous.get(key, previous.start, lambda: pool._reads.get(item))


# -- the requests (pure) ---------------------------------------------------------------------


def _base(pool: CounterPool, item: str) -> dict[str, Any]:
    return {
        "TableName": pool.table,
        "Key": {pool.key_attribute: {"S": item}},
        "ReturnConsumedCapacity": builders.CONSUMED,
    }


def fixed_add(pool: CounterPool, item: str, amount: int, now_ms: int) -> dict[str, Any]:
    """``ADD count`` to a fixed window that has not ended at ``now_ms``."""
    return {
        **_base(pool, item),
        "UpdateExpression": "ADD #v :n",
        "ConditionExpression": "#end > :now",
        "ExpressionAttributeNames": {"#v": pool.value_attribute, "#end": END_ATTRIBUTE},
        "ExpressionAttributeValues": {":n": {"N": str(amount)}, ":now": {"N": str(now_ms)}},
        "ReturnValues": "UPDATED_NEW",
    }


def fixed_start(
    pool: CounterPool, item: str, amount: int, now_ms: int, expiry: int
) -> dict[str, Any]:
    """Start a fixed window at ``now_ms`` with ``amount`` in it, unless one is running."""
    end = now_ms + expiry * 1000
    return {
        **_base(pool, item),
        "UpdateExpression": "SET #v = :n, #end = :end, #ttl = :ttl",
        "ConditionExpression": "attribute_not_exists(#end) OR #end <= :now",
        "ExpressionAttributeNames": {
            "#v": pool.value_attribute,
            "#end": END_ATTRIBUTE,
            "#ttl": pool.ttl_attribute,
        },
        "ExpressionAttributeValues": {
            ":n": {"N": str(amount)},
            ":end": {"N": str(end)},
            ":now": {"N": str(now_ms)},
            ":ttl": {"N": str(-(-end // 1000) + GRACE)},
        },
    }


def moving_take(
    pool: CounterPool,
    item: str,
    slots: list[int],
    now_ms: int,
    cutoff_ms: int,
    expiry: int,
    *,
    after: bool = False,
) -> dict[str, Any]:
    """Write ``now_ms`` into each of ``slots``, on condition that every one is free (the item
    as it was comes back on refusal; as it is after, too, with ``after``)."""
    names = {f"#s{slot}": f"s{slot}" for slot in slots}
    return {
        **_base(pool, item),
        "UpdateExpression": "SET " + ", ".join(f"{name} = :t" for name in names) + ", #ttl = :ttl",
        "ConditionExpression": " AND ".join(
            f"(attribute_not_exists({name}) OR {name} <= :cut)" for name in names
        ),
        "ExpressionAttributeNames": {**names, "#ttl": pool.ttl_attribute},
        "ExpressionAttributeValues": {
            ":t": {"N": str(now_ms)},
            ":cut": {"N": str(cutoff_ms)},
            ":ttl": {"N": str(now_ms // 1000 + expiry + GRACE)},
        },
        "ReturnValues": "ALL_NEW" if after else "NONE",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def sliding_add(
    pool: CounterPool, item: str, amount: int, ceiling: int, window: Window
) -> dict[str, Any]:
    """``ADD count`` to a sliding window's current item while the count is at most ``ceiling``."""
    return {
        **_base(pool, item),
        "UpdateExpression": "ADD #v :n SET #ttl = :ttl",
        "ConditionExpression": "attribute_not_exists(#v) OR #v <= :max",
        "ExpressionAttributeNames": {"#v": pool.value_attribute, "#ttl": pool.ttl_attribute},
        "ExpressionAttributeValues": {
            ":n": {"N": str(amount)},
            ":max": {"N": str(ceiling)},
            ":ttl": {"N": str(window.end + window.length + GRACE)},
        },
    }


def _slot(item: Mapping[str, Any], slot: int) -> int:
    """The time in a moving window's slot (ms); -1 for a slot never written."""
    value = item.get(f"s{slot}")
    return -1 if value is None else int(value["N"])


def _seconds(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and value == int(value) and value >= 1):
        raise ValueError(f"{name} must be a whole number of seconds >= 1, got {value}")
    return int(value)


def _amount(amount: object) -> int:
    if type(amount) is not int:
        raise TypeError(f"amount must be an int, not {type(amount).__name__}")
    if not 1 <= amount <= builders.MAX_NUMBER:
        raise ValueError(f"amount must be >= 1, got {amount}")
    return amount


def _limit(limit: object) -> int:
    if type(limit) is not int:
        raise TypeError(f"limit must be an int, not {type(limit).__name__}")
    if not 1 <= limit <= builders.MAX_NUMBER:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return limit


def _moving(limit: object, expiry: object, amount: object) -> tuple[int, int, int]:
    limit = _limit(limit)
    if limit > MAX_MOVING_LIMIT:
        raise ValueError(
            f"a moving window holds one slot per hit: at most {MAX_MOVING_LIMIT:,}, got "
            f"{limit:,} (use the fixed or sliding-window counter strategy)"
        )
    amount = _amount(amount)
    if amount > MAX_MOVING_COST and amount <= limit:
        raise ValueError(f"a moving-window hit may cost at most {MAX_MOVING_COST}, got {amount}")
    return limit, _seconds(expiry, "expiry"), amount

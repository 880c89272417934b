"""`CounterPool`: exact atomic counters on DynamoDB for asyncio code.

Data flow: a public method validates its arguments, then the request is built (`builders`), sent
through the in-flight bound (a semaphore sized like the connection pool) by the transport, and
retried (`retry`) only when it was certainly not applied. Every write settles exactly once in
`stats`: acknowledged, refused, exhausted, ambiguous or cancelled before it was sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import itertools
import logging
import secrets
import time
import zlib
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from . import batching, builders
from .checks import number, whole
from .errors import (
    AmbiguousWriteError,
    ConnectError,
    CounterError,
    CounterFloorError,
    DynamoError,
    TableNotFoundError,
    ThrottledError,
)
from .limiter import KeyLimiter
from .retry import DEFAULT_RETRY, Backoff, RetryPolicy, is_retryable
from .slots import Slots
from .stats import PoolHooks, PoolStats, StatsRecorder
from .transport import Outcome, Transport, TransportError, is_loopback_url

__all__ = ["CounterPool"]

logger = logging.getLogger("async_counters")

DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
#: Region used for a loopback endpoint when none is given or configured.
LOCAL_REGION = "us-east-1"
#: How long ensure_table() waits for a new table to become ACTIVE.
TABLE_ACTIVE_TIMEOUT = 120.0
#: exactly_once: each writer keeps two attributes on an item, its last sequence and the value its
#: last write left. A writer silent this long is pruned by the next new writer of the item.
WRITER_SEQ_PREFIX = "~s:"
WRITER_VALUE_PREFIX = "~v:"
PRUNE_AFTER = 3600.0
#: A retry must never outlive the record it relies on: the retry deadline stays well inside.
MAX_EXACTLY_ONCE_DEADLINE = PRUNE_AFTER / 4
MAX_PRUNED_PER_WRITE = 50


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class _Write:
    """One write operation in progress; ``on_wire`` while a request of it awaits its answer."""

    __slots__ = ("current", "delta", "floor", "key", "on_wire")

    def __init__(self, key: str, delta: int, floor: int | None) -> None:
        self.key = key
        self.delta = delta
        self.floor = floor
        self.on_wire = False
        self.current: int | None = None  # the value a refused condition met, when known


class _Entry:
    """One increment or decrement waiting in, or riding, a key's merged write."""

    __slots__ = ("delta", "floor", "future", "start")

    def __init__(
        self, delta: int, floor: int | None, future: asyncio.Future[int] | None, start: float
    ) -> None:
        self.delta = delta
        self.floor = floor
        self.future = future  # None for add_nowait: nobody awaits it
        self.start = start


class _KeyQueue:
    """A key's entries waiting for its next merged write (one write in flight per key)."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[_Entry] = []


class _WriteFailed(Exception):
    """A merged write's final failure, carried out of a helper to the batch that owns it."""

    def __init__(self, failure: _Failed) -> None:
        self.failure = failure


class _Failed(Exception):
    """A request's final failure, with how many attempts and how long it took."""

    def __init__(self, error: TransportError, attempts: int, elapsed: float) -> None:
        self.error = error
        self.attempts = attempts
        self.elapsed = elapsed


#: The most items one counter may be spread over.
MAX_SHARDS = 1000


def _check_shards(shards: object) -> tuple[int, dict[str, int]]:
    """``shards=`` as (the default count, counts per key)."""

    def count(value: object, what: str) -> int:
        value = whole(value, what)
        if not 1 <= value <= MAX_SHARDS:
            raise ValueError(f"{what} must be within [1, {MAX_SHARDS}], got {value}")
        return value

    if isinstance(shards, Mapping):
        return 1, {builders.check_key(k): count(v, f"shards[{k!r}]") for k, v in shards.items()}
    return count(shards, "shards"), {}


def _new_writer_id() -> str:
    """A short random name for this pool as an exactly-once writer (60 bits, base 32)."""
    return base64.b32encode(secrets.token_bytes(8)).decode()[:12].lower()


class CounterPool:
    """Atomic counters in one DynamoDB table, shared by many concurrent callers.

    >>> async with CounterPool("counters", endpoint_url=server.endpoint_url) as pool:
    ...     await pool.ensure_table()
    ...     views = await pool.increment("views:/home")
    ...     left = await pool.decrement("stock:sku-1", floor=0)

    Each counter is one item: partition key ``key_attribute`` (a string), value
    ``value_attribute``. At most ``max_in_flight`` requests are on the wire at once, and the
    connection pool is sized to match. Throttled requests and failed connections are retried
    with jittered backoff under ``retry``; a write whose outcome is unknown (timeout, dropped
    connection, server error) is never retried blindly: it raises `AmbiguousWriteError`.

    How requests reach DynamoDB: ``transport`` is ``"fast"`` (the default: the pool signs and
    sends DynamoDB's JSON itself over aiohttp, a fraction of botocore's CPU per call),
    ``"botocore"`` (through an aiobotocore client), or an object implementing `Transport`.
    Credentials and region come from ``session`` (an aiobotocore ``AioSession`` or aioboto3
    ``Session``), else a new aiobotocore session with the default credential chain; with
    ``client`` (an aiobotocore DynamoDB client) the botocore transport uses that client. What
    the pool is given, it does not close. For a loopback ``endpoint_url``
    without ``session`` or ``client``, the pool signs with placeholder credentials (local servers
    do not check them) and defaults the region to ``us-east-1``: nothing real is sent to them.
    """

    def __init__(
        self,
        table: str,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        session: Any = None,
        client: Any = None,
        transport: Transport | Literal["fast", "botocore"] | None = None,
        key_attribute: str = "pk",
        value_attribute: str = "count",
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry: RetryPolicy = DEFAULT_RETRY,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        hooks: PoolHooks | Sequence[PoolHooks] = (),
        adaptive: bool = True,
        coalesce: bool = False,
        linger: float = 0.0,
        exactly_once: bool = False,
        shards: int | Mapping[str, int] = 1,
    ) -> None:
        for name, text in (
            ("table", table),
            ("key_attribute", key_attribute),
            ("value_attribute", value_attribute),
        ):
            if not isinstance(text, str):
                raise TypeError(f"{name} must be a str, not {type(text).__name__}")
            if not text:
                raise ValueError(f"{name} must not be empty")
        if key_attribute == value_attribute:
            raise ValueError("key_attribute and value_attribute must differ")
        whole(max_in_flight, "max_in_flight")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if not isinstance(retry, RetryPolicy):
            raise TypeError("retry must be a RetryPolicy")
        for name, seconds in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            number(seconds, name, what="a number of seconds")
            if not 0 < seconds < float("inf"):
                raise ValueError(f"{name} must be > 0 and finite")
        if exactly_once and (retry.deadline is None or retry.deadline > MAX_EXACTLY_ONCE_DEADLINE):
            raise ValueError(
                "exactly_once needs a retry deadline of at most "
                f"{MAX_EXACTLY_ONCE_DEADLINE:g} s: stale writers are pruned after "
                f"{PRUNE_AFTER:g} s, and a retry must never outlive its writer's record"
            )
        self._shards_default, self._shards = _check_shards(shards)
        number(linger, "linger", what="a number of seconds")
        if not 0 <= linger < float("inf"):
            raise ValueError(f"linger must be >= 0 and finite, got {linger}")
        if endpoint_url is not None and urlsplit(endpoint_url).scheme not in ("http", "https"):
            raise ValueError(f"endpoint_url must be an http(s) URL, got {endpoint_url!r}")
        transport_name = transport if isinstance(transport, str) else None
        if transport_name not in (None, "fast", "botocore"):
            raise ValueError(
                f"transport must be 'fast', 'botocore' or a Transport, not {transport!r}"
            )
        given = None if isinstance(transport, str) else transport
        if sum(x is not None for x in (session, client, given)) > 1:
            raise ValueError("pass at most one of session, client and transport")
        if client is not None and transport_name == "fast":
            raise ValueError("client= is an aiobotocore client: it needs transport='botocore'")

        self.table = table
        self.key_attribute = key_attribute
        self.value_attribute = value_attribute
        self.max_in_flight = max_in_flight
        self.retry = retry
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._session = session
        self._client = client
        self._transport: Transport | None = given
        self._transport_name = transport_name or ("botocore" if client is not None else "fast")
        self._connect_timeout = float(connect_timeout)
        self._read_timeout = float(read_timeout)

        self._state = _State.UNOPENED
        self._loop: asyncio.AbstractEventLoop  # set by open()
        self._exit_stack = contextlib.AsyncExitStack()
        self._slots = Slots(max_in_flight)
        self._in_flight = 0
        self._limiter = KeyLimiter(clock=retry.clock, sleep=retry.sleep) if adaptive else None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.coalesce = coalesce
        self.linger = float(linger)
        self.exactly_once = exactly_once
        self.writer_id = _new_writer_id()
        self._writer = (
            f"{WRITER_SEQ_PREFIX}{self.writer_id}",
            f"{WRITER_VALUE_PREFIX}{self.writer_id}",
        )
        self._seqs: dict[str, int] = {}  # exactly_once: the last sequence used, per key
        # Writes wait in per-key queues (one write in flight per key) when merged or numbered.
        self._queued = coalesce or exactly_once
        self._next_shard = itertools.count()
        self._recorded_shards: set[str] = set()
        self._item_names: dict[str, str] = {}  # shard item -> its counter (memory: keys x shards)
        self._queues: dict[str, _KeyQueue] = {}
        self._stats = StatsRecorder()
        extra = (hooks,) if isinstance(hooks, PoolHooks) else tuple(hooks)
        self._hooks: tuple[PoolHooks, ...] = extra  # the caller's; the stats are updated inline

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> CounterPool:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Connect (``async with`` calls this). A pool opens once; it cannot be reopened."""
        if self._state is not _State.UNOPENED:
            raise RuntimeError(f"a CounterPool opens once; this one is {self._state.value}")
        self._state = _State.OPEN
        self._loop = asyncio.get_running_loop()  # the pool lives on the loop it was opened on
        try:
            if self._transport is None:
                self._transport = await self._build_transport()
        except BaseException:
            self._state = _State.CLOSED
            await self._exit_stack.aclose()
            raise

    async def _build_transport(self) -> Transport:
        if self._transport_name == "fast":
            from .transport.fast import open_fast_transport

            local = (
                self._session is None
                and self._endpoint_url is not None
                and is_loopback_url(self._endpoint_url)
            )
            fast = await open_fast_transport(
                session=self._session,
                endpoint_url=self._endpoint_url,
                region_name=self._region_name,
                placeholder_credentials=local,
                fallback_region=LOCAL_REGION if local else None,
                max_in_flight=self.max_in_flight,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                table=self.table,  # a table ARN picks the account endpoint, as in botocore
            )
            self._exit_stack.push_async_callback(fast.aclose)
            return fast

        from botocore.exceptions import NoRegionError

        from .transport.sdk import BotocoreTransport

        client = self._client
        if client is None:
            try:
                client = await self._exit_stack.enter_async_context(self._client_context())
            except NoRegionError:
                raise ValueError(
                    "no AWS region: pass region_name= or set AWS_DEFAULT_REGION (or a profile's)"
                ) from None
        return BotocoreTransport(client)

    def _client_context(self) -> Any:
        """An async context manager yielding an aiobotocore DynamoDB client."""
        from .transport.sdk import client_config

        kwargs: dict[str, Any] = {
            "region_name": self._region_name,
            "endpoint_url": self._endpoint_url,
            "config": client_config(
                max_in_flight=self.max_in_flight,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
            ),
        }
        session = self._session
        if session is None:
            from aiobotocore.session import get_session

            session = get_session()
            if self._endpoint_url is not None and is_loopback_url(self._endpoint_url):
                kwargs["aws_access_key_id"] = "local"
                kwargs["aws_secret_access_key"] = "local"
                if self._region_name is None:
                    kwargs["region_name"] = session.get_config_variable("region") or LOCAL_REGION
        if hasattr(session, "create_client"):  # aiobotocore AioSession
            return session.create_client("dynamodb", **kwargs)
        return session.client("dynamodb", **kwargs)  # aioboto3 Session

    async def aclose(self) -> None:
        """Wait for every operation in flight, then release connections. Idempotent."""
        if self._state in (_State.CLOSING, _State.CLOSED):
            return
        previous, self._state = self._state, _State.CLOSING
        try:
            if previous is _State.OPEN:
                stats = await self.flush()
                if stats.unwritten:
                    logger.warning(
                        "%d background addition(s), %d in all, could not be written",
                        stats.unwritten,
                        stats.unwritten_amount,
                    )
        finally:
            self._state = _State.CLOSED
            await self._exit_stack.aclose()

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            if self._state is _State.UNOPENED:
                raise RuntimeError("the pool is not open: use `async with CounterPool(...)`")
            raise RuntimeError("the pool is closed")

    # -- public operations -------------------------------------------------------------------

    @property
    def stats(self) -> PoolStats:
        """A snapshot of what the pool did so far (see `PoolStats`)."""
        key_rates = {} if self._limiter is None else self._limiter.rates()
        return self._stats.snapshot(
            key_rates=key_rates,
            max_in_flight=self.max_in_flight,
            in_flight=self._in_flight,
        )

    async def increment(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` (>= 1) to counter ``key``; return its value right after this increment."""
        # The common case in a few cheap checks (this is the hot path of coalescing); anything
        # else goes through the full ones, which raise.
        if not (type(amount) is int and 0 < amount <= builders.MAX_NUMBER):
            builders.check_amount(amount)
        if not (type(key) is str and 0 < len(key) <= builders.MAX_KEY_BYTES // 4):
            builders.check_key(key)
        if self._shards_default > 1 or self._shards:
            key = await self._shard_item(key)
        if not self._queued:
            return await self._submit(_Write(key, amount, None))
        if self._state is not _State.OPEN:
            self._check_open()
        future: asyncio.Future[int] = self._loop.create_future()
        self._queue_entry(key, _Entry(amount, None, future, self._loop.time()))
        return await future  # a cancelled caller cancels only this future, never the write

    def add_nowait(self, key: str, amount: int = 1) -> None:
        """Add ``amount`` to ``key`` in the background, merged with other additions to it.

        For counting that needs no answer (page views): it returns at once. The write goes out as
        soon as the key's previous write returns; failures are counted in `stats` (``unwritten``)
        and reported to the hooks. ``flush()`` and ``aclose()`` wait until everything added is
        written, and ``aclose()`` logs how much could not be.
        """
        builders.check_key(key)
        builders.check_amount(amount)
        self._check_open()
        n = self.shards_of(key)
        if n > 1:
            if key not in self._recorded_shards:
                self._recorded_shards.add(key)
                self._background(self._record_shards(key, n))
            key = self._item(key, self._pick_shard(key, n))
        self._queue_entry(key, _Entry(amount, None, None, self._loop.time()))

    async def flush(self) -> PoolStats:
        """Wait until every write queued or in flight has settled; return the stats then."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        return self.stats

    async def decrement(self, key: str, amount: int = 1, *, floor: int | None = None) -> int:
        """Subtract ``amount`` (>= 1); return the value right after.

        With ``floor``, the decrement applies only if the counter stays ``>= floor`` (a counter
        never written counts as 0), under any concurrency; otherwise `CounterFloorError` is raised
        and nothing was applied.
        """
        builders.check_key(key)
        builders.check_amount(amount)
        builders.check_floor(floor, amount)
        if self.shards_of(key) > 1:
            if floor is not None:
                raise ValueError(
                    f"counter {key!r} is sharded: a floor holds on one item, not on a sum "
                    "spread over several (use an unsharded counter for stock and the like)"
                )
            key = await self._shard_item(key)
        if self._queued:
            self._check_open()
            future: asyncio.Future[int] = self._loop.create_future()
            self._queue_entry(key, _Entry(-amount, floor, future, self._loop.time()))
            return await future
        return await self._submit(_Write(key, -amount, floor))

    async def get(self, key: str) -> int:
        """The counter's value, read strongly consistently; 0 for a counter never written."""
        builders.check_key(key)
        self._check_open()
        if self.shards_of(key) > 1:
            return (await self.get_many([key]))[key]
        params = builders.get_attributes(
            self.table, self.key_attribute, key, [self.value_attribute, builders.SHARDS_ATTRIBUTE]
        )
        response = await self._read("GetItem", params, key)
        item = response.get("Item")
        recorded = self._recorded_count(item, key)
        value = self._number(item, key)
        if recorded > 1:  # written sharded by another pool: the other shards count too
            value += sum((await self._read_items(key, range(1, recorded))).values())
        return value

    async def get_many(self, keys: Iterable[str]) -> dict[str, int]:
        """Values of several counters (strongly consistent), in the order given; 0 for unwritten."""
        if isinstance(keys, str):
            raise TypeError("get_many takes an iterable of keys, not a single str")
        wanted = list(dict.fromkeys(builders.check_key(key) for key in keys))
        self._check_open()
        items = await self._batch_get_items(
            [
                builders.shard_key(key, shard)
                for key in wanted
                for shard in range(self.shards_of(key))
            ]
        )
        values = dict.fromkeys(wanted, 0)
        more: dict[str, range] = {}
        for key in wanted:
            n = self.shards_of(key)
            for shard in range(n):
                values[key] += self._number(items.get(builders.shard_key(key, shard)), key)
            recorded = self._recorded_count(items.get(key), key)
            if recorded > n:  # sharded wider before: those shards still hold part of the total
                more[key] = range(n, recorded)
        for key, shards in more.items():
            values[key] += sum((await self._read_items(key, shards)).values())
        return values

    def shards_of(self, key: str) -> int:
        """How many items ``key``'s writes are spread over (1: not sharded)."""
        return self._shards.get(key, self._shards_default)

    async def _read_items(self, key: str, shards: range) -> dict[str, int]:
        items = await self._batch_get_items([builders.shard_key(key, s) for s in shards])
        return {name: self._number(item, key) for name, item in items.items()}

    def _recorded_count(self, item: Mapping[str, Any] | None, key: str) -> int:
        """The widest sharding a key was ever written with, as recorded on its first item."""
        if not item or builders.SHARDS_ATTRIBUTE not in item:
            return 1
        try:
            return max(1, builders.parse_number(item, builders.SHARDS_ATTRIBUTE))
        except ValueError:
            return 1

    async def _shard_item(self, key: str) -> str:
        """The item a write to ``key`` goes to; the key's sharding is recorded before its first."""
        n = self.shards_of(key)
        if n == 1:
            return key
        if key not in self._recorded_shards:
            await self._record_shards(key, n)
            self._recorded_shards.add(key)
        return self._item(key, self._pick_shard(key, n))

    def _item(self, key: str, shard: int) -> str:
        """The item of a shard, remembered so that hooks and errors name the counter."""
        item = builders.shard_key(key, shard)
        self._item_names[item] = key
        return item

    def _name(self, item: str) -> str:
        """The counter an item belongs to (itself, unless it is a shard of a sharded counter)."""
        return self._item_names.get(item, item) if self._item_names else item

    def _pick_shard(self, key: str, n: int) -> int:
        if self.exactly_once:  # a writer keeps to one shard: its sequence there stays simple
            return zlib.crc32(f"{self.writer_id}/{key}".encode()) % n
        return next(self._next_shard) % n

    async def _record_shards(self, key: str, n: int) -> None:
        """Record on the key's first item that it is spread over ``n`` items (never fewer)."""
        params = builders.record_shards(self.table, self.key_attribute, key, n)
        try:
            await self._request("UpdateItem", params, key)
        except _Failed as failure:
            if failure.error.outcome is not Outcome.CONDITION_FAILED:  # wider already: fine
                raise self._error(failure, key) from None

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _batch_get_items(self, item_keys: list[str]) -> dict[str, dict[str, Any]]:
        """Items by key (absent when never written), read consistently, 100 keys per call."""
        unique = list(dict.fromkeys(item_keys))
        items: dict[str, dict[str, Any]] = {}
        chunks = [
            unique[i : i + builders.MAX_BATCH_GET]
            for i in range(0, len(unique), builders.MAX_BATCH_GET)
        ]
        outcomes = await asyncio.gather(
            *(self._batch_get(chunk, items) for chunk in chunks), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return items

    async def ensure_table(self) -> None:
        """Create the table (string partition key, on-demand) unless it exists; wait until ACTIVE.

        Idempotent. Raises `ValueError` if the table exists with a key schema the pool cannot use.
        """
        self._check_open()
        try:
            await self._read(
                "CreateTable", builders.create_table(self.table, self.key_attribute), None
            )
        except DynamoError as exc:
            if exc.code != "ResourceInUseException":
                raise
        loop = asyncio.get_running_loop()
        give_up = loop.time() + TABLE_ACTIVE_TIMEOUT
        while True:
            try:
                described = await self._read("DescribeTable", {"TableName": self.table}, None)
            except TableNotFoundError:  # eventually consistent right after CreateTable
                described = {}
            table = described.get("Table", {})
            if table:
                self._check_key_schema(table)
            if table.get("TableStatus") == "ACTIVE":
                return
            if loop.time() > give_up:
                raise TableNotFoundError(self.table)
            await asyncio.sleep(0.5)

    def _check_key_schema(self, table: Mapping[str, Any]) -> None:
        schema = table.get("KeySchema", [])
        types = {
            d["AttributeName"]: d["AttributeType"] for d in table.get("AttributeDefinitions", [])
        }
        expected = [{"AttributeName": self.key_attribute, "KeyType": "HASH"}]
        if schema != expected or types.get(self.key_attribute) != "S":
            raise ValueError(
                f"table {self.table!r} has key schema {schema}; the pool needs a single string "
                f"partition key named {self.key_attribute!r} (set key_attribute=)"
            )

    # -- writes ------------------------------------------------------------------------------

    async def _submit(self, write: _Write) -> int:
        """Run a write in its own task so that a cancelled caller does not cancel a sent write."""
        if self._state is not _State.OPEN:
            self._check_open()
        stats = self._stats
        stats.calls += 1
        stats.in_progress += 1
        loop = self._loop
        answer: asyncio.Future[int] = loop.create_future()
        task = loop.create_task(self._answer(write, answer))
        self._tasks.add(task)
        task.add_done_callback(self._write_done)
        try:
            return await answer
        except asyncio.CancelledError:
            if not task.done():
                if write.on_wire:
                    self._stats.detach(write.delta)
                else:
                    task.cancel()
            raise

    async def _answer(self, write: _Write, answer: asyncio.Future[int]) -> None:
        """Run the write and hand its outcome to the caller's future straight away (sooner
        than a done-callback of this task would: one turn of the loop less per write)."""
        try:
            value = await self._write(write)
        except asyncio.CancelledError:
            answer.cancel()
            raise
        except Exception as error:
            if not answer.done():
                answer.set_exception(error)
        else:
            if not answer.done():
                answer.set_result(value)

    def _write_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here too: a detached caller will never look

    async def _write(self, write: _Write) -> int:
        params = builders.update(
            self.table,
            self.key_attribute,
            self.value_attribute,
            write.key,
            write.delta,
            floor=write.floor,
        )
        start = self._loop.time()
        try:
            response = await self._request("UpdateItem", params, write.key, write=write)
        except _Failed as failure:
            error = failure.error
            self._settle(write, error.outcome, start, error.code)
            raise self._write_error(failure, write.key, write.delta, write.floor) from None
        except asyncio.CancelledError:
            self._settle(write, Outcome.AMBIGUOUS if write.on_wire else Outcome.CANCELLED, start)
            raise
        self._settle(write, Outcome.ACKNOWLEDGED, start)
        try:
            return self._number(response.get("Attributes"), write.key)
        except DynamoError as exc:
            exc.applied = True  # the write did apply; the stored value is just not whole
            raise

    def _settle(self, write: _Write, outcome: Outcome, start: float, code: str = "") -> None:
        seconds = self._loop.time() - start
        self._stats.settle(write.delta, outcome, seconds, code)
        for hook in self._hooks:
            self._notify(hook.on_settled, self._name(write.key), write.delta, outcome, seconds)

    def _write_error(
        self, failure: _Failed, key: str, delta: int, floor: int | None, current: int | None = None
    ) -> CounterError:
        """The error a caller of a write of ``delta`` to ``key`` sees for ``failure``."""
        key = self._name(key)
        error = failure.error
        outcome = error.outcome
        if outcome is Outcome.CONDITION_FAILED and floor is not None:
            if current is None and error.item:
                with contextlib.suppress(ValueError):
                    current = builders.parse_number(error.item, self.value_attribute)
            return CounterFloorError(key=key, amount=-delta, floor=floor, current=current)
        if outcome is Outcome.AMBIGUOUS:
            return AmbiguousWriteError(
                key=key, amount=delta, attempts=failure.attempts, reason=str(error)
            )
        return self._error(failure, key)

    # -- coalesced writes --------------------------------------------------------------------

    def _queue_entry(self, key: str, entry: _Entry) -> None:
        stats = self._stats
        stats.calls += 1
        stats.in_progress += 1
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _KeyQueue()
            self._background(self._flush_key(key, queue))
        queue.entries.append(entry)

    async def _flush_key(self, key: str, queue: _KeyQueue) -> None:
        """Write a key's queued amounts, one merged write at a time, until none are left."""
        try:
            while queue.entries:
                if self.linger:
                    await asyncio.sleep(self.linger)
                batch = self._take_batch(key, queue)
                if not batch:
                    continue
                try:
                    await self._write_batch(key, batch)
                except Exception as exc:  # a bug: its callers must hear of it, not wait forever
                    logger.exception("merged write to %r failed unexpectedly", key)
                    now = asyncio.get_running_loop().time()
                    for entry in batch:
                        if entry.future is not None and not entry.future.done():
                            self._fail_entry(key, entry, Outcome.REJECTED, now, exc, "Internal")
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]
            loop_time = asyncio.get_running_loop().time()
            for entry in queue.entries:  # only when cancelled (the loop is shutting down)
                self._settle_entry(key, entry, Outcome.CANCELLED, loop_time)
                if entry.future is not None:
                    entry.future.cancel()

    def _take_batch(self, key: str, queue: _KeyQueue) -> list[_Entry]:
        """The queued entries that go next: callers still waiting, a sum DynamoDB can hold.

        Without ``coalesce`` an awaited write goes alone (``exactly_once`` queues writes only to
        keep one in flight per key); background additions always merge.
        """
        now = asyncio.get_running_loop().time()
        batch: list[_Entry] = []
        total = 0
        entries, queue.entries = queue.entries, []
        for index, entry in enumerate(entries):
            if entry.future is not None and entry.future.cancelled():
                self._settle_entry(key, entry, Outcome.CANCELLED, now)
                continue
            alone = batch and not self.coalesce and (entry.future or batch[0].future) is not None
            if alone or abs(total + entry.delta) > builders.MAX_NUMBER:
                queue.entries = entries[index:]  # the rest goes in the next write
                break
            total += entry.delta
            batch.append(entry)
        return batch

    async def _write_batch(self, key: str, batch: list[_Entry]) -> None:
        """One merged write for ``batch``; floors granted in arrival order (`batching`)."""
        loop = asyncio.get_running_loop()
        marker = _Write(key, 0, None)
        current: int | None = None
        try:
            while True:
                plan = batching.plan([e.delta for e in batch], [e.floor for e in batch], current)
                if plan.refused:
                    now = loop.time()
                    for index, value in plan.refused:
                        entry = batch[index]
                        assert entry.floor is not None
                        self._fail_entry(
                            key,
                            entry,
                            Outcome.CONDITION_FAILED,
                            now,
                            CounterFloorError(
                                key=key, amount=-entry.delta, floor=entry.floor, current=value
                            ),
                        )
                    batch = [batch[i] for i in plan.granted]
                if not batch:
                    return
                floor = None if plan.minimum is None else plan.minimum + plan.total
                marker.delta = plan.total
                if self.exactly_once:
                    applied = await self._write_once(key, plan.total, floor, marker)
                    if applied is None:  # refused by the floor condition: plan again
                        current = marker.current
                        continue
                    self._acknowledge_batch(key, batch, applied, plan.total)
                    return
                params = builders.update(
                    self.table,
                    self.key_attribute,
                    self.value_attribute,
                    key,
                    plan.total,
                    floor=floor,
                )
                try:
                    response = await self._request("UpdateItem", params, key, write=marker)
                except _Failed as failure:
                    if failure.error.outcome is Outcome.CONDITION_FAILED and floor is not None:
                        current = await self._current_value(key, failure.error.item)
                        continue
                    self._fail_batch(key, batch, failure)
                    return
                self._acknowledge_batch(
                    key, batch, self._number(response.get("Attributes"), key), plan.total
                )
                return
        except _WriteFailed as failed:
            self._fail_batch(key, batch, failed.failure)
        except _Failed as failure:  # the read of the current value failed: nothing was applied
            self._fail_batch(key, batch, failure)
        except asyncio.CancelledError:
            outcome = Outcome.AMBIGUOUS if marker.on_wire else Outcome.CANCELLED
            now = loop.time()
            for entry in batch:
                self._settle_entry(key, entry, outcome, now)
                if entry.future is not None:
                    entry.future.cancel()
            raise
        except DynamoError as exc:  # the value read back is not a whole number; it did apply
            exc.applied = True
            now = loop.time()
            for entry in batch:
                self._fail_entry(key, entry, Outcome.ACKNOWLEDGED, now, exc)

    def _acknowledge_batch(self, key: str, batch: list[_Entry], value: int, total: int) -> None:
        """Answer every caller of an applied batch with its value in the batch's serial order.

        The hot path of coalescing (one call per entry would double its cost): the values are
        `batching.caller_values`, computed inline.
        """
        now = asyncio.get_running_loop().time()
        stats = self._stats
        record = stats.latency.record
        observers = self._hooks  # the stats are updated in bulk here
        running = value - total
        for entry in batch:
            running += entry.delta
            record(now - entry.start)
            future = entry.future
            if future is None:
                pass
            elif future.cancelled():
                stats.detach(entry.delta)
            else:
                future.set_result(running)
            for observer in observers:
                self._notify(
                    observer.on_settled,
                    self._name(key),
                    entry.delta,
                    Outcome.ACKNOWLEDGED,
                    now - entry.start,
                )
        stats.acknowledge(len(batch), total)

    async def _write_once(
        self, key: str, delta: int, floor: int | None, marker: _Write
    ) -> int | None:
        """An exactly-once write of ``delta``: the counter's value right after it, or None when
        the floor refused it (``marker.current`` then holds the value met).

        Ambiguous answers are retried with the same sequence and amount: if the write had applied,
        the condition now fails and the item shows this writer's sequence, so the write is reported
        applied, with the value it left, instead of counting twice.
        """
        first = key not in self._seqs
        seq = max(self._seqs.get(key, 0) + 1, time.time_ns() // 1000)
        self._seqs[key] = seq
        params = builders.update_once(
            self.table,
            self.key_attribute,
            self.value_attribute,
            key,
            delta,
            writer=self._writer,
            seq=seq,
            floor=floor,
            return_all=first,  # the first write to a key looks for stale writers to prune
        )
        try:
            response = await self._request("UpdateItem", params, key, write=marker, idempotent=True)
        except _Failed as failure:
            if failure.error.outcome is not Outcome.CONDITION_FAILED:
                raise _WriteFailed(failure) from None
            item = failure.error.item or await self._read_writer(key)
            seq_attribute, value_attribute = self._writer
            if item and builders.parse_number(item, seq_attribute) == seq:
                self._stats.recovered += 1
                return self._number(item, value_attribute) if value_attribute in item else 0
            marker.current = self._number(item, self.value_attribute)
            return None
        attributes = response.get("Attributes") or {}
        if first:
            self._prune_stale_writers(key, attributes)
        return self._number(attributes, self.value_attribute)

    async def _read_writer(self, key: str) -> dict[str, Any]:
        """The counter and this writer's record, read consistently (for servers without ALL_OLD)."""
        params = builders.get_attributes(
            self.table, self.key_attribute, key, [self.value_attribute, *self._writer]
        )
        try:
            response = await self._request("GetItem", params, key)
        except _Failed as failure:
            raise _WriteFailed(failure) from None
        item: dict[str, Any] = response.get("Item") or {}
        return item

    def _prune_stale_writers(self, key: str, item: Mapping[str, Any]) -> None:
        """Remove, in the background, the records of writers silent for `PRUNE_AFTER` seconds."""
        cutoff = time.time_ns() // 1000 - int(PRUNE_AFTER * 1_000_000)
        stale: dict[str, tuple[str, int]] = {}
        for name in item:
            if not name.startswith(WRITER_SEQ_PREFIX) or name == self._writer[0]:
                continue
            with contextlib.suppress(ValueError, TypeError, KeyError):
                seq = builders.parse_number(item, name)
                if seq < cutoff:
                    writer = name[len(WRITER_SEQ_PREFIX) :]
                    stale[name] = (f"{WRITER_VALUE_PREFIX}{writer}", seq)
            if len(stale) >= MAX_PRUNED_PER_WRITE:
                break
        if not stale:
            return
        self._background(
            self._prune(key, builders.prune_writers(self.table, self.key_attribute, key, stale))
        )

    async def _prune(self, key: str, params: Mapping[str, Any]) -> None:
        try:
            await self._request("UpdateItem", params, key)
        except _Failed as failure:  # a writer came back, or the server refused: prune later
            logger.debug("pruning stale writers of %r: %s", key, failure.error)
        else:
            self._stats.pruned += 1

    async def _current_value(self, key: str, item: Mapping[str, Any] | None) -> int:
        """The value a refused conditional write met: from ``ALL_OLD``, else a consistent read."""
        if item:
            return self._number(item, key)
        params = builders.get_item(self.table, self.key_attribute, self.value_attribute, key)
        response = await self._request("GetItem", params, key)
        return self._number(response.get("Item"), key)

    def _fail_batch(self, key: str, batch: list[_Entry], failure: _Failed) -> None:
        now = asyncio.get_running_loop().time()
        outcome = failure.error.outcome
        for entry in batch:
            error = self._write_error(failure, key, entry.delta, entry.floor)
            self._fail_entry(key, entry, outcome, now, error, failure.error.code)

    def _fail_entry(
        self,
        key: str,
        entry: _Entry,
        outcome: Outcome,
        now: float,
        error: BaseException,
        code: str = "",
    ) -> None:
        self._settle_entry(key, entry, outcome, now, code)
        future = entry.future
        if future is not None and not future.cancelled():
            future.set_exception(error)

    def _settle_entry(
        self, key: str, entry: _Entry, outcome: Outcome, now: float, code: str = ""
    ) -> None:
        seconds = now - entry.start
        stats = self._stats
        stats.settle(entry.delta, outcome, seconds, code)
        if entry.future is None:
            if outcome is not Outcome.ACKNOWLEDGED:
                stats.unwritten += 1
                stats.unwritten_amount += entry.delta
        elif entry.future.cancelled() and outcome is not Outcome.CANCELLED:
            stats.detach(entry.delta)
        for observer in self._hooks:
            self._notify(observer.on_settled, self._name(key), entry.delta, outcome, seconds)

    # -- requests ----------------------------------------------------------------------------

    def _error(self, failure: _Failed, key: str | None) -> CounterError:
        """The public error for a request that finally failed (reads, and writes' common cases)."""
        error = failure.error
        if error.outcome is Outcome.THROTTLED:
            return ThrottledError(
                key=key, attempts=failure.attempts, elapsed=failure.elapsed, last_code=error.code
            )
        if error.outcome is Outcome.UNREACHABLE:
            return ConnectError(
                key=key, attempts=failure.attempts, elapsed=failure.elapsed, last_code=error.code
            )
        if error.outcome is Outcome.TABLE_NOT_FOUND:
            return TableNotFoundError(self.table, key=key)
        return DynamoError(error.code, error.message, status=error.status, key=key)

    async def _read(
        self, operation: str, params: Mapping[str, Any], key: str | None
    ) -> dict[str, Any]:
        """A request with no effect to double (reads; table creation): ambiguity is retried."""
        try:
            return await self._request(operation, params, key)
        except _Failed as failure:
            raise self._error(failure, key) from None

    async def _request(
        self,
        operation: str,
        params: Mapping[str, Any],
        key: str | None,
        *,
        write: _Write | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """Send under the in-flight bound, retrying what `is_retryable` allows; raise `_Failed`.

        A request is idempotent (its ambiguous answers retried) unless it is a write, or said so.
        """
        if idempotent is None:
            idempotent = write is None
        transport = self._transport
        assert transport is not None
        policy = self.retry
        loop = asyncio.get_running_loop()
        backoff: Backoff | None = None
        start = policy.clock()
        limiter = self._limiter if write is not None and key is not None else None
        epoch = 0
        while True:
            if limiter is not None and key is not None:
                epoch = await self._admit(limiter, key)
            else:
                if not self._slots.try_take():
                    await self._slots.take()
            try:
                sent = loop.time()
                if write is not None:
                    write.on_wire = True
                self._in_flight += 1
                try:
                    response = await transport.call(operation, params)
                except TransportError as exc:
                    error: TransportError | None = exc
                else:
                    error = None
                finally:
                    self._in_flight -= 1
                if write is not None:
                    write.on_wire = False
            finally:
                self._slots.release()
            outcome = Outcome.ACKNOWLEDGED if error is None else error.outcome
            seconds = loop.time() - sent
            if limiter is not None and key is not None:
                limiter.observe(key, outcome, epoch)
            self._stats.on_request(operation, outcome, seconds)
            for hook in self._hooks:
                self._notify(hook.on_request, operation, outcome, seconds)
            if error is None:
                return response
            if backoff is None:
                backoff = Backoff(policy, start=start)
            if not is_retryable(outcome, idempotent=idempotent):
                raise _Failed(error, backoff.attempts, backoff.elapsed)
            delay = backoff.next_delay()
            if delay is None:
                raise _Failed(error, backoff.attempts, backoff.elapsed)
            self._notify_retry(operation, key, outcome, backoff.attempts - 1, delay)
            await policy.sleep(delay)

    async def _admit(self, limiter: KeyLimiter, key: str) -> int:
        """Pass the key's pace, then take a pool slot; go round again if the key was cut while
        waiting for the slot, so that a cut holds back what already queued. Returns the epoch."""
        while True:
            epoch = limiter.unpaced_epoch(key)
            if epoch is None:
                epoch = await limiter.acquire(key)
            if not self._slots.try_take():
                await self._slots.take()
            if not limiter.stale(key, epoch):
                return epoch
            self._slots.release()

    async def _batch_get(self, keys: list[str], items: dict[str, dict[str, Any]]) -> None:
        """One BatchGetItem of up to 100 keys, retrying ``UnprocessedKeys`` with backoff."""
        params = builders.batch_get(self.table, self.key_attribute, self.value_attribute, keys)
        backoff: Backoff | None = None
        while True:
            response = await self._read("BatchGetItem", params, None)
            for item in response.get("Responses", {}).get(self.table, []):
                items[item[self.key_attribute]["S"]] = item
            unprocessed = response.get("UnprocessedKeys") or {}
            if not unprocessed.get(self.table, {}).get("Keys"):
                return
            backoff = backoff or Backoff(self.retry)
            delay = backoff.next_delay()
            if delay is None:
                raise ThrottledError(
                    key=None,
                    attempts=backoff.attempts,
                    elapsed=backoff.elapsed,
                    last_code="UnprocessedKeys",
                )
            self._notify_retry("BatchGetItem", None, Outcome.THROTTLED, backoff.attempts - 1, delay)
            await self.retry.sleep(delay)
            params = {"RequestItems": unprocessed}

    def _number(self, item: Mapping[str, Any] | None, key: str) -> int:
        try:
            return builders.parse_number(item, self.value_attribute)
        except ValueError as exc:
            raise DynamoError("NotAnInteger", f"counter {key!r}: {exc}", key=key) from None

    def _notify_retry(
        self, operation: str, key: str | None, outcome: Outcome, attempt: int, delay: float
    ) -> None:
        self._stats.on_retry(operation, key, outcome, attempt, delay)
        for hook in self._hooks:
            self._notify(hook.on_retry, operation, key, outcome, attempt, delay)

    @staticmethod
    def _notify(method: Any, *args: Any) -> None:
        try:
            method(*args)
        except Exception:
            logger.exception("a pool hook raised; ignored")

"""`CounterPool`: exact atomic counters on DynamoDB for asyncio code.

The facade: options, lifecycle and the public methods. It validates each call and checks that the
pool is open, once, then hands the call down a pipeline it assembled at construction:

    sharding (counter -> item) -> key queue or direct write (one write in flight per key when
    coalescing or exactly once) -> write strategy (plain, exactly once) -> sender (a pool slot,
    the key's pace, the transport, the one retry loop) -> observers (stats, hooks)

and every call ends once through `settlement`. Reads and ``ensure_table`` use the same sender.
Time comes from one `Clock`, built from the `RetryPolicy`'s clock and sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from . import builders, windows
from .checks import number, whole
from .clock import Clock, wall_microseconds
from .connect import LOCAL_REGION as LOCAL_REGION
from .connect import TransportSettings, open_transport
from .described import TableCapacity
from .direct import DirectWrites
from .errors import DynamoError, TableNotFoundError
from .fences import Records
from .keyqueue import KeyQueues, merge_all, merge_background
from .limiter import KeyLimiter
from .observers import Observers
from .reads import Reads
from .retry import DEFAULT_RETRY, RetryPolicy
from .sender import Failed, Sender, public_error
from .settlement import Settlement
from .sharding import Sharding, check_shards, soonest
from .slots import Slots
from .stats import PoolHooks, PoolStats, StatsRecorder
from .tasks import Tasks
from .transport import Transport
from .writes import MAX_EXACTLY_ONCE_DEADLINE, PRUNE_AFTER, ExactlyOnceWrites, PlainWrites
from .writes import WRITER_SEQ_PREFIX as WRITER_SEQ_PREFIX
from .writes import WRITER_VALUE_PREFIX as WRITER_VALUE_PREFIX

__all__ = ["CounterPool"]

logger = logging.getLogger("async_counters")

DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
#: How long ensure_table() waits for a new table to become ACTIVE, and how often it looks.
TABLE_ACTIVE_TIMEOUT = 120.0
TABLE_POLL = 0.5
_MAX_NUMBER = builders.MAX_NUMBER
_MAX_KEY_BYTES = builders.MAX_KEY_BYTES


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


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
        ttl_attribute: str = "expires_at",
        wall_us: Callable[[], int] = wall_microseconds,
    ) -> None:
        for name, text in (
            ("table", table),
            ("key_attribute", key_attribute),
            ("value_attribute", value_attribute),
            ("ttl_attribute", ttl_attribute),
        ):
            if not isinstance(text, str):
                raise TypeError(f"{name} must be a str, not {type(text).__name__}")
            if not text:
                raise ValueError(f"{name} must not be empty")
        if len({key_attribute, value_attribute, ttl_attribute}) < 3:
            raise ValueError("key_attribute, value_attribute and ttl_attribute must differ")
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
        shards_default, shards_per_key = check_shards(shards)
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
        self.coalesce = coalesce
        self.linger = float(linger)
        self.exactly_once = exactly_once
        self.ttl_attribute = ttl_attribute
        self._given = given
        self._settings = TransportSettings(
            kind=transport_name or ("botocore" if client is not None else "fast"),
            table=table,
            endpoint_url=endpoint_url,
            region_name=region_name,
            session=session,
            client=client,
            max_in_flight=max_in_flight,
            connect_timeout=float(connect_timeout),
            read_timeout=float(read_timeout),
        )
        self._state = _State.UNOPENED
        self._exit_stack = contextlib.AsyncExitStack()
        self._closing: asyncio.Task[None] | None = None

        # The pipeline, assembled once: each mode is a choice of object here, not a branch later.
        clock = self._clock = Clock(now=retry.clock, sleep=retry.sleep, wall_us=wall_us)
        extra = (hooks,) if isinstance(hooks, PoolHooks) else tuple(hooks)
        self._stats = StatsRecorder()
        observers = self._observers = Observers(self._stats, extra)
        self._limiter = KeyLimiter(clock=clock.now, sleep=clock.sleep) if adaptive else None
        self._sender = Sender(
            policy=retry,
            clock=clock,
            observers=observers,
            slots=Slots(max_in_flight),
            pace=self._limiter,
            transport=given,
        )
        self._tasks = Tasks()
        if adaptive:  # the table's pace starts at the capacity its description gives
            self._sender.describe = TableCapacity(
                table,
                send=self._send,
                tell=self._sender.tell_table,
                tasks=self._tasks,
                clock=clock,
            )
        settlement = Settlement(observers, clock.now)
        names = {"table": table, "key_attribute": key_attribute, "value_attribute": value_attribute}
        strategy: PlainWrites | ExactlyOnceWrites
        if exactly_once:
            strategy = ExactlyOnceWrites(
                self._sender, observers=observers, tasks=self._tasks, clock=clock, **names
            )
            self.writer_id = strategy.writer_id
            self._records: Records | None = strategy.records
        else:
            strategy = PlainWrites(self._sender, stamp=windows.stamp(ttl_attribute), **names)
            self.writer_id = ""
            self._records = None
        queues = KeyQueues(
            strategy,
            self._sender,
            settlement,
            self._tasks,
            clock,
            merge=merge_all if coalesce else merge_background,
            linger=self.linger,
            **names,
        )
        # Background additions always merge, in the key queues (one write in flight per key).
        self._background = (
            queues
            if coalesce or exactly_once
            else KeyQueues(
                strategy,
                self._sender,
                settlement,
                self._tasks,
                clock,
                merge=merge_all,
                linger=self.linger,
                **names,
            )
        )
        writes: KeyQueues | DirectWrites = (
            queues
            if coalesce or exactly_once
            else DirectWrites(strategy, settlement, self._tasks, clock, table=table)
        )
        self._start = writes.start  # count a call and send it on its way
        self._left = writes.left  # its caller was cancelled
        self._sharding = (
            Sharding(
                shards_default,
                shards_per_key,
                pick=soonest(self._sender.load),  # the shard that can take a write soonest
                sender=self._sender,
                tasks=self._tasks,
                table=table,
                key_attribute=key_attribute,
                ttl_attribute=ttl_attribute,
            )
            if shards_default > 1 or shards_per_key
            else None
        )
        self._reads = Reads(self._sender, shards_of=self.shards_of, **names)

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
        self._tasks.loop = asyncio.get_running_loop()  # the pool lives on the loop it opened on
        try:
            if self._given is None:
                self._sender.transport = await open_transport(self._settings, self._exit_stack)
            self._observers.opened(lambda: self.stats)
        except BaseException:
            self._state = _State.CLOSED
            await self._exit_stack.aclose()
            raise

    @property
    def _transport(self) -> Transport | None:
        """The transport requests go through (None before the pool opened)."""
        return self._sender.transport

    async def aclose(self) -> None:
        """Wait for every operation in flight and everything queued, then release connections.

        Idempotent: a second call waits for the first to finish. A time-limited close
        (``wait_for(pool.aclose(), t)``) never cancels writes already sent: they, and what is
        queued, go on in the background, and the connections close after them.
        """
        if self._state is _State.UNOPENED:
            self._state = _State.CLOSED
            await self._exit_stack.aclose()
            return
        if self._closing is None:
            if self._state is _State.CLOSED:
                return
            self._state = _State.CLOSING
            self._closing = asyncio.get_running_loop().create_task(self._close())
        try:
            await asyncio.shield(self._closing)
        except asyncio.CancelledError:
            if not self._closing.done():
                stats = self.stats
                logger.warning(
                    "aclose() was cancelled with %d write(s) unfinished (%d request(s) on the "
                    "wire): they go on in the background, and the connections close after them",
                    stats.in_progress,
                    stats.in_flight,
                )
            raise

    async def _close(self) -> None:
        try:
            await self._tasks.wait()
            if self._records is not None:  # exactly_once: the records no copy can need
                await self._records.close()
        finally:
            try:
                counts = self._stats.counts  # not `stats`: its latency summary costs 0.6 ms
                if counts["unwritten"]:
                    logger.warning(
                        "%d background addition(s), %d in all, could not be written",
                        counts["unwritten"],
                        counts["unwritten_amount"],
                    )
            finally:
                self._state = _State.CLOSED
                await self._exit_stack.aclose()

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    def _not_open(self) -> RuntimeError:
        if self._state is _State.UNOPENED:
            return RuntimeError("the pool is not open: use `async with CounterPool(...)`")
        return RuntimeError("the pool is closed")

    # -- public operations -------------------------------------------------------------------

    @property
    def stats(self) -> PoolStats:
        """A snapshot of what the pool did so far (see `PoolStats`)."""
        key_rates = {} if self._limiter is None else self._limiter.rates()
        return self._stats.snapshot(
            key_rates=key_rates,
            table_rate=self._sender.table_rate(),
            max_in_flight=self.max_in_flight,
            in_flight=self._sender.in_flight,
        )

    async def increment(self, key: str, amount: int = 1, *, window: int | None = None) -> int:
        """Add ``amount`` (>= 1) to counter ``key``; return its value right after this increment.

        With ``window`` (seconds), the count is that of the current fixed window, aligned to
        the Unix epoch (see `windows`): a new window starts from 0.
        """
        # The common case in a few cheap checks (the hot path); anything else goes through the
        # full ones, which raise. An ASCII key's length is its size in bytes.
        if not (type(amount) is int and 0 < amount <= _MAX_NUMBER):
            builders.check_amount(amount)
        if not (type(key) is str and key.isascii() and 0 < len(key) <= _MAX_KEY_BYTES):
            builders.check_key(key)
        item = key if window is None else self._window_item(key, window)
        if self._state is not _State.OPEN:
            raise self._not_open()
        if self._sharding is not None:
            n = self._sharding.check(key)
            if n > 1:
                item = await self._sharding.item(item, n)
        call = self._start(key, item, amount, None)
        # An awaited call always has a future.
        future: asyncio.Future[int] = call.future  # type: ignore[assignment]
        try:
            return await future
        except asyncio.CancelledError:  # this caller's wait ends, never a write on the wire
            self._left(key, call)
            raise

    async def decrement(
        self, key: str, amount: int = 1, *, floor: int | None = None, window: int | None = None
    ) -> int:
        """Subtract ``amount`` (>= 1); return the value right after.

        With ``floor``, the decrement applies only if the counter stays ``>= floor`` (a counter
        never written counts as 0), under any concurrency; otherwise `CounterFloorError` is raised
        and nothing was applied.
        """
        builders.check_key(key)
        builders.check_amount(amount)
        builders.check_floor(floor, amount)
        item = key if window is None else self._window_item(key, window)
        if self._state is not _State.OPEN:
            raise self._not_open()
        if self._sharding is not None:
            n = self._sharding.check(key, floor)
            if n > 1:
                item = await self._sharding.item(item, n)
        call = self._start(key, item, -amount, floor)
        # An awaited call always has a future.
        future: asyncio.Future[int] = call.future  # type: ignore[assignment]
        try:
            return await future
        except asyncio.CancelledError:
            self._left(key, call)
            raise

    def add_nowait(self, key: str, amount: int = 1, *, window: int | None = None) -> None:
        """Add ``amount`` to ``key`` in the background, merged with other additions to it.

        For counting that needs no answer (page views): it returns at once. The write goes out as
        soon as the key's previous write returns; failures are counted in `stats` (``unwritten``)
        and reported to the hooks. ``flush()`` and ``aclose()`` wait until everything added is
        written, and ``aclose()`` logs how much could not be.
        """
        builders.check_key(key)
        builders.check_amount(amount)
        item = key if window is None else self._window_item(key, window)
        if self._state is not _State.OPEN:
            raise self._not_open()
        if self._sharding is not None:
            n = self._sharding.check(key)
            if n > 1:
                item = self._sharding.item_nowait(item, n)
        self._background.add(key, item, amount)

    async def flush(self) -> PoolStats:
        """Wait until every write queued or in flight has settled; return the stats then.

        A cancelled ``flush()`` cancels nothing it waited for."""
        await self._tasks.wait()
        return self.stats

    async def get(self, key: str, *, window: int | None = None) -> int:
        """The counter's value, read strongly consistently; 0 for a counter never written.

        With ``window``, its count in the current window (never an expired window's)."""
        builders.check_key(key)
        item = key if window is None else self._window(window).item(key)
        if self._state is not _State.OPEN:
            raise self._not_open()
        return await self._reads.get(item)

    async def get_many(self, keys: Iterable[str], *, window: int | None = None) -> dict[str, int]:
        """Values of several counters (strongly consistent), in the order given; 0 for unwritten.

        With ``window``, their counts in the current window."""
        if isinstance(keys, str):
            raise TypeError("get_many takes an iterable of keys, not a single str")
        wanted = list(dict.fromkeys(builders.check_key(key) for key in keys))
        if window is not None:
            current = self._window(window)
            items = {current.item(key): key for key in wanted}
        if self._state is not _State.OPEN:
            raise self._not_open()
        if window is None:
            return await self._reads.get_many(wanted)
        values = await self._reads.get_many(list(items))
        return {key: values[item] for item, key in items.items()}

    def _window(self, window: int) -> windows.Window:
        """The current window of ``window`` seconds, by the pool's wall clock."""
        return windows.Window.at(windows.check_window(window), self._clock.wall_us() / 1e6)

    def _window_item(self, key: str, window: int) -> str:
        """The item a windowed write to ``key`` goes to (checked before anything is sent)."""
        if self.exactly_once:
            raise ValueError(
                "windowed counters cannot be written exactly once: each window is a new item, "
                "and a retry could land in the next window (use a pool without exactly_once)"
            )
        return self._window(window).item(key)

    def shards_of(self, key: str) -> int:
        """How many items ``key``'s writes are spread over (1: not sharded)."""
        return 1 if self._sharding is None else self._sharding.of(key)

    async def ensure_table(self, *, ttl: bool = False) -> None:
        """Create the table (string partition key, on-demand) unless it exists; wait until ACTIVE.

        Idempotent. Raises `ValueError` if the table exists with a key schema the pool cannot use.
        With ``ttl=True``, also turns on time to live for ``ttl_attribute`` (windowed counters'
        old items are then deleted by DynamoDB, some time after they expire).
        """
        if not isinstance(ttl, bool):
            raise TypeError(f"ttl must be a bool, not {type(ttl).__name__}")
        if self._state is not _State.OPEN:
            raise self._not_open()
        try:
            await self._send("CreateTable", builders.create_table(self.table, self.key_attribute))
        except DynamoError as exc:
            if exc.code != "ResourceInUseException":
                raise
        clock = self._clock
        give_up = clock.now() + TABLE_ACTIVE_TIMEOUT
        while True:
            try:
                described = await self._send("DescribeTable", {"TableName": self.table})
            except TableNotFoundError:  # eventually consistent right after CreateTable
                described = {}
            table = described.get("Table", {})
            if table:
                self._check_key_schema(table)
            if table.get("TableStatus") == "ACTIVE":
                if ttl:
                    await self._ensure_ttl()
                return
            if clock.now() > give_up:
                raise TableNotFoundError(self.table)
            await clock.sleep(TABLE_POLL)

    async def _ensure_ttl(self) -> None:
        """Turn TTL on for ``ttl_attribute`` unless it is on already."""
        described = await self._send("DescribeTimeToLive", {"TableName": self.table})
        spec = described.get("TimeToLiveDescription", {})
        if spec.get("AttributeName") == self.ttl_attribute and spec.get("TimeToLiveStatus") in (
            "ENABLED",
            "ENABLING",
        ):
            return
        try:
            await self._send(
                "UpdateTimeToLive", windows.update_time_to_live(self.table, self.ttl_attribute)
            )
        except DynamoError as exc:  # enabled meanwhile by another pool: fine
            if "already enabled" not in str(exc).lower():
                raise

    async def _send(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A request with no effect to double (table creation and description)."""
        try:
            return await self._sender.send(operation, params, idempotent=True)
        except Failed as failure:
            raise public_error(failure, table=self.table, key=None) from None

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

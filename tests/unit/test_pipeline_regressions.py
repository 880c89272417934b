"""Six bugs found where the pool's modes meet, each pinned by a test that failed before its fix.

1. a recovered exactly-once write returned the counter's current value, not the one it left;
2. a sharded pool sent its shard record before checking that it was open;
3. a caller cancelled after its write was acknowledged, before it resumed, was not detached;
4. a time-limited ``aclose()`` cancelled writes already sent, and logged nothing;
5. a lone surrogate in a key passed validation (and a long one raised UnicodeEncodeError);
6. a user key could name the item of another counter's shard.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Any

import pytest

from async_counters import CounterPool, Outcome
from async_counters.transport import TransportError

from .fake import FakeTransport
from .memory_transport import MemoryTransport, stored

TABLE = "counters"


async def test_a_recovered_exactly_once_write_returns_the_value_it_left() -> None:
    """The lost answer's retry meets the condition failing on this writer's own sequence: the
    item then shows the value that write left (5), whatever the counter holds now (100)."""

    class AppliedBefore:
        async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
            names = params["ExpressionAttributeNames"]
            seq = params["ExpressionAttributeValues"][":seq"]
            item = {"count": {"N": "100"}, names["#ws"]: seq, names["#wv"]: {"N": "5"}}
            raise TransportError(
                Outcome.CONDITION_FAILED, "ConditionalCheckFailedException", status=400, item=item
            )

        async def aclose(self) -> None:
            pass

    async with CounterPool(TABLE, transport=AppliedBefore(), exactly_once=True) as pool:
        assert await pool.increment("k", 5) == 5
        assert pool.stats.recovered == 1
        assert pool.stats.acknowledged_amount == 5


@pytest.mark.parametrize("state", ["unopened", "closed"])
@pytest.mark.parametrize("shards", [4, {"k": 2}], ids=["all", "per-key"])
async def test_a_sharded_pool_checks_it_is_open_before_sending(
    state: str, shards: int | dict[str, int]
) -> None:
    transport = FakeTransport()
    pool = CounterPool(TABLE, transport=transport, shards=shards)
    if state == "closed":
        async with pool:
            pass
    for write in (
        lambda: pool.increment("k"),
        lambda: pool.decrement("k", 2),
        lambda: pool.get("k"),
        lambda: pool.get_many(["k"]),
    ):
        with pytest.raises(RuntimeError, match="not open" if state == "unopened" else "closed"):
            await write()
    with pytest.raises(RuntimeError):
        pool.add_nowait("k")
    assert transport.calls == []
    assert pool.stats.calls == 0


@pytest.mark.parametrize(
    "options",
    [{}, {"coalesce": True}, {"exactly_once": True}, {"coalesce": True, "exactly_once": True}],
    ids=["plain", "coalesce", "exactly-once", "both"],
)
@pytest.mark.parametrize("seed", [1, 2])
async def test_cancelled_callers_and_detached_account_for_every_applied_amount(
    options: dict[str, bool], seed: int
) -> None:
    """3,000 increments over 3 keys, 30 % of their callers cancelled at random moments (queued,
    on the wire, or answered but not yet resumed): what the server holds is exactly what callers
    were told plus what `detached` says their cancelled callers left behind."""
    rng = random.Random(seed)
    transport = MemoryTransport()
    await transport.create_table(TABLE)
    async with CounterPool(TABLE, transport=transport, max_in_flight=16, **options) as pool:
        amounts = [rng.randint(1, 5) for _ in range(3_000)]
        callers = [
            asyncio.create_task(pool.increment(f"k{i % 3}", amount))
            for i, amount in enumerate(amounts)
        ]
        doomed = rng.sample(callers, k=len(callers) * 3 // 10)
        while doomed:  # a few at every turn of the loop, wherever each caller is by then
            await asyncio.sleep(0)
            for _ in range(min(len(doomed), rng.randint(0, 40))):
                doomed.pop(rng.randrange(len(doomed))).cancel()
        results = await asyncio.gather(*callers, return_exceptions=True)
    received = sum(a for a, r in zip(amounts, results, strict=True) if isinstance(r, int))
    assert all(isinstance(r, int | asyncio.CancelledError) for r in results)
    held = sum(stored(transport, TABLE, f"k{i}") for i in range(3))
    stats = pool.stats
    assert held - received - stats.detached_amount == 0
    assert stats.calls == stats.settled == len(callers)
    assert stats.acknowledged_amount == held
    assert 0 < stats.cancelled + stats.detached <= len(callers) * 3 // 10


async def test_a_time_limited_aclose_keeps_sent_writes_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = MemoryTransport()
    await transport.create_table(TABLE)
    pool = CounterPool(TABLE, transport=transport)
    await pool.open()
    transport.gate = asyncio.Event()  # every write waits on the wire until it is set
    for i in range(100):
        pool.add_nowait(f"page:{i}", 2)
    with caplog.at_level(logging.WARNING, logger="async_counters"):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.aclose(), 0.05)
        assert "100 write(s)" in caplog.text  # what was still going when the time ran out
        transport.gate.set()
        await pool.aclose()  # waits for the close that the timeout left running
    assert pool.closed
    assert sum(stored(transport, TABLE, f"page:{i}") for i in range(100)) == 200
    stats = pool.stats
    assert (stats.acknowledged, stats.unwritten, stats.ambiguous) == (100, 0, 0)
    assert stats.settled == stats.calls == 100


async def test_what_a_timed_out_aclose_could_not_write_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = FakeTransport()
    pool = CounterPool(TABLE, transport=transport)
    await pool.open()
    transport.gate = asyncio.Event()
    transport.fail(Outcome.REJECTED, "ValidationException", times=3)
    for i in range(10):
        pool.add_nowait(f"page:{i}", 1 + i)
    with caplog.at_level(logging.WARNING, logger="async_counters"):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.aclose(), 0.05)
        transport.gate.set()
        await pool.aclose()
    stats = pool.stats
    assert stats.unwritten == 3 and stats.acknowledged == 7
    assert sum(transport.values.values()) == sum(range(1, 11)) - stats.unwritten_amount
    assert f"3 background addition(s), {stats.unwritten_amount} in all, could not be" in (
        caplog.text
    )


@pytest.mark.parametrize("key", ["\ud800", "views:\udfff", "\ud800" * 600], ids=["1", "2", "600"])
async def test_keys_that_are_not_valid_unicode_are_refused_before_sending(key: str) -> None:
    transport = FakeTransport()
    async with CounterPool(TABLE, transport=transport) as pool:
        for call in (
            lambda: pool.increment(key),
            lambda: pool.decrement(key, 1, floor=0),
            lambda: pool.get(key),
            lambda: pool.get_many(["ok", key]),
        ):
            with pytest.raises(ValueError, match="surrogate") as info:
                await call()
            assert type(info.value) is ValueError  # never a bare UnicodeEncodeError
        with pytest.raises(ValueError, match="surrogate"):
            pool.add_nowait(key)
    with pytest.raises(ValueError, match="surrogate"):
        CounterPool(TABLE, shards={key: 2})
    assert transport.calls == []
    stats = pool.stats
    assert stats.calls == stats.settled == stats.in_progress == 0


async def test_a_user_key_never_names_a_shard_item() -> None:
    """A sharded ``views`` and a plain ``views#1`` (the old name of its shard 1) stay apart."""
    transport = MemoryTransport()
    await transport.create_table(TABLE)
    async with (
        CounterPool(TABLE, transport=transport, shards={"views": 2}) as sharded,
        CounterPool(TABLE, transport=transport) as plain,
    ):
        for _ in range(10):
            await sharded.increment("views")
        await plain.increment("views#1", 1_000)
        assert await sharded.get("views") == await plain.get("views") == 10
        assert await sharded.get_many(["views", "views#1"]) == {"views": 10, "views#1": 1_000}
        assert await plain.get("views#1") == 1_000
        # Whatever the shards' items are named, no user key can name one of them.
        shard_items = set(transport.items(TABLE)) - {"views", "views#1"}
        assert shard_items
        for item in shard_items:
            with pytest.raises(ValueError, match="reserved"):
                await plain.increment(item)

"""Windowed counters against the embedded server, with the wall clock in the test's hands.

Windows change when the test moves its clock, never by sleeping; old window items are still on
the server (TTL deletes late, if ever) yet never counted by a read of the current window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from async_counters import CounterPool
from async_counters import windows as w
from async_counters.local import LocalDynamo


class WallClock:
    """A wall clock that moves only when the test sets ``now`` (epoch seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> int:
        return int(self.now * 1_000_000)


@pytest.fixture
def wall() -> WallClock:
    return WallClock(1_800_000_000.0 + 5)  # 5 s into a 60 s window (1.8e9 is a multiple of 60)


@pytest.fixture
async def wpool(endpoint_url: str, table_name: str, wall: WallClock) -> AsyncIterator[CounterPool]:
    async with CounterPool(table_name, endpoint_url=endpoint_url, wall_us=wall) as pool:
        await pool.ensure_table()
        yield pool


async def _raw(pool: CounterPool, item: str) -> dict[str, object]:
    """The item as stored, every attribute."""
    response = await pool._sender.send(
        "GetItem",
        {"TableName": pool.table, "Key": {"pk": {"S": item}}, "ConsistentRead": True},
        idempotent=True,
    )
    found: dict[str, object] = response.get("Item", {})
    return found


async def test_counts_restart_at_each_window_and_old_windows_are_never_read(
    wpool: CounterPool, wall: WallClock
) -> None:
    assert [await wpool.increment("api", window=60) for _ in range(3)] == [1, 2, 3]
    assert await wpool.increment("api", 4, window=60) == 7
    assert await wpool.decrement("api", 2, window=60) == 5
    assert await wpool.get("api", window=60) == 5
    assert await wpool.get("api") == 0  # the lifetime counter is another item
    first = w.Window.at(60, wall.now)

    wall.now = first.end - 0.001  # the last instant of the window
    assert await wpool.get("api", window=60) == 5
    wall.now = first.end  # the next window starts at 0
    assert await wpool.get("api", window=60) == 0
    assert await wpool.increment("api", window=60) == 1
    assert await wpool.get_many(["api", "other"], window=60) == {"api": 1, "other": 0}
    assert await wpool.get("api", window=3600) == 0  # another window length, another item

    # Far past its TTL, the old item is still there (TTL deletes late) and never counted.
    wall.now = first.start + 10 * 60
    stored = await _raw(wpool, first.item("api"))
    assert stored["count"] == {"N": "5"}
    assert stored["expires_at"] == {"N": str(first.end + 60 + w.GRACE)}
    assert wall.now > first.end + 60 + w.GRACE
    assert await wpool.get("api", window=60) == 0
    assert await wpool.get_many(["api"], window=60) == {"api": 0}


async def test_coalesced_and_sharded_windows(
    endpoint_url: str, table_name: str, wall: WallClock
) -> None:
    async with CounterPool(
        table_name, endpoint_url=endpoint_url, wall_us=wall, coalesce=True, shards={"hot": 3}
    ) as pool:
        await pool.ensure_table()
        values = await asyncio.gather(*(pool.increment("hot", window=10) for _ in range(40)))
        assert sorted(values)[-1] <= 40
        for _ in range(5):
            pool.add_nowait("hot", 2, window=10)
        await pool.flush()
        assert await pool.get("hot", window=10) == 50
        assert await pool.get_many(["hot", "cold"], window=10) == {"hot": 50, "cold": 0}
        start = w.Window.at(10, wall.now)
        for shard in range(1, 3):  # every shard of a window item carries the TTL
            stored = await _raw(pool, f"\ufdd0{start.item('hot')}#{shard}")
            if stored:
                assert stored["expires_at"] == {"N": str(start.end + 10 + w.GRACE)}
        wall.now = start.end
        assert await pool.get("hot", window=10) == 0


async def test_exactly_once_refuses_windows_at_the_call(endpoint_url: str, table_name: str) -> None:
    async with CounterPool(table_name, endpoint_url=endpoint_url, exactly_once=True) as pool:
        with pytest.raises(ValueError, match="exactly once"):
            await pool.increment("k", window=60)
        assert pool.stats.calls == 0


async def test_ensure_table_turns_ttl_on(
    endpoint_url: str, table_name: str, transport_name: str
) -> None:
    async with CounterPool(table_name, endpoint_url=endpoint_url, transport=transport_name) as pool:
        await pool.ensure_table(ttl=True)
        await pool.ensure_table(ttl=True)  # idempotent
        described = await pool._send("DescribeTimeToLive", {"TableName": pool.table})
    assert described["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    assert described["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"


async def test_the_embedded_server_deletes_expired_window_items_late_in_the_background(
    table_name: str,
) -> None:
    """Over HTTP, as DynamoDB does it: an item whose TTL passed longer ago than the server's
    delay is deleted by the server's own sweep, with no request asking; one expired more
    recently lingers, readable. Nothing here waits for a fixed time: the test polls for the
    deletion (bounded), then checks that the recent one is still there."""
    delay = 600.0
    now = time.time()
    with LocalDynamo(backend="memory", ttl_delay=delay) as server:
        async with CounterPool(table_name, endpoint_url=server.endpoint_url) as pool:
            await pool.ensure_table(ttl=True)
        items = {}
        for name, ago in (("old", 3600.0), ("recent", 300.0)):  # window starts this long ago
            wall = WallClock(now - ago)
            async with CounterPool(table_name, endpoint_url=server.endpoint_url, wall_us=wall) as p:
                await p.increment(name, 3, window=60)
                items[name] = w.Window.at(60, wall.now).item(name)
        # old: expired ~3,420 s ago, past the delay; recent: expired ~120 s ago, within it
        async with CounterPool(table_name, endpoint_url=server.endpoint_url) as pool:
            # The server sweeps on its own loop, in its own thread, about once a second: there
            # is no event to wait on from here, only the item to look at.
            async with asyncio.timeout(60):  # only a server that never sweeps takes this long
                while await _raw(pool, items["old"]):  # noqa: ASYNC110 (see above)
                    await asyncio.sleep(0.05)
            recent = await _raw(pool, items["recent"])
            assert recent["count"] == {"N": "3"}  # expired, not yet deleted: still readable
            assert int(recent["expires_at"]["N"]) < now  # type: ignore[index]

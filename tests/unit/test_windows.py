"""Window alignment, naming, validation and the TTL stamp (no server, no clock but the test's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from async_counters import CounterPool, builders
from async_counters import windows as w
from tests.unit.memory_transport import MemoryTransport


@pytest.mark.parametrize(
    ("length", "now", "start"),
    [
        (60, 0.0, 0),
        (60, 59.999, 0),
        (60, 60.0, 60),
        (60, 1_800_000_123.5, 1_800_000_120),
        (3600, 7199.0, 3600),
        (1, 5.5, 5),
        (7, 20.0, 14),
    ],
)
def test_windows_are_aligned_to_the_epoch(length: int, now: float, start: int) -> None:
    window = w.Window.at(length, now)
    assert (window.start, window.end) == (start, start + length)
    assert window.start <= now < window.end
    assert window.previous == w.Window(length, start - length)


def test_elapsed_fraction() -> None:
    window = w.Window.at(60, 120.0)
    assert window.elapsed(120.0) == 0.0
    assert window.elapsed(150.0) == 0.5
    assert window.elapsed(500.0) == 1.0


@pytest.mark.parametrize("bad", [1.5, True, "60", None])
def test_window_must_be_an_int(bad: object) -> None:
    with pytest.raises(TypeError, match="window"):
        w.check_window(bad)


@pytest.mark.parametrize("bad", [0, -60, w.MAX_WINDOW + 1])
def test_window_must_be_positive_and_bounded(bad: int) -> None:
    with pytest.raises(ValueError, match="window"):
        w.check_window(bad)


def test_window_items_are_reserved_names() -> None:
    item = w.Window(60, 120).item("api:42")
    assert item == "\ufdd160:120:api:42"
    assert w.expires_at(item) == 120 + 60 + 60 + w.GRACE
    assert w.expires_at(builders.shard_key(item, 2)) == w.expires_at(item)
    assert w.expires_at("api:42") is None
    assert w.expires_at(builders.shard_key("api:42", 2)) is None
    with pytest.raises(ValueError, match="U\\+FDD1"):
        builders.check_key(item)  # no user key can name a window item
    with pytest.raises(ValueError, match="too long"):
        w.Window(60, 0).item("k" * builders.MAX_KEY_BYTES)


def test_stamp_adds_the_ttl_without_mutating_shared_parts() -> None:
    add = builders.adder("t", "pk", "count")
    stamp = w.stamp("expires_at")
    item = w.Window(60, 120).item("k")
    plain = add(item, 3)
    names = dict(plain["ExpressionAttributeNames"])
    stamped = stamp(item, plain)
    assert stamped["UpdateExpression"] == "ADD #v :n SET #ttl = :ttl"
    assert stamped["ExpressionAttributeNames"] == {"#v": "count", "#ttl": "expires_at"}
    assert stamped["ExpressionAttributeValues"][":ttl"] == {"N": str(w.expires_at(item))}
    assert plain["ExpressionAttributeNames"] == names
    assert stamp("k", add("k", 1)) == add("k", 1)


async def test_bad_windows_raise_before_anything_is_sent() -> None:
    pool = CounterPool("t")  # never opened: the checks come first
    for bad, error in ((0, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="window"):
            await pool.increment("k", window=bad)  # type: ignore[arg-type]
        with pytest.raises(error, match="window"):
            await pool.decrement("k", window=bad)  # type: ignore[arg-type]
        with pytest.raises(error, match="window"):
            await pool.get("k", window=bad)  # type: ignore[arg-type]
        with pytest.raises(error, match="window"):
            await pool.get_many(["k"], window=bad)  # type: ignore[arg-type]
        with pytest.raises(error, match="window"):
            pool.add_nowait("k", window=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl_attribute"):
        CounterPool("t", ttl_attribute="count")


async def test_a_sharded_window_item_s_shard_count_record_expires_with_its_window() -> None:
    """The record of a sharded window counter's width goes on its first item, which may get no
    other write: it carries the window's TTL itself."""
    transport = MemoryTransport()
    await transport.create_table("tbl")
    sent: list[Mapping[str, Any]] = []
    call = transport.call

    async def recording(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        sent.append(params)
        return await call(operation, params)

    transport.call = recording  # type: ignore[method-assign]
    now = 1_800_000_000.0 + 7
    pool = CounterPool("tbl", transport=transport, shards=4, wall_us=lambda: int(now * 1e6))
    async with pool:
        await pool.increment("k", window=10)
    window = w.Window.at(10, now)
    [record] = [p for p in sent if "#ns" in p.get("ExpressionAttributeNames", {})]
    assert record["UpdateExpression"] == "SET #ns = :n, #ttl = :ttl"
    assert record["ExpressionAttributeNames"]["#ttl"] == "expires_at"
    expires = {"N": str(window.end + 10 + w.GRACE)}
    assert record["ExpressionAttributeValues"][":ttl"] == expires
    first = transport.items("tbl")[window.item("k")]
    assert first["expires_at"] == expires and builders.SHARDS_ATTRIBUTE in first
    assert all(item["expires_at"] == expires for item in transport.items("tbl").values())

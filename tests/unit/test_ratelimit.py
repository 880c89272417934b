"""`RateLimiter` on a fake transport: validation, the request a hit sends, and errors' decisions."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from async_counters import CounterPool, Decision, RateLimiter, RetryPolicy
from async_counters import windows as w
from async_counters.transport import Outcome
from tests.unit.fake import FakeTransport
from tests.unit.fake_time import Sleeps

NOW = 1_800_000_003.0


def _pool(transport: FakeTransport) -> CounterPool:
    retry = RetryPolicy(attempts=2, sleep=Sleeps())
    return CounterPool("t", transport=transport, retry=retry, wall_us=lambda: int(NOW * 1e6))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"limit": 0}, ValueError),
        ({"limit": 1.5}, TypeError),
        ({"per": 0}, ValueError),
        ({"per": 1.5}, ValueError),
        ({"per": float("inf")}, ValueError),
        ({"per": "60"}, TypeError),
        ({"sliding": 1}, TypeError),
        ({"on_error": "maybe"}, ValueError),
    ],
)
def test_bad_options(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        RateLimiter(CounterPool("t"), **kwargs)  # type: ignore[arg-type]


async def test_bad_hits_send_nothing() -> None:
    transport = FakeTransport()
    async with _pool(transport) as pool:
        limiter = RateLimiter(pool, limit=5)
        for key, cost, error in (
            ("k", 0, ValueError),
            ("k", 6, ValueError),
            ("k", 1.0, TypeError),
            ("", 1, ValueError),
            ("\ufdd1x", 1, ValueError),
        ):
            with pytest.raises(error):
                await limiter.hit(key, cost)  # type: ignore[arg-type]
    assert transport.calls == []


async def test_a_hit_is_one_conditional_write_with_placeholders_only() -> None:
    transport = FakeTransport()
    transport.fail(Outcome.CONDITION_FAILED, "ConditionalCheckFailedException")
    async with _pool(transport) as pool:
        decision = await RateLimiter(pool, limit=5, per=60).hit("api:1", cost=2)
    assert decision == Decision(False, 0, 57.0)
    [(operation, params)] = transport.calls
    window = w.Window.at(60, NOW)
    assert operation == "UpdateItem"
    assert params["Key"] == {"pk": {"S": window.item("api:1")}}
    assert params["UpdateExpression"] == "ADD #v :n SET #ttl = :ttl"
    assert params["ConditionExpression"] == "attribute_not_exists(#v) OR #v <= :max"
    assert params["ExpressionAttributeValues"][":max"] == {"N": "3"}
    assert params["ExpressionAttributeValues"][":ttl"] == {"N": str(window.end + 60 + w.GRACE)}
    assert params["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (Outcome.THROTTLED, "ProvisionedThroughputExceededException"),
        (Outcome.AMBIGUOUS, "InternalServerError"),
        (Outcome.UNREACHABLE, "ConnectionError"),
    ],
)
@pytest.mark.parametrize("on_error", ["deny", "allow"])
async def test_errors_map_to_on_error(outcome: Outcome, code: str, on_error: str) -> None:
    transport = FakeTransport()
    transport.fail(outcome, code, times=2)
    async with _pool(transport) as pool:
        limiter = RateLimiter(pool, limit=5, on_error=on_error)  # type: ignore[arg-type]
        decision = await limiter.hit("k")
    assert decision == Decision(on_error == "allow", 0, 1.0, unsure=True)


def _coalesced(transport: FakeTransport) -> CounterPool:
    retry = RetryPolicy(attempts=2, sleep=Sleeps())
    return CounterPool(
        "t", transport=transport, retry=retry, coalesce=True, wall_us=lambda: int(NOW * 1e6)
    )


@pytest.mark.parametrize("all_old", [True, False])
async def test_merged_hits_straddling_the_limit_admit_exactly_what_remains(all_old: bool) -> None:
    """Another process takes 94 of 100 while a merged write of 10 is on its way: the write is
    refused, the count it met decides that 6 more fit, and they alone go again."""
    transport = FakeTransport()
    transport.return_all_old = all_old
    item = w.Window.at(60, NOW).item("hot")
    apply = transport._apply

    def elsewhere(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if operation == "UpdateItem" and transport.requests("UpdateItem") == 1:
            transport.values[item] = 94  # another process, just before the merged write lands
        return apply(operation, params)

    transport._apply = elsewhere  # type: ignore[method-assign]
    async with _coalesced(transport) as pool:
        limiter = RateLimiter(pool, limit=100, per=60)
        assert limiter.coalesce
        decisions = await asyncio.gather(*(limiter.hit("hot") for _ in range(10)))
        denied = await limiter.hit("hot")  # the full window is known: no request
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 6 and transport.values[item] == 100
    assert [d.remaining for d in allowed] == [5, 4, 3, 2, 1, 0]  # each its own, in order
    assert not denied.allowed and denied.reset_after == 57.0
    writes = [p["ExpressionAttributeValues"] for op, p in transport.calls if op == "UpdateItem"]
    assert [(v[":n"]["N"], v[":max"]["N"]) for v in writes] == [
        ("10", "90"),  # the ten hits, merged: refused at 94
        ("6", "94"),  # exactly the room left, in arrival order
    ]
    assert transport.requests("GetItem") == (0 if all_old else 1)


async def test_coalesced_hits_with_costs_never_pass_the_limit() -> None:
    transport = FakeTransport()
    async with _coalesced(transport) as pool:
        limiter = RateLimiter(pool, limit=10, per=60)
        costs = [3, 4, 5, 1, 2, 6, 1]
        decisions = await asyncio.gather(*(limiter.hit("k", cost=c) for c in costs))
        assert await pool.get("k", window=60) == sum(
            c for c, d in zip(costs, decisions, strict=True) if d.allowed
        )
    # 3 and 4 merged (5 would pass 10 beside them: it waits with the rest); above 7, 5 and 6
    # cannot fit and are denied, 1 and 2 fit (10); the last 1 is denied by the known count.
    assert [d.allowed for d in decisions] == [True, True, False, True, True, False, False]
    assert transport.requests("UpdateItem") == 2


async def test_a_coalesced_failure_reaches_every_hit_in_the_write() -> None:
    transport = FakeTransport()
    transport.fail(Outcome.AMBIGUOUS, "InternalServerError")
    async with _coalesced(transport) as pool:
        limiter = RateLimiter(pool, limit=5)
        decisions = await asyncio.gather(*(limiter.hit("k") for _ in range(4)))
    assert decisions == [Decision(False, 0, 1.0, unsure=True)] * 4
    assert transport.requests("UpdateItem") == 1  # merged, and never retried blindly


def test_coalesce_must_be_a_bool() -> None:
    with pytest.raises(TypeError):
        RateLimiter(CounterPool("t"), coalesce=1)  # type: ignore[arg-type]


async def test_sliding_hits_merge_within_the_weighted_budget() -> None:
    """Sliding and coalesced: the previous window weighs 20 * 0.95 = 19 of 25 (NOW is 3 s into
    a 60 s window), so of 10 merged hits exactly 6 are admitted, by one write."""
    transport = FakeTransport()
    window = w.Window.at(60, NOW)
    transport.values[window.previous.item("s")] = 20
    async with _coalesced(transport) as pool:
        limiter = RateLimiter(pool, limit=25, per=60, sliding=True)
        decisions = await asyncio.gather(*(limiter.hit("s") for _ in range(10)))
    assert sum(d.allowed for d in decisions) == 6
    assert transport.values[window.item("s")] == 6
    assert transport.requests("UpdateItem") == 1 and transport.requests("GetItem") == 1
    assert all(0 < d.reset_after <= 57 for d in decisions if not d.allowed)


async def test_a_window_known_full_denies_without_a_request() -> None:
    transport = FakeTransport()
    now = [NOW]
    retry = RetryPolicy(attempts=2, sleep=Sleeps())
    pool = CounterPool("t", transport=transport, retry=retry, wall_us=lambda: int(now[0] * 1e6))
    async with pool:
        limiter = RateLimiter(pool, limit=3, per=60)
        assert [(await limiter.hit("k")).remaining for _ in range(3)] == [2, 1, 0]
        sent = len(transport.calls)
        denied = await limiter.hit("k")
        assert (denied.allowed, denied.unsure, denied.reset_after) == (False, False, 57.0)
        assert len(transport.calls) == sent  # the last answer showed the window full
        assert not (await limiter.hit("other", cost=3)).remaining  # other keys are their own
        now[0] += 60  # the next window: its count is not known, so the hit is written
        assert (await limiter.hit("k")).remaining == 2
    assert transport.requests("UpdateItem") == 5

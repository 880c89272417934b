"""`RateLimiter` on a fake transport: validation, the request a hit sends, and errors' decisions."""

from __future__ import annotations

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
    assert decision == Decision(on_error == "allow", 0, 1.0)

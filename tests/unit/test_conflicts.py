"""Writes refused for a conflicting transaction or replicated write: not applied, so retried
like throttling (the same jittered schedule), and counted apart in ``stats.conflicts``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from async_counters import CounterPool, DynamoError, RetryPolicy
from async_counters.retry import is_retryable
from async_counters.stats import StatsRecorder
from async_counters.transport import Outcome, outcome_for_code
from tests.unit.fake import FakeTransport

CODES = ("TransactionConflictException", "ReplicatedWriteConflictException")


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
async def pool(transport: FakeTransport, sleeps: Sleeps) -> AsyncIterator[CounterPool]:
    policy = RetryPolicy(attempts=4, base=0.1, cap=1.0, sleep=sleeps, rng=lambda: 0.5)
    async with CounterPool("t", transport=transport, retry=policy) as pool:
        yield pool


@pytest.mark.parametrize("code", CODES)
def test_a_conflict_is_its_own_outcome_and_retried(code: str) -> None:
    assert outcome_for_code(code, 400) is Outcome.CONFLICT
    assert is_retryable(Outcome.CONFLICT, idempotent=False)


@pytest.mark.parametrize("code", CODES)
async def test_conflicts_are_retried_with_the_throttling_schedule(
    pool: CounterPool, transport: FakeTransport, sleeps: Sleeps, code: str
) -> None:
    transport.fail(Outcome.CONFLICT, code, times=3)
    assert await pool.increment("a", 5) == 5
    assert transport.values == {"a": 5}  # applied once, by the attempt that was not refused
    assert sleeps.delays == [0.05, 0.1, 0.2]  # full jitter, as for throttling
    stats = pool.stats
    assert (stats.requests, stats.retries, stats.conflicts, stats.throttles) == (4, 3, 3, 0)
    assert (stats.acknowledged, stats.acknowledged_amount) == (1, 5)


async def test_conflicts_that_outlast_the_retries_are_an_error_and_add_up(
    pool: CounterPool, transport: FakeTransport
) -> None:
    transport.fail(Outcome.CONFLICT, "TransactionConflictException", times=4)
    with pytest.raises(DynamoError) as info:
        await pool.increment("a", 7)
    assert info.value.code == "TransactionConflictException"
    assert transport.values == {}
    stats = pool.stats
    assert stats.conflicts == 4
    assert dict(stats.errors) == {"TransactionConflictException": 1}
    assert stats.calls == stats.settled == 1


def test_the_recorder_counts_conflicts_apart_from_throttles() -> None:
    recorder = StatsRecorder()
    for outcome in (Outcome.CONFLICT, Outcome.THROTTLED, Outcome.CONFLICT, Outcome.ACKNOWLEDGED):
        recorder.on_request("UpdateItem", outcome, 0.001)
    snapshot = recorder.snapshot(key_rates={}, in_flight=0, max_in_flight=1)
    assert (snapshot.requests, snapshot.throttles, snapshot.conflicts) == (4, 1, 2)

"""Retry schedules, stopping rules and the classification of outcomes, with no real sleeps."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from async_counters import RetryPolicy
from async_counters.retry import Backoff, is_retryable
from async_counters.transport import Outcome, outcome_for_code

from .fake_time import VirtualTime


def test_full_jitter_draws_within_a_doubling_ceiling_up_to_cap() -> None:
    policy = RetryPolicy(base=0.1, cap=1.0, rng=lambda: 0.999999)
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    delays = list(itertools.islice(policy.delays(), len(ceilings)))
    assert delays == pytest.approx([c * 0.999999 for c in ceilings])
    zero = RetryPolicy(base=0.1, cap=1.0, rng=lambda: 0.0)
    assert list(itertools.islice(zero.delays(), 5)) == [0.0] * 5


def test_full_jitter_spreads_uniformly() -> None:
    rng = random.Random(7)
    policy = RetryPolicy(base=1.0, cap=1.0, rng=rng.random)
    draws = list(itertools.islice(policy.delays(), 10_000))
    assert all(0.0 <= d < 1.0 for d in draws)
    assert 0.48 < sum(draws) / len(draws) < 0.52  # uniform on [0, 1): mean 0.5


def test_decorrelated_jitter_stays_between_base_and_three_times_previous() -> None:
    rng = random.Random(3)
    policy = RetryPolicy(base=0.01, cap=0.5, jitter="decorrelated", rng=rng.random)
    previous = policy.base
    for delay in itertools.islice(policy.delays(), 2_000):
        assert policy.base <= delay <= min(policy.cap, previous * 3)
        previous = delay
    top = RetryPolicy(base=0.01, cap=0.5, jitter="decorrelated", rng=lambda: 0.999999)
    assert list(itertools.islice(top.delays(), 8))[-1] == pytest.approx(0.5)


def test_each_call_gets_a_fresh_schedule() -> None:
    policy = RetryPolicy(base=0.1, cap=10.0, rng=lambda: 0.5)
    first, second = policy.delays(), policy.delays()
    assert [next(first), next(first), next(first)] == [0.05, 0.1, 0.2]
    assert next(second) == 0.05


def test_backoff_stops_at_attempts() -> None:
    policy = RetryPolicy(attempts=4, deadline=None, base=0.1, rng=lambda: 0.5)
    backoff = Backoff(policy)
    assert [backoff.next_delay() for _ in range(5)] == [0.05, 0.1, 0.2, None, None]
    assert backoff.attempts == 4


def test_backoff_stops_when_the_next_retry_would_start_after_the_deadline() -> None:
    clock = VirtualTime(now=100.0)
    policy = RetryPolicy(deadline=1.0, base=0.4, cap=0.4, rng=lambda: 1.0, clock=clock)
    backoff = Backoff(policy, start=clock.now)
    assert backoff.next_delay() == 0.4
    clock.now += 0.4 + 0.05  # slept, then the request took 50 ms
    assert backoff.next_delay() == 0.4  # would start at 0.85 s: allowed
    clock.now += 0.4 + 0.05
    assert backoff.next_delay() is None  # would start at 1.3 s: past the deadline
    assert backoff.attempts == 3


def test_deadline_counts_from_the_first_attempt() -> None:
    clock = VirtualTime(now=100.0)
    policy = RetryPolicy(deadline=1.0, base=0.1, cap=0.1, rng=lambda: 1.0, clock=clock)
    start = clock.now
    clock.now += 0.95  # the first attempt itself took 950 ms
    assert Backoff(policy, start=start).next_delay() is None


def test_default_policy_is_bounded_by_a_deadline_not_a_small_attempt_count() -> None:
    policy = RetryPolicy()
    assert policy.attempts is None
    assert policy.deadline is not None and policy.deadline >= 10
    assert policy.jitter == "full"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"attempts": 0}, ValueError),
        ({"attempts": -1}, ValueError),
        ({"attempts": 2.0}, TypeError),
        ({"attempts": True}, TypeError),
        ({"base": 0}, ValueError),
        ({"base": -0.1}, ValueError),
        ({"base": float("inf")}, ValueError),
        ({"base": "1"}, TypeError),
        ({"cap": 0.01, "base": 0.1}, ValueError),
        ({"deadline": 0}, ValueError),
        ({"deadline": float("nan")}, ValueError),
        ({"deadline": None, "attempts": None}, ValueError),
        ({"jitter": "equal"}, ValueError),
    ],
)
def test_nonsensical_policies_are_refused(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("outcome", "write", "read"),
    [
        (Outcome.THROTTLED, True, True),
        (Outcome.CONFLICT, True, True),
        (Outcome.UNREACHABLE, True, True),
        (Outcome.AMBIGUOUS, False, True),
        (Outcome.CONDITION_FAILED, False, False),
        (Outcome.TABLE_NOT_FOUND, False, False),
        (Outcome.REJECTED, False, False),
    ],
)
def test_what_is_retried(outcome: Outcome, write: bool, read: bool) -> None:
    assert is_retryable(outcome, idempotent=False) is write
    assert is_retryable(outcome, idempotent=True) is read


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        ("ProvisionedThroughputExceededException", 400, Outcome.THROTTLED),
        ("ThrottlingException", 400, Outcome.THROTTLED),
        ("RequestLimitExceeded", 400, Outcome.THROTTLED),
        ("TransactionConflictException", 400, Outcome.CONFLICT),
        ("ReplicatedWriteConflictException", 400, Outcome.CONFLICT),
        ("ConditionalCheckFailedException", 400, Outcome.CONDITION_FAILED),
        ("ResourceNotFoundException", 400, Outcome.TABLE_NOT_FOUND),
        ("InternalServerError", 500, Outcome.AMBIGUOUS),
        ("ServiceUnavailable", 503, Outcome.AMBIGUOUS),
        ("SomethingNew", 502, Outcome.AMBIGUOUS),
        ("ValidationException", 400, Outcome.REJECTED),
        ("AccessDeniedException", 400, Outcome.REJECTED),
        ("UnrecognizedClientException", 400, Outcome.REJECTED),
    ],
)
def test_service_codes_map_to_outcomes(code: str, status: int, outcome: Outcome) -> None:
    assert outcome_for_code(code, status) is outcome

"""When to retry, and how long to wait in between.

Only what was certainly not applied is retried: throttled requests, writes refused for a
conflicting transaction or replicated write, and requests that never left (see `Outcome`).
Delays are jittered so that callers throttled together do not come back together; full jitter
is the default, after AWS's "Exponential Backoff and Jitter" analysis (full jitter finishes a
contended workload with the fewest calls and about the least time), with decorrelated jitter on
request. Retries are bounded mainly by a deadline: under a storm an increment should be
delayed, not dropped.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from .checks import number, whole
from .transport import Outcome

__all__ = ["DEFAULT_RETRY", "Backoff", "RetryPolicy", "is_retryable"]

Jitter = Literal["full", "decorrelated"]

DEFAULT_BASE = 0.025
DEFAULT_CAP = 1.0
DEFAULT_DEADLINE = 30.0


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How the pool retries a request that was certainly not applied.

    - ``attempts``: at most this many requests per operation (None: no count limit).
    - ``base``/``cap``: the first backoff ceiling in seconds, and the largest.
    - ``deadline``: give up once the next retry would start later than this many seconds after the
      first attempt was sent (None: no time limit). Time queued before an attempt, the first or
      a retry, for a pool slot or behind the key's pace, is flow control and does not count; a
      paced key's retry takes the next slot of the pace, ahead of the queue. At least one of
      ``attempts`` and ``deadline`` is set.
    - ``jitter``: ``"full"`` (sleep uniformly in ``[0, min(cap, base * 2**n)]``) or
      ``"decorrelated"`` (sleep uniformly in ``[base, 3 * previous]``, at most ``cap``).
    - ``sleep``, ``clock`` and ``rng`` are injectable so that tests are exact and instant
      (``rng`` returns floats in [0, 1)).

    >>> RetryPolicy(deadline=10.0, jitter="decorrelated")
    RetryPolicy(attempts=None, base=0.025, cap=1.0, deadline=10.0, jitter='decorrelated')
    """

    attempts: int | None = None
    base: float = DEFAULT_BASE
    cap: float = DEFAULT_CAP
    deadline: float | None = DEFAULT_DEADLINE
    jitter: Jitter = "full"
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    rng: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if self.attempts is not None:
            whole(self.attempts, "RetryPolicy.attempts", what="an int or None")
            if self.attempts < 1:
                raise ValueError("RetryPolicy.attempts must be >= 1")
        for name in ("base", "cap"):
            value = getattr(self, name)
            number(value, f"RetryPolicy.{name}", what="a number of seconds")
            if not 0 < value < float("inf"):
                raise ValueError(f"RetryPolicy.{name} must be > 0 and finite")
        if self.cap < self.base:
            raise ValueError("RetryPolicy.cap must be >= base")
        if self.deadline is not None:
            number(self.deadline, "RetryPolicy.deadline", what="a number of seconds or None")
            if not 0 < self.deadline < float("inf"):
                raise ValueError("RetryPolicy.deadline must be > 0 and finite")
        if self.attempts is None and self.deadline is None:
            raise ValueError("RetryPolicy needs attempts or a deadline: it would never give up")
        if self.jitter not in ("full", "decorrelated"):
            raise ValueError(
                f"RetryPolicy.jitter must be 'full' or 'decorrelated', not {self.jitter!r}"
            )

    def delays(self) -> Iterator[float]:
        """A fresh, endless schedule of backoff delays."""
        rng = self.rng
        if self.jitter == "full":
            ceiling = self.base
            while True:
                yield rng() * ceiling
                ceiling = min(self.cap, ceiling * 2)
        else:
            previous = self.base
            while True:
                previous = min(self.cap, self.base + rng() * (previous * 3 - self.base))
                yield previous


DEFAULT_RETRY = RetryPolicy()


#: Outcomes of requests certainly not applied, retried with the same jittered backoff.
_NOT_APPLIED = frozenset((Outcome.THROTTLED, Outcome.CONFLICT, Outcome.UNREACHABLE))


def is_retryable(outcome: Outcome, *, idempotent: bool) -> bool:
    """Whether a request that ended in ``outcome`` may be sent again.

    A write whose fate is unknown is never retried: an ``ADD`` that did apply would count twice.
    A read has no effect to double, so an ambiguous read is retried too.
    """
    if outcome in _NOT_APPLIED:
        return True
    return idempotent and outcome is Outcome.AMBIGUOUS


class Backoff:
    """The retry state of one operation: attempts made, time spent, the next delay.

    >>> policy = RetryPolicy(attempts=3, clock=lambda: 0.0, rng=lambda: 0.5)
    >>> backoff = Backoff(policy)
    >>> backoff.next_delay(), backoff.next_delay(), backoff.next_delay()
    (0.0125, 0.025, None)
    """

    __slots__ = ("_clock", "_delays", "_policy", "_start", "attempts", "queued")

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        start: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._policy = policy
        self._delays = policy.delays()
        # The caller's clock when it has one (the pool's, handed down), else the policy's.
        self._clock = policy.clock if clock is None else clock
        # Callers create a Backoff lazily, on the first failure, and pass when the first attempt
        # began: the deadline counts from there.
        self._start = self._clock() if start is None else start
        self.attempts = 1
        self.queued = 0.0  # seconds left out by `exclude`

    @property
    def elapsed(self) -> float:
        return self._clock() - self._start

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` out of the time the deadline counts (a retry queued behind a
        pace or for a pool slot: flow control, not retrying)."""
        self._start += seconds
        self.queued += seconds

    def next_delay(self) -> float | None:
        """After a retryable failure: seconds to wait before the next attempt, or None to stop."""
        policy = self._policy
        if policy.attempts is not None and self.attempts >= policy.attempts:
            return None
        delay = next(self._delays)
        if policy.deadline is not None and self.elapsed + delay > policy.deadline:
            return None
        self.attempts += 1
        return delay

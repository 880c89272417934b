"""`RateLimiter`: exact admission per fixed window, by one conditional write per hit.

    limiter = RateLimiter(pool, limit=100, per=60)
    decision = await limiter.hit("api:user-42")
    if not decision.allowed:
        return 429, {"Retry-After": ceil(decision.reset_after)}

Each key and window has one item (`windows`). A hit is ONE ``UpdateItem`` on it:
``ADD count :cost`` (and the TTL attribute), on condition that the count before it is at most
``limit - cost`` (or that it was never written). DynamoDB applies conditional writes to an item
one at a time, so however many processes hit a key at once, at most ``limit`` is admitted per
window. A denied hit changes nothing, and its refusal returns the item as it was
(``ReturnValuesOnConditionCheckFailure=ALL_OLD``): one request, no read before the write. Since a
window's count only grows, the highest count an answer showed is kept per key and window; a hit
that cannot fit even above it is denied without a request (`admission`).

Hot keys: with ``coalesce`` (the pool's, by default), concurrent hits on one key are merged into
one conditional write of their total cost, one write in flight per key; when the merged cost
straddles the limit, the refusal's count decides which hits still fit, and they go again
(`admission` says how exactness holds).

``sliding=True`` estimates a rolling window the way Cloudflare and `limits`' sliding-window counter
do: ``previous * (1 - f) + current``, where ``f`` is the fraction of the current window elapsed
and ``previous`` the previous window's final count (read once per key and window, then cached).
Admission is still one conditional write, on ``current <= limit - cost - floor(previous * (1-f))``.
Error bound: the current window never admits more than ``limit``, and any rolling span of
``per`` seconds admits at most ``limit + f * previous <= 2 * limit`` in the worst case (every
previous hit at the very end of its window); with hits spread evenly the estimate is exact. Hits
written into the previous window after it was read (clocks skewed between processes) are not
seen by that estimate.

Errors (``on_error``): when DynamoDB throttles the hit past the pool's retries (`ThrottledError`,
nothing was applied), when the endpoint cannot be reached (`ConnectError`), and when the outcome
is unknown (`AmbiguousWriteError`: the hit may or may not have been counted), the decision is
``allowed=False`` with ``on_error="deny"`` (the default: fail closed) or ``allowed=True`` with
``on_error="allow"`` (fail open), with ``remaining=0`` and ``reset_after`` at most 1 s. Any other
error (no such table, a bad request) is raised.

The limiter writes the window item itself, unsharded, whatever the pool's options: a condition
holds on one item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from . import builders
from .admission import CoalescedAdmission, DirectAdmission
from .checks import number, whole
from .errors import ConnectError, ThrottledError
from .pool import CounterPool
from .sender import Failed, public_error
from .transport import Outcome
from .windows import GRACE, PreviousCounts, Window, check_window

__all__ = ["Decision", "RateLimiter"]

#: The most previous-window counts a sliding limiter caches (one per key) before starting over.
MAX_CACHED = 10_000
_MAX_KEY_BYTES = builders.MAX_KEY_BYTES
#: The longest ``reset_after`` of a decision made on an error.
ERROR_RETRY = 1.0
_UNSURE = (Outcome.THROTTLED, Outcome.UNREACHABLE, Outcome.AMBIGUOUS)


@dataclass(frozen=True, slots=True)
class Decision:
    """One hit's answer.

    ``remaining``: how many more units the window admits after this hit (0 when denied).
    ``reset_after``: seconds until a hit like this one can succeed: 0.0 while some remains, else
    the time until the window ends (or, sliding, until enough of the previous window has aged).
    ``unsure``: the decision is ``on_error``'s, made on a throttle, an unreachable endpoint or
    an unknown outcome (the hit may then have been counted), not by the window's count.
    """

    allowed: bool
    remaining: int
    reset_after: float
    unsure: bool = False


class RateLimiter:
    """At most ``limit`` units per ``per``-second window and key, across every process.

    ``coalesce`` (default: the pool's ``coalesce``) merges concurrent hits on one key into one
    write of their total, one write in flight per key (`admission`): a hot key then needs about
    one write per round trip, not one per hit, and admission stays exact.
    """

    def __init__(
        self,
        pool: CounterPool,
        limit: int = 100,
        per: float = 60.0,
        *,
        sliding: bool = False,
        on_error: Literal["deny", "allow"] = "deny",
        coalesce: bool | None = None,
    ) -> None:
        if not isinstance(pool, CounterPool):
            raise TypeError(f"pool must be a CounterPool, not {type(pool).__name__}")
        limit = whole(limit, "limit")
        if not 1 <= limit <= builders.MAX_NUMBER:
            raise ValueError(f"limit must be >= 1, got {limit}")
        per = number(per, "per", what="a number of seconds")
        if not math.isfinite(per) or per != int(per):
            raise ValueError(f"per must be a whole number of seconds, got {per}")
        if not isinstance(sliding, bool):
            raise TypeError(f"sliding must be a bool, not {type(sliding).__name__}")
        if on_error not in ("deny", "allow"):
            raise ValueError(f"on_error must be 'deny' or 'allow', not {on_error!r}")
        if coalesce is None:
            coalesce = bool(pool.coalesce)
        elif not isinstance(coalesce, bool):
            raise TypeError(f"coalesce must be a bool or None, not {type(coalesce).__name__}")
        self.pool = pool
        self.limit = limit
        self.per = check_window(int(per))
        self.sliding = sliding
        self.on_error = on_error
        self.coalesce = coalesce
        names = {
            "table": pool.table,
            "key_attribute": pool.key_attribute,
            "value_attribute": pool.value_attribute,
            "ttl_attribute": pool.ttl_attribute,
        }
        self._admission: DirectAdmission | CoalescedAdmission = (
            CoalescedAdmission(pool._sender, pool._tasks, **names)
            if coalesce
            else DirectAdmission(pool._sender, **names)
        )
        self._admit = self._admission.admit
        self._wall_us = pool._clock.wall_us
        self._window = Window(self.per, -self.per)  # the last window a hit fell in
        self._previous = PreviousCounts(MAX_CACHED)

    async def hit(self, key: str, cost: int = 1) -> Decision:
        """Count ``cost`` units against ``key`` if the window still admits them."""
        if not (type(key) is str and key.isascii() and 0 < len(key) <= _MAX_KEY_BYTES):
            builders.check_key(key)
        limit = self.limit
        if not (type(cost) is int and 0 < cost <= limit):
            cost = whole(cost, "cost")
            if not 1 <= cost <= limit:
                raise ValueError(f"cost must be within [1, limit={limit}], got {cost}")
        pool = self.pool
        if pool._transport is None or pool.closed:
            raise pool._not_open()
        now = self._wall_us() / 1e6
        window = self._window
        if not window.start <= now < window.start + window.length:
            window = self._window = Window.at(self.per, now)
        end = window.start + window.length
        item = window.item(key)
        previous = weighted = 0
        if self.sliding:
            try:
                previous = await self._previous_count(key, window.previous)
            except (ThrottledError, ConnectError):
                return self._unsure(window, now)
            weighted = math.floor(previous * (1.0 - window.elapsed(now)))
        budget = limit - weighted  # the most the window's count may reach
        if budget < cost:  # the previous window alone fills it: no write can be admitted
            return Decision(False, 0, self._wait(window, now, 0, cost, previous))
        try:
            allowed, count = await self._admit(item, cost, budget, end + window.length + GRACE)
        except Failed as failure:
            if failure.error.outcome in _UNSURE:
                return self._unsure(window, now)
            raise public_error(failure, table=pool.table, key=key) from None
        if not allowed:
            return Decision(False, 0, self._wait(window, now, count, cost, previous))
        remaining = budget - count
        if remaining > 0:
            return Decision(True, remaining, 0.0)
        return Decision(True, 0, end - now)

    def window_ends_in(self) -> float:
        """Seconds until the current fixed window ends, by the pool's clock (when its counts
        start again from 0: what an HTTP ``RateLimit-Reset`` announces)."""
        now = self._wall_us() / 1e6
        return Window.at(self.per, now).end - now

    def _unsure(self, window: Window, now: float) -> Decision:
        """The decision on an error: ``on_error``'s, to be retried soon."""
        return Decision(self.on_error == "allow", 0, min(ERROR_RETRY, window.end - now), True)

    def _wait(self, window: Window, now: float, current: int, cost: int, prev: int) -> float:
        """Seconds until a hit of ``cost`` can be admitted, the count now being ``current``
        (and the previous window's ``prev``, sliding)."""
        to_end = window.end - now
        if not self.sliding:
            return to_end
        room = self.limit - cost - current  # what the previous window's weight must fall to
        if prev <= 0 or room < 0:
            return to_end
        # previous * (1 - f) <= room  <=>  f >= 1 - room / previous
        fraction = 1.0 - room / prev
        return max(0.0, min(to_end, window.start + fraction * window.length - now))

    async def _previous_count(self, key: str, previous: Window) -> int:
        """The previous window's count: one read per key and window, shared by concurrent hits."""
        return await self._previous.get(
            key, previous.start, lambda: self.pool._reads.get(previous.item(key))
        )

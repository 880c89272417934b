"""Exact asyncio atomic counters on DynamoDB.

>>> async with CounterPool("counters") as pool:
...     views = await pool.increment("views:/home")
"""

from .errors import (
    AmbiguousWriteError,
    ConnectError,
    CounterError,
    CounterFloorError,
    DynamoError,
    TableNotFoundError,
    ThrottledError,
)
from .pool import CounterPool
from .ratelimit import Decision, RateLimiter
from .retry import RetryPolicy
from .stats import LatencySummary, PoolHooks, PoolStats
from .transport import Outcome

__all__ = [
    "AmbiguousWriteError",
    "ConnectError",
    "CounterError",
    "CounterFloorError",
    "CounterPool",
    "Decision",
    "DynamoError",
    "LatencySummary",
    "Outcome",
    "PoolHooks",
    "PoolStats",
    "RateLimiter",
    "RetryPolicy",
    "TableNotFoundError",
    "ThrottledError",
]

__version__ = "0.1.0"

"""Fixtures shared by the unit tests: a fake transport, a recording sleep, a pool on both.

A module changes the pool's options by defining its own ``pool_options`` fixture (the coalescing
tests ask for ``{"coalesce": True}``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from async_counters import CounterPool, RetryPolicy

from .fake import FakeTransport
from .fake_time import Sleeps


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def pool_options() -> dict[str, Any]:
    return {}


@pytest.fixture
async def pool(
    transport: FakeTransport, sleeps: Sleeps, pool_options: dict[str, Any]
) -> AsyncIterator[CounterPool]:
    """Five attempts, backoff 0.1 s doubling to 1 s at half jitter, slept by ``sleeps``."""
    policy = RetryPolicy(attempts=5, base=0.1, cap=1.0, sleep=sleeps, rng=lambda: 0.5)
    async with CounterPool("t", transport=transport, retry=policy, **pool_options) as pool:
        yield pool

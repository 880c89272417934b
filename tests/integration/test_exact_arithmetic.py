"""Counters at DynamoDB's full 38 digits: the embedded server's ledger, the pool's answers and a
plain aiobotocore read agree exactly, on the memory and moto backends and on both transports.

Python's default decimal context keeps 28 digits; anything that sums amounts in it disagrees with
the server above 10**28 (one increment of 10**28 + 1 was once ledgered as 10**28).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from async_counters import CounterPool
from async_counters.local import LocalDynamo

MAX = 10**38 - 1  # the largest whole number DynamoDB holds at 38 digits
TABLE = "exact"

# A value of the counter: anywhere in DynamoDB's range, and often at a power of ten and next to
# one, where rounding to fewer digits shows.
_VALUES = st.one_of(
    st.integers(-MAX, MAX),
    st.builds(
        lambda k, off, sign: sign * max(1, min(MAX, 10**k + off)),
        st.integers(0, 38),
        st.integers(-2, 2),
        st.sampled_from([1, -1]),
    ),
)


@st.composite
def _deltas(draw: st.DrawFn) -> list[int]:
    """Amounts that walk the counter through random values, never out of DynamoDB's range."""
    total, deltas = 0, []
    for target in draw(st.lists(_VALUES, min_size=1, max_size=6)):
        delta = max(-MAX, min(MAX, target - total))
        if delta:
            deltas.append(delta)
            total += delta
    return deltas or [1]


class Harness:
    """One embedded server, and on one event loop kept across examples: a pool per transport and
    mode, and a plain aiobotocore client (no project code) for reading back."""

    def __init__(self, server: LocalDynamo) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._stack = contextlib.AsyncExitStack()
        self.pools: dict[tuple[str, bool], CounterPool] = {}
        self.client: Any = None

    async def open(self) -> None:
        url = self.server.endpoint_url
        for transport in ("fast", "botocore"):
            for exactly_once in (False, True):
                pool = CounterPool(
                    TABLE, endpoint_url=url, transport=transport, exactly_once=exactly_once
                )
                self.pools[transport, exactly_once] = await self._stack.enter_async_context(pool)
        await self.pools["fast", False].ensure_table()
        self.client = await self._stack.enter_async_context(
            get_session().create_client(
                "dynamodb",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
                config=Config(retries={"total_max_attempts": 1}),
            )
        )

    async def apply(
        self, key: str, deltas: list[int], transport: str, exactly_once: bool
    ) -> tuple[list[int], int, int]:
        """The pool's answer to each write, its own read, and the plain read of the counter."""
        pool = self.pools[transport, exactly_once]
        answers = [
            await (pool.increment(key, d) if d > 0 else pool.decrement(key, -d)) for d in deltas
        ]
        response = await self.client.get_item(
            TableName=TABLE, Key={"pk": {"S": key}}, ConsistentRead=True
        )
        return answers, await pool.get(key), int(response["Item"]["count"]["N"])

    def close(self) -> None:
        self.loop.run_until_complete(self._stack.aclose())
        self.loop.close()


@pytest.fixture(scope="module", params=["memory", "moto"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with LocalDynamo(backend=request.param) as server:
        harness = Harness(server)
        try:
            harness.loop.run_until_complete(harness.open())
            yield harness
        finally:
            harness.close()


@pytest.mark.parametrize("transport", ["fast", "botocore"])
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure is reproducible, never a flake
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # only the env scrub is one
)
@example(deltas=[10**28 + 1], exactly_once=False)
@example(deltas=[MAX], exactly_once=False)
@example(deltas=[MAX, -MAX, -MAX, MAX], exactly_once=True)
@given(deltas=_deltas(), exactly_once=st.booleans())
def test_ledger_answers_and_plain_read_agree_at_38_digits(
    harness: Harness, transport: str, deltas: list[int], exactly_once: bool
) -> None:
    key = f"k-{uuid.uuid4().hex}"
    answers, got, plain = harness.loop.run_until_complete(
        harness.apply(key, deltas, transport, exactly_once)
    )
    running = [sum(deltas[: i + 1]) for i in range(len(deltas))]
    entry = harness.server.ledger(TABLE)[key]
    assert answers == running  # each answer is the counter right after its own write
    assert got == plain == running[-1]
    assert type(entry.sum) is int and entry.sum == running[-1]
    assert entry.count == len(deltas)

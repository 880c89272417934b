"""Real servers on 127.0.0.1: the embedded DynamoDB, shared by the session; a table per test."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from async_counters import CounterPool
from async_counters.local import LocalDynamo


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalDynamo]:
    with LocalDynamo() as server:
        yield server


@pytest.fixture
def endpoint_url(local_server: LocalDynamo) -> str:
    return local_server.endpoint_url


@pytest.fixture
def table_name(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name[:40])
    return f"t-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["botocore", "fast"])
def transport_name(request: pytest.FixtureRequest) -> str:
    """Every test that builds a pool runs once per transport: they must be interchangeable."""
    name: str = request.param
    return name


@pytest.fixture
async def pool(
    endpoint_url: str, table_name: str, transport_name: str
) -> AsyncIterator[CounterPool]:
    async with CounterPool(table_name, endpoint_url=endpoint_url, transport=transport_name) as pool:
        await pool.ensure_table()
        yield pool

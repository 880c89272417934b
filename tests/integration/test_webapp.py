"""The example web app under a real uvicorn on 127.0.0.1, hit by concurrent HTTP requests."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from async_counters import CounterPool
from async_counters.examples.webapp import create_app
from tests.integration.uvicorn_serving import serving


@pytest.fixture
async def app_url(
    endpoint_url: str, table_name: str, transport_name: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    # The example builds its pool with the default transport; here it runs on each in turn.
    monkeypatch.setattr(
        "async_counters.examples.webapp.CounterPool",
        functools.partial(CounterPool, transport=transport_name),
    )
    async with serving(create_app(table_name, endpoint_url=endpoint_url)) as url:
        yield url


@pytest.mark.timing
async def test_concurrent_page_views_are_counted_exactly(
    app_url: str, endpoint_url: str, table_name: str, transport_name: str
) -> None:
    views, stock, buyers = 200, 20, 60
    limits = httpx.Limits(max_connections=100)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=app_url, limits=limits, timeout=30) as http:
        answers = await asyncio.gather(*(http.post("/views/home") for _ in range(views)))
        assert {r.status_code for r in answers} == {200}
        numbers = sorted(r.json()["views"] for r in answers)
        assert numbers == list(range(1, views + 1))  # every view got its own number

        async with CounterPool(
            table_name, endpoint_url=endpoint_url, transport=transport_name
        ) as pool:
            await pool.increment("stock:sku-1", stock)
        sales = await asyncio.gather(*(http.post("/buy/sku-1") for _ in range(buyers)))
        assert sorted(r.status_code for r in sales) == [200] * stock + [409] * (buyers - stock)
        read_back = (await http.get("/views/home")).json()["views"]
    elapsed = time.perf_counter() - started

    async with CounterPool(table_name, endpoint_url=endpoint_url, transport=transport_name) as pool:
        assert await pool.get("views:/home") == views == read_back
        assert await pool.get("stock:sku-1") == 0
    print(f"\nweb app: {views} views + {buyers} purchases over HTTP, {elapsed:.1f}s")

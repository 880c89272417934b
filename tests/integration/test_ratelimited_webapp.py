"""The rate-limited example app under a real uvicorn on 127.0.0.1, hit by concurrent clients.

The pool's wall clock is the test's: a window ends when the test moves it, never by sleeping.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import httpx
import pytest

from async_counters import CounterPool
from async_counters import windows as w
from async_counters.examples.ratelimited import create_app
from tests.integration.test_windows import WallClock
from tests.integration.uvicorn_serving import serving

LIMIT, PER = 10, 60
CLIENTS, REQUESTS = 3, 20  # requests per client, all at once


@pytest.fixture
def wall() -> WallClock:
    return WallClock(1_800_000_000.0 + 15.5)  # 15.5 s into a 60 s window


@pytest.fixture
async def app_url(endpoint_url: str, table_name: str, wall: WallClock) -> AsyncIterator[str]:
    # The example's own transport (the default): the pool's transports are tested elsewhere.
    app = create_app(table_name, endpoint_url=endpoint_url, limit=LIMIT, per=PER, wall_us=wall)
    async with serving(app) as url:
        yield url


async def _burst(http: httpx.AsyncClient, keys: list[str | None]) -> list[httpx.Response]:
    """Every client's requests at once; ``None``: a client known by its address."""
    return await asyncio.gather(
        *(
            http.get("/", headers={} if key is None else {"X-API-Key": key})
            for key in keys
            for _ in range(REQUESTS)
        )
    )


def _check_window(answers: list[httpx.Response], reset: int) -> None:
    """Exactly LIMIT through, the rest 429, every header as the draft has it."""
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(ok) == LIMIT and len(refused) == REQUESTS - LIMIT
    assert sorted(int(r.headers["RateLimit-Remaining"]) for r in ok) == list(range(LIMIT))
    for r in answers:
        remaining = r.headers["RateLimit-Remaining"]
        assert r.headers["RateLimit-Limit"] == str(LIMIT)
        assert r.headers["RateLimit-Reset"] == str(reset)
        assert r.headers["RateLimit-Policy"] == f'"per-client";q={LIMIT};w={PER}'
        assert r.headers["RateLimit"] == f'"per-client";r={remaining};t={reset}'
    for r in refused:
        assert r.headers["Retry-After"] == str(reset)
        assert r.headers["RateLimit-Remaining"] == "0"
        assert r.json() == {"error": "too many requests"}
    assert all("Retry-After" not in r.headers for r in ok)


async def test_each_client_gets_exactly_its_limit_per_window(
    app_url: str, endpoint_url: str, table_name: str, wall: WallClock
) -> None:
    keys: list[str | None] = [f"key-{i}" for i in range(CLIENTS - 1)] + [None]
    window = w.Window.at(PER, wall.now)
    limits = httpx.Limits(max_connections=CLIENTS * REQUESTS)
    async with httpx.AsyncClient(base_url=app_url, limits=limits, timeout=30) as http:
        answers = await _burst(http, keys)
        reset = math.ceil(window.end - wall.now)  # 45
        for i in range(CLIENTS):
            _check_window(answers[i * REQUESTS : (i + 1) * REQUESTS], reset)
        ok = [r for r in answers[-REQUESTS:] if r.status_code == 200]
        assert {r.json()["hello"] for r in ok} == {"ip:127.0.0.1"}

        wall.now = window.end + 50.2  # the next window, 50.2 s in: every client starts again
        answers = await _burst(http, keys)
        for i in range(CLIENTS):
            _check_window(answers[i * REQUESTS : (i + 1) * REQUESTS], 10)

        too_long = await http.get("/", headers={"X-API-Key": "k" * 2048})
        assert too_long.status_code == 400

    async with CounterPool(table_name, endpoint_url=endpoint_url) as pool:
        for key in ("api:key-0", "api:key-1", "ip:127.0.0.1"):  # read back from the server
            for start in (window.start, window.end):
                assert await pool._reads.get(w.Window(PER, start).item(key)) == LIMIT

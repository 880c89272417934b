"""A Starlette app that counts page views with one CounterPool, opened in the app's lifespan.

Run it against the embedded DynamoDB (``async-counters local --port 8000`` in another shell)::

    COUNTERS_ENDPOINT_URL=http://127.0.0.1:8000 uvicorn async_counters.examples.webapp:app

then ``curl -X POST localhost:8000/views/home`` counts a view and answers its number.
Without ``COUNTERS_ENDPOINT_URL`` it talks to DynamoDB with the default AWS credential chain.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from async_counters import CounterFloorError, CounterPool


def create_app(table: str, *, endpoint_url: str | None = None) -> Starlette:
    """The app, counting in ``table`` (created on startup if missing)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with CounterPool(table, endpoint_url=endpoint_url) as pool:
            await pool.ensure_table()
            app.state.pool = pool
            yield  # the pool closes after in-flight increments finish

    async def count_view(request: Request) -> JSONResponse:
        pool: CounterPool = request.app.state.pool
        views = await pool.increment(f"views:/{request.path_params['page']}")
        return JSONResponse({"views": views})

    async def read_views(request: Request) -> JSONResponse:
        pool: CounterPool = request.app.state.pool
        return JSONResponse({"views": await pool.get(f"views:/{request.path_params['page']}")})

    async def buy(request: Request) -> JSONResponse:
        pool: CounterPool = request.app.state.pool
        try:
            left = await pool.decrement(f"stock:{request.path_params['sku']}", floor=0)
        except CounterFloorError:
            return JSONResponse({"error": "sold out"}, status_code=409)
        return JSONResponse({"left": left})

    return Starlette(
        routes=[
            Route("/views/{page:path}", count_view, methods=["POST"]),
            Route("/views/{page:path}", read_views, methods=["GET"]),
            Route("/buy/{sku}", buy, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


app = create_app(
    os.environ.get("COUNTERS_TABLE", "counters"),
    endpoint_url=os.environ.get("COUNTERS_ENDPOINT_URL") or None,
)

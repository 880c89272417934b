"""A Starlette app that counts page views with one CounterPool, opened in the app's lifespan.

It needs the ``[web]`` extra (starlette, uvicorn). Run it against the embedded DynamoDB
(``async-counters local --port 8000`` in another shell)::

    COUNTERS_ENDPOINT_URL=http://127.0.0.1:8000 python -m async_counters.examples.webapp

(or ``uvicorn async_counters.examples.webapp:app --port 8080``), then
``curl -X POST localhost:8080/views/home`` counts a view and answers its number. It serves on
port 8080 (`DEFAULT_PORT`), not uvicorn's 8000, where the local DynamoDB above listens.
Without ``COUNTERS_ENDPOINT_URL`` it talks to DynamoDB with the default AWS credential chain.

With the ``[prometheus]`` extra installed, ``GET /metrics`` is a Prometheus scrape of the pool:
`OpenTelemetryHooks` on an SDK ``MeterProvider`` whose reader is OpenTelemetry's Prometheus
exporter (``db_client_operation_duration_seconds``, ``async_counters_increments_total``,
``async_counters_write_units_total``, ...), on a registry of the app's own.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError:
    if __name__ != "__main__":
        raise
    sys.stderr.write(
        "async_counters.examples.webapp: needs starlette and uvicorn, not installed: "
        "pip install 'async-counters[web]'\n"
    )
    sys.exit(2)

from async_counters import CounterFloorError, CounterPool, PoolHooks

try:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from async_counters.telemetry import OpenTelemetryHooks
except ImportError:  # without the [prometheus] extra: no /metrics
    PROMETHEUS = False
else:
    PROMETHEUS = True

#: The example's port: not uvicorn's 8000, which the README gives `async-counters local`.
DEFAULT_PORT: Final = 8080


def create_app(
    table: str, *, endpoint_url: str | None = None, metrics: bool | None = None
) -> Starlette:
    """The app, counting in ``table`` (created on startup if missing); ``metrics`` serves
    ``/metrics`` (by default when the ``[prometheus]`` extra is installed)."""
    if metrics is None:
        metrics = PROMETHEUS
    elif metrics and not PROMETHEUS:
        raise ImportError(
            "/metrics needs the [prometheus] extra: pip install 'async-counters[web,prometheus]'"
        )
    registry = CollectorRegistry(auto_describe=True) if metrics else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hooks: list[PoolHooks] = []
        meter_provider = None
        if registry is not None:
            meter_provider = MeterProvider(
                metric_readers=[PrometheusMetricReader(registry=registry)]
            )
            hooks.append(OpenTelemetryHooks(meter_provider, table=table))
        try:
            async with CounterPool(table, endpoint_url=endpoint_url, hooks=hooks) as pool:
                await pool.ensure_table()
                app.state.pool = pool
                yield  # the pool closes after in-flight increments finish
        finally:
            if meter_provider is not None:
                meter_provider.shutdown()

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

    routes = [
        Route("/views/{page:path}", count_view, methods=["POST"]),
        Route("/views/{page:path}", read_views, methods=["GET"]),
        Route("/buy/{sku}", buy, methods=["POST"]),
    ]
    if registry is not None:
        scraped = registry

        async def scrape(request: Request) -> Response:
            # Collecting runs the hooks' callbacks here, on the event loop, between requests.
            return Response(generate_latest(scraped), media_type=CONTENT_TYPE_LATEST)

        routes.append(Route("/metrics", scrape, methods=["GET"]))
    return Starlette(routes=routes, lifespan=lifespan)


app = create_app(
    os.environ.get("COUNTERS_TABLE", "counters"),
    endpoint_url=os.environ.get("COUNTERS_ENDPOINT_URL") or None,
)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m async_counters.examples.webapp [--port 8080]``: serve `app` with uvicorn."""
    parser = argparse.ArgumentParser(
        prog="python -m async_counters.examples.webapp",
        description="Count page views in DynamoDB ($COUNTERS_ENDPOINT_URL, $COUNTERS_TABLE).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        sys.stderr.write(
            "async_counters.examples.webapp: needs uvicorn, not installed: "
            "pip install 'async-counters[web]'\n"
        )
        return 2
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())

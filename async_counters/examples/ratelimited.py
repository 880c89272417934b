"""A Starlette app that limits each client to ``limit`` requests per ``per`` seconds.

Every request is one `RateLimiter` hit on a `CounterPool` opened in the app's lifespan, keyed by
the client: its ``X-API-Key`` header when it sends one (``api:<key>``), else its address
(``ip:<host>``; behind a proxy, run uvicorn with ``--proxy-headers`` so that this is the
client's, not the proxy's). Admission is exact across every process and host sharing the table:
never more than ``limit`` per window and client. The pool coalesces, so a hot client costs about
one DynamoDB write per round trip, not one per request.

A refused request gets ``429 Too Many Requests`` with ``Retry-After`` (seconds, RFC 9110). Every
answer, allowed or refused, carries the rate-limit fields of the IETF httpapi draft
(draft-ietf-httpapi-ratelimit-headers), in both of its forms:

- the current one (drafts 08 to 10), structured fields naming the policy::

      RateLimit-Policy: "per-client";q=100;w=60
      RateLimit: "per-client";r=42;t=17

  ``q`` the quota, ``w`` the window (seconds), ``r`` what remains, ``t`` seconds until it resets;
- the earlier one (drafts 00 to 07), which many clients still read:
  ``RateLimit-Limit: 100``, ``RateLimit-Remaining: 42``, ``RateLimit-Reset: 17``.

``t`` and ``RateLimit-Reset`` count to the end of the current window; on a refusal they equal
``Retry-After``. Run it against the embedded DynamoDB (``async-counters local --port 8000``)::

    COUNTERS_ENDPOINT_URL=http://127.0.0.1:8000 python -m async_counters.examples.ratelimited

then ``curl -i localhost:8081/`` (``RATE_LIMIT`` and ``RATE_PER`` set the policy: 10 per 60 s
by default). It needs the ``[web]`` extra (starlette, uvicorn).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError:
    if __name__ != "__main__":
        raise
    sys.stderr.write(
        "async_counters.examples.ratelimited: needs starlette and uvicorn, not installed: "
        "pip install 'async-counters[web]'\n"
    )
    sys.exit(2)

from async_counters import CounterPool, Decision, RateLimiter

#: The example's port (the page-view example takes 8080, `async-counters local` 8000).
DEFAULT_PORT: Final = 8081
#: The policy's name in the ``RateLimit`` and ``RateLimit-Policy`` fields.
POLICY: Final = "per-client"
#: The header a client names itself by; without it, its address is its name.
API_KEY_HEADER: Final = "x-api-key"
_API_KEY: Final = API_KEY_HEADER.encode()


def client_key(scope: Scope) -> str:
    """The counter a request is charged to: its API key, else its client's address."""
    for name, value in scope.get("headers", ()):
        if name == _API_KEY:
            key: str = "api:" + value.decode("latin-1")
            return key
    client = scope.get("client")
    return "ip:" + (str(client[0]) if client else "unknown")


def rate_limit_headers(limiter: RateLimiter, decision: Decision) -> list[tuple[bytes, bytes]]:
    """The draft's fields (both forms) and, on a refusal, ``Retry-After``."""
    if decision.allowed:
        reset = math.ceil(limiter.window_ends_in())
    else:
        reset = max(1, math.ceil(decision.reset_after))
    remaining = decision.remaining
    fields = [
        ("RateLimit-Policy", f'"{POLICY}";q={limiter.limit};w={limiter.per}'),
        ("RateLimit", f'"{POLICY}";r={remaining};t={reset}'),
        ("RateLimit-Limit", str(limiter.limit)),
        ("RateLimit-Remaining", str(remaining)),
        ("RateLimit-Reset", str(reset)),
    ]
    if not decision.allowed:
        fields.append(("Retry-After", str(reset)))
    return [(name.lower().encode(), value.encode()) for name, value in fields]


class RateLimitMiddleware:
    """ASGI middleware: one hit per HTTP request, answered 429 when the client's window is full.

    The limiter is looked up in ``app.state.limiter`` (set in the lifespan, once the pool is
    open). A client key the counters cannot hold (too long, not valid text) gets 400.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter = scope["app"].state.limiter
        try:
            decision = await limiter.hit(client_key(scope))
        except ValueError as exc:
            await JSONResponse({"error": str(exc)}, status_code=400)(scope, receive, send)
            return
        headers = rate_limit_headers(limiter, decision)
        if not decision.allowed:
            refusal = JSONResponse({"error": "too many requests"}, status_code=429)
            refusal.raw_headers.extend(headers)
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    table: str,
    *,
    endpoint_url: str | None = None,
    limit: int = 10,
    per: int = 60,
    **pool_options: Any,
) -> Starlette:
    """The app, limiting in ``table`` (created on startup if missing, with TTL on).

    ``pool_options`` go to the `CounterPool` (``transport=``, ``wall_us=``...); the pool
    coalesces unless told otherwise."""
    pool_options.setdefault("coalesce", True)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with CounterPool(table, endpoint_url=endpoint_url, **pool_options) as pool:
            await pool.ensure_table(ttl=True)
            app.state.limiter = RateLimiter(pool, limit=limit, per=per)
            yield  # the pool closes after in-flight hits finish

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": client_key(request.scope)})

    app = Starlette(routes=[Route("/", hello)], lifespan=lifespan)
    app.add_middleware(RateLimitMiddleware)
    return app


app = create_app(
    os.environ.get("COUNTERS_TABLE", "counters"),
    endpoint_url=os.environ.get("COUNTERS_ENDPOINT_URL") or None,
    limit=int(os.environ.get("RATE_LIMIT", "10")),
    per=int(os.environ.get("RATE_PER", "60")),
)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m async_counters.examples.ratelimited [--port 8081]``: serve `app` with uvicorn."""
    parser = argparse.ArgumentParser(
        prog="python -m async_counters.examples.ratelimited",
        description="Limit each client's requests per window, in DynamoDB "
        "($COUNTERS_ENDPOINT_URL, $COUNTERS_TABLE, $RATE_LIMIT, $RATE_PER).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        sys.stderr.write(
            "async_counters.examples.ratelimited: needs uvicorn, not installed: "
            "pip install 'async-counters[web]'\n"
        )
        return 2
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())

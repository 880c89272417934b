"""Upstream mode: the same front (capacity, latency, faults, ledger) before another endpoint.

The upstream is any HTTP endpoint speaking DynamoDB, dynalite for one (`async_counters.local.
dynalite` starts it on 127.0.0.1). Requests are forwarded over a keep-alive connection pool with
their signing headers; only a BatchGetItem the capacity model trimmed is re-encoded (its
signature then no longer matches, which emulators do not check).
"""

from __future__ import annotations

from typing import Final

import aiohttp

from async_counters.local.backend import Backend, Call, Reply

#: Headers a DynamoDB request needs downstream; hop-by-hop ones (Host, Content-Length) are not.
FORWARDED_HEADERS: Final = (
    "Content-Type",
    "X-Amz-Target",
    "Authorization",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "User-Agent",
    "amz-sdk-invocation-id",
)
#: Enough for the deepest client pool the load test runs, with room to spare.
UPSTREAM_CONNECTIONS: Final = 512


class UpstreamError(Exception):
    """The upstream could not be reached, or broke off: the outcome is unknown."""


class UpstreamBackend(Backend):
    """Forwards each call to ``url`` and relays the answer."""

    in_process = False

    def __init__(self, url: str, *, connections: int = UPSTREAM_CONNECTIONS) -> None:
        self.url = url.rstrip("/") + "/"
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections),
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=60),
            skip_auto_headers=("User-Agent", "Content-Type"),
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def handle(self, call: Call) -> Reply:
        assert self._session is not None, "UpstreamBackend.open() was not awaited"
        headers = {name: call.headers[name] for name in FORWARDED_HEADERS if name in call.headers}
        try:
            async with self._session.post(self.url, data=call.body, headers=headers) as response:
                return Reply(response.status, await response.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from exc

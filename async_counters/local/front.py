"""The HTTP front of the embedded DynamoDB: every request passes here on the server's event loop.

It reads the operation from ``X-Amz-Target``, hands the call to the backend and answers with the
backend's body and headers of its own (content type, request id, a ``x-amz-crc32`` computed over
the exact bytes sent). Connections are HTTP/1.1 keep-alive. Signatures are not checked, so any
credentials work.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web, web_protocol, web_request

from async_counters.local import wire
from async_counters.local.backends import Backend, Call, Reply
from async_counters.local.config import LocalConfig

logger = logging.getLogger("async_counters.local")

#: DynamoDB clients POST to "/"; the server's own endpoints live under a path none of them uses.
ADMIN_PREFIX = "/_local/"


class FrontStats:
    """Plain counters of what the front did; read them with `snapshot`."""

    __slots__ = ("connections", "requests")

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Front:
    """Routes DynamoDB calls to the backend and admin calls to the server's own endpoints."""

    def __init__(self, config: LocalConfig, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.stats = FrontStats()

    async def __call__(self, request: web_request.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path == "/" and request.method == "POST":
            return await self.dynamo(request)
        if path.startswith(ADMIN_PREFIX):
            return await self.admin(request, path[len(ADMIN_PREFIX) :])
        if path == "/" and request.method in ("GET", "HEAD"):
            # DynamoDB answers a plain GET with a health line; load balancers probe it.
            return web.Response(text="healthy: local dynamodb\n")
        return web.Response(status=404, text="not found\n")

    async def dynamo(self, request: web_request.BaseRequest) -> web.StreamResponse:
        self.stats.requests += 1
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        if not target.startswith(wire.TARGET_PREFIX):
            return self.reply(
                Reply.error(400, wire.UNKNOWN_OPERATION, f"Unknown operation: {target!r}")
            )
        call = Call(target[len(wire.TARGET_PREFIX) :], body, request.headers)
        return self.reply(await self.backend.handle(call))

    async def admin(self, request: web_request.BaseRequest, name: str) -> web.StreamResponse:
        if name == "stats" and request.method == "GET":
            return json_response(self.stats.snapshot())
        return web.Response(status=404, text=f"no admin endpoint {name!r}\n")

    @staticmethod
    def reply(reply: Reply) -> web.Response:
        return web.Response(
            status=reply.status, body=reply.body, headers=wire.response_headers(reply.body)
        )


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=wire.dumps(payload), content_type="application/json")


class HttpServer(web.Server):
    """aiohttp's low-level server (no router, no middlewares) that counts connections."""

    def __init__(self, front: Front) -> None:
        super().__init__(front, access_log=None, handler_cancellation=False)
        self._front = front

    def connection_made(
        self, handler: web_protocol.RequestHandler, transport: asyncio.Transport
    ) -> None:
        super().connection_made(handler, transport)
        self._front.stats.connections += 1

"""An ASGI app served by a real uvicorn on 127.0.0.1 for the length of a test.

async with serving(app) as url:   # "http://127.0.0.1:<port>"
    ...
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

#: A generous bound on uvicorn's start (polled): only a hung start takes this long.
STARTUP_TIMEOUT = 60


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` (its lifespan on) on a free port; its base URL, then a clean shutdown."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        # uvicorn closes a connection idle for 5 s by default; on a busy machine httpx can
        # reuse one just then (a ReadError, seen under a burner): keep them open for the test.
        timeout_keep_alive=STARTUP_TIMEOUT,
    )
    server = uvicorn.Server(config)
    served = asyncio.create_task(server.serve())
    async with asyncio.timeout(STARTUP_TIMEOUT):
        while not server.started:
            assert not served.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await served

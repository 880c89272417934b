"""Is the target there? One request with a budget of seconds, before any load or reading.

Without it an unreachable endpoint is retried for the pool's whole retry deadline (30 s) and
then reported as a failed run; with it the user hears within a few seconds, in one line, which
URL did not answer and why:

    cannot reach http://127.0.0.1:1: connection refused; is the server running, and is
    --endpoint-url right?
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Final
from urllib.parse import urlsplit

from async_counters.errors import CounterError, TableNotFoundError, ThrottledError

from .config import RunConfig

__all__ = ["PROBE_TIMEOUT", "TargetUnreachable", "probe"]

#: The first request's budget: an unreachable target is reported within about this long.
PROBE_TIMEOUT: Final = 3.0


class TargetUnreachable(Exception):
    """The first request did not get an answer: the message says where and why, in one line."""


async def probe(config: RunConfig, endpoint_url: str | None, key: str) -> None:
    """One request with a budget of seconds, not the pool's 30 s retry deadline: a target that
    does not answer is reported at once, naming the URL and the cause."""
    target = config.target
    where = endpoint_url or f"AWS DynamoDB in {target.region or 'the default region'}"
    if endpoint_url is not None:
        await _connect(endpoint_url)
    options = {
        **config.pool_options,
        "retry": {"deadline": PROBE_TIMEOUT},
        "connect_timeout": PROBE_TIMEOUT,
        "read_timeout": PROBE_TIMEOUT,
    }
    first = RunConfig(target=config.target, workload=config.workload, pool_options=options)
    from .worker import open_pool  # the worker's module imports the pool: only when needed

    try:
        async with open_pool(first, endpoint_url, max_in_flight=1) as pool:
            await pool.get(key)
    except (TableNotFoundError, ThrottledError):
        pass  # it answered
    except CounterError as exc:
        raise TargetUnreachable(f"{where} did not answer a first request: {exc}") from None


async def _connect(endpoint_url: str) -> None:
    """Open (and close) a TCP connection to the endpoint; `TargetUnreachable` if none opens."""
    parts = urlsplit(endpoint_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    hint = "is the server running, and is --endpoint-url right?"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        raise TargetUnreachable(
            f"cannot reach {endpoint_url}: no connection within {PROBE_TIMEOUT:g} s; {hint}"
        ) from None
    except OSError as exc:
        raise TargetUnreachable(f"cannot reach {endpoint_url}: {_os_reason(exc)}; {hint}") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"host not found ({exc.strerror})"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__

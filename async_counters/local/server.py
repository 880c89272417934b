"""`LocalDynamo`: the embedded DynamoDB, served on 127.0.0.1 from a thread of its own.

The server runs its own event loop in a daemon thread, so it works the same from sync code,
from a pytest session fixture, or next to an async client in one process without sharing (or
blocking) the client's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from types import TracebackType
from typing import Final, Literal, Self

from async_counters.local.backend import Backend
from async_counters.local.choice import make_backend
from async_counters.local.config import (
    DEFAULT_HOST,
    DEFAULT_REGION,
    TTL_DELAY_SECONDS,
    Capacity,
    Faults,
    Latency,
    LocalConfig,
    default_backend,
)
from async_counters.local.front import Front, HttpServer
from async_counters.local.ledger import LedgerEntry

#: How long `start` waits for the server thread to come up (moto's first import is slow).
START_TIMEOUT: Final = 60.0
#: How long `stop` lets requests in flight finish before their connections are closed.
SHUTDOWN_TIMEOUT: Final = 2.0

_State = Literal["unstarted", "running", "stopped"]


class LocalDynamo:
    """An atomic DynamoDB on 127.0.0.1 for tests, demos and benchmarks.

        async with LocalDynamo() as server:          # or: with LocalDynamo() as server
            pool = CounterPool("counters", endpoint_url=server.endpoint_url)

    It accepts any credentials. Each instance has its own tables. ``port=0`` picks a free port.
    ``backend`` is ``"moto"`` (default, or ``$ASYNC_COUNTERS_LOCAL_BACKEND``), ``"memory"``,
    ``"dynalite"`` or the URL of another endpoint to stand in front of. ``capacity``,
    ``latency`` and ``faults`` make it behave like DynamoDB under load (see `LocalConfig`);
    faults can be changed while it runs. `ledger` tells what was really applied.
    ``ttl_delay`` is how long the memory backend keeps an item past its TTL (see `LocalConfig`).
    A server is started once and stopped once; it cannot be restarted.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        region: str = DEFAULT_REGION,
        backend: str | None = None,
        capacity: Capacity | None = None,
        latency: Latency | None = None,
        faults: Faults | None = None,
        ttl_delay: float = TTL_DELAY_SECONDS,
    ) -> None:
        self._config = LocalConfig(
            host=host,
            port=port,
            region=region,
            backend=backend or default_backend(),
            capacity=capacity,
            latency=latency or Latency(),
            faults=faults or Faults(),
            ttl_delay=ttl_delay,
        )
        self._state: _State = "unstarted"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._sock: socket.socket | None = None
        self._port = 0
        self._address = _address(host)
        self._front: Front | None = None

    @classmethod
    def from_config(cls, config: LocalConfig) -> Self:
        """A server with every option taken from ``config``."""
        return cls(
            host=config.host,
            port=config.port,
            region=config.region,
            backend=config.backend,
            capacity=config.capacity,
            latency=config.latency,
            faults=config.faults,
            ttl_delay=config.ttl_delay,
        )

    @property
    def config(self) -> LocalConfig:
        """The options this server was started with."""
        return self._config

    @property
    def port(self) -> int:
        """The port bound (the one picked, if 0 was asked for); 0 before `start`."""
        return self._port

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``, to pass as a client's ``endpoint_url``."""
        if self._state == "unstarted":
            raise RuntimeError("LocalDynamo is not started")
        host = self._address
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is up and serving."""
        return self._state == "running" and self._thread is not None and self._thread.is_alive()

    # Lifecycle.

    def start(self) -> Self:
        """Bind, start the server thread and return once it accepts connections."""
        with self._lock:
            if self._state != "unstarted":
                raise RuntimeError(f"LocalDynamo cannot be started: it is {self._state}")
            self._sock = _bind(self._config.host, self._config.port)
            self._port = self._sock.getsockname()[1]
            self._state = "running"
            self._thread = threading.Thread(
                target=self._run, name=f"LocalDynamo-{self._port}", daemon=True
            )
            self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            self.stop()
            raise RuntimeError("LocalDynamo did not start in time")
        if self._startup_error is not None:
            self.stop()
            raise RuntimeError("LocalDynamo failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and wait for the thread. Idempotent."""
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopped"
            thread = self._thread
        if thread is threading.current_thread():
            raise RuntimeError("LocalDynamo.stop() called from the server's own thread")
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            # A closed loop raises RuntimeError: its thread is ending anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join()
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Starting imports moto and waits for the thread: keep the caller's loop free meanwhile.
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # What the server did, and faults while it runs.

    def stats(self) -> dict[str, int]:
        """Counters so far: requests, connections accepted, succeeded, throttled, each fault."""
        front = self._front
        return {} if front is None else front.stats.snapshot()

    def ledger(self, table: str) -> dict[str, LedgerEntry]:
        """What was really applied to ``table``, per item key: the sum of counter arithmetic
        and the number of updates. Throttled and refused requests are not in it.

            assert server.ledger("counters")["views"].sum == 20_000
        """
        return self._running_front().ledger.table(table)

    def ledger_tables(self) -> list[str]:
        """Tables the ledger has entries for."""
        return self._running_front().ledger.tables()

    def reset_ledger(self) -> None:
        """Forget every ledger entry (the tables keep their items)."""
        self._running_front().ledger.reset()

    def sweep_ttl(self) -> int:
        """Delete now, on the server's loop, the items whose TTL passed at least ``ttl_delay``
        ago (as many as one sweep may); how many. For a test that wants expired items gone at
        a moment it chooses rather than at the next background sweep (memory backend only).

            server = LocalDynamo(backend="memory", ttl_delay=0)
            ...
            server.sweep_ttl()           # every expired item is gone from here on
        """
        front, loop = self._running_front(), self._loop
        assert loop is not None

        async def sweep() -> int | None:
            return front.backend.sweep()

        deleted = asyncio.run_coroutine_threadsafe(sweep(), loop).result(START_TIMEOUT)
        if deleted is None:
            raise RuntimeError(f"the {self._config.backend} backend never deletes expired items")
        return deleted

    @property
    def faults(self) -> Faults:
        """The faults in force now."""
        front = self._front
        return self._config.faults if front is None else front.faults

    def set_faults(self, faults: Faults) -> None:
        """Change the faults while the server runs (a new seed restarts the sequence)."""
        if not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults, not {type(faults).__name__}")
        # One attribute assignment, atomic under the GIL: the next request sees the new faults.
        self._running_front().set_faults(faults)

    def _running_front(self) -> Front:
        if self._front is None:
            raise RuntimeError("LocalDynamo is not started")
        return self._front

    # The server thread.

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        assert self._sock is not None
        self._stopping = asyncio.Event()
        backend: Backend | None = None
        http: HttpServer | None = None
        server: asyncio.Server | None = None
        try:
            backend = make_backend(
                self._config.backend,
                region=self._config.region,
                endpoint=self.endpoint_url,
                ttl_delay=self._config.ttl_delay,
            )
            await backend.open()
            self._front = Front(self._config, backend)
            http = HttpServer(self._front)
            server = await asyncio.get_running_loop().create_server(http, sock=self._sock)
        except BaseException as exc:
            self._startup_error = exc
        finally:
            self._ready.set()
        try:
            if self._startup_error is None:
                await self._stopping.wait()
        finally:
            if server is not None:
                server.close()
            if self._front is not None:
                self._front.closing().set()
            if http is not None:
                await http.shutdown(SHUTDOWN_TIMEOUT)
            if server is not None:
                await server.wait_closed()
            if backend is not None:
                await backend.aclose()


def _address(host: str) -> str:
    """The address bound for a host name (``localhost`` means 127.0.0.1)."""
    return "127.0.0.1" if host == "localhost" else host


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on a loopback address."""
    address = _address(host)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.create_server((address, port), family=family, backlog=1024)

"""One worker: an event loop in a process of its own, driving its share of the workload.

The parent starts `child_main` in each worker process. A worker opens its `CounterPool`, says it
is ready, waits for the common start instant, runs its share of the load, sends a `Tick` every
interval, and hands back a `WorkerResult`. With a run id it also records what it acknowledged in
the table itself (see `ledger`), every ``record_every`` seconds and at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from async_counters import CounterPool

from .config import RunConfig, pool_kwargs
from .drivers import Stop, closed_loop, open_loop
from .keys import OperationSource
from .metrics import Tick, WorkerRecorder, WorkerResult

__all__ = ["TICK_SECONDS", "Channel", "child_main", "open_pool", "run_worker", "share"]

#: One row of the timeline, one live-view refresh.
TICK_SECONDS: Final = 1.0
#: How long the start barrier waits for the parent.
START_TIMEOUT: Final = 120.0


def share(total: int, parts: int, index: int) -> int:
    """Part ``index`` of ``total`` split as evenly as possible into ``parts``."""
    return total // parts + (1 if index < total % parts else 0)


def new_worker_id() -> str:
    """Unique across hosts and runs: host, process and a random suffix."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def open_pool(config: RunConfig, endpoint_url: str | None, **extra: Any) -> CounterPool:
    """A `CounterPool` for the run's target with the run's pool options."""
    target = config.target
    kwargs = pool_kwargs(config.pool_options)
    kwargs.update(extra)
    return CounterPool(
        target.table,
        endpoint_url=endpoint_url,
        region_name=target.region,
        **kwargs,
    )


class Channel(Protocol):
    """How a worker talks to the parent."""

    def ready(self, worker_id: str) -> None: ...

    def wait_start(self) -> float:
        """Block until the parent says go; return the start instant (`time.monotonic`)."""
        ...

    def stop_requested(self) -> bool: ...

    def tick(self, tick: Tick) -> None: ...


RecordSink = Callable[[WorkerRecorder, bool], Awaitable[None]]


async def run_worker(
    config: RunConfig,
    index: int,
    endpoint_url: str | None,
    channel: Channel,
    *,
    worker_id: str | None = None,
) -> WorkerResult:
    """Run worker ``index`` of ``config.processes`` to the end; return what it measured."""
    workload = config.workload
    workers = config.processes
    worker_id = worker_id or new_worker_id()
    recorder = WorkerRecorder()
    keys = workload.key_names()
    source = OperationSource(workload, keys, seed=workload.seed * 1_000_003 + index)
    loop = asyncio.get_running_loop()

    async with contextlib.AsyncExitStack() as stack:
        pool = await stack.enter_async_context(open_pool(config, endpoint_url, hooks=recorder))
        record: RecordSink | None = None
        if config.run_id is not None:
            from .ledger import Ledger

            ledger = await stack.enter_async_context(
                Ledger.open(config, endpoint_url, config.run_id)
            )
            await ledger.register(worker_id)

            async def record(recorder: WorkerRecorder, final: bool) -> None:
                await ledger.write_worker(worker_id, recorder, final=final, config=config)

        channel.ready(worker_id)
        start = await loop.run_in_executor(None, channel.wait_start)
        if start > time.monotonic():
            await asyncio.sleep(start - time.monotonic())

        rate = None if workload.rate is None else workload.rate / workers
        planned = workload.operations(workload.rate)
        operations = None if planned is None else share(planned, workers, index)
        stop = Stop(
            operations,
            start + workload.stop_after,
            deadline_is_limit=workload.duration is None or workload.time_limit < workload.duration,
        )
        if operations == 0:
            stop.remaining = 0

        last_tick = [start]

        async def ticker() -> None:
            next_record = start + config.record_every
            while True:
                due = last_tick[0] + TICK_SECONDS
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                now = time.monotonic()
                channel.tick(recorder.tick(now - last_tick[0]))
                last_tick[0] = now
                if channel.stop_requested():
                    stop.requested = True
                if record is not None and now >= next_record:
                    next_record = now + config.record_every
                    await record(recorder, False)

        ticking = loop.create_task(ticker())
        try:
            if rate is None:
                await closed_loop(
                    pool,
                    recorder,
                    source,
                    concurrency=share(workload.concurrency, workers, index),
                    stop=stop,
                    floor=workload.floor,
                )
            else:
                await open_loop(
                    pool,
                    recorder,
                    source,
                    rate=rate,
                    start=start + index / workload.rate,  # type: ignore[operator]
                    stop=stop,
                    floor=workload.floor,
                    max_outstanding=workload.max_outstanding,
                )
        finally:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
        now = time.monotonic()
        seconds = now - start
        channel.tick(recorder.tick(now - last_tick[0]))  # the last, usually partial, interval
        await pool.aclose()
        if record is not None:
            await record(recorder, True)
        stats = pool.stats

    return WorkerResult(
        worker=index,
        worker_id=worker_id,
        seconds=seconds,
        counts=dict(recorder.totals),
        errors=dict(stats.errors),
        acknowledged_amount=recorder.acknowledged_amount,
        histogram=recorder.histogram.encode(),
        keys=recorder.key_tallies(),
        stopped_early=stop.reason,
    )


class QueueChannel:
    """A `Channel` over multiprocessing primitives shared with the parent."""

    def __init__(self, index: int, queue: Any, go: Any, start_at: Any, stop: Any) -> None:
        self._index = index
        self._queue = queue
        self._go = go
        self._start_at = start_at
        self._stop = stop

    def ready(self, worker_id: str) -> None:
        self._queue.put(("ready", self._index, worker_id))

    def wait_start(self) -> float:
        if not self._go.wait(START_TIMEOUT):
            raise TimeoutError("the parent never gave the start signal")
        return float(self._start_at.value)

    def stop_requested(self) -> bool:
        return bool(self._stop.is_set())

    def tick(self, tick: Tick) -> None:
        self._queue.put(("tick", self._index, tick))

    def done(self, result: WorkerResult) -> None:
        self._queue.put(("done", self._index, result))

    def failed(self, text: str) -> None:
        self._queue.put(("failed", self._index, text))


def child_main(
    config_data: dict[str, Any],
    index: int,
    endpoint_url: str | None,
    queue: Any,
    go: Any,
    start_at: Any,
    stop: Any,
) -> None:
    """Entry point of a worker process."""
    import signal

    # The parent handles Ctrl-C and tells workers to stop through ``stop``.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = RunConfig.from_dict(config_data)
    channel = QueueChannel(index, queue, go, start_at, stop)
    try:
        result = run_in_loop(config.loop, run_worker(config, index, endpoint_url, channel))
    except BaseException as exc:
        traceback.print_exc()
        channel.failed("".join(traceback.format_exception_only(type(exc), exc)).strip())
        sys.exit(1)
    channel.done(result)


def run_in_loop(loop_name: str, coroutine: Any) -> Any:
    """Run ``coroutine`` on uvloop or the standard asyncio loop."""
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)

"""One worker: an event loop in a process of its own, driving its share of the workload.

The parent runs ``python -m async_counters.loadtest.worker`` once per ``--processes`` and talks to
it over its standard streams (`PipeChannel`). A worker opens its `CounterPool`, says it
is ready, waits for the common start instant, runs its share of the load, sends a `Tick` every
interval, and hands back a `WorkerResult`. With a run id it also records what it acknowledged in
the table itself (see `ledger`), every ``record_every`` seconds and at the end.

A worker never outlives its parent, nor its hard deadline (`Workload.hard_limit`): see
`lifeline`. At the deadline what is still in flight is cut off and reported as unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import IO, Any, Final, Protocol

from async_counters import CounterPool

from .config import RunConfig, pool_kwargs
from .drivers import Counters, Stop, closed_loop, open_loop
from .keys import OperationSource
from .lifeline import EXIT_ORPHANED, Watchdog, die_with_parent
from .metrics import Tick, WorkerRecorder, WorkerResult
from .windowed import StampedWall, WindowedLoad

__all__ = ["TICK_SECONDS", "Channel", "PipeChannel", "main", "open_pool", "run_worker", "share"]

#: One row of the timeline, one live-view refresh.
TICK_SECONDS: Final = 1.0
#: How long the start barrier waits for the parent.
START_TIMEOUT: Final = 120.0
#: At the hard deadline: how long the pool may take to close (in-flight writes end or not).
CLOSE_GRACE: Final = 2.0
#: Past the hard deadline, the watchdog ends a worker that has not managed to report.
OVERDUE_GRACE: Final = 5.0


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

    def overdue(self, seconds: float) -> None:
        """Say that the worker is ending ``seconds`` past its hard deadline."""
        ...


RecordSink = Callable[[WorkerRecorder, bool], Awaitable[None]]


async def run_worker(
    config: RunConfig,
    index: int,
    endpoint_url: str | None,
    channel: Channel,
    *,
    worker_id: str | None = None,
    watchdog: bool = False,
) -> WorkerResult:
    """Run worker ``index`` of ``config.processes`` to the end; return what it measured.

    The run ends by ``Workload.hard_limit``, what is in flight then reported as unfinished.
    ``watchdog`` (a worker process, never a library caller) also ends the process a little
    after that if the event loop itself is stuck."""
    workload = config.workload
    workers = config.processes
    worker_id = worker_id or new_worker_id()
    recorder = WorkerRecorder(by_window=workload.windowed)
    keys = workload.key_names()
    source = OperationSource(workload, keys, seed=workload.seed * 1_000_003 + index)
    loop = asyncio.get_running_loop()

    async with contextlib.AsyncExitStack() as stack:
        wall = StampedWall()
        extra: dict[str, Any] = {"wall_us": wall} if workload.windowed else {}
        pool = open_pool(config, endpoint_url, hooks=recorder, **extra)
        await pool.open()
        counters: Counters = pool
        if workload.window is not None:
            counters = WindowedLoad(
                pool, recorder, wall, window=workload.window, limit=workload.limit
            )
        closing: list[asyncio.Task[None]] = []

        async def close_pool() -> None:
            # Bounded: a write held on the wire past the deadline must not keep the worker from
            # reporting (the pool's aclose waits for sent writes, and a second call for the first).
            if not closing:
                closing.append(loop.create_task(pool.aclose()))
            await asyncio.wait(closing, timeout=CLOSE_GRACE)

        stack.push_async_callback(close_pool)
        record: RecordSink | None = None
        if config.run_id is not None:
            from .ledger import RunLedger

            ledger = await stack.enter_async_context(
                RunLedger.open(config, endpoint_url, config.run_id)
            )
            await ledger.register(worker_id)

            async def record(recorder: WorkerRecorder, final: bool) -> None:
                await ledger.write_worker(worker_id, recorder, final=final, config=config)

        channel.ready(worker_id)
        start = await loop.run_in_executor(None, channel.wait_start)
        # Our own clock: whatever the parent or this loop do, the process ends by then.
        hard_end = start + workload.hard_limit
        if watchdog:
            guard = Watchdog(lambda: channel.overdue(OVERDUE_GRACE))
            guard.arm(hard_end + OVERDUE_GRACE - time.monotonic())
            stack.callback(guard.disarm)
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
            while True:
                due = last_tick[0] + TICK_SECONDS
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                now = time.monotonic()
                channel.tick(recorder.tick(now - last_tick[0]))
                last_tick[0] = now
                if channel.stop_requested():
                    stop.requested = True

        async def recording(record: RecordSink) -> None:
            # Its own task, so that a slow ledger write delays no tick. A write cut short by
            # the end of the run is harmless: the final record has a higher sequence number.
            while True:
                await asyncio.sleep(config.record_every)
                await record(recorder, False)

        background = [loop.create_task(ticker())]
        if record is not None:
            background.append(loop.create_task(recording(record)))
        if rate is None:
            drive = closed_loop(
                counters,
                recorder,
                source,
                concurrency=share(workload.concurrency, workers, index),
                stop=stop,
                floor=workload.floor,
            )
        else:
            drive = open_loop(
                counters,
                recorder,
                source,
                rate=rate,
                start=start + index / workload.rate,  # type: ignore[operator]
                stop=stop,
                floor=workload.floor,
                max_outstanding=workload.max_outstanding,
            )
        driving = loop.create_task(drive)
        cut_off = False
        try:
            done, _ = await asyncio.wait({driving}, timeout=max(0.0, hard_end - time.monotonic()))
            if not done:
                # The drain is over: stop waiting for what is in flight. A write already on
                # the wire is not cancelled by the pool; it stays in the tally as unfinished.
                cut_off = True
                driving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driving
        finally:
            driving.cancel()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        closing.append(loop.create_task(pool.aclose()))
        grace = CLOSE_GRACE if cut_off else max(CLOSE_GRACE, hard_end - time.monotonic())
        await asyncio.wait(closing, timeout=grace)
        now = time.monotonic()
        seconds = now - start
        channel.tick(recorder.tick(now - last_tick[0]))  # the last, usually partial, interval
        unfinished = recorder.unfinished()
        if unfinished:
            stop.reason = (
                f"{unfinished:,} operation(s) still in flight after the "
                f"{min(workload.drain, workload.hard_limit - workload.stop_after):g} s drain "
                "(counted as unfinished: the total is bounded, not exact)"
            )
        ledger_units = (0.0, 0.0)
        if record is not None:
            await record(recorder, not unfinished)
            ledger_units = ledger.units
        stats = pool.stats

    return WorkerResult(
        worker=index,
        worker_id=worker_id,
        seconds=seconds,
        counts=dict(recorder.totals),
        errors=dict(stats.errors),
        acknowledged_amount=recorder.acknowledged_amount,
        write_units=stats.write_units,
        read_units=stats.read_units,
        ledger_write_units=ledger_units[0],
        ledger_read_units=ledger_units[1],
        histogram=recorder.histogram.encode(),
        keys=recorder.key_tallies(include_pending=bool(unfinished)),
        stopped_early=stop.reason,
        denied=dict(recorder.denied),
    )


class PipeChannel:
    """A `Channel` over the worker process's standard streams, one JSON object per line.

    Parent to worker (stdin): the setup line, then ``{"start_in": seconds}`` and maybe
    ``{"stop": true}``; end of input (the parent is gone) also means stop. Worker to parent (the
    original stdout, which nothing else may write to): ``ready``, ``tick``, ``done``, ``failed``.
    """

    def __init__(self, inbox: IO[str], outbox: IO[str]) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._start_at = 0.0
        self._stop = threading.Event()
        self._reported = threading.Event()
        self._reader = threading.Thread(target=self._read, name="bench-parent", daemon=True)

    def listen(self) -> None:
        self._reader.start()

    def _read(self) -> None:
        for line in self._inbox:
            message = json.loads(line)
            if "start_in" in message:
                self._start_at = time.monotonic() + float(message["start_in"])
                self._started.set()
            if message.get("stop"):
                self._stop.set()
        if not self._reported.is_set():
            # The parent closed our input before we reported: it is gone (killed, timed out)
            # or has given up on us. Nobody will read what we would send: end now.
            os._exit(EXIT_ORPHANED)
        self._stop.set()
        self._started.set()

    def send(self, kind: str, payload: Any) -> None:
        line = json.dumps({"kind": kind, "payload": payload}, separators=(",", ":"))
        if kind in ("done", "failed"):
            self._reported.set()
        try:
            with self._lock:
                self._outbox.write(line + "\n")
                self._outbox.flush()
        except (BrokenPipeError, ValueError):
            os._exit(EXIT_ORPHANED)  # the parent is gone: no one to report to

    def ready(self, worker_id: str) -> None:
        self.send("ready", worker_id)

    def wait_start(self) -> float:
        if not self._started.wait(START_TIMEOUT):
            raise TimeoutError("the parent never gave the start signal")
        if self._stop.is_set():
            raise RuntimeError("stopped before the start")
        return self._start_at

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def tick(self, tick: Tick) -> None:
        self.send("tick", tick)

    def overdue(self, seconds: float) -> None:
        self.send("failed", f"still running {seconds:g} s past its hard deadline: ended")


def main() -> int:
    """``python -m async_counters.loadtest.worker``: one worker, driven over its stdin/stdout."""
    import signal

    die_with_parent()
    # The parent handles Ctrl-C and tells its workers to stop; a worker finishes what is in
    # flight and reports. Messages go to the original stdout; anything else printed goes to
    # stderr, so that no library's output can corrupt them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outbox = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    channel = PipeChannel(sys.stdin, outbox)
    try:
        setup = json.loads(sys.stdin.readline())
        config = RunConfig.from_dict(setup["config"])
        channel.listen()
        result = run_in_loop(
            config.loop,
            run_worker(config, int(setup["index"]), setup["endpoint_url"], channel, watchdog=True),
        )
    except BaseException as exc:
        traceback.print_exc()
        channel.send("failed", "".join(traceback.format_exception_only(type(exc), exc)).strip())
        return 1
    channel.send("done", result)
    return 0


def run_in_loop(loop_name: str, coroutine: Any) -> Any:
    """Run ``coroutine`` on uvloop or the standard asyncio loop."""
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())

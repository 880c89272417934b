"""The parent of a bench run: target, workers, live view, verification and results.

    outcome = run_bench(config, view)       # -> RunOutcome; outcome.exit_status

The parent starts the embedded server (or uses the endpoint given), creates the table, reads every
counter before the run, starts one worker process per ``--processes`` (each with its own event
loop and pool) at a common instant, merges their ticks into the timeline the live view shows,
then reads every counter again and checks it against what the workers acknowledged.

Before any load, one request with a short budget shows that the target answers
(`TargetUnreachable` otherwise, in one line naming the URL and the cause). Workers get the
parent's process id (`lifeline.PARENT_ENV`) and die with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import platform
import signal
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from async_counters.errors import CounterError
from async_counters.pool import CounterPool
from async_counters.redact import redact
from async_counters.windows import Window

from .config import RunConfig, Workload, safe_url
from .cost import Prices
from .embedded import EmbeddedServer
from .lifeline import PARENT_ENV
from .metrics import (
    COUNT_NAMES,
    HdrLatency,
    KeyTally,
    Timeline,
    WorkerResult,
    merge_key_tallies,
)
from .probe import TargetUnreachable, probe
from .verify import EXIT_INCONCLUSIVE, LimitCheck, Verification, verify
from .windowed import split_name
from .worker import OVERDUE_GRACE, TICK_SECONDS, open_pool

__all__ = ["EXIT_RATE_MISSED", "RunOutcome", "TargetUnreachable", "View", "run_bench"]

#: Exit status of a run whose counters are exact but whose open loop did not hold its rate.
EXIT_RATE_MISSED: Final = 4

#: How long workers may take to open their pools and report ready.
READY_TIMEOUT: Final = 120.0
#: A little time for every worker to see the start instant before it passes.
START_DELAY: Final = 0.25
#: How long past the workers' own hard deadline the parent waits for them before killing them.
SETTLE_GRACE: Final = OVERDUE_GRACE + 10.0
#: How long a worker may take to exit once its input is closed.
STOP_TIMEOUT: Final = 30.0
#: The longest message line a worker may send (its result holds every key's tally).
MESSAGE_LIMIT: Final = 1 << 30


class View(Protocol):
    """What the parent shows while the run goes on (live display or plain lines)."""

    def starting(self, config: RunConfig, target: str) -> None: ...

    def progress(self, row: dict[str, Any], totals: Counter[str], planned: int | None) -> None: ...

    def note(self, text: str) -> None: ...

    def finished(self) -> None: ...


@dataclass
class RunOutcome:
    """Everything a run produced; `report` turns it into the table and the JSON."""

    config: RunConfig
    argv: Sequence[str]
    target: dict[str, Any]
    started_at: str
    seconds: float = 0.0
    planned: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    acknowledged_amount: int = 0
    write_units: float = 0.0
    read_units: float = 0.0
    #: The bench's own requests (counters read before and after, the ledger), not the workload's.
    own_write_units: float = 0.0
    own_read_units: float = 0.0
    prices: Prices = field(default_factory=Prices)
    histogram: HdrLatency = field(default_factory=HdrLatency)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    verification: Verification | None = None
    run_records: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)
    stopped_early: list[str] = field(default_factory=list)
    #: Why the target could not be reached before any load (the run did not start).
    unreachable: str | None = None

    @property
    def rate_target(self) -> dict[str, Any] | None:
        """Open loop: the rate asked for, what was due, started and dropped, and whether it held."""
        workload = self.config.workload
        if workload.rate is None:
            return None
        started = self.counts.get("started", 0)
        dropped = self.counts.get("dropped", 0)
        seconds = min(workload.stop_after, self.seconds) or workload.stop_after
        return {
            "rate": workload.rate,
            "due": started + dropped,
            "started": started,
            "dropped": dropped,
            "started_per_s": round(started / seconds, 1) if seconds else 0.0,
            "held": dropped == 0,
        }

    @property
    def exit_status(self) -> int:
        if self.verification is None:
            return EXIT_INCONCLUSIVE
        status = self.verification.exit_status
        if status == 0 and self.failures:
            return EXIT_INCONCLUSIVE
        target = self.rate_target
        if status == 0 and target is not None and not target["held"]:
            return EXIT_RATE_MISSED
        return status


def environment() -> dict[str, Any]:
    from async_counters import __version__

    return {
        "async_counters": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def run_bench(config: RunConfig, view: View, argv: Sequence[str] = ()) -> RunOutcome:
    """Run the whole bench described by ``config``; never raises for a failed run."""
    target = config.target
    outcome = RunOutcome(
        config=config,
        argv=list(argv),
        target={
            "kind": target.kind,
            "table": target.table,
            "endpoint_url": safe_url(target.endpoint_url),
            "region": target.region,
        },
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    with contextlib.ExitStack() as stack:
        endpoint_url = target.endpoint_url
        if target.kind == "embedded":
            try:
                server = stack.enter_context(EmbeddedServer(config.server))
            except (OSError, RuntimeError) as exc:
                outcome.unreachable = str(exc)
                outcome.failures.append(str(exc))
                return outcome
            endpoint_url = server.endpoint_url
            outcome.target["endpoint_url"] = endpoint_url
            outcome.target["backend"] = config.server.backend
            outcome.target["server"] = config.server.given()
        view.starting(config, describe_target(outcome.target))
        if config.run_id is not None and target.kind == "embedded":
            view.note(
                "--run-id on the embedded server: the run is verified at its end, but the "
                "server and its table go away with it; use --endpoint-url or --aws to verify "
                "across invocations"
            )
        try:
            asyncio.run(_orchestrate(config, endpoint_url, view, outcome))
        except TargetUnreachable as exc:
            outcome.unreachable = str(exc)
            outcome.failures.append(str(exc))
        except KeyboardInterrupt:
            outcome.failures.append("interrupted before the run could be verified")
        except (CounterError, OSError, RuntimeError, LookupError, ValueError) as exc:
            outcome.failures.append(redact(f"{type(exc).__name__}: {exc}"))
        finally:
            view.finished()
    return outcome


def describe_target(target: dict[str, Any]) -> str:
    if target["kind"] == "embedded":
        options = {k: v for k, v in target.get("server", {}).items() if k != "backend"}
        detail = "".join(f", {k.replace('_', '-')} {v}" for k, v in options.items())
        return (
            f"embedded DynamoDB ({target.get('backend')} backend{detail}) at "
            f"{target['endpoint_url']}, table {target['table']}"
        )
    if target["kind"] == "endpoint":
        return f"{target['endpoint_url']}, table {target['table']}"
    region = target["region"] or "the default region"
    return f"AWS DynamoDB in {region}, table {target['table']}"


def _control_pool_options(config: RunConfig) -> dict[str, Any]:
    """Options of the parent's own pool, which only creates the table and reads counters."""
    keep = ("key_attribute", "value_attribute", "connect_timeout", "read_timeout")
    return {name: config.pool_options[name] for name in keep if name in config.pool_options}


async def _orchestrate(
    config: RunConfig, endpoint_url: str | None, view: View, outcome: RunOutcome
) -> None:
    workload = config.workload
    keys = workload.key_names()
    control = dict(_control_pool_options(config))
    read_config = RunConfig(
        target=config.target,
        workload=workload,
        pool_options=control,
        processes=config.processes,
        loop=config.loop,
    )
    await probe(read_config, endpoint_url, keys[0])
    async with open_pool(read_config, endpoint_url, max_in_flight=16) as pool:
        try:
            await _check(config, endpoint_url, view, outcome, pool)
        finally:
            stats = pool.stats  # the counters read before and after: the bench's own cost
            outcome.own_write_units += stats.write_units
            outcome.own_read_units += stats.read_units


async def _check(
    config: RunConfig,
    endpoint_url: str | None,
    view: View,
    outcome: RunOutcome,
    pool: CounterPool,
) -> None:
    """Read the counters, run the workers, read the counters again and verify."""
    workload = config.workload
    keys = workload.key_names()
    await pool.ensure_table()
    # A windowed run's counters are new (a random prefix): each window starts from 0.
    windowed = workload.windowed
    before = {} if config.run_id or windowed else await pool.get_many(keys)
    outcome.planned = workload.operations(workload.rate)
    results = await _run_workers(config, endpoint_url, view, outcome)
    if outcome.failures:
        return
    tallies = merge_key_tallies(result["keys"] for result in results)
    if config.run_id is not None:
        from .ledger import RunLedger, verify_run

        async with RunLedger.open(config, endpoint_url, config.run_id) as ledger:
            try:
                verification, records = await verify_run(ledger, pool.get_many)
            finally:
                write, read = ledger.units
                outcome.own_write_units += write
                outcome.own_read_units += read
        outcome.verification = verification
        outcome.run_records = {
            "run_id": config.run_id,
            "workers": records.workers,
            "missing": records.missing,
        }
    elif windowed:
        outcome.verification = await _verify_windows(pool, workload, results, tallies)
    else:
        after = await pool.get_many(keys)
        outcome.verification = verify(keys, before, tallies, after)


async def _verify_windows(
    pool: CounterPool,
    workload: Workload,
    results: Sequence[WorkerResult],
    tallies: Mapping[str, KeyTally],
) -> Verification:
    """--window, --limit: each window's count, read back from its item, against what was
    acknowledged (admitted) in it; with --limit, each window against the limit too."""
    assert workload.window is not None
    names = sorted(tallies, key=split_name)
    items = {
        name: Window(workload.window, split_name(name)[1]).item(split_name(name)[0])
        for name in names
    }
    values = await pool._reads.get_many(list(items.values())) if items else {}
    after = {name: values[item] for name, item in items.items()}
    if workload.limit is None:
        return verify(names, {}, tallies, after, basis="what was acknowledged in their window")
    denied: Counter[str] = Counter()
    for result in results:
        denied.update(result.get("denied", {}))
    limits = [
        LimitCheck(
            key=name,
            limit=workload.limit,
            admitted=after[name],
            denied=denied[name],
            largest_cost=workload.amount_max,
        )
        for name in names
    ]
    return verify(
        names, {}, tallies, after, basis="what was admitted in their window", limits=limits
    )


async def _run_workers(
    config: RunConfig, endpoint_url: str | None, view: View, outcome: RunOutcome
) -> list[WorkerResult]:
    """Start the worker processes, relay their ticks, and collect their results."""
    loop = asyncio.get_running_loop()
    workers = config.processes
    timeline = Timeline(workers, TICK_SECONDS)
    results: dict[int, WorkerResult] = {}
    ready: set[int] = set()
    all_ready = asyncio.Event()
    processes: list[asyncio.subprocess.Process] = []
    interrupted = False
    stopping: list[asyncio.Task[None]] = []

    def show_new_rows(shown: int) -> None:
        for row in timeline.rows[shown:]:
            view.progress(row, timeline.totals, outcome.planned)

    def handle(index: int, kind: str, payload: Any) -> None:
        if kind == "ready":
            ready.add(index)
            if len(ready) == workers:
                all_ready.set()
        elif kind == "tick":
            shown = len(timeline.rows)
            timeline.add(index, payload)
            show_new_rows(shown)
        elif kind == "done":
            results[index] = payload
        elif kind == "failed":
            outcome.failures.append(redact(f"worker {index} failed: {payload}"))

    async def listen(index: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            message = json.loads(line)
            handle(index, message["kind"], message["payload"])
        status = await process.wait()
        if index not in results and not any(f"worker {index} " in f for f in outcome.failures):
            outcome.failures.append(f"worker {index} exited with status {status} before reporting")
        shown = len(timeline.rows)
        timeline.finish(index)
        show_new_rows(shown)
        all_ready.set()  # a lost worker must not leave the parent waiting for it

    async def tell(message: dict[str, Any]) -> None:
        line = (json.dumps(message) + "\n").encode()
        for process in processes:
            if process.stdin is not None and not process.stdin.is_closing():
                with contextlib.suppress(ConnectionError):
                    process.stdin.write(line)
                    await process.stdin.drain()

    def on_interrupt() -> None:
        nonlocal interrupted
        if interrupted:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            return
        interrupted = True
        stopping.append(loop.create_task(tell({"stop": True})))
        view.note("interrupted: stopping after what is in flight (Ctrl-C again to abort)")

    setup = {"config": config.to_dict(), "endpoint_url": endpoint_url}
    listeners: list[asyncio.Task[None]] = []
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        for index in range(workers):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "async_counters.loadtest.worker",
                env={**os.environ, PARENT_ENV: str(os.getpid())},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=MESSAGE_LIMIT,
                start_new_session=True,  # Ctrl-C reaches the parent, which stops workers cleanly
            )
            processes.append(process)
            assert process.stdin is not None
            process.stdin.write((json.dumps({**setup, "index": index}) + "\n").encode())
            await process.stdin.drain()
            listeners.append(loop.create_task(listen(index, process)))
        try:
            await asyncio.wait_for(all_ready.wait(), READY_TIMEOUT)
        except TimeoutError:
            outcome.failures.append("workers did not become ready in time")
        if outcome.failures or interrupted:
            return []
        await tell({"start_in": START_DELAY})
        # Each worker ends by its own hard deadline; this only covers one that cannot.
        limit = START_DELAY + config.workload.hard_limit + SETTLE_GRACE
        _, pending = await asyncio.wait(listeners, timeout=limit)
        if pending:
            outcome.failures.append("workers did not finish within the time limit")
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()  # end of input: a worker still running stops
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)

    if interrupted:
        outcome.stopped_early.append("interrupted")
    ordered = [results[index] for index in sorted(results)]
    _aggregate(ordered, timeline, outcome)
    return ordered


def _aggregate(results: Sequence[WorkerResult], timeline: Timeline, outcome: RunOutcome) -> None:
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for result in results:
        counts.update(result["counts"])
        errors.update(result["errors"])
        outcome.histogram.add_encoded(result["histogram"])
        outcome.acknowledged_amount += result["acknowledged_amount"]
        outcome.write_units += result.get("write_units", 0.0)
        outcome.read_units += result.get("read_units", 0.0)
        outcome.own_write_units += result.get("ledger_write_units", 0.0)
        outcome.own_read_units += result.get("ledger_read_units", 0.0)
        if result["stopped_early"] and result["stopped_early"] != "interrupted":
            outcome.stopped_early.append(f"worker {result['worker']}: {result['stopped_early']}")
        outcome.workers.append(
            {
                "worker": result["worker"],
                "worker_id": result["worker_id"],
                "seconds": round(result["seconds"], 3),
                "counts": {name: result["counts"].get(name, 0) for name in COUNT_NAMES},
                "latency_ms": _histogram_summary(result["histogram"]),
            }
        )
    outcome.counts = {name: counts.get(name, 0) for name in COUNT_NAMES}
    outcome.errors = dict(errors)
    outcome.seconds = max((result["seconds"] for result in results), default=0.0)
    outcome.timeline = timeline.rows


def _histogram_summary(encoded: str) -> dict[str, float]:
    histogram = HdrLatency()
    histogram.add_encoded(encoded)
    return histogram.summary_ms()

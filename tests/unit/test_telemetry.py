"""OpenTelemetryHooks on a fake transport: error.type of retried attempts, options, no extra."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from async_counters import ConnectError, CounterPool, Outcome, PoolHooks, PoolStats, RetryPolicy
from async_counters.telemetry import OpenTelemetryHooks

from .fake import FakeTransport
from .fake_time import VirtualTime


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


async def test_unreachable_attempts_are_retried_errors_then_one_success() -> None:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    hooks = OpenTelemetryHooks(MeterProvider(metric_readers=[reader]), tracer_provider)
    transport = FakeTransport()
    transport.fail(Outcome.UNREACHABLE, "ConnectError", times=2)
    policy = RetryPolicy(attempts=5, sleep=_no_sleep)
    async with CounterPool("t", transport=transport, retry=policy, hooks=[hooks]) as pool:
        assert await pool.increment("k", 3) == 3

    durations = {
        p.attributes.get("error.type"): p.count
        for p in _points(reader, "db.client.operation.duration")
    }
    assert durations == {"unreachable": 2, None: 1}
    (retries,) = _points(reader, "async_counters.retries")
    assert retries.value == 2
    assert dict(retries.attributes) == {
        "db.system.name": "aws.dynamodb",
        "db.operation.name": "UpdateItem",
        "async_counters.outcome": "unreachable",
    }
    (increments,) = _points(reader, "async_counters.increments")
    assert increments.value == 1
    assert increments.attributes["async_counters.outcome"] == "acknowledged"
    assert _points(reader, "async_counters.throttles") == []
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["DynamoDB.UpdateItem"] * 3
    # Without a table given, no table attribute: nothing is invented.
    assert all("aws.dynamodb.table_names" not in (s.attributes or {}) for s in spans)


async def test_retries_running_out_settle_as_unreachable() -> None:
    reader = InMemoryMetricReader()
    hooks = OpenTelemetryHooks(MeterProvider(metric_readers=[reader]))
    transport = FakeTransport()
    transport.fail(Outcome.UNREACHABLE, "ConnectError", times=2)
    policy = RetryPolicy(attempts=2, sleep=_no_sleep)
    async with CounterPool("t", transport=transport, retry=policy, hooks=hooks) as pool:
        with pytest.raises(ConnectError):
            await pool.increment("k")
    (increments,) = _points(reader, "async_counters.increments")
    assert increments.attributes["async_counters.outcome"] == "unreachable"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"table": ""}, "table must be a non-empty str"),
        ({"server_port": 0}, "server_port must be an int"),
        ({"server_port": True}, "server_port must be an int"),
        ({"server_port": "443"}, "server_port must be an int"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OpenTelemetryHooks(**options)


def test_without_the_extra_the_error_is_one_line_naming_it() -> None:
    # sys.modules[name] = None makes `import name` fail, as if it were not installed.
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import async_counters\n"  # the core never needs OpenTelemetry
        "try:\n"
        "    import async_counters.telemetry\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        "async_counters.telemetry needs OpenTelemetry: pip install 'async-counters[otel]'"
    ]


def test_capacity_units_are_counted_by_operation() -> None:
    reader = InMemoryMetricReader()
    hooks = OpenTelemetryHooks(MeterProvider(metric_readers=[reader]), table="counters")
    hooks.on_consumed("UpdateItem", 1.0, 0.0)
    hooks.on_consumed("UpdateItem", 2.0, 0.0)
    hooks.on_consumed("GetItem", 0.0, 0.5)
    writes = _points(reader, "async_counters.write_units")
    reads = _points(reader, "async_counters.read_units")
    assert [(p.attributes["db.operation.name"], p.value) for p in writes] == [("UpdateItem", 3.0)]
    assert [(p.attributes["db.operation.name"], p.value) for p in reads] == [("GetItem", 0.5)]


async def _paced_pool(hooks: OpenTelemetryHooks, *reasons: str) -> CounterPool:
    """A pool whose keys (or, with a table's ``reasons``, whose table) were throttled until they
    are paced, in virtual time (still open). (Throttled on and on at the floor, a pace would be
    let loose: pacing does not help there.)"""
    time = VirtualTime()
    transport = FakeTransport()
    code = "ProvisionedThroughputExceededException"
    transport.fail(Outcome.THROTTLED, code, times=24, reasons=reasons)
    policy = RetryPolicy(
        attempts=40, clock=time.clock, sleep=time.sleep, rng=random.Random(7).random
    )
    pool = CounterPool("t", transport=transport, retry=policy, hooks=hooks)
    await pool.open()

    async def writes() -> None:
        await asyncio.gather(*(pool.increment("hot") for _ in range(8)), pool.increment("cold"))

    await time.run(writes())
    return pool


@pytest.mark.parametrize("record_keys", [False, True])
async def test_pacing_gauges_read_the_pools_paces_when_collected(record_keys: bool) -> None:
    reader = InMemoryMetricReader()
    hooks = OpenTelemetryHooks(MeterProvider(metric_readers=[reader]), record_keys=record_keys)
    assert reader.get_metrics_data() is None  # no pool yet: nothing to say
    pool = await _paced_pool(hooks)
    try:
        rates = dict(pool.stats.key_rates)  # the virtual clock stands still: the same paces
        assert rates  # throttled into a pace
        (paced,) = _points(reader, "async_counters.paced_keys")
        assert paced.value == len(rates)
        points = _points(reader, "async_counters.pacing_rate")
        if record_keys:
            assert {p.attributes["async_counters.key"]: p.value for p in points} == rates
        else:
            (slowest,) = points
            assert slowest.value == min(rates.values())
            assert "async_counters.key" not in slowest.attributes
        assert _points(reader, "async_counters.table_pacing_rate") == []  # the keys' limits
    finally:
        await pool.aclose()


async def test_the_table_pacing_gauge_reads_the_tables_pace() -> None:
    reader = InMemoryMetricReader()
    hooks = OpenTelemetryHooks(MeterProvider(metric_readers=[reader]), table="t")
    pool = await _paced_pool(hooks, "TableWriteProvisionedThroughputExceeded")
    try:
        stats = pool.stats
        assert stats.key_rates == {} and stats.table_rate is not None
        (point,) = _points(reader, "async_counters.table_pacing_rate")
        assert point.value == stats.table_rate
        assert point.attributes["db.collection.name"] == "t"
    finally:
        await pool.aclose()


async def test_hooks_without_sdk_methods_still_hear_requests_and_the_pool() -> None:
    """A hook written for `on_request` alone hears every request through the default
    `on_request_detail`; `on_open` hands it the pool's stats."""

    class Old(PoolHooks):
        def __init__(self) -> None:
            self.requests: list[tuple[str, Outcome]] = []
            self.stats: Callable[[], PoolStats] | None = None

        def on_open(self, stats: Callable[[], PoolStats]) -> None:
            self.stats = stats

        def on_request(self, operation: str, outcome: Outcome, seconds: float) -> None:
            self.requests.append((operation, outcome))

    hook = Old()
    transport = FakeTransport()
    transport.fail(Outcome.UNREACHABLE, "ConnectError")
    policy = RetryPolicy(attempts=3, sleep=_no_sleep)
    async with CounterPool("t", transport=transport, retry=policy, hooks=hook) as pool:
        await pool.increment("k")
        assert hook.stats is not None
        assert hook.stats() == pool.stats
    assert hook.requests == [
        ("UpdateItem", Outcome.UNREACHABLE),
        ("UpdateItem", Outcome.ACKNOWLEDGED),
    ]

"""One real example of each metric and span `OpenTelemetryHooks` emits, for the README and notes.

The embedded DynamoDB (memory backend, each key capped at 100 writes/s) serves a coalescing pool
(50 increments at once on one key: ``async_counters.coalesced``) and a plain one (60 tasks on two
hot keys: throttles, retries, paced keys), then a refused decrement, a get and a get_many. The
SDK's in-memory reader and exporter hold what the hooks emitted; the first point of each metric
(every outcome of ``async_counters.increments``) and the first span of each name and status are
printed. Takes a few seconds.

    python benchmarks/telemetry_names.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from async_counters import CounterFloorError, CounterPool, RetryPolicy
from async_counters.local import Capacity, LocalDynamo
from async_counters.telemetry import OpenTelemetryHooks

TABLE = "counters"
#: Left out of the printed attributes: the same on every line.
COMMON = {"server.address", "server.port", "db.system.name", "db.collection.name"}


def metric_lines(collected: list[MetricsData]) -> list[str]:
    seen: dict[str, str] = {}
    for data in collected:
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        shown = {k: v for k, v in point.attributes.items() if k not in COMMON}
                        name = metric.name
                        slot = name + str(shown) if name == "async_counters.increments" else name
                        if slot in seen:
                            continue
                        if hasattr(point, "bucket_counts"):
                            value = f"count={point.count} sum={point.sum:.6g}"
                        else:
                            value = f"value={point.value:g}"
                        seen[slot] = f"{name} [{metric.unit}] {shown} {value}"
    return list(seen.values())


async def main() -> None:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    capacity = Capacity(partition_write_units=100, burst_seconds=0.1)
    collected: list[MetricsData] = []
    with LocalDynamo(backend="memory", capacity=capacity) as server:
        hooks = OpenTelemetryHooks(
            meter_provider,
            tracer_provider,
            table=TABLE,
            server_address="127.0.0.1",
            server_port=server.port,
        )
        options: dict[str, Any] = {
            "endpoint_url": server.endpoint_url,
            "hooks": hooks,
            "retry": RetryPolicy(deadline=30),
        }
        async with CounterPool(TABLE, coalesce=True, **options) as merged:
            await merged.ensure_table()
            await asyncio.gather(*(merged.increment("views:/home") for _ in range(50)))
            async with CounterPool(TABLE, **options) as plain:

                async def hammer(i: int) -> None:
                    for _ in range(15):
                        await plain.increment(f"hot:{i % 2}")

                await asyncio.gather(*(hammer(i) for i in range(60)))
                paced = dict(plain.stats.key_rates)
                data = reader.get_metrics_data()  # while the keys are paced
                assert data is not None
                collected.append(data)
            with_floor = False
            try:
                await merged.decrement("stock", 1, floor=0)
            except CounterFloorError:
                with_floor = True
            await merged.get("views:/home")
            await merged.get_many(["views:/home", "stock"])
        data = reader.get_metrics_data()
        assert data is not None
        collected.append(data)
    print(f"paced keys at the first collection: {paced}; decrement refused: {with_floor}")
    for line in metric_lines(collected):
        print(line)
    spans: dict[tuple[str, str], str] = {}
    for span in exporter.get_finished_spans():
        slot = (span.name, span.status.status_code.name)
        if slot not in spans:
            shown = {k: v for k, v in (span.attributes or {}).items() if k not in COMMON}
            spans[slot] = f"span {span.name} kind={span.kind.name} status={slot[1]} {shown}"
    for line in spans.values():
        print(line)
    meter_provider.shutdown()
    tracer_provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

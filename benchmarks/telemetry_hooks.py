"""CPU of OpenTelemetryHooks' calls alone, with the SDK's providers: metrics, spans, sampled spans.

What one increment adds to the event loop's work, without a pool or a network around it: each
hook is called in a loop and the process CPU per call is printed (median of ``--repeat`` runs).
A request is told as the pool tells it: its units (``on_consumed``), then ``on_request_detail``
with the answer's ConsumedCapacity, which its span carries.
The tracer providers export through a BatchSpanProcessor to memory, so its thread is counted.

    python benchmarks/telemetry_hooks.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NoOpTracerProvider

from async_counters.telemetry import OpenTelemetryHooks
from async_counters.transport import Outcome

#: What DynamoDB answers an UpdateItem asked ``ReturnConsumedCapacity=TOTAL``.
CONSUMED = {"TableName": "bench", "CapacityUnits": 1.0}


def _cpu_per_call(call: Callable[[], None], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    full = TracerProvider()
    full.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    sampled = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.01)))
    sampled.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    setups = {
        "metrics only (no tracer)": NoOpTracerProvider(),
        "metrics and every span": full,
        "metrics and 1 % of spans": sampled,
    }
    print("| hooks | request (on_consumed + on_request_detail) µs | on_settled µs |")
    print("|---|---:|---:|")
    try:
        for label, tracer_provider in setups.items():
            hooks = OpenTelemetryHooks(meters, tracer_provider, table="bench")

            def request(hooks: OpenTelemetryHooks = hooks) -> None:
                hooks.on_consumed("UpdateItem", 1.0, 0.0)
                hooks.on_request_detail(
                    "UpdateItem", "user:1", Outcome.ACKNOWLEDGED, 0.003, CONSUMED
                )

            def settled(hooks: OpenTelemetryHooks = hooks) -> None:
                hooks.on_settled("user:1", 1, Outcome.ACKNOWLEDGED, 0.003)

            on_request = statistics.median(
                _cpu_per_call(request, args.calls) for _ in range(args.repeat)
            )
            on_settled = statistics.median(
                _cpu_per_call(settled, args.calls) for _ in range(args.repeat)
            )
            print(f"| {label} | {on_request:.1f} | {on_settled:.2f} |")
    finally:
        full.shutdown()
        sampled.shutdown()
        meters.shutdown()


if __name__ == "__main__":
    main()

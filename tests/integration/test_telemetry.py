"""OpenTelemetryHooks against the embedded DynamoDB, read back through the SDK's in-memory
reader and exporter: names, units, attributes and buckets as the conventions say."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from async_counters import AmbiguousWriteError, CounterFloorError, CounterPool, ThrottledError
from async_counters.local import Faults, LocalDynamo
from async_counters.retry import RetryPolicy
from async_counters.telemetry import DURATION_BUCKETS, OpenTelemetryHooks

#: Few attempts, short backoff: a throttling storm ends in a ThrottledError quickly.
ATTEMPTS = 3
BRIEF = RetryPolicy(attempts=ATTEMPTS, base=0.001, cap=0.002)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalDynamo]:
    with LocalDynamo(backend="memory") as server:
        yield server


@dataclass
class Otel:
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter
    meter_provider: MeterProvider
    tracer_provider: TracerProvider

    def metrics(self) -> dict[str, Any]:
        """The metrics collected so far, by name (a single scope: the pool's)."""
        found: dict[str, Any] = {}
        data = self.reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "async_counters"
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()


@pytest.fixture
def otel() -> Iterator[Otel]:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(reader, exporter, meter_provider, tracer_provider)
    meter_provider.shutdown()
    tracer_provider.shutdown()


def hooks_for(otel: Otel, server: LocalDynamo, table: str, **options: Any) -> OpenTelemetryHooks:
    return OpenTelemetryHooks(
        otel.meter_provider,
        otel.tracer_provider,
        table=table,
        server_address="127.0.0.1",
        server_port=server.port,
        **options,
    )


def points(metric: Any) -> dict[frozenset[tuple[str, Any]], Any]:
    return {frozenset(p.attributes.items()): p for p in metric.data.data_points}


def every_attribute_value(otel: Otel) -> list[Any]:
    values: list[Any] = []
    for metric in otel.metrics().values():
        for point in metric.data.data_points:
            values.extend(point.attributes.values())
    for span in otel.spans():
        values.extend((span.attributes or {}).values())
    return values


def show(kind: str, name: str, unit: str, item: Any) -> None:
    """Print what a test saw (``pytest -s``), for the README's examples."""
    if kind == "metric" and hasattr(item, "explicit_bounds"):
        print(
            f"{name} [{unit}] {dict(item.attributes)} count={item.count} "
            f"bounds={list(item.explicit_bounds)}"
        )
    elif kind == "metric":
        print(f"{name} [{unit}] {dict(item.attributes)} value={item.value}")
    else:
        ms = (item.end_time - item.start_time) / 1e6
        print(
            f"span {name} kind={item.kind.name} status={item.status.status_code.name} "
            f"{ms:.2f} ms {dict(item.attributes)}"
        )


async def test_requests_are_measured_and_traced_by_the_conventions(
    server: LocalDynamo, table_name: str, otel: Otel
) -> None:
    keys = ["user:alice", "user:bob", "user:alice"]
    hooks = hooks_for(otel, server, table_name)
    async with CounterPool(table_name, endpoint_url=server.endpoint_url, hooks=hooks) as pool:
        await pool.ensure_table()
        for key in keys:
            await pool.increment(key)
        assert await pool.get("user:alice") == 2
    assert server.ledger(table_name)["user:alice"].sum == 2

    metrics = otel.metrics()
    duration = metrics["db.client.operation.duration"]
    assert duration.unit == "s"
    common = {
        "db.system.name": "aws.dynamodb",
        "db.collection.name": table_name,
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    by_attributes = points(duration)
    update = by_attributes[frozenset({**common, "db.operation.name": "UpdateItem"}.items())]
    assert update.count == 3
    assert tuple(update.explicit_bounds) == DURATION_BUCKETS
    assert sum(update.bucket_counts) == 3
    get = by_attributes[frozenset({**common, "db.operation.name": "GetItem"}.items())]
    assert get.count == 1
    assert all("error.type" not in dict(key) for key in by_attributes)

    increments = metrics["async_counters.increments"]
    assert increments.unit == "{increment}"
    assert points(increments)[
        frozenset({**common, "async_counters.outcome": "acknowledged"}.items())
    ].value == len(keys)

    spans = [s for s in otel.spans() if s.name == "DynamoDB.UpdateItem"]
    assert len(spans) == 3
    for span in spans:
        assert span.kind is SpanKind.CLIENT
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes is not None
        attributes = dict(span.attributes)
        # The units are on the span: what the answer said, each entry as JSON (the convention).
        (consumed,) = attributes.pop("aws.dynamodb.consumed_capacity")
        assert json.loads(consumed) == {"TableName": table_name, "CapacityUnits": 1.0}
        assert attributes == {
            **common,
            "db.operation.name": "UpdateItem",
            "rpc.system": "aws-api",
            "rpc.service": "DynamoDB",
            "rpc.method": "UpdateItem",
            "aws.dynamodb.table_names": (table_name,),
        }
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time < span.end_time
    # The spans last what the histogram measured: both come from the same hook call.
    traced = sum(s.end_time - s.start_time for s in spans if s.end_time and s.start_time) / 1e9
    assert traced == pytest.approx(update.sum, abs=1e-6 * len(spans))
    show("metric", duration.name, duration.unit, update)
    show("span", spans[0].name, "", spans[0])
    names = {s.name for s in otel.spans()}
    assert {"DynamoDB.CreateTable", "DynamoDB.GetItem"} <= names
    (read,) = [s for s in otel.spans() if s.name == "DynamoDB.GetItem"]
    assert read.attributes is not None
    assert [json.loads(c) for c in read.attributes["aws.dynamodb.consumed_capacity"]] == [
        {"TableName": table_name, "CapacityUnits": 1.0}  # a consistent read of a small item
    ]
    # The spans carry what pool.stats counts.
    assert sum(
        json.loads(c)["CapacityUnits"]
        for s in spans
        for c in (s.attributes or {})["aws.dynamodb.consumed_capacity"]
    ) == pytest.approx(3.0)
    (create,) = [s for s in otel.spans() if s.name == "DynamoDB.CreateTable"]
    assert "aws.dynamodb.consumed_capacity" not in (create.attributes or {})

    # No key anywhere by default: keys can be user ids.
    values = every_attribute_value(otel)
    assert not {"user:alice", "user:bob"} & {v for v in values if isinstance(v, str)}


async def test_throttled_ambiguous_and_refused_requests_carry_error_type(
    server: LocalDynamo, table_name: str, otel: Otel
) -> None:
    hooks = hooks_for(otel, server, table_name)
    async with CounterPool(
        table_name, endpoint_url=server.endpoint_url, hooks=hooks, retry=BRIEF
    ) as pool:
        await pool.ensure_table()
        server.set_faults(Faults(throttle=1.0))
        try:
            with pytest.raises(ThrottledError):
                await pool.increment("hot")
            server.set_faults(Faults(error_after_apply=1.0))
            with pytest.raises(AmbiguousWriteError):
                await pool.increment("hot")
        finally:
            server.set_faults(Faults())
        with pytest.raises(CounterFloorError):
            await pool.decrement("stock", 1, floor=0)
    # The ambiguous write was applied: "ambiguous" means it may have been.
    assert server.ledger(table_name)["hot"].sum == 1

    metrics = otel.metrics()
    updates = {
        dict(key).get("error.type"): point
        for key, point in points(metrics["db.client.operation.duration"]).items()
        if dict(key)["db.operation.name"] == "UpdateItem"
    }
    assert updates["throttled"].count == ATTEMPTS
    assert updates["ambiguous"].count == 1
    assert updates["condition_failed"].count == 1
    assert None not in updates

    throttles = metrics["async_counters.throttles"]
    assert throttles.unit == "{response}"
    assert sum(p.value for p in throttles.data.data_points) == ATTEMPTS
    retries = metrics["async_counters.retries"]
    assert retries.unit == "{retry}"
    (retry,) = retries.data.data_points
    assert retry.value == ATTEMPTS - 1
    assert retry.attributes["async_counters.outcome"] == "throttled"
    assert retry.attributes["db.operation.name"] == "UpdateItem"
    outcomes = {
        p.attributes["async_counters.outcome"]: p.value
        for p in metrics["async_counters.increments"].data.data_points
    }
    assert outcomes == {"throttled": 1, "ambiguous": 1, "condition_failed": 1}
    for point in metrics["async_counters.increments"].data.data_points:
        show("metric", "async_counters.increments", "{increment}", point)
    show("metric", "async_counters.retries", "{retry}", retry)

    failed = [s for s in otel.spans() if s.name == "DynamoDB.UpdateItem"]
    assert len(failed) == ATTEMPTS + 2
    errors = [str(s.attributes["error.type"]) for s in failed if s.attributes]
    assert sorted(errors) == sorted(["throttled"] * ATTEMPTS + ["ambiguous", "condition_failed"])
    assert all(s.status.status_code is StatusCode.ERROR for s in failed)
    show("span", failed[0].name, "", failed[0])
    assert {s.status.description for s in failed} == {"throttled", "ambiguous", "condition_failed"}


async def test_record_keys_puts_the_key_on_write_and_retry_metrics_only(
    server: LocalDynamo, table_name: str, otel: Otel
) -> None:
    hooks = hooks_for(otel, server, table_name, record_keys=True)
    async with CounterPool(
        table_name, endpoint_url=server.endpoint_url, hooks=hooks, retry=BRIEF
    ) as pool:
        await pool.ensure_table()
        server.set_faults(Faults(throttle=1.0))
        try:
            with pytest.raises(ThrottledError):
                await pool.increment("user:carol")
        finally:
            server.set_faults(Faults())
        await pool.increment("user:carol")
        await pool.increment("user:dave")

    metrics = otel.metrics()
    by_key = {
        (p.attributes["async_counters.key"], p.attributes["async_counters.outcome"]): p.value
        for p in metrics["async_counters.increments"].data.data_points
    }
    assert by_key == {
        ("user:carol", "throttled"): 1,
        ("user:carol", "acknowledged"): 1,
        ("user:dave", "acknowledged"): 1,
    }
    (retry,) = metrics["async_counters.retries"].data.data_points
    assert retry.attributes["async_counters.key"] == "user:carol"
    # The request's duration stays one series per operation and outcome.
    for point in metrics["db.client.operation.duration"].data.data_points:
        assert "async_counters.key" not in point.attributes
    # Spans of writes carry the item written, failed attempts included; the rest none.
    keyed = [(s.name, (s.attributes or {}).get("async_counters.key")) for s in otel.spans()]
    assert sorted(k for name, k in keyed if name == "DynamoDB.UpdateItem") == [
        *["user:carol"] * (ATTEMPTS + 1),
        "user:dave",
    ]
    assert {k for name, k in keyed if name != "DynamoDB.UpdateItem"} == {None}


async def test_a_request_span_is_a_child_of_the_callers_span(
    server: LocalDynamo, table_name: str, otel: Otel
) -> None:
    hooks = hooks_for(otel, server, table_name)
    tracer = otel.tracer_provider.get_tracer("webapp")
    async with CounterPool(table_name, endpoint_url=server.endpoint_url, hooks=hooks) as pool:
        await pool.ensure_table()
        with tracer.start_as_current_span("GET /home") as handler:
            await pool.increment("views:/home")
    (update,) = [s for s in otel.spans() if s.name == "DynamoDB.UpdateItem"]
    assert update.parent is not None
    assert update.parent.span_id == handler.get_span_context().span_id
    assert update.context is not None
    assert update.context.trace_id == handler.get_span_context().trace_id


async def test_coalesced_writes_are_measured_in_operations_per_write(
    server: LocalDynamo, table_name: str, otel: Otel
) -> None:
    callers = 40
    hooks = hooks_for(otel, server, table_name)
    async with CounterPool(
        table_name, endpoint_url=server.endpoint_url, hooks=hooks, coalesce=True
    ) as pool:
        await pool.ensure_table()
        values = await asyncio.gather(*(pool.increment("views:/home") for _ in range(callers)))
        writes = pool.stats.requests - 2  # DescribeTable and CreateTable: ensure_table
    assert sorted(values) == list(range(1, callers + 1))
    assert server.ledger(table_name)["views:/home"].sum == callers

    metrics = otel.metrics()
    coalesced = metrics["async_counters.coalesced"]
    assert coalesced.unit == "{operation}"
    (point,) = coalesced.data.data_points
    assert point.sum == callers  # every operation is in one write
    assert point.count == writes  # one measurement per write
    assert point.count < callers  # they merged (40 callers at once on one key)
    assert "async_counters.key" not in point.attributes
    (update,) = [
        p
        for p in metrics["db.client.operation.duration"].data.data_points
        if p.attributes["db.operation.name"] == "UpdateItem"
    ]
    assert update.count == writes
    show("metric", "async_counters.coalesced", "{operation}", point)


async def test_without_a_table_option_spans_name_the_table_their_answer_names(
    server: LocalDynamo, table_name: str, otel: Otel
) -> None:
    hooks = OpenTelemetryHooks(otel.meter_provider, otel.tracer_provider)
    async with CounterPool(table_name, endpoint_url=server.endpoint_url, hooks=hooks) as pool:
        await pool.ensure_table()
        await pool.increment("stock", 1)
        assert await pool.get_many(["stock", "other", "third"]) == {
            "stock": 1,
            "other": 0,
            "third": 0,
        }
        with pytest.raises(CounterFloorError):
            await pool.decrement("stock", 2, floor=0)
        assert pool.stats.write_units == 2.0  # the increment and the refused decrement

    by_name: dict[str, list[ReadableSpan]] = {}
    for span in otel.spans():
        by_name.setdefault(span.name, []).append(span)
    written, refused = by_name["DynamoDB.UpdateItem"]
    assert written.attributes is not None and refused.attributes is not None
    assert written.attributes["aws.dynamodb.table_names"] == (table_name,)
    # A refused write has no answer to quote: its unit is in the metric, not on its span.
    assert refused.attributes["error.type"] == "condition_failed"
    assert "aws.dynamodb.consumed_capacity" not in refused.attributes
    assert "aws.dynamodb.table_names" not in refused.attributes
    (batch,) = by_name["DynamoDB.BatchGetItem"]
    assert batch.attributes is not None
    consumed = [json.loads(c) for c in batch.attributes["aws.dynamodb.consumed_capacity"]]
    assert consumed == [{"TableName": table_name, "CapacityUnits": 3.0}]
    assert batch.attributes["aws.dynamodb.table_names"] == (table_name,)
    units = {
        p.attributes["db.operation.name"]: p.value
        for p in otel.metrics()["async_counters.write_units"].data.data_points
    }
    assert units == {"UpdateItem": 2.0}
    show("span", batch.name, "", batch)

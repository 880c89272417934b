"""OpenTelemetry for a pool: DynamoDB client metrics and spans, by the semantic conventions.

`OpenTelemetryHooks` is a `PoolHooks` (the ``[otel]`` extra). It follows OpenTelemetry's
conventions for database clients, the AWS SDK and AWS DynamoDB:

- ``db.client.operation.duration`` (histogram, s): one measurement per request, with
  ``db.system.name="aws.dynamodb"``, ``db.operation.name`` (``UpdateItem``, ...) and, on failure,
  ``error.type``; the convention's bucket boundaries.
- one CLIENT span per request, named ``DynamoDB.<operation>`` (the AWS SDK convention), with
  ``rpc.system="aws-api"``, ``rpc.service``, ``rpc.method``, ``aws.dynamodb.table_names``,
  ``aws.dynamodb.consumed_capacity`` (each entry of the answer's ConsumedCapacity, as JSON) and,
  on failure, status ERROR and ``error.type``. The span is a child of whatever span is current
  where the request was sent (a web request's, say).

What the conventions have no name for is under ``async_counters.``: write operations by outcome,
retries, throttled responses, and the capacity units requests were charged
(``async_counters.write_units``, ``async_counters.read_units``, by ``db.operation.name``):
observable counters over tallies kept inline, since an SDK measurement costs microseconds of the
event loop's time. Beside them, a histogram of the write operations each merged write carried
(``async_counters.coalesced``), and gauges of the keys paced for throttling and their pace
(``async_counters.paced_keys``, ``async_counters.pacing_rate``) and of the table's own pace while
its capacity throttles (``async_counters.table_pacing_rate``), read from the pool's stats when
the SDK collects. A write's whole duration, retries included, is in the pool's own
``stats.latency``.

The hooks are told how a request ended, not its error code: ``error.type`` is the request's
`Outcome` (``throttled``, ``ambiguous``, ``condition_failed``, ...), a fixed, low-cardinality set
as the convention asks when no code is at hand. No metric or span carries a counter's key unless
``record_keys=True`` (keys can be user ids).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from .stats import PoolHooks, PoolStats
from .transport import Outcome

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.util.types import Attributes, AttributeValue
except ImportError:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "async_counters.telemetry needs OpenTelemetry: pip install 'async-counters[otel]'"
    ) from None

__all__ = ["COALESCED_BUCKETS", "DURATION_BUCKETS", "OpenTelemetryHooks"]

#: The bucket boundaries (s) that the conventions recommend for ``db.client.operation.duration``.
DURATION_BUCKETS: Sequence[float] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

#: Bucket boundaries of ``async_counters.coalesced``: write operations merged into one write.
COALESCED_BUCKETS: Sequence[float] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)

#: The instrumentation scope: the name of the meter and the tracer.
SCOPE = "async_counters"

_DB_SYSTEM = "aws.dynamodb"
_OUTCOME = "async_counters.outcome"
_KEY = "async_counters.key"
_TABLE_NAMES = "aws.dynamodb.table_names"
_CONSUMED = "aws.dynamodb.consumed_capacity"


class OpenTelemetryHooks(PoolHooks):
    """Metrics and spans of a pool's requests, for an OpenTelemetry SDK to export.

    ``meter_provider`` and ``tracer_provider`` default to the global ones (no-ops until the
    application installs an SDK). ``table`` names the pool's table on spans and metrics
    (``aws.dynamodb.table_names``, ``db.collection.name``); ``server_address`` and
    ``server_port`` name the endpoint (``server.*``), when known; without ``table``, a span names
    the table its answer's ConsumedCapacity names. ``record_keys=True`` adds the counter's key
    (``async_counters.key``) to spans of writes, to the write, retry and coalesced metrics (one
    series per key) and gives the pace of each paced key; the request duration stays one series
    per operation and outcome.

    >>> hooks = OpenTelemetryHooks(table="counters")
    >>> async with CounterPool("counters", hooks=hooks) as pool:
    ...     await pool.increment("views:/home")
    """

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        record_keys: bool = False,
        table: str | None = None,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> None:
        if table is not None and (not isinstance(table, str) or not table):
            raise ValueError(f"table must be a non-empty str, got {table!r}")
        if server_port is not None and (
            isinstance(server_port, bool)
            or not isinstance(server_port, int)
            or not 0 < server_port < 65536
        ):
            raise ValueError(f"server_port must be an int from 1 to 65535, got {server_port!r}")
        self.record_keys = record_keys
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self._tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        self._duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        # The counters are tallied in plain dicts, inline, and handed to the SDK when it collects:
        # an SDK measurement costs ~10 µs of the event loop's time (it hashes its attributes
        # every time), a dict increment a fraction of one. Values and semantics are a Counter's.
        self._increment_counts: dict[tuple[Outcome, str | None], int] = {}
        self._retry_counts: dict[tuple[str, Outcome, str | None], int] = {}
        self._throttle_counts: dict[str, int] = {}
        self._write_units: dict[str, float] = {}
        self._read_units: dict[str, float] = {}
        self._coalesced = meter.create_histogram(
            "async_counters.coalesced",
            unit="{operation}",
            description="Write operations applied by one merged write (coalescing, background).",
            explicit_bucket_boundaries_advisory=COALESCED_BUCKETS,
        )
        self._pools: list[Callable[[], PoolStats]] = []
        meter.create_observable_gauge(
            "async_counters.paced_keys",
            [self._observe_paced_keys],
            unit="{key}",
            description="Keys the pool paces because they were throttled.",
        )
        meter.create_observable_gauge(
            "async_counters.pacing_rate",
            [self._observe_pacing_rates],
            unit="{request}/s",
            description="Pace of paced keys (each with record_keys; else the slowest one's).",
        )
        meter.create_observable_gauge(
            "async_counters.table_pacing_rate",
            [self._observe_table_pacing_rate],
            unit="{request}/s",
            description="Pace of all the table's writes while its own limits throttle them.",
        )
        meter.create_observable_counter(
            "async_counters.increments",
            [self._observe_increments],
            unit="{increment}",
            description="Write operations (increments and decrements) settled, by outcome.",
        )
        meter.create_observable_counter(
            "async_counters.retries",
            [self._observe_retries],
            unit="{retry}",
            description="Requests retried, by the outcome that caused the retry.",
        )
        meter.create_observable_counter(
            "async_counters.throttles",
            [self._observe_throttles],
            unit="{response}",
            description="Throttled responses received, retried or not.",
        )
        meter.create_observable_counter(
            "async_counters.write_units",
            [self._observe_write_units],
            unit="{write_unit}",
            description="Write capacity units charged (ConsumedCapacity), by operation.",
        )
        meter.create_observable_counter(
            "async_counters.read_units",
            [self._observe_read_units],
            unit="{read_unit}",
            description="Read capacity units charged (ConsumedCapacity), by operation.",
        )
        common: dict[str, AttributeValue] = {"db.system.name": _DB_SYSTEM}
        if table is not None:
            common["db.collection.name"] = table
        if server_address is not None:
            common["server.address"] = server_address
            if server_port is not None:
                common["server.port"] = server_port
        self._common = common
        span_common: dict[str, AttributeValue] = {
            **common,
            "rpc.system": "aws-api",
            "rpc.service": "DynamoDB",
        }
        if table is not None:
            span_common[_TABLE_NAMES] = (table,)
        self._table = table
        self._span_common = span_common
        # Attribute sets are built once per (operation, outcome) and reused: a hook runs inline
        # on the event loop for every request.
        self._metric_attributes: dict[tuple[str, Outcome], Attributes] = {}
        self._span_attributes: dict[tuple[str, Outcome], Attributes] = {}
        self._span_names: dict[str, str] = {}

    def on_open(self, stats: Callable[[], PoolStats]) -> None:
        self._pools.append(stats)

    def on_request(self, operation: str, outcome: Outcome, seconds: float) -> None:
        self.on_request_detail(operation, None, outcome, seconds, None)

    def on_request_detail(
        self, operation: str, key: str | None, outcome: Outcome, seconds: float, consumed: Any
    ) -> None:
        pair = (operation, outcome)
        attributes = self._metric_attributes.get(pair)
        if attributes is None:
            attributes = self._metric_attributes[pair] = self._request_attributes(pair)
        self._duration.record(seconds, attributes)
        if outcome is Outcome.THROTTLED:
            counts = self._throttle_counts
            counts[operation] = counts.get(operation, 0) + 1
        self._span(operation, key, outcome, seconds, consumed, pair)

    def on_coalesced(self, key: str, calls: int) -> None:
        self._coalesced.record(
            calls, self._key_attributes(key) if self.record_keys else self._common
        )

    def on_retry(
        self, operation: str, key: str | None, outcome: Outcome, attempt: int, delay: float
    ) -> None:
        tally = (operation, outcome, key if self.record_keys else None)
        counts = self._retry_counts
        counts[tally] = counts.get(tally, 0) + 1

    def on_settled(self, key: str, delta: int, outcome: Outcome, seconds: float) -> None:
        tally = (outcome, key if self.record_keys else None)
        counts = self._increment_counts
        counts[tally] = counts.get(tally, 0) + 1

    def on_consumed(self, operation: str, write_units: float, read_units: float) -> None:
        if write_units:
            writes = self._write_units
            writes[operation] = writes.get(operation, 0.0) + write_units
        if read_units:
            reads = self._read_units
            reads[operation] = reads.get(operation, 0.0) + read_units

    # The SDK calls these when it collects, from its reader's thread: dict(...) copies the tally
    # in one step under the GIL, so a write on the event loop meanwhile cannot break the loop.

    def _observe_paced_keys(self, options: CallbackOptions) -> Iterator[Observation]:
        if self._pools:
            paced = sum(len(stats().key_rates) for stats in self._pools)
            yield Observation(paced, self._common)

    def _observe_pacing_rates(self, options: CallbackOptions) -> Iterator[Observation]:
        rates: dict[str, float] = {}
        for stats in self._pools:
            rates.update(stats().key_rates)
        if not rates:
            return
        if self.record_keys:
            for key, rate in rates.items():
                yield Observation(rate, self._key_attributes(key))
        else:
            yield Observation(min(rates.values()), self._common)

    def _observe_table_pacing_rate(self, options: CallbackOptions) -> Iterator[Observation]:
        rates = [rate for stats in self._pools if (rate := stats().table_rate) is not None]
        if rates:
            yield Observation(min(rates), self._common)

    def _key_attributes(self, key: str) -> Attributes:
        return {**self._common, _KEY: key}

    def _observe_increments(self, options: CallbackOptions) -> Iterator[Observation]:
        for (outcome, key), n in dict(self._increment_counts).items():
            yield Observation(n, self._attributes(None, outcome, key))

    def _observe_retries(self, options: CallbackOptions) -> Iterator[Observation]:
        for (operation, outcome, key), n in dict(self._retry_counts).items():
            yield Observation(n, self._attributes(operation, outcome, key))

    def _observe_throttles(self, options: CallbackOptions) -> Iterator[Observation]:
        for operation, n in dict(self._throttle_counts).items():
            yield Observation(n, self._attributes(operation, None, None))

    def _observe_write_units(self, options: CallbackOptions) -> Iterator[Observation]:
        for operation, n in dict(self._write_units).items():
            yield Observation(n, self._attributes(operation, None, None))

    def _observe_read_units(self, options: CallbackOptions) -> Iterator[Observation]:
        for operation, n in dict(self._read_units).items():
            yield Observation(n, self._attributes(operation, None, None))

    def _attributes(
        self, operation: str | None, outcome: Outcome | None, key: str | None
    ) -> Attributes:
        attributes: dict[str, AttributeValue] = dict(self._common)
        if operation is not None:
            attributes["db.operation.name"] = operation
        if outcome is not None:
            attributes[_OUTCOME] = outcome.value
        if key is not None:
            attributes[_KEY] = key
        return attributes

    def _span(
        self,
        operation: str,
        key: str | None,
        outcome: Outcome,
        seconds: float,
        consumed: Any,
        pair: tuple[str, Outcome],
    ) -> None:
        """The request's span, after the fact: it started ``seconds`` before now and ends with
        everything its answer said, what it cost included."""
        attributes = self._span_attributes.get(pair)
        if attributes is None:
            attributes = self._span_attributes[pair] = {
                **self._span_common,
                **(self._metric_attributes[pair] or {}),
                "rpc.method": operation,
            }
        if consumed is not None or (key is not None and self.record_keys):
            attributes = self._answer_attributes(attributes, key, consumed)
        name = self._span_names.get(operation)
        if name is None:
            name = self._span_names[operation] = f"DynamoDB.{operation}"
        end = time.time_ns()
        span = self._tracer.start_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=end - int(seconds * 1e9),
        )
        if outcome is not Outcome.ACKNOWLEDGED:
            span.set_status(Status(StatusCode.ERROR, outcome.value))
        span.end(end_time=end)

    def _answer_attributes(self, base: Attributes, key: str | None, consumed: Any) -> Attributes:
        """A span's attributes with the request's own: its ConsumedCapacity (each entry as JSON,
        as the DynamoDB convention says), the tables it names (unless ``table`` was given) and,
        with ``record_keys``, the key."""
        attributes: dict[str, AttributeValue] = dict(base or {})
        if key is not None and self.record_keys:
            attributes[_KEY] = key
        if consumed is not None:
            entries = consumed if isinstance(consumed, list) else [consumed]
            attributes[_CONSUMED] = tuple(orjson.dumps(entry).decode() for entry in entries)
            if self._table is None:
                names = tuple(
                    dict.fromkeys(
                        entry["TableName"]
                        for entry in entries
                        if isinstance(entry, Mapping) and isinstance(entry.get("TableName"), str)
                    )
                )
                if names:
                    attributes[_TABLE_NAMES] = names
        return attributes

    def _request_attributes(self, pair: tuple[str, Outcome]) -> Attributes:
        operation, outcome = pair
        attributes: dict[str, AttributeValue] = {**self._common, "db.operation.name": operation}
        if outcome is not Outcome.ACKNOWLEDGED:
            attributes["error.type"] = outcome.value
        return attributes

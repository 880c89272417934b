"""The HTTP front of the embedded DynamoDB: every request passes here, on the server's loop.

For each DynamoDB call, in order: latency, the fault draw (a 500 before apply ends it there),
the capacity model (a throttled call ends there, not applied), the backend, the ledger (only
what the backend accepted), then the faults that strike after apply. Every answer carries a
``x-amz-crc32`` computed over the exact bytes sent. Connections are HTTP/1.1 keep-alive.
Signatures are not checked, so any credentials work.

Admin endpoints live under ``/_local/``, a path no DynamoDB client uses:
``GET /_local/ledger[?table=T]``, ``DELETE /_local/ledger``, ``GET|PUT /_local/faults``,
``GET /_local/stats`` and ``GET /_local/config``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web, web_protocol, web_request

from async_counters.local import values as v
from async_counters.local import wire
from async_counters.local.backend import ACCOUNT_ID, Backend, Call, Reply
from async_counters.local.capacity import READ, WRITE, CapacityModel, Kind
from async_counters.local.config import Faults, LocalConfig
from async_counters.local.faults import FaultInjector, LatencyModel
from async_counters.local.ledger import AppliedLedger, key_string, update_delta
from async_counters.local.upstream import UpstreamError

logger = logging.getLogger("async_counters.local")

#: DynamoDB clients POST to "/"; the server's own endpoints live under a path none of them uses.
ADMIN_PREFIX: Final = "/_local/"
_KEY_RANGE_MESSAGE: Final = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
    "scaling your table or index so please try again shortly. If exceptions persist, check if you "
    "have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
    "bp-partition-key-design.html"
)
_TABLE_MESSAGE: Final = (
    "The level of configured provisioned throughput for the table was exceeded. Consider "
    "increasing your provisioning level with the UpdateTable API."
)


@dataclasses.dataclass(slots=True)
class FrontStats:
    """Plain counters of what the front did; read them with `snapshot`."""

    connections: int = 0
    requests: int = 0
    succeeded: int = 0
    throttled: int = 0
    unprocessed_keys: int = 0
    upstream_errors: int = 0
    throttle: int = 0
    error_before_apply: int = 0
    error_after_apply: int = 0
    drop_after_apply: int = 0
    delay_after_apply: int = 0

    def count(self, name: str, amount: int = 1) -> None:
        setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class DropConnection(Exception):
    """Raised to close the client's connection without an answer."""


class Front:
    """Routes DynamoDB calls through the model to the backend, and admin calls to itself."""

    def __init__(self, config: LocalConfig, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.stats = FrontStats()
        self.ledger = AppliedLedger()
        self.capacity = None if config.capacity is None else CapacityModel(config.capacity)
        self.latency = LatencyModel(config.latency)
        self.injector = FaultInjector(config.faults)
        self._closing: asyncio.Event | None = None

    def closing(self) -> asyncio.Event:
        """Set when the server stops: held answers are let go at once."""
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    @property
    def faults(self) -> Faults:
        return self.injector.faults

    def set_faults(self, faults: Faults) -> None:
        # One attribute assignment: a request sees the old injector or the new one, never a mix.
        self.injector = FaultInjector(faults)

    async def __call__(self, request: web_request.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path == "/" and request.method == "POST":
            try:
                return await self.dynamo(request)
            except DropConnection:
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError from None
        if path.startswith(ADMIN_PREFIX):
            return await self.admin(request, path[len(ADMIN_PREFIX) :])
        if path == "/" and request.method in ("GET", "HEAD"):
            # DynamoDB answers a plain GET with a health line; load balancers probe it.
            return web.Response(text="healthy: local dynamodb\n")
        return web.Response(status=404, text="not found\n")

    # DynamoDB calls.

    async def dynamo(self, request: web_request.BaseRequest) -> web.StreamResponse:
        self.stats.requests += 1
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        if not target.startswith(wire.TARGET_PREFIX):
            return respond(
                Reply.error(400, wire.UNKNOWN_OPERATION, f"Unknown operation: {target!r}")
            )
        call = Call(target[len(wire.TARGET_PREFIX) :], body, request.headers)
        delay = self.latency.draw()
        if delay > 0:
            await asyncio.sleep(delay)
        fault = self.injector.draw(call.operation)
        if fault == "error_before_apply":
            self.stats.count(fault)
            return respond(internal_error())
        if fault == "throttle":
            self.stats.count(fault)
            self.stats.throttled += 1
            return respond(throttle(self.config.region, call_table(call), [_INJECTED_REASON]))

        unprocessed: dict[str, Any] | None = None
        if self.capacity is not None:
            throttled, unprocessed = self.admit(call)
            if throttled is not None:
                self.stats.throttled += 1
                return respond(throttled)

        delta = self.ledger_delta(call)
        try:
            reply = await self.backend.handle(call)
        except UpstreamError as exc:
            self.stats.upstream_errors += 1
            logger.warning("upstream failed: %s", exc)
            return respond(internal_error())
        if reply.status == 200:
            self.stats.succeeded += 1
            if delta is not None:
                self.ledger.record(*delta)
            if unprocessed:
                reply = with_unprocessed_keys(reply, unprocessed)

        if fault is not None:
            self.stats.count(fault)
            if fault == "error_after_apply":
                return respond(internal_error())
            if fault == "drop_after_apply":
                raise DropConnection
            # Held past the client's timeout, but never past the server's own stop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing().wait(), self.faults.delay)
        return respond(reply)

    def ledger_delta(self, call: Call) -> tuple[str, str, Any] | None:
        """(table, key, delta) an UpdateItem will add to the ledger if the backend accepts it."""
        if call.operation != "UpdateItem":
            return None
        try:
            payload = call.json()
            table, key = payload["TableName"], payload["Key"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(table, str) or not isinstance(key, dict):
            return None
        delta = update_delta(payload)
        return None if delta is None else (table, key_string(key), delta)

    # The capacity model.

    def admit(self, call: Call) -> tuple[Reply | None, dict[str, Any] | None]:
        """Take capacity for a call: (a throttling answer, or None; BatchGetItem's unprocessed
        keys, when only some of its keys were throttled and the call was trimmed to the rest)."""
        assert self.capacity is not None
        operation = call.operation
        if operation not in ("UpdateItem", "PutItem", "DeleteItem", "GetItem", "BatchGetItem"):
            return None, None
        try:
            payload = call.json()
        except ValueError:
            return None, None
        if operation == "BatchGetItem":
            return self.admit_batch(call, payload)
        table, key = payload.get("TableName"), payload.get("Key")
        if operation == "PutItem":
            key = payload.get("Item")
        if not isinstance(table, str) or not isinstance(key, dict):
            return None, None
        kind: Kind = READ if operation == "GetItem" else WRITE
        units = self.units(table, key, kind, payload)
        if operation == "PutItem":
            key = self.partition_of(table, key)
        reasons = self.capacity.take(table, key_string(key), kind, units)
        if reasons:
            return throttle(self.config.region, table, reasons), None
        return None, None

    def admit_batch(
        self, call: Call, payload: dict[str, Any]
    ) -> tuple[Reply | None, dict[str, Any] | None]:
        assert self.capacity is not None
        requests = payload.get("RequestItems")
        if not isinstance(requests, dict):
            return None, None
        admitted: dict[str, Any] = {}
        unprocessed: dict[str, Any] = {}
        reasons: list[tuple[str, list[str]]] = []
        for table, request in requests.items():
            keys = request.get("Keys") if isinstance(request, dict) else None
            if not isinstance(keys, list):
                return None, None
            kept: list[Any] = []
            refused: list[Any] = []
            for key in keys:
                if not isinstance(key, dict):
                    return None, None
                units = self.units(table, key, READ, request)
                why = self.capacity.take(table, key_string(key), READ, units)
                (refused if why else kept).append(key)
                if why:
                    reasons.append((table, why))
            if kept:
                admitted[table] = {**request, "Keys": kept}
            if refused:
                unprocessed[table] = {**request, "Keys": refused}
        if not unprocessed:
            return None, None
        if not admitted:
            table, why = reasons[0]
            return throttle(self.config.region, table, why), None
        self.stats.unprocessed_keys += sum(len(r["Keys"]) for r in unprocessed.values())
        call.payload = {**payload, "RequestItems": admitted}
        call.body = wire.dumps(call.payload)
        return None, unprocessed

    def partition_of(self, table: str, item: Mapping[str, Any]) -> Mapping[str, Any]:
        """A PutItem's partition key: named by the backend's schema if it knows it, else the
        item's first attribute (clients list the key first in practice)."""
        name = self.backend.hash_key(table)
        if name is None or name not in item:
            name = next(iter(item), None)
        return {} if name is None else {name: item[name]}

    def units(
        self, table: str, key: Mapping[str, Any], kind: Kind, request: Mapping[str, Any]
    ) -> float:
        """Capacity units for one item: 1 per started KB written, 1 per started 4 KB read
        (half when eventually consistent), sized by the stored item or what the request writes."""
        try:
            stored = self.backend.item_size(table, key) or 0
        except Exception:  # sizing is best effort: a malformed key fails in the backend
            stored = 0
        if kind == WRITE:
            try:
                written = v.item_size(key) + sum(
                    v.value_size(value)
                    for value in (request.get("ExpressionAttributeValues") or {}).values()
                )
            except (v.InvalidValue, TypeError, KeyError, AttributeError):
                written = 0
            return float(max(1, math.ceil(max(stored, written) / 1024)))
        units = float(max(1, math.ceil(stored / 4096)))
        return units if request.get("ConsistentRead") is True else units / 2

    # Admin endpoints.

    async def admin(self, request: web_request.BaseRequest, name: str) -> web.StreamResponse:
        method = request.method
        if name == "ledger" and method == "GET":
            return json_response(self.ledger.to_json(request.query.get("table")))
        if name == "ledger" and method == "DELETE":
            self.ledger.reset()
            return json_response(self.ledger.to_json())
        if name == "faults" and method == "GET":
            return json_response(faults_to_json(self.faults))
        if name == "faults" and method in ("PUT", "POST"):
            try:
                faults = faults_from_json(json.loads(await request.read() or b"{}"))
            except (ValueError, TypeError) as exc:
                return json_response({"error": str(exc)}, status=400)
            self.set_faults(faults)
            return json_response(faults_to_json(faults))
        if name == "stats" and method == "GET":
            return json_response(self.stats.snapshot())
        if name == "config" and method == "GET":
            return json_response(config_to_json(self.config, self.faults))
        return web.Response(status=404, text=f"no admin endpoint {method} {name!r}\n")


def respond(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status, body=reply.body, headers=wire.response_headers(reply.body)
    )


#: The reason an injected throttle gives: the partition's, like a hot key's.
_INJECTED_REASON: Final = "TableWriteKeyRangeThroughputExceeded"


def call_table(call: Call) -> str:
    """The table a call names (for a throttling answer's resource), or ``unknown``."""
    try:
        table = call.json().get("TableName")
    except ValueError:
        table = None
    return table if isinstance(table, str) else "unknown"


def internal_error() -> Reply:
    return Reply.error(500, wire.INTERNAL_SERVER_ERROR, "Internal server error")


def throttle(region: str, table: str, reasons: list[str]) -> Reply:
    """DynamoDB's answer to a throttled request (HTTP 400, not applied)."""
    arn = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{table}"
    message = _KEY_RANGE_MESSAGE if "KeyRange" in reasons[0] else _TABLE_MESSAGE
    return Reply.error(
        400,
        wire.THROUGHPUT_EXCEEDED,
        message,
        ThrottlingReasons=[{"reason": reason, "resource": arn} for reason in reasons],
    )


def with_unprocessed_keys(reply: Reply, unprocessed: dict[str, Any]) -> Reply:
    """A BatchGetItem answer with the keys the capacity model held back added to it."""
    try:
        body = json.loads(reply.body)
    except ValueError:
        return reply
    merged = body.get("UnprocessedKeys") or {}
    for table, request in unprocessed.items():
        if table in merged:
            merged[table]["Keys"] = merged[table]["Keys"] + request["Keys"]
        else:
            merged[table] = request
    body["UnprocessedKeys"] = merged
    return Reply(reply.status, wire.dumps(body))


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=wire.dumps(payload), content_type="application/json")


def faults_to_json(faults: Faults) -> dict[str, Any]:
    data = dataclasses.asdict(faults)
    data["operations"] = sorted(faults.operations)
    return data


def faults_from_json(data: Any) -> Faults:
    """A `Faults` from the admin endpoint's JSON; fields left out take their defaults."""
    if not isinstance(data, dict):
        raise TypeError("faults must be a JSON object")
    known = {f.name for f in dataclasses.fields(Faults)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown fault fields: {sorted(unknown)}")
    if "operations" in data:
        data = {**data, "operations": frozenset(data["operations"])}
    return Faults(**data)


def config_to_json(config: LocalConfig, faults: Faults) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["faults"] = faults_to_json(faults)
    return data


class HttpServer(web.Server):
    """aiohttp's low-level server (no router, no middlewares) that counts connections."""

    def __init__(self, front: Front) -> None:
        super().__init__(front, access_log=None, handler_cancellation=False)
        self._front = front

    def connection_made(
        self, handler: web_protocol.RequestHandler, transport: asyncio.Transport
    ) -> None:
        super().connection_made(handler, transport)
        self._front.stats.connections += 1

"""The HTTP front of the embedded DynamoDB: every request passes here, on the server's loop.

For each DynamoDB call, in order: latency, the fault draw (a 500 before apply ends it there),
the capacity model (a throttled call ends there, not applied), the backend, the ledger (only
what the backend accepted, and never a transaction's idempotent replay), the capacity settled
with what the backend says the call consumed, then the faults that strike after apply. Every
answer carries a ``x-amz-crc32`` computed over the exact bytes sent. Connections are HTTP/1.1
keep-alive. Signatures are not checked, so any credentials work.

A `TransactWriteItems` with a ``ClientRequestToken`` is in progress from its arrival until its
answer is sent, held answers included: a retry with that token meanwhile is answered
``TransactionInProgressException``, as DynamoDB answers a retry that overtakes the original.

Admin endpoints live under ``/_local/``, a path no DynamoDB client uses:
``GET /_local/ledger[?table=T]``, ``DELETE /_local/ledger``, ``GET|PUT /_local/faults``,
``GET /_local/stats``, ``GET /_local/config`` and ``POST /_local/ttl/sweep`` (delete now what
TTL is due to delete, rather than at the next background sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiohttp import web, web_protocol, web_request

from async_counters.local import tokens, wire
from async_counters.local import values as v
from async_counters.local.backend import ACCOUNT_ID, Backend, Call, Reply
from async_counters.local.capacity import READ, WRITE, CapacityModel, Kind
from async_counters.local.config import Capacity, Faults, LocalConfig
from async_counters.local.faults import FaultInjector, LatencyModel
from async_counters.local.ledger import (
    AppliedLedger,
    key_string,
    transaction_deltas,
    update_delta,
)
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
    transactions_replayed: int = 0
    transactions_in_progress: int = 0

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
        # Tokens of the transactions this front is handling now, with their items' digests:
        # as many as requests in flight, each gone when its answer is sent.
        self._in_progress: dict[str, bytes] = {}

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
        return await self.serve(Call(target[len(wire.TARGET_PREFIX) :], body, request.headers))

    async def serve(self, call: Call) -> web.StreamResponse:
        """One DynamoDB call, once a transaction's token is known not to be in progress."""
        token = transaction_token(call)
        if token is None:
            return await self.apply(call)
        items_digest = tokens.digest(call.json().get("TransactItems"))
        earlier = self._in_progress.get(token)
        if earlier is not None:
            await self.wait_latency()
            if earlier != items_digest:
                return respond(Reply.error(400, wire.IDEMPOTENT_MISMATCH, tokens.MISMATCH_MESSAGE))
            self.stats.transactions_in_progress += 1
            return respond(Reply.error(400, wire.TRANSACTION_IN_PROGRESS, _IN_PROGRESS_MESSAGE))
        self._in_progress[token] = items_digest
        try:
            return await self.apply(call)
        finally:
            del self._in_progress[token]

    async def wait_latency(self) -> None:
        delay = self.latency.draw()
        if delay > 0:
            await asyncio.sleep(delay)

    async def apply(self, call: Call) -> web.StreamResponse:
        """One call through latency, faults, capacity, the backend and the ledger."""
        await self.wait_latency()
        fault = self.injector.draw(call.operation)
        if fault == "error_before_apply":
            self.stats.count(fault)
            return respond(internal_error())
        if fault == "throttle":
            self.stats.count(fault)
            self.stats.throttled += 1
            return respond(throttle(self.config.region, call_table(call), [_INJECTED_REASON]))

        unprocessed: dict[str, Any] | None = None
        charges: list[Charge] = []
        if self.capacity is not None:
            throttled, unprocessed, charges = self.admit(call)
            if throttled is not None:
                self.stats.throttled += 1
                return respond(throttled)

        deltas = self.ledger_deltas(call)
        try:
            reply = await self.backend.handle(call)
        except UpstreamError as exc:
            self.stats.upstream_errors += 1
            logger.warning("upstream failed: %s", exc)
            return respond(internal_error())
        if reply.status == 200:
            self.stats.succeeded += 1
            if reply.replayed:
                self.stats.transactions_replayed += 1
            else:
                for delta in deltas:
                    self.ledger.record(*delta)
            if charges and reply.units is not None:
                self.settle(charges, reply.units, replayed=reply.replayed)
            if unprocessed:
                reply = with_unprocessed_keys(reply, unprocessed)
            if self.capacity is not None and call.operation == "DescribeTable":
                reply = with_capacity(reply, self.capacity.capacity)

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

    def ledger_deltas(self, call: Call) -> list[tuple[str, str, Any]]:
        """(table, key, delta) an UpdateItem, or each Update of a TransactWriteItems, will add
        to the ledger if the backend applies it."""
        if call.operation not in ("UpdateItem", "TransactWriteItems"):
            return []
        try:
            payload = call.json()
        except ValueError:
            return []
        if call.operation == "TransactWriteItems":
            return list(transaction_deltas(payload))
        table, key = payload.get("TableName"), payload.get("Key")
        if not isinstance(table, str) or not isinstance(key, dict):
            return []
        delta = update_delta(payload)
        return [] if delta is None else [(table, key_string(key), delta)]

    # The capacity model.

    def admit(self, call: Call) -> tuple[Reply | None, dict[str, Any] | None, list[Charge]]:
        """Take capacity for a call: (a throttling answer, or None; BatchGetItem's unprocessed
        keys, when only some of its keys were throttled and the call was trimmed to the rest;
        what was taken, item by item in the request's order, to settle once answered)."""
        assert self.capacity is not None
        operation = call.operation
        if operation not in _METERED:
            return None, None, []
        try:
            payload = call.json()
        except ValueError:
            return None, None, []
        if operation == "BatchGetItem":
            return self.admit_batch(call, payload)
        if operation == "TransactWriteItems":
            return self.admit_transaction(payload)
        table, key = payload.get("TableName"), payload.get("Key")
        if operation == "PutItem":
            key = payload.get("Item")
        if not isinstance(table, str) or not isinstance(key, dict):
            return None, None, []
        kind: Kind = READ if operation == "GetItem" else WRITE
        charge = (table, key_string(self.partition_of(table, key)), kind)
        units = self.units(table, key, kind, payload)
        reasons = self.capacity.take(*charge, units)
        if reasons:
            return throttle(self.config.region, table, reasons), None, []
        return None, None, [(*charge, units)]

    def admit_batch(
        self, call: Call, payload: dict[str, Any]
    ) -> tuple[Reply | None, dict[str, Any] | None, list[Charge]]:
        assert self.capacity is not None
        requests = payload.get("RequestItems")
        if not isinstance(requests, dict):
            return None, None, []
        admitted: dict[str, Any] = {}
        unprocessed: dict[str, Any] = {}
        reasons: list[tuple[str, list[str]]] = []
        charges: list[Charge] = []
        for table, request in requests.items():
            keys = request.get("Keys") if isinstance(request, dict) else None
            if not isinstance(keys, list):
                return None, None, []
            kept: list[Any] = []
            refused: list[Any] = []
            for key in keys:
                if not isinstance(key, dict):
                    return None, None, []
                units = self.units(table, key, READ, request)
                partition = key_string(self.partition_of(table, key))
                why = self.capacity.take(table, partition, READ, units)
                (refused if why else kept).append(key)
                if why:
                    reasons.append((table, why))
                else:
                    charges.append((table, partition, READ, units))
            if kept:
                admitted[table] = {**request, "Keys": kept}
            if refused:
                unprocessed[table] = {**request, "Keys": refused}
        if not unprocessed:
            return None, None, charges
        if not admitted:
            table, why = reasons[0]
            return throttle(self.config.region, table, why), None, []
        self.stats.unprocessed_keys += sum(len(r["Keys"]) for r in unprocessed.values())
        call.payload = {**payload, "RequestItems": admitted}
        call.body = wire.dumps(call.payload)
        return None, unprocessed, charges

    def admit_transaction(
        self, payload: dict[str, Any]
    ) -> tuple[Reply | None, dict[str, Any] | None, list[Charge]]:
        """Take a transaction's capacity, all of it or none: two writes per item (prepare and
        commit), each charged to the item's partition. A throttled transaction is cancelled,
        with a throttling reason for each item that could not be served, as DynamoDB does."""
        assert self.capacity is not None
        actions = payload.get("TransactItems")
        if not isinstance(actions, list):
            return None, None, []
        charges: list[Charge] = []
        for action in actions:
            kind = next(iter(action), None) if isinstance(action, dict) else None
            request = action.get(kind) if isinstance(action, dict) else None
            if not isinstance(request, dict):
                return None, None, []  # malformed: the backend says why
            table = request.get("TableName")
            key = request.get("Item" if kind == "Put" else "Key")
            if not isinstance(table, str) or not isinstance(key, dict):
                return None, None, []
            units = 2 * self.units(table, key, WRITE, request)
            charges.append((table, key_string(self.partition_of(table, key)), WRITE, units))
        refused = self.capacity.take_all(charges)
        if not any(refused):
            return None, None, charges
        return cancelled([throttling_reason(why) for why in refused]), None, []

    def settle(self, charges: Sequence[Charge], units: Sequence[float], *, replayed: bool) -> None:
        """Make what admission took (an estimate) what the backend says the call consumed: the
        same numbers as its ConsumedCapacity. A replayed transaction read its items instead of
        writing them."""
        assert self.capacity is not None
        if len(charges) != len(units):
            return
        for (table, key, kind, taken), consumed in zip(charges, units, strict=True):
            if replayed:
                self.capacity.charge(table, key, kind, -taken)
                self.capacity.charge(table, key, READ, consumed)
            else:
                self.capacity.charge(table, key, kind, consumed - taken)

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
        if name == "ttl/sweep" and method == "POST":
            deleted = self.backend.sweep()
            if deleted is None:
                return json_response({"error": _NO_SWEEP}, status=400)
            return json_response({"deleted": deleted})
        return web.Response(status=404, text=f"no admin endpoint {method} {name!r}\n")


def respond(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status, body=reply.body, headers=wire.response_headers(reply.body)
    )


#: The reason an injected throttle gives: the partition's, like a hot key's.
_INJECTED_REASON: Final = "TableWriteKeyRangeThroughputExceeded"
#: Operations the capacity model charges.
_METERED: Final = frozenset(
    {"UpdateItem", "PutItem", "DeleteItem", "GetItem", "BatchGetItem", "TransactWriteItems"}
)
_IN_PROGRESS_MESSAGE: Final = "Transaction is ongoing for the idempotency token"
_NO_SWEEP: Final = "this backend never deletes expired items; the memory backend does"

#: Capacity taken for one item: (table, partition key, kind, units).
Charge = tuple[str, str, Kind, float]


def transaction_token(call: Call) -> str | None:
    """A TransactWriteItems call's ClientRequestToken, if it has a usable one."""
    if call.operation != "TransactWriteItems":
        return None
    try:
        token = call.json().get("ClientRequestToken")
    except ValueError:
        return None
    return token if isinstance(token, str) and token else None


def throttling_reason(reasons: list[str]) -> dict[str, str]:
    """A cancellation reason for one transaction item: None, or why its capacity ran out."""
    if not reasons:
        return {"Code": "None"}
    if "KeyRange" in reasons[0]:
        return {"Code": "ThrottlingError", "Message": _KEY_RANGE_MESSAGE}
    return {"Code": "ProvisionedThroughputExceeded", "Message": _TABLE_MESSAGE}


def cancelled(reasons: list[dict[str, str]]) -> Reply:
    """DynamoDB's TransactionCanceledException, one reason per action (not applied)."""
    return Reply.error(
        400,
        wire.TRANSACTION_CANCELED,
        wire.cancellation_message([reason["Code"] for reason in reasons]),
        message_key="Message",
        CancellationReasons=reasons,
    )


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


def with_capacity(reply: Reply, capacity: Capacity) -> Reply:
    """A table's description giving the table capacity the model holds it to: provisioned
    units, or an on-demand table's maximum (``OnDemandThroughput``), as DynamoDB's does."""
    try:
        body = json.loads(reply.body)
        table = body["Table"]
        mode = table.get("BillingModeSummary", {}).get("BillingMode")
    except (ValueError, KeyError, TypeError, AttributeError):
        return reply
    write, read = _units(capacity.table_write_units), _units(capacity.table_read_units)
    if mode == "PAY_PER_REQUEST":
        table["OnDemandThroughput"] = {"MaxReadRequestUnits": read, "MaxWriteRequestUnits": write}
    else:
        throughput = table.setdefault("ProvisionedThroughput", {})
        throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"] = read, write
    return dataclasses.replace(reply, body=wire.dumps(body))


def _units(rate: float) -> int | float:
    """Capacity units as DynamoDB writes them (whole numbers), unless the model's are not."""
    return int(rate) if rate == int(rate) else rate


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
    return dataclasses.replace(reply, body=wire.dumps(body))


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

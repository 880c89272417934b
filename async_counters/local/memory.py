"""The memory backend: the project's own in-memory model of the operations the pool uses.

CreateTable, DescribeTable, DeleteTable, ListTables, UpdateItem, PutItem, DeleteItem, GetItem,
BatchGetItem, TransactWriteItems (with ClientRequestToken idempotency), UpdateTimeToLive and
DescribeTimeToLive, with DynamoDB's validation errors for what DynamoDB refuses and its consumed
capacity. Expired items linger for ``ttl_delay`` seconds, then a sweep on the server's loop
deletes them, a bounded number at a time. Items stay in wire form, so a call costs tens of
microseconds where moto spends milliseconds. Anything else is answered
``UnknownOperationException``: use the moto backend for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from async_counters.local import expressions as ex
from async_counters.local import tokens, ttl, wire
from async_counters.local import values as v
from async_counters.local.backend import ACCOUNT_ID, Backend, Call, Reply
from async_counters.local.config import TTL_DELAY_SECONDS

MAX_ITEM_BYTES: Final = 400 * 1024
MAX_BATCH_GET_KEYS: Final = 100
MAX_TRANSACTION_ITEMS: Final = 100
_TRANSACT_ACTIONS: Final = ("ConditionCheck", "Put", "Delete", "Update")
_TABLE_NAME: Final = re.compile(r"[a-zA-Z0-9_.-]+")
_RETURN_VALUES: Final = ("ALL_NEW", "UPDATED_OLD", "ALL_OLD", "NONE", "UPDATED_NEW")
_RETURN_ON_FAILURE: Final = ("ALL_OLD", "NONE")
_CAPACITY_MODES: Final = ("INDEXES", "TOTAL", "NONE")
#: New on-demand tables start warm at 4,000 WRU/s and 12,000 RRU/s.
_WARM_THROUGHPUT: Final = {"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 4000}

KeyTuple = tuple[str, ...]


class ErrorAnswer(Exception):
    """An error answer: DynamoDB's type and message, and extra body fields."""

    def __init__(self, type_: str, message: str, *, message_key: str = "message", **extra: Any):
        super().__init__(message)
        self.type = type_
        self.message = message
        self.message_key = message_key
        self.extra = extra


@dataclass(slots=True)
class Answer:
    """An operation's result, with the capacity units each of its items consumed and whether
    it only repeated an earlier answer (see `Reply`)."""

    result: dict[str, Any]
    units: tuple[float, ...] | None = None
    replayed: bool = False


def _validation(message: str) -> ErrorAnswer:
    return ErrorAnswer(wire.VALIDATION, message)


def _not_supported(message: str) -> ErrorAnswer:
    return _validation(f"{message} (not modelled by the memory backend; use the moto backend)")


@dataclass(slots=True)
class Table:
    name: str
    arn: str
    hash_key: str
    hash_type: str
    range_key: str | None
    range_type: str | None
    attribute_definitions: list[dict[str, str]]
    key_schema: list[dict[str, str]]
    billing_mode: str
    read_units: int
    write_units: int
    created: float = field(default_factory=time.time)
    table_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    items: dict[KeyTuple, v.Item] = field(default_factory=dict)
    #: The TTL attribute while TTL is enabled, else None.
    ttl_attribute: str | None = None

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    def describe(self, status: str = "ACTIVE") -> dict[str, Any]:
        description: dict[str, Any] = {
            "AttributeDefinitions": self.attribute_definitions,
            "TableName": self.name,
            "KeySchema": self.key_schema,
            "TableStatus": status,
            "CreationDateTime": self.created,
            "ProvisionedThroughput": {
                "NumberOfDecreasesToday": 0,
                "ReadCapacityUnits": self.read_units,
                "WriteCapacityUnits": self.write_units,
            },
            "TableSizeBytes": sum(v.item_size(item) for item in self.items.values()),
            "ItemCount": len(self.items),
            "TableArn": self.arn,
            "TableId": self.table_id,
            "BillingModeSummary": {"BillingMode": self.billing_mode},
            "DeletionProtectionEnabled": False,
        }
        if self.billing_mode == "PAY_PER_REQUEST":
            description["WarmThroughput"] = {**_WARM_THROUGHPUT, "Status": "ACTIVE"}
        else:
            description["WarmThroughput"] = {
                "ReadUnitsPerSecond": self.read_units,
                "WriteUnitsPerSecond": self.write_units,
                "Status": "ACTIVE",
            }
        return description


@dataclass(slots=True, kw_only=True)
class _Write:
    """One item write (or condition check), validated but not applied: the item it targets,
    its condition, and how it turns the item before into the item after."""

    kind: str
    table: Table
    key: KeyTuple
    condition: ex.Condition | None
    scope: ex.Scope
    on_failure: str
    update: ex.Update | None = None
    targets: list[str] = field(default_factory=list)
    key_item: v.Item = field(default_factory=dict)
    item: v.Item | None = None

    def after(self, before: v.Item | None) -> v.Item | None:
        """The item after this write (None: no item); ErrorAnswer if DynamoDB refuses it."""
        if self.kind == "ConditionCheck":
            return before
        if self.kind == "Delete":
            return None
        if self.kind == "Put":
            return self.item
        current: v.Item = before if before is not None else {}
        try:
            new = (
                ex.apply_update(self.update, current, self.scope)
                if self.update is not None
                else dict(current)
            )
        except (ex.OperandError, v.InvalidValue) as exc:
            raise _validation(str(exc)) from None
        new.update(self.key_item)
        if v.item_size(new) > MAX_ITEM_BYTES:
            raise _validation("Item size to update has exceeded the maximum allowed size")
        return new


def _check(write: _Write, existing: v.Item | None) -> None:
    """ConditionalCheckFailed (with the item, if asked) unless the write's condition holds."""
    condition = write.condition
    if condition is None:
        return
    try:
        holds = ex.matches(condition, existing or {}, write.scope)
    except (ex.OperandError, v.InvalidValue) as exc:
        raise _validation(str(exc)) from None
    if not holds:
        extra: dict[str, Any] = (
            {"Item": existing} if write.on_failure == "ALL_OLD" and existing else {}
        )
        raise ErrorAnswer(wire.CONDITIONAL_CHECK_FAILED, "The conditional request failed", **extra)


def _size(item: v.Item | None) -> int:
    return 0 if item is None else v.item_size(item)


class MemoryBackend(Backend):
    """Tables in dicts, answered synchronously: atomic on the server's event loop.

    ``clock`` (epoch seconds) decides TTL expiry and token windows; ``ttl_delay`` is how long an
    expired item lingers before a sweep may delete it.
    """

    def __init__(
        self,
        *,
        region: str,
        ttl_delay: float = TTL_DELAY_SECONDS,
        clock: Callable[[], float] = time.time,
        max_tokens: int = tokens.MAX_TOKENS,
    ) -> None:
        self.region = region
        self.ttl_delay = ttl_delay
        self.clock = clock
        self.tables: dict[str, Table] = {}
        self.tokens = tokens.TokenMemory(clock=clock, max_tokens=max_tokens)
        self.expiring: ttl.ExpiryQueue[Table] = ttl.ExpiryQueue()
        self._sweeper: asyncio.Task[None] | None = None
        self._planners: dict[str, Callable[[Mapping[str, Any]], _Write]] = {
            "Update": self._plan_transact_update,
            "Put": self._plan_put,
            "Delete": self._plan_delete,
            "ConditionCheck": self._plan_check,
        }
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any] | Answer]] = {
            "CreateTable": self.create_table,
            "DescribeTable": self.describe_table,
            "DeleteTable": self.delete_table,
            "ListTables": self.list_tables,
            "UpdateItem": self.update_item,
            "PutItem": self.put_item,
            "DeleteItem": self.delete_item,
            "GetItem": self.get_item,
            "BatchGetItem": self.batch_get_item,
            "TransactWriteItems": self.transact_write_items,
            "UpdateTimeToLive": self.update_time_to_live,
            "DescribeTimeToLive": self.describe_time_to_live,
        }

    async def open(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(ttl.SWEEP_INTERVAL)
            self.sweep()

    def sweep(self, *, limit: int = ttl.SWEEP_LIMIT) -> int:
        """Delete up to ``limit`` items whose TTL passed at least ``ttl_delay`` ago; how many.

        Only what is due is looked at (no scan), and each item is checked again: a write since
        may have moved its expiry, deleted it or turned TTL off."""
        now = self.clock()
        deleted = 0
        for table, key in self.expiring.pop_due(now, limit=limit):
            attribute = table.ttl_attribute
            if attribute is None or self.tables.get(table.name) is not table:
                continue
            if ttl.deletable(ttl.expiry(table.items.get(key), attribute), now, self.ttl_delay):
                del table.items[key]
                deleted += 1
        return deleted

    async def handle(self, call: Call) -> Reply:
        operation = self._operations.get(call.operation)
        if operation is None:
            return Reply.error(
                400,
                wire.UNKNOWN_OPERATION,
                f"The memory backend does not implement {call.operation}; use the moto backend",
            )
        try:
            payload = call.json()
        except ValueError:
            return Reply.error(
                400, wire.SERIALIZATION, "Start of structure or map found where not expected."
            )
        try:
            result = operation(payload)
        except ErrorAnswer as error:
            return Reply.error(
                400, error.type, error.message, message_key=error.message_key, **error.extra
            )
        if isinstance(result, Answer):
            return Reply(200, wire.dumps(result.result), result.replayed, result.units)
        return Reply(200, wire.dumps(result))

    def item_size(self, table: str, key: Mapping[str, Any]) -> int | None:
        found = self.tables.get(table)
        if found is None:
            return None
        try:
            item = found.items.get(_key(found, key))
        except ErrorAnswer:
            return None
        return None if item is None else v.item_size(item)

    def hash_key(self, table: str) -> str | None:
        found = self.tables.get(table)
        return None if found is None else found.hash_key

    # Tables.

    def create_table(self, p: dict[str, Any]) -> dict[str, Any]:
        name = _table_name(p)
        key_schema = _required(p, "KeySchema", "keySchema")
        definitions = _required(p, "AttributeDefinitions", "attributeDefinitions")
        for unsupported in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if p.get(unsupported):
                raise _not_supported(f"{unsupported} are not supported")
        if p.get("StreamSpecification", {}).get("StreamEnabled"):
            raise _not_supported("Streams are not supported")
        if not isinstance(key_schema, list) or not 1 <= len(key_schema) <= 2:
            raise _validation(
                "1 validation error detected: Value at 'keySchema' failed to satisfy constraint: "
                "Member must have length less than or equal to 2"
            )
        types = {d.get("AttributeName"): d.get("AttributeType") for d in definitions}
        for d in definitions:
            if d.get("AttributeType") not in ("S", "N", "B"):
                raise _validation(
                    f"1 validation error detected: Value '{d.get('AttributeType')}' at "
                    "'attributeDefinitions.1.member.attributeType' failed to satisfy constraint: "
                    "Member must satisfy enum value set: [B, N, S]"
                )
        roles = [element.get("KeyType") for element in key_schema]
        for role in roles:
            if role not in ("HASH", "RANGE"):
                raise _validation(
                    f"1 validation error detected: Value '{role}' at "
                    "'keySchema.1.member.keyType' failed to satisfy constraint: Member must "
                    "satisfy enum value set: [HASH, RANGE]"
                )
        if roles[0] != "HASH" or roles.count("HASH") != 1:
            raise _validation(
                "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"
                if roles[0] != "HASH"
                else "Invalid KeySchema: Too many hash keys"
            )
        key_names = [element.get("AttributeName") for element in key_schema]
        missing = [k for k in key_names if k not in types]
        if missing:
            raise _validation(
                "One or more parameter values were invalid: Some index key attributes are not "
                f"defined in AttributeDefinitions. Keys: [{', '.join(map(str, missing))}], "
                f"AttributeDefinitions: [{', '.join(map(str, types))}]"
            )
        if len(types) != len(key_names):
            raise _validation(
                "One or more parameter values were invalid: Number of attributes in KeySchema does "
                "not exactly match number of attributes defined in AttributeDefinitions"
            )
        billing = p.get("BillingMode", "PROVISIONED")
        throughput = p.get("ProvisionedThroughput")
        if billing == "PAY_PER_REQUEST":
            if throughput:
                raise _validation(
                    "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                    "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"
                )
            read_units = write_units = 0
        elif billing == "PROVISIONED":
            if not throughput:
                raise _validation(
                    "One or more parameter values were invalid: ReadCapacityUnits and "
                    "WriteCapacityUnits must both be specified when BillingMode is PROVISIONED"
                )
            read_units = int(throughput.get("ReadCapacityUnits", 0))
            write_units = int(throughput.get("WriteCapacityUnits", 0))
        else:
            raise _validation(
                f"1 validation error detected: Value '{billing}' at 'billingMode' failed to "
                "satisfy constraint: Member must satisfy enum value set: [PROVISIONED, "
                "PAY_PER_REQUEST]"
            )
        if name in self.tables:
            raise ErrorAnswer(wire.RESOURCE_IN_USE, f"Table already exists: {name}")
        range_key = key_names[1] if len(key_names) == 2 else None
        table = Table(
            name=name,
            arn=f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{name}",
            hash_key=str(key_names[0]),
            hash_type=str(types[key_names[0]]),
            range_key=range_key,
            range_type=None if range_key is None else types[range_key],
            attribute_definitions=definitions,
            key_schema=key_schema,
            billing_mode=billing,
            read_units=read_units,
            write_units=write_units,
        )
        self.tables[name] = table
        return {"TableDescription": table.describe()}

    def describe_table(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"Table": self._table(p, describing=True).describe()}

    def delete_table(self, p: dict[str, Any]) -> dict[str, Any]:
        table = self._table(p, describing=True)
        del self.tables[table.name]
        return {"TableDescription": table.describe(status="DELETING")}

    def list_tables(self, p: dict[str, Any]) -> dict[str, Any]:
        limit = p.get("Limit", 100)
        start = p.get("ExclusiveStartTableName")
        names = sorted(n for n in self.tables if start is None or n > start)
        result: dict[str, Any] = {"TableNames": names[:limit]}
        if len(names) > limit:
            result["LastEvaluatedTableName"] = names[limit - 1]
        return result

    def _table(self, p: Mapping[str, Any], *, describing: bool = False) -> Table:
        name = _table_name(p)
        table = self.tables.get(name)
        if table is None:
            message = "Requested resource not found"
            if describing:
                message += f": Table: {name} not found"
            raise ErrorAnswer(wire.RESOURCE_NOT_FOUND, message)
        return table

    # Time to live.

    def update_time_to_live(self, p: dict[str, Any]) -> dict[str, Any]:
        table = self._table(p)
        spec = _required(p, "TimeToLiveSpecification", "timeToLiveSpecification")
        enabled = spec.get("Enabled") if isinstance(spec, dict) else None
        attribute = spec.get("AttributeName") if isinstance(spec, dict) else None
        if not isinstance(enabled, bool):
            raise _validation(
                "1 validation error detected: Value null at 'timeToLiveSpecification.enabled' "
                "failed to satisfy constraint: Member must not be null"
            )
        if not isinstance(attribute, str) or not 1 <= len(attribute) <= 255:
            raise _validation(
                "1 validation error detected: Value null at "
                "'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member "
                "must not be null"
            )
        current = table.ttl_attribute
        if current is not None and current != attribute:
            raise _validation(
                "TimeToLive is active on a different AttributeName: current AttributeName is "
                f"{current}"
            )
        if enabled == (current is not None):
            raise _validation(f"TimeToLive is already {'enabled' if enabled else 'disabled'}")
        table.ttl_attribute = attribute if enabled else None
        if enabled:
            # Items written before TTL was on expire too: queued once, here, not per request.
            for key, item in table.items.items():
                expires = ttl.expiry(item, attribute)
                if expires is not None:
                    self.expiring.push(due=float(expires) + self.ttl_delay, table=table, key=key)
        return {"TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": attribute}}

    def describe_time_to_live(self, p: dict[str, Any]) -> dict[str, Any]:
        table = self._table(p)
        if table.ttl_attribute is None:
            return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}
        return {
            "TimeToLiveDescription": {
                "TimeToLiveStatus": "ENABLED",
                "AttributeName": table.ttl_attribute,
            }
        }

    # Items.

    def update_item(self, p: dict[str, Any]) -> Answer:
        write = self._plan_update(p)
        return_values = _enum(p, "ReturnValues", "returnValues", _RETURN_VALUES)
        capacity_mode = _enum(
            p, "ReturnConsumedCapacity", "returnConsumedCapacity", _CAPACITY_MODES
        )
        table = write.table
        existing = table.items.get(write.key)
        _check(write, existing)
        current: v.Item = existing if existing is not None else {}
        new = write.after(existing)
        assert new is not None
        self._store(table, write.key, existing, new)

        result: dict[str, Any] = {}
        attributes: v.Item | None = None
        if return_values == "ALL_NEW":
            attributes = new
        elif return_values == "ALL_OLD":
            attributes = existing
        elif return_values == "UPDATED_NEW":
            attributes = {n: new[n] for n in write.targets if n in new}
        elif return_values == "UPDATED_OLD":
            attributes = {n: current[n] for n in write.targets if n in current}
        if attributes:
            result["Attributes"] = attributes
        units = float(write_units(max(v.item_size(new), v.item_size(current))))
        _consumed(result, capacity_mode, table.name, units)
        return Answer(result, (units,))

    def put_item(self, p: dict[str, Any]) -> Answer:
        write = self._plan_put(p)
        return_values = p.get("ReturnValues", "NONE")
        if return_values not in ("ALL_OLD", "NONE"):
            raise _validation("ReturnValues can only be ALL_OLD or NONE")
        capacity_mode = _enum(
            p, "ReturnConsumedCapacity", "returnConsumedCapacity", _CAPACITY_MODES
        )
        table = write.table
        existing = table.items.get(write.key)
        _check(write, existing)
        stored = write.after(existing)
        assert stored is not None
        self._store(table, write.key, existing, stored)
        result: dict[str, Any] = {}
        if return_values == "ALL_OLD" and existing:
            result["Attributes"] = existing
        units = float(write_units(max(v.item_size(stored), _size(existing))))
        _consumed(result, capacity_mode, table.name, units)
        return Answer(result, (units,))

    def delete_item(self, p: dict[str, Any]) -> Answer:
        write = self._plan_delete(p)
        return_values = p.get("ReturnValues", "NONE")
        if return_values not in ("ALL_OLD", "NONE"):
            raise _validation("Return values set to invalid value")
        capacity_mode = _enum(
            p, "ReturnConsumedCapacity", "returnConsumedCapacity", _CAPACITY_MODES
        )
        table = write.table
        existing = table.items.get(write.key)
        _check(write, existing)
        table.items.pop(write.key, None)
        result: dict[str, Any] = {}
        if return_values == "ALL_OLD" and existing:
            result["Attributes"] = existing
        units = float(write_units(_size(existing)))
        _consumed(result, capacity_mode, table.name, units)
        return Answer(result, (units,))

    def transact_write_items(self, p: dict[str, Any]) -> Answer:
        """All of up to 100 writes and condition checks, or none (TransactionCanceled, with a
        reason per action); idempotent for 10 minutes under a ClientRequestToken."""
        actions = _required(p, "TransactItems", "transactItems")
        if not isinstance(actions, list) or not 1 <= len(actions) <= MAX_TRANSACTION_ITEMS:
            count = len(actions) if isinstance(actions, list) else 0
            raise _validation(
                "1 validation error detected: Value at 'transactItems' failed to satisfy "
                "constraint: Member must have length "
                + (
                    f"less than or equal to {MAX_TRANSACTION_ITEMS}"
                    if count
                    else "greater than or equal to 1"
                )
            )
        token = p.get("ClientRequestToken")
        if token is not None and (not isinstance(token, str) or not 1 <= len(token) <= 36):
            raise _validation(
                f"1 validation error detected: Value '{token}' at 'clientRequestToken' failed "
                "to satisfy constraint: Member must have length less than or equal to 36"
            )
        capacity_mode = _enum(
            p, "ReturnConsumedCapacity", "returnConsumedCapacity", _CAPACITY_MODES
        )
        _enum(p, "ReturnItemCollectionMetrics", "returnItemCollectionMetrics", ("SIZE", "NONE"))
        writes: list[_Write] = []
        for action in actions:
            kind = next(iter(action), None) if isinstance(action, dict) else None
            if kind not in _TRANSACT_ACTIONS or len(action) != 1:
                raise _validation(
                    "TransactItems can only contain one of Check, Put, Update or Delete"
                )
            request = action[kind]
            if not isinstance(request, dict):
                raise _validation(f"{kind} must be a structure")
            writes.append(self._planners[kind](request))
        targets = {(id(w.table), w.key) for w in writes}
        if len(targets) != len(writes):
            raise _validation("Transaction request cannot include multiple operations on one item")

        befores = [w.table.items.get(w.key) for w in writes]
        items_digest = tokens.digest(actions) if token is not None else b""
        if token is not None:
            try:
                replay = self.tokens.check(token, items_digest)
            except tokens.TokenMismatch:
                raise ErrorAnswer(wire.IDEMPOTENT_MISMATCH, tokens.MISMATCH_MESSAGE) from None
            if replay is not None:
                # Nothing is applied again; reading the items is what a replay costs.
                read = [2 * read_units(_size(b), consistent=True) for b in befores]
                result: dict[str, Any] = {}
                _consumed_by_tables(result, capacity_mode, writes, read, "ReadCapacityUnits")
                return Answer(result, tuple(read), replayed=True)

        afters: list[v.Item | None] = []
        reasons: list[dict[str, Any]] = []
        for write, before in zip(writes, befores, strict=True):
            try:
                _check(write, before)
                afters.append(write.after(before))
                reasons.append({"Code": "None"})
            except ErrorAnswer as refusal:
                afters.append(before)
                code = (
                    "ConditionalCheckFailed"
                    if refusal.type == wire.CONDITIONAL_CHECK_FAILED
                    else "ValidationError"
                )
                reason: dict[str, Any] = {"Code": code, "Message": refusal.message}
                if "Item" in refusal.extra:
                    reason["Item"] = refusal.extra["Item"]
                reasons.append(reason)
        if any(reason["Code"] != "None" for reason in reasons):
            raise ErrorAnswer(
                wire.TRANSACTION_CANCELED,
                wire.cancellation_message([reason["Code"] for reason in reasons]),
                message_key="Message",
                CancellationReasons=reasons,
            )
        for write, before, after in zip(writes, befores, afters, strict=True):
            if write.kind == "ConditionCheck":
                continue
            if after is None:
                write.table.items.pop(write.key, None)
            else:
                self._store(write.table, write.key, before, after)
        if token is not None:
            self.tokens.remember(token, items_digest)
        # Two underlying writes per item (prepare and commit), each sized by the larger of the
        # item before and after; a ConditionCheck is billed as a write too.
        units = [
            2.0 * write_units(max(_size(before), _size(after)))
            for before, after in zip(befores, afters, strict=True)
        ]
        result = {}
        _consumed_by_tables(result, capacity_mode, writes, units, "WriteCapacityUnits")
        return Answer(result, tuple(units))

    def _store(self, table: Table, key: KeyTuple, before: v.Item | None, after: v.Item) -> None:
        table.items[key] = after
        attribute = table.ttl_attribute
        if attribute is None:
            return
        expires = ttl.expiry(after, attribute)
        if expires is not None and expires != ttl.expiry(before, attribute):
            self.expiring.push(due=float(expires) + self.ttl_delay, table=table, key=key)

    # Writes, validated before anything is applied: the single-item operations and the
    # actions of a transaction share them.

    def _plan_update(self, p: Mapping[str, Any]) -> _Write:
        table = self._table(p)
        key_value = _required(p, "Key", "key")
        key = _key(table, key_value)
        for legacy in ("AttributeUpdates", "Expected", "ConditionalOperator"):
            if legacy in p:
                raise _not_supported(f"The legacy parameter {legacy} is not supported")
        update_text = p.get("UpdateExpression")
        condition_text = p.get("ConditionExpression")
        scope = _scope(
            p, expressions={"UpdateExpression": update_text, "ConditionExpression": condition_text}
        )
        update: ex.Update | None = None
        targets: list[str] = []
        if update_text is not None:
            with _invalid("UpdateExpression"):
                if not update_text.strip():
                    raise ex.InvalidExpression("The expression can not be empty;")
                update = ex.parse_update(update_text)
                targets = ex.check_update(update, scope)
            for name in targets:
                if name in table.key_names:
                    raise _validation(
                        f"One or more parameter values were invalid: Cannot update attribute "
                        f"{name}. This attribute is part of the key"
                    )
        condition = _condition(condition_text, scope)
        _check_unused(scope)
        return _Write(
            kind="Update",
            table=table,
            key=key,
            condition=condition,
            scope=scope,
            on_failure=_on_failure(p),
            update=update,
            targets=targets,
            key_item=dict(zip(table.key_names, key_values(table, key_value), strict=True)),
        )

    def _plan_put(self, p: Mapping[str, Any]) -> _Write:
        table = self._table(p)
        item = _required(p, "Item", "item")
        if not isinstance(item, dict):
            raise _validation("Item must be a map of attribute names to values")
        for legacy in ("Expected", "ConditionalOperator"):
            if legacy in p:
                raise _not_supported(f"The legacy parameter {legacy} is not supported")
        for name, role_type in zip(
            table.key_names, (table.hash_type, table.range_type), strict=False
        ):
            if name not in item:
                raise _validation(
                    f"One or more parameter values were invalid: Missing the key {name} in the item"
                )
            actual = next(iter(item[name]), None) if isinstance(item[name], dict) else None
            if actual != role_type:
                raise _validation(
                    f"One or more parameter values were invalid: Type mismatch for key {name} "
                    f"expected: {role_type} actual: {actual}"
                )
        key = _key(table, {name: item[name] for name in table.key_names})
        try:
            for value in item.values():
                v.validate(value)
            stored = {name: v.canonical(value) for name, value in item.items()}
        except v.InvalidValue as exc:
            raise _validation(f"One or more parameter values were invalid: {exc}") from None
        if v.item_size(stored) > MAX_ITEM_BYTES:
            raise _validation("Item size has exceeded the maximum allowed size")
        condition, scope = self._plan_condition(p)
        return _Write(
            kind="Put",
            table=table,
            key=key,
            condition=condition,
            scope=scope,
            on_failure=_on_failure(p),
            item=stored,
        )

    def _plan_delete(self, p: Mapping[str, Any], kind: str = "Delete") -> _Write:
        table = self._table(p)
        key = _key(table, _required(p, "Key", "key"))
        for legacy in ("Expected", "ConditionalOperator"):
            if legacy in p:
                raise _not_supported(f"The legacy parameter {legacy} is not supported")
        condition, scope = self._plan_condition(p)
        return _Write(
            kind=kind,
            table=table,
            key=key,
            condition=condition,
            scope=scope,
            on_failure=_on_failure(p),
        )

    def _plan_transact_update(self, p: Mapping[str, Any]) -> _Write:
        _required(p, "UpdateExpression", "updateExpression")
        return self._plan_update(p)

    def _plan_check(self, p: Mapping[str, Any]) -> _Write:
        _required(p, "ConditionExpression", "conditionExpression")
        return self._plan_delete(p, kind="ConditionCheck")

    def _plan_condition(self, p: Mapping[str, Any]) -> tuple[ex.Condition | None, ex.Scope]:
        text = p.get("ConditionExpression")
        scope = _scope(p, expressions={"ConditionExpression": text})
        condition = _condition(text, scope)
        _check_unused(scope)
        return condition, scope

    def get_item(self, p: dict[str, Any]) -> Answer:
        table = self._table(p)
        key = _key(table, _required(p, "Key", "key"))
        names = _projection_names(p)
        consistent = _consistent(p)
        capacity_mode = _enum(
            p, "ReturnConsumedCapacity", "returnConsumedCapacity", _CAPACITY_MODES
        )
        item = table.items.get(key)
        result: dict[str, Any] = {}
        if item is not None:
            result["Item"] = item if names is None else {n: item[n] for n in names if n in item}
        units = read_units(_size(item), consistent=consistent)
        _consumed(result, capacity_mode, table.name, units)
        return Answer(result, (units,))

    def batch_get_item(self, p: dict[str, Any]) -> Answer:
        requests = _required(p, "RequestItems", "requestItems")
        if not isinstance(requests, dict) or not requests:
            raise _validation(
                "1 validation error detected: Value at 'requestItems' failed to satisfy "
                "constraint: Member must have length greater than or equal to 1"
            )
        capacity_mode = _enum(
            p, "ReturnConsumedCapacity", "returnConsumedCapacity", _CAPACITY_MODES
        )
        for name, request in requests.items():
            count = len(request.get("Keys") or [])
            if not 1 <= count <= MAX_BATCH_GET_KEYS:
                raise _validation(
                    f"1 validation error detected: Value at 'requestItems.{name}.member.keys' "
                    "failed to satisfy constraint: Member must have length "
                    + ("less than or equal to 100" if count else "greater than or equal to 1")
                )
        if sum(len(r["Keys"]) for r in requests.values()) > MAX_BATCH_GET_KEYS:
            raise _validation("Too many items requested for the BatchGetItem call")
        plans = []
        for name, request in requests.items():
            table = self._table({"TableName": name})
            keys = [_key(table, key) for key in request["Keys"]]
            if len(set(keys)) != len(keys):
                raise _validation("Provided list of item keys contains duplicates")
            plans.append((table, keys, _projection_names(request), _consistent(request)))
        responses: dict[str, list[v.Item]] = {}
        consumed: list[dict[str, Any]] = []
        each: list[float] = []
        for table, keys, names, consistent in plans:
            found = responses.setdefault(table.name, [])
            total = 0.0
            for key in keys:
                item = table.items.get(key)
                # Each item is rounded up to its own 4 KB, then the table's are added up.
                units = read_units(_size(item), consistent=consistent)
                each.append(units)
                total += units
                if item is not None:
                    found.append(
                        item if names is None else {n: item[n] for n in names if n in item}
                    )
            consumed.append(_capacity(capacity_mode, table.name, total))
        result: dict[str, Any] = {"Responses": responses, "UnprocessedKeys": {}}
        if capacity_mode != "NONE":
            result["ConsumedCapacity"] = consumed
        return Answer(result, tuple(each))


# Request validation shared by the operations.


class _invalid:
    """Turn an expression's refusal into DynamoDB's ``Invalid <Expression>: ...`` error."""

    def __init__(self, which: str) -> None:
        self.which = which

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> Literal[False]:
        if isinstance(exc, ex.InvalidExpression):
            raise _validation(f"Invalid {self.which}: {exc}") from None
        if isinstance(exc, ex.NotSupported):
            raise _validation(str(exc)) from None
        if isinstance(exc, v.InvalidValue):
            raise _validation(str(exc)) from None
        return False


def _required(p: Mapping[str, Any], name: str, wire_name: str) -> Any:
    value = p.get(name)
    if value is None:
        raise _validation(
            f"1 validation error detected: Value null at '{wire_name}' failed to satisfy "
            "constraint: Member must not be null"
        )
    return value


def _table_name(p: Mapping[str, Any]) -> str:
    name = _required(p, "TableName", "tableName")
    if not isinstance(name, str) or len(name) < 3:
        raise _validation(
            f"1 validation error detected: Value '{name}' at 'tableName' failed to satisfy "
            "constraint: Member must have length greater than or equal to 3"
        )
    if len(name) > 255:
        raise _validation(
            f"1 validation error detected: Value '{name}' at 'tableName' failed to satisfy "
            "constraint: Member must have length less than or equal to 255"
        )
    if not _TABLE_NAME.fullmatch(name):
        raise _validation(
            f"1 validation error detected: Value '{name}' at 'tableName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        )
    return name


def _key_part(value: Any, expected_type: str | None, name: str) -> str:
    if not isinstance(value, dict) or len(value) != 1:
        raise _validation("The provided key element does not match the schema")
    tag, inner = next(iter(value.items()))
    if tag != expected_type:
        raise _validation("The provided key element does not match the schema")
    try:
        v.validate(value)
    except v.InvalidValue as exc:
        raise _validation(str(exc)) from None
    if tag in ("S", "B") and inner == "":
        raise _validation(
            "One or more parameter values are not valid. The AttributeValue for a key attribute "
            f"cannot contain an empty string value. Key: {name}"
        )
    return v.format_number(v.parse_number(inner)) if tag == "N" else str(inner)


def _key(table: Table, key: Any) -> KeyTuple:
    """The item's identity in ``table.items``; DynamoDB's error for a key off the schema."""
    if not isinstance(key, dict) or set(key) != set(table.key_names):
        raise _validation("The provided key element does not match the schema")
    hash_part = _key_part(key[table.hash_key], table.hash_type, table.hash_key)
    if table.range_key is None:
        return (hash_part,)
    return (hash_part, _key_part(key[table.range_key], table.range_type, table.range_key))


def key_values(table: Table, key: Mapping[str, Any]) -> list[v.AttributeValue]:
    return [v.canonical(key[name]) for name in table.key_names]


def _scope(p: Mapping[str, Any], *, expressions: Mapping[str, str | None]) -> ex.Scope:
    names = p.get("ExpressionAttributeNames")
    values = p.get("ExpressionAttributeValues")
    using = any(e is not None for e in expressions.values())
    if names is not None:
        if not names:
            raise _validation("ExpressionAttributeNames must not be empty")
        if not using:
            raise _validation(
                "ExpressionAttributeNames can only be specified when using expressions"
            )
        for name in names:
            if not name.startswith("#"):
                raise _validation(
                    f'ExpressionAttributeNames contains invalid key: Syntax error; key: "{name}"'
                )
    if values is not None:
        if not values:
            raise _validation("ExpressionAttributeValues must not be empty")
        value_expressions = [n for n in expressions if n != "ProjectionExpression"]
        if not using and value_expressions:
            verb = "are" if len(value_expressions) > 1 else "is"
            raise _validation(
                "ExpressionAttributeValues can only be specified when using expressions: "
                f"{' and '.join(value_expressions)} {verb} null"
            )
        for name, value in values.items():
            if not name.startswith(":"):
                raise _validation(
                    f'ExpressionAttributeValues contains invalid key: Syntax error; key: "{name}"'
                )
            try:
                v.validate(value)
            except v.InvalidValue as exc:
                raise _validation(
                    f"ExpressionAttributeValues contains invalid value: {exc} for key {name}"
                ) from None
    return ex.Scope(names or {}, values or {})


def _condition(text: str | None, scope: ex.Scope) -> ex.Condition | None:
    if text is None:
        return None
    with _invalid("ConditionExpression"):
        if not text.strip():
            raise ex.InvalidExpression("The expression can not be empty;")
        condition = ex.parse_condition(text)
        ex.check_condition(condition, scope)
    return condition


def _check_unused(scope: ex.Scope) -> None:
    unused_names = [n for n in scope.names if n not in scope.used_names]
    if unused_names:
        raise _validation(
            "Value provided in ExpressionAttributeNames unused in expressions: "
            f"keys: {{{', '.join(unused_names)}}}"
        )
    unused_values = [n for n in scope.values if n not in scope.used_values]
    if unused_values:
        raise _validation(
            "Value provided in ExpressionAttributeValues unused in expressions: "
            f"keys: {{{', '.join(unused_values)}}}"
        )


def _projection_names(p: Mapping[str, Any]) -> list[str] | None:
    projection = p.get("ProjectionExpression")
    attributes = p.get("AttributesToGet")
    if projection is not None and attributes is not None:
        raise _validation(
            "Can not use both expression and non-expression parameters in the same request: "
            "Non-expression parameters: {AttributesToGet} Expression parameters: "
            "{ProjectionExpression}"
        )
    if attributes is not None:
        return list(attributes)
    scope = _scope(p, expressions={"ProjectionExpression": projection})
    if projection is None:
        return None
    with _invalid("ProjectionExpression"):
        if not projection.strip():
            raise ex.InvalidExpression("The expression can not be empty;")
        names = ex.projection_names(ex.parse_projection(projection), scope)
    _check_unused(scope)
    return names


def _consistent(p: Mapping[str, Any]) -> bool:
    consistent = p.get("ConsistentRead", False)
    if not isinstance(consistent, bool):
        raise ErrorAnswer(wire.SERIALIZATION, "NUMBER_VALUE cannot be converted to Boolean")
    return consistent


def _enum(p: Mapping[str, Any], name: str, wire_name: str, allowed: tuple[str, ...]) -> str:
    value = p.get(name, "NONE")
    if value not in allowed:
        raise _validation(
            f"1 validation error detected: Value '{value}' at '{wire_name}' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
        )
    return str(value)


def write_units(size: int) -> int:
    """Write capacity units: 1 per started KB, at least 1."""
    return max(1, math.ceil(size / 1024))


def read_units(size: int, *, consistent: bool) -> float:
    """Read capacity units: 1 per started 4 KB (half for eventually consistent), at least one."""
    units = max(1, math.ceil(size / 4096))
    return float(units) if consistent else units / 2


def _on_failure(p: Mapping[str, Any]) -> str:
    return _enum(
        p,
        "ReturnValuesOnConditionCheckFailure",
        "returnValuesOnConditionCheckFailure",
        _RETURN_ON_FAILURE,
    )


def _capacity(mode: str, table: str, units: float, kind: str | None = None) -> dict[str, Any]:
    """One table's ConsumedCapacity: the total, and the table's own part under INDEXES (the
    only part here: no secondary indexes). Transactions also name the kind of units."""
    split = {} if kind is None else {kind: float(units)}
    consumed: dict[str, Any] = {"TableName": table, "CapacityUnits": float(units), **split}
    if mode == "INDEXES":
        consumed["Table"] = {"CapacityUnits": float(units), **split}
    return consumed


def _consumed(result: dict[str, Any], mode: str, table: str, units: float) -> None:
    if mode != "NONE":
        result["ConsumedCapacity"] = _capacity(mode, table, units)


def _consumed_by_tables(
    result: dict[str, Any], mode: str, writes: list[_Write], units: list[float], kind: str
) -> None:
    """A transaction's ConsumedCapacity: a list, one entry per table, in order of first use."""
    if mode == "NONE":
        return
    totals: dict[str, float] = {}
    for write, amount in zip(writes, units, strict=True):
        totals[write.table.name] = totals.get(write.table.name, 0.0) + amount
    result["ConsumedCapacity"] = [
        _capacity(mode, name, total, kind) for name, total in totals.items()
    ]

"""The ledger: what the server really applied, per item key. The ground truth of every test.

An applied UpdateItem counts once for its key, and its arithmetic on counters (``ADD #v :n``,
``SET #v = if_not_exists(#v, :z) + :n``, ``SET #v = #v - :n``) adds to the key's sum; so does
each Update of an applied TransactWriteItems. Throttled, refused, cancelled and
failed-before-apply requests never reach it, nor does an idempotent replay of a transaction
(applied once, however often it is answered); faults after apply do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from async_counters.local import expressions as ex
from async_counters.local import values as v


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """Applied updates to one item: how many, and the sum of their counter arithmetic
    (an int, unless some amount applied was fractional)."""

    sum: int | Decimal
    count: int

    def to_json(self) -> dict[str, Any]:
        total = self.sum if isinstance(self.sum, int) else str(self.sum)
        return {"sum": total, "count": self.count}


def key_string(key: Mapping[str, Any]) -> str:
    """How the ledger names an item: the partition key's value, or the whole key as JSON."""
    if len(key) == 1:
        (value,) = key.values()
        if isinstance(value, dict) and len(value) == 1:
            (inner,) = value.values()
            if isinstance(inner, str):
                return inner
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def update_delta(payload: Mapping[str, Any]) -> Decimal | None:
    """The counter arithmetic an UpdateItem request would apply, or None if it cannot be read.

    Pure: reads the request only. The caller records it once the backend accepted the request.
    """
    text = payload.get("UpdateExpression")
    if not isinstance(text, str):
        return Decimal(0)
    try:
        update = ex.parse_update(text)
        scope = ex.Scope(
            payload.get("ExpressionAttributeNames") or {},
            payload.get("ExpressionAttributeValues") or {},
        )
        total = Decimal(0)
        for action in update.actions:
            total += _action_delta(action, scope)
    except (ex.InvalidExpression, ex.NotSupported, v.InvalidValue, KeyError, TypeError):
        return None
    return total


def transaction_deltas(payload: Mapping[str, Any]) -> list[tuple[str, str, Decimal]]:
    """(table, key, delta) for each Update of a TransactWriteItems request whose arithmetic can
    be read; Put, Delete and ConditionCheck actions add nothing. Pure, like `update_delta`."""
    actions = payload.get("TransactItems")
    if not isinstance(actions, list):
        return []
    deltas = []
    for action in actions:
        update = action.get("Update") if isinstance(action, dict) else None
        if not isinstance(update, dict):
            continue
        table, key = update.get("TableName"), update.get("Key")
        if not isinstance(table, str) or not isinstance(key, dict):
            continue
        delta = update_delta(update)
        if delta is not None:
            deltas.append((table, key_string(key), delta))
    return deltas


def _action_delta(action: ex.Action, scope: ex.Scope) -> Decimal:
    if action.clause == "ADD" and isinstance(action.value, ex.Value):
        value = scope.values.get(action.value.token)
        if isinstance(value, dict) and "N" in value:
            return v.parse_number(value["N"])
        return Decimal(0)
    if action.clause != "SET" or not isinstance(action.value, ex.Arithmetic):
        return Decimal(0)
    target = scope.name(action.path)
    arithmetic = action.value
    left, right = arithmetic.left, arithmetic.right
    if _reads(left, target, scope) and isinstance(right, ex.Value):
        amount = _number(right, scope)
        return amount if arithmetic.operator == "+" else -amount
    if arithmetic.operator == "+" and _reads(right, target, scope) and isinstance(left, ex.Value):
        return _number(left, scope)
    return Decimal(0)


def _reads(operand: ex.Operand, target: str, scope: ex.Scope) -> bool:
    if isinstance(operand, ex.IfNotExists):
        operand = operand.path
    return isinstance(operand, ex.Path) and scope.name(operand) == target


def _number(value: ex.Value, scope: ex.Scope) -> Decimal:
    found = scope.values.get(value.token)
    if isinstance(found, dict) and "N" in found:
        return v.parse_number(found["N"])
    return Decimal(0)


def _exact(total: Decimal) -> int | Decimal:
    return int(total) if total == total.to_integral_value() else total


class AppliedLedger:
    """Per table, per key: the applied sum and count. Written on the server's loop, read from
    any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, dict[str, list[Any]]] = {}

    def record(self, table: str, key: str, delta: Decimal) -> None:
        with self._lock:
            entries = self._tables.setdefault(table, {})
            entry = entries.get(key)
            if entry is None:
                entries[key] = [delta, 1]
            else:
                entry[0] += delta
                entry[1] += 1

    def table(self, table: str) -> dict[str, LedgerEntry]:
        with self._lock:
            entries = dict(self._tables.get(table, {}))
            return {key: LedgerEntry(_exact(e[0]), int(e[1])) for key, e in entries.items()}

    def tables(self) -> list[str]:
        with self._lock:
            return sorted(self._tables)

    def reset(self) -> None:
        with self._lock:
            self._tables.clear()

    def to_json(self, table: str | None = None) -> dict[str, Any]:
        names = [table] if table is not None else self.tables()
        return {
            "tables": {
                name: {key: entry.to_json() for key, entry in sorted(self.table(name).items())}
                for name in names
            }
        }

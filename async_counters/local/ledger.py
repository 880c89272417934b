"""The ledger: what the server really applied, per item key. The ground truth of every test.

An applied UpdateItem counts once for its key (one that only removes attributes does not),
and its arithmetic on counters (``ADD #v :n``,
``SET #v = if_not_exists(#v, :z) + :n``, ``SET #v = #v - :n``) adds to the key's sum; so does
each Update of an applied TransactWriteItems. Throttled, refused, cancelled and
failed-before-apply requests never reach it, nor does an idempotent replay of a transaction
(applied once, however often it is answered); faults after apply do.

The arithmetic is exact at any size: whole amounts (every counter's) are summed as `int`, and a
fractional one in a context wide enough for any sum of DynamoDB numbers, which raises rather
than round. Python's default context keeps 28 digits, DynamoDB 38: a ledger summing in it would
disagree with the server it watches above 10**28.
"""

from __future__ import annotations

import decimal
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from async_counters.local import expressions as ex
from async_counters.local import values as v

#: A counter's arithmetic: an int when whole (exact at any size), else a Decimal.
Amount = int | Decimal

# Enough digits for any sum of DynamoDB numbers (1E-130 to 1E+126, 256 digits apart) with room
# for many terms; a sum that would still need rounding raises instead.
_EXACT: Final = decimal.Context(
    prec=400,
    Emax=999_999,
    Emin=-999_999,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow],
)


def exact(number: Decimal) -> Amount:
    """``number`` as an int when it is whole, else unchanged (both exact)."""
    return int(number) if number == number.to_integral_value() else number


def add(left: Amount, right: Amount) -> Amount:
    """``left + right``, exactly: in ints when both are whole, never rounded."""
    if isinstance(left, int) and isinstance(right, int):
        return left + right
    return exact(_EXACT.add(Decimal(left), Decimal(right)))


def _negate(amount: Amount) -> Amount:
    # `copy_negate` is exact; unary minus would round to the default context's 28 digits.
    return -amount if isinstance(amount, int) else amount.copy_negate()


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """Applied updates to one item: how many, and the sum of their counter arithmetic
    (an int, unless some amount applied was fractional)."""

    sum: Amount
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


def update_delta(payload: Mapping[str, Any]) -> Amount | None:
    """The counter arithmetic an UpdateItem request would apply, or None if it cannot be read or
    only removes attributes (an exactly-once writer taking its record away is no increment).

    Pure: reads the request only. The caller records it once the backend accepted the request.
    """
    text = payload.get("UpdateExpression")
    if not isinstance(text, str):
        return 0
    try:
        update = ex.parse_update(text)
        scope = ex.Scope(
            payload.get("ExpressionAttributeNames") or {},
            payload.get("ExpressionAttributeValues") or {},
        )
        if all(action.clause == "REMOVE" for action in update.actions):
            return None
        total: Amount = 0
        for action in update.actions:
            total = add(total, _action_delta(action, scope))
    except (ex.InvalidExpression, ex.NotSupported, v.InvalidValue, KeyError, TypeError):
        return None
    return total


def transaction_deltas(payload: Mapping[str, Any]) -> list[tuple[str, str, Amount]]:
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


def _action_delta(action: ex.Action, scope: ex.Scope) -> Amount:
    if action.clause == "ADD" and isinstance(action.value, ex.Value):
        return _number(action.value, scope)
    if action.clause != "SET" or not isinstance(action.value, ex.Arithmetic):
        return 0
    target = scope.name(action.path)
    arithmetic = action.value
    left, right = arithmetic.left, arithmetic.right
    if _reads(left, target, scope) and isinstance(right, ex.Value):
        amount = _number(right, scope)
        return amount if arithmetic.operator == "+" else _negate(amount)
    if arithmetic.operator == "+" and _reads(right, target, scope) and isinstance(left, ex.Value):
        return _number(left, scope)
    return 0


def _reads(operand: ex.Operand, target: str, scope: ex.Scope) -> bool:
    if isinstance(operand, ex.IfNotExists):
        operand = operand.path
    return isinstance(operand, ex.Path) and scope.name(operand) == target


def _number(value: ex.Value, scope: ex.Scope) -> Amount:
    found = scope.values.get(value.token)
    if isinstance(found, dict) and "N" in found:
        return exact(v.parse_number(found["N"]))
    return 0


class AppliedLedger:
    """Per table, per key: the applied sum and count. Written on the server's loop, read from
    any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, dict[str, list[Any]]] = {}

    def record(self, table: str, key: str, delta: Amount) -> None:
        with self._lock:
            entries = self._tables.setdefault(table, {})
            entry = entries.get(key)
            if entry is None:
                entries[key] = [delta, 1]
            else:
                entry[0] = add(entry[0], delta)
                entry[1] += 1

    def table(self, table: str) -> dict[str, LedgerEntry]:
        with self._lock:
            entries = dict(self._tables.get(table, {}))
            return {key: LedgerEntry(e[0], e[1]) for key, e in entries.items()}

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

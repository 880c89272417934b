"""ConsumedCapacity for the moto backend: moto answers a constant (0.5) whatever was written or
read; this sizes the items before and after the call and says what DynamoDB would charge.

A write costs 1 unit per started KB of the larger of the item before and after it; a read 1 per
started 4 KB (half when eventually consistent); a transaction's write twice (FACTS.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from async_counters.local.memory import read_units, write_units

__all__ = ["Plan", "plan", "rewrite"]

#: The items one call touches: (table, key, is a write, consistent read, units factor).
Plan = list[tuple[str, Mapping[str, Any], bool, bool, float]]
Sizer = Callable[[str, Mapping[str, Any]], int | None]

_SINGLE = {"UpdateItem": True, "DeleteItem": True, "GetItem": False}


def plan(operation: str, payload: Mapping[str, Any]) -> tuple[str, Plan]:
    """The capacity mode asked and the items to size ("NONE", [] when there is nothing to do)."""
    mode = payload.get("ReturnConsumedCapacity", "NONE")
    if mode not in ("TOTAL", "INDEXES"):
        return "NONE", []
    try:
        if operation in _SINGLE:
            table, key = payload["TableName"], payload["Key"]
            return mode, [(table, key, _SINGLE[operation], _consistent(payload), 1.0)]
        if operation == "BatchGetItem":
            return mode, [
                (table, key, False, _consistent(request), 1.0)
                for table, request in payload["RequestItems"].items()
                for key in request["Keys"]
            ]
        if operation == "TransactWriteItems":
            items: Plan = []
            for action in payload["TransactItems"]:
                ((_, request),) = action.items()
                items.append((request["TableName"], request["Key"], True, True, 2.0))
            return mode, items
    except (KeyError, TypeError, ValueError, AttributeError):
        pass  # malformed, or a Put (sized by moto's own answer): leave moto's answer alone
    return "NONE", []


def sizes(items: Plan, size_of: Sizer) -> list[int]:
    return [size_of(table, key) or 0 for table, key, *_ in items]


def rewrite(
    operation: str, body: bytes, mode: str, items: Plan, before: list[int], after: list[int]
) -> bytes:
    """``body`` with the ConsumedCapacity of ``items``: one entry for a one-item operation, else
    a list with one entry per table."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if not isinstance(answer, dict):
        return body
    totals: dict[str, float] = {}
    for (table, _, write, consistent, factor), old, new in zip(items, before, after, strict=True):
        units = write_units(max(old, new)) if write else read_units(old, consistent=consistent)
        totals[table] = totals.get(table, 0.0) + factor * units
    entries = [_entry(mode, table, units) for table, units in totals.items()]
    answer["ConsumedCapacity"] = entries[0] if operation in _SINGLE else entries
    return json.dumps(answer).encode()


def _entry(mode: str, table: str, units: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"TableName": table, "CapacityUnits": float(units)}
    if mode == "INDEXES":
        entry["Table"] = {"CapacityUnits": float(units)}
    return entry


def _consistent(request: Mapping[str, Any]) -> bool:
    return request.get("ConsistentRead") is True

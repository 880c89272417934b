"""What a request cost: the write and read capacity units in a DynamoDB answer.

Every request the pool builds asks ``ReturnConsumedCapacity=TOTAL`` (`async_counters.builders`),
so every answer says what it cost: one ``ConsumedCapacity`` (a list for BatchGetItem and
transactions) whose ``CapacityUnits`` are write units for a write and read units for a read
(``WriteCapacityUnits``/``ReadCapacityUnits`` split them where given). A write refused by its
condition is charged too (at least one write unit) but its error carries no ConsumedCapacity:
`REFUSED_WRITE` is what the pool counts for it, the cost of a small item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["READS", "REFUSED_WRITE", "charged", "units"]

#: Operations whose units are read units (any other operation's are write units).
READS = frozenset({"GetItem", "BatchGetItem", "TransactGetItems", "Query", "Scan"})
#: Write units counted for a conditional write refused (DynamoDB charges it; its answer is silent).
REFUSED_WRITE = 1.0


def units(operation: str, response: Mapping[str, Any]) -> tuple[float, float]:
    """``(write units, read units)`` that ``response`` to ``operation`` reports ((0, 0): none).

    >>> units("UpdateItem", {"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}})
    (1.0, 0.0)
    >>> units("BatchGetItem", {"ConsumedCapacity": [{"CapacityUnits": 2.0}, {"CapacityUnits": 1}]})
    (0.0, 3.0)
    """
    return charged(operation, response.get("ConsumedCapacity"))


def charged(operation: str, consumed: Any) -> tuple[float, float]:
    """``(write units, read units)`` of an answer's ``ConsumedCapacity`` (a dict, a list, None).

    >>> charged("GetItem", {"TableName": "t", "CapacityUnits": 0.5})
    (0.0, 0.5)
    """
    if type(consumed) is dict:  # a parsed answer's, for one table: every request but a few
        return _one(operation, consumed)
    if consumed is None:
        return _NONE
    if isinstance(consumed, Mapping):
        return _one(operation, consumed)
    write = read = 0.0
    for entry in consumed:
        if isinstance(entry, Mapping):
            w, r = _one(operation, entry)
            write += w
            read += r
    return write, read


_NONE = (0.0, 0.0)


def _one(operation: str, consumed: Mapping[str, Any]) -> tuple[float, float]:
    # Runs once per answer, inline: plain lookups, and a float (what JSON gives) taken as it is.
    get = consumed.get
    write = get("WriteCapacityUnits")
    read = get("ReadCapacityUnits")
    if write is not None or read is not None:
        return _number(write), _number(read)
    total = get("CapacityUnits")
    if type(total) is not float:
        total = _number(total)
    return (0.0, total) if operation in READS else (total, 0.0)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)

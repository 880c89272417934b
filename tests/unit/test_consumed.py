"""What an answer's ConsumedCapacity says a request cost: a table of cases."""

from __future__ import annotations

from typing import Any

import pytest

from async_counters.consumed import charged, units


@pytest.mark.parametrize(
    ("operation", "consumed", "expected"),
    [
        ("UpdateItem", {"TableName": "t", "CapacityUnits": 1.0}, (1.0, 0.0)),
        ("UpdateItem", {"TableName": "t", "CapacityUnits": 2}, (2.0, 0.0)),  # an int
        ("GetItem", {"TableName": "t", "CapacityUnits": 0.5}, (0.0, 0.5)),
        ("BatchGetItem", [{"CapacityUnits": 2.0}, {"CapacityUnits": 1.0}], (0.0, 3.0)),
        # Transactions split them (and charge both kinds).
        ("TransactWriteItems", {"WriteCapacityUnits": 4.0, "ReadCapacityUnits": 2.0}, (4.0, 2.0)),
        ("UpdateItem", {"CapacityUnits": 1.0, "WriteCapacityUnits": 1.0}, (1.0, 0.0)),
        ("UpdateItem", None, (0.0, 0.0)),
        ("UpdateItem", {"TableName": "t"}, (0.0, 0.0)),
        # Nonsense is no charge, never an error: observing must not fail a request.
        ("UpdateItem", {"CapacityUnits": True}, (0.0, 0.0)),
        ("UpdateItem", {"CapacityUnits": "1"}, (0.0, 0.0)),
        ("BatchGetItem", ["x", {"CapacityUnits": 1.0}], (0.0, 1.0)),
    ],
)
def test_units_charged(operation: str, consumed: Any, expected: tuple[float, float]) -> None:
    assert charged(operation, consumed) == expected
    answer = {} if consumed is None else {"ConsumedCapacity": consumed}
    assert units(operation, answer) == expected

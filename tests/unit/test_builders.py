"""The request builders and input checks, as tables of cases."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from async_counters import builders


def test_increment_is_an_add_through_placeholders() -> None:
    params = builders.update("t", "pk", "count", "views:/home", 5)
    assert params == {
        "TableName": "t",
        "Key": {"pk": {"S": "views:/home"}},
        "UpdateExpression": "ADD #v :n",
        "ExpressionAttributeNames": {"#v": "count"},
        "ExpressionAttributeValues": {":n": {"N": "5"}},
        "ReturnValues": "UPDATED_NEW",
        "ReturnConsumedCapacity": "TOTAL",
    }


@pytest.mark.parametrize(
    ("delta", "floor", "condition", "minimum"),
    [
        # 0 - 1 < 0: a missing counter cannot be decremented to -1 under floor 0
        (-1, 0, "#v >= :min", "1"),
        (-3, 10, "#v >= :min", "13"),
        # 0 - 1 >= -5: a missing counter (0) may go to -1
        (-1, -5, "attribute_not_exists(#v) OR #v >= :min", "-4"),
        (-5, -5, "attribute_not_exists(#v) OR #v >= :min", "0"),
    ],
)
def test_floored_decrement_condition(delta: int, floor: int, condition: str, minimum: str) -> None:
    params = builders.update("t", "pk", "count", "k", delta, floor=floor)
    assert params["ConditionExpression"] == condition
    assert params["ExpressionAttributeValues"] == {":n": {"N": str(delta)}, ":min": {"N": minimum}}
    assert params["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"


def test_user_strings_never_enter_expressions() -> None:
    nasty = "x) OR attribute_exists(#v"
    params = builders.update("t", "pk", "COUNT", nasty, 1, floor=0)
    for name in ("UpdateExpression", "ConditionExpression"):
        assert nasty not in params[name] and "COUNT" not in params[name]
    get = builders.get_item("t", "pk", "COUNT", nasty)
    assert get["ProjectionExpression"] == "#v"
    assert get["ConsistentRead"] is True


def test_batch_get_is_consistent_and_bounded() -> None:
    params = builders.batch_get("t", "pk", "count", ["a", "b"])
    table = params["RequestItems"]["t"]
    assert table["Keys"] == [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}]
    assert table["ConsistentRead"] is True
    with pytest.raises(ValueError, match="100"):
        builders.batch_get("t", "pk", "count", [str(i) for i in range(101)])


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (None, 0),
        ({}, 0),
        ({"other": {"N": "3"}}, 0),
        ({"count": {"N": "42"}}, 42),
        ({"count": {"N": "-7"}}, -7),
        ({"count": {"N": "1E+3"}}, 1000),
        ({"count": {"N": str(10**37)}}, 10**37),
    ],
)
def test_parse_number(item: dict[str, Any] | None, expected: int) -> None:
    assert builders.parse_number(item, "count") == expected


@pytest.mark.parametrize("item", [{"count": {"N": "1.5"}}, {"count": {"S": "3"}}, {"count": 3}])
def test_parse_number_refuses_what_is_not_a_whole_number(item: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        builders.parse_number(item, "count")


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (None, TypeError),
        (b"bytes", TypeError),
        (3, TypeError),
        ("", ValueError),
        ("é" * 1025, ValueError),  # 2,050 bytes in UTF-8
    ],
)
def test_bad_keys(key: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        builders.check_key(key)


def test_longest_key_is_accepted() -> None:
    assert builders.check_key("é" * 1024) == "é" * 1024


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        (True, TypeError),
        (1.0, TypeError),
        (Decimal(1), TypeError),
        ("1", TypeError),
        (None, TypeError),
        (0, ValueError),
        (-1, ValueError),
        (10**38, ValueError),
    ],
)
def test_bad_amounts(amount: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        builders.check_amount(amount)


def test_largest_amount_is_accepted() -> None:
    assert builders.check_amount(10**38 - 1) == 10**38 - 1


@pytest.mark.parametrize(
    ("floor", "error"),
    [(0.0, TypeError), (False, TypeError), ("0", TypeError), (10**38, ValueError)],
)
def test_bad_floors(floor: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        builders.check_floor(floor, 1)


def test_every_request_that_can_asks_what_it_cost() -> None:
    requests = [
        builders.update("t", "pk", "count", "k", 1),
        builders.update("t", "pk", "count", "k", -1, floor=0),
        builders.adder("t", "pk", "count")("k", 1),
        builders.update_once("t", "pk", "count", "k", 1, writer=("#s", "#w"), seq=1),
        builders.get_item("t", "pk", "count", "k"),
        builders.get_attributes("t", "pk", "k", ["a"]),
        builders.batch_get("t", "pk", "count", ["k"]),
        builders.record_shards("t", "pk", "k", 4),
        builders.prune_writers("t", "pk", "k", {"s": ("w", 1)}),
    ]
    assert all(r["ReturnConsumedCapacity"] == "TOTAL" for r in requests)

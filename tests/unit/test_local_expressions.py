"""The memory backend's expression engine and the ledger's reading of updates, as tables."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from async_counters.local import expressions as ex
from async_counters.local import values as v
from async_counters.local.ledger import AppliedLedger, key_string, update_delta

NAMES = {"#v": "count", "#w": "writer", "#l": "tags"}
VALUES: dict[str, Any] = {
    ":n": {"N": "5"},
    ":zero": {"N": "0"},
    ":one": {"N": "1"},
    ":seq": {"N": "3"},
    ":s": {"S": "abc"},
    ":list": {"L": [{"S": "x"}]},
    ":set": {"SS": ["a", "b"]},
}
ITEM: dict[str, Any] = {
    "pk": {"S": "k"},
    "count": {"N": "10"},
    "writer": {"N": "2"},
    "label": {"S": "abcdef"},
    "tags": {"SS": ["a", "c"]},
}


def update(text: str, item: dict[str, Any] | None = None) -> dict[str, Any]:
    scope = ex.Scope(NAMES, VALUES)
    parsed = ex.parse_update(text)
    ex.check_update(parsed, scope)
    return ex.apply_update(parsed, ITEM if item is None else item, scope)


@pytest.mark.parametrize(
    ("expression", "attribute", "expected"),
    [
        ("ADD #v :n", "count", {"N": "15"}),
        ("SET #v = #v + :n", "count", {"N": "15"}),
        ("SET #v = #v - :n", "count", {"N": "5"}),
        ("SET #v = :n - #v", "count", {"N": "-5"}),
        ("SET #v = if_not_exists(#v, :zero) + :n", "count", {"N": "15"}),
        ("set #w = :seq add #v :n", "writer", {"N": "3"}),
        ("SET #w = :seq ADD #v :n", "count", {"N": "15"}),
        ("ADD #l :set", "tags", {"SS": ["a", "c", "b"]}),
        ("DELETE #l :set", "tags", {"SS": ["c"]}),
        ("SET extra = list_append(:list, :list)", "extra", {"L": [{"S": "x"}, {"S": "x"}]}),
        ("SET #v = #w, #w = #v", "writer", {"N": "10"}),  # both read the item as it was
    ],
)
def test_updates(expression: str, attribute: str, expected: Any) -> None:
    assert update(expression)[attribute] == expected


def test_updates_on_a_missing_item() -> None:
    assert update("ADD #v :n", {})["count"] == {"N": "5"}
    assert update("SET #v = if_not_exists(#v, :zero) + :n", {})["count"] == {"N": "5"}
    assert "count" not in update("REMOVE #v")
    with pytest.raises(ex.OperandError, match="does not exist"):
        update("SET #v = #v + :n", {})
    with pytest.raises(ex.OperandError, match="incorrect data type"):
        update("SET #v = :s + :n")


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("#v = :n", False),
        ("#v <> :n", True),
        ("#v > :n", True),
        ("#v >= :n AND #w < :seq", True),
        ("#v < :n OR #w = :seq", False),
        ("NOT (#v < :n)", True),
        ("attribute_exists(#v)", True),
        ("attribute_not_exists(#v) OR #v >= :one", True),
        ("attribute_not_exists(gone)", True),
        ("gone = :n", False),
        ("gone <> :n", True),
        ("gone < :n", False),
        ("#v > :s", False),  # different types never order
        ("#v BETWEEN :n AND :n", False),
        ("#w BETWEEN :one AND :seq", True),
        ("#w IN (:one, :n, :seq)", False),
        ("#v IN (:one, :s)", False),
        ("begins_with(label, :s)", True),
        ("contains(label, :s)", True),
        ("contains(#l, :s)", False),
        ("size(label) > :n", True),
        ("attribute_type(#v, :s)", False),
    ],
)
def test_conditions(condition: str, expected: bool) -> None:
    scope = ex.Scope(NAMES, VALUES)
    parsed = ex.parse_condition(condition)
    if "attribute_type" not in condition:
        ex.check_condition(parsed, scope)
    assert ex.matches(parsed, ITEM, scope) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("ADD #v :n :n", 'Syntax error; token: ":n", near: ":n :n"'),
        ("SET #v = ", 'Syntax error; token: "<EOF>", near: "= "'),
        ("ADD #v :n ADD #w :n", 'The "ADD" section can only be used once'),
        ("SET Count = Count + :n", "reserved keyword: Count"),
        ("ADD #nope :n", "attribute name: #nope"),
        ("ADD #v :nope", "attribute value: :nope"),
        ("SET #v = :n ADD #v :n", "Two document paths overlap"),
        ("ADD #v :s", "operator: ADD, operand type: STRING, typeSet: ALLOWED_FOR_ADD_OPERAND"),
        ("DELETE #l :n", "operator: DELETE, operand type: NUMBER"),
        ("SET #v = size(#v)", "function: size"),
        ("SET #v = nope(#v)", "Invalid function name; function: nope"),
        ("SET #v = a + b + c", 'token: "+"'),
    ],
)
def test_refused_updates(expression: str, message: str) -> None:
    with pytest.raises(ex.InvalidExpression, match=re.escape(message)):
        ex.check_update(ex.parse_update(expression), ex.Scope(NAMES, VALUES))


def test_nested_paths_are_refused_as_not_supported() -> None:
    with pytest.raises(ex.NotSupported, match="top-level"):
        ex.parse_update("SET a.b = :n")
    with pytest.raises(ex.NotSupported):
        ex.parse_condition("a[0] = :n")


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("#v = #v", "first operand must be distinct"),
        ("#v >", "Syntax error"),
        ("nosuch(#v)", "Invalid function name; function: nosuch"),
        ("attribute_exists(:n)", "requires a document path"),
        ("attribute_exists(#v, #w)", "Incorrect number of operands"),
        ("#w BETWEEN :seq AND :one", "BETWEEN operator requires upper bound"),
        ("attribute_type(#v, :n)", "Invalid attribute type name"),
        ("size(#v)", "Syntax error"),
        ("attribute_exists(size)", "reserved keyword: size"),
    ],
)
def test_refused_conditions(condition: str, message: str) -> None:
    with pytest.raises(ex.InvalidExpression, match=message):
        ex.check_condition(ex.parse_condition(condition), ex.Scope(NAMES, VALUES))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("5", "5"),
        ("05", "5"),
        ("1.50", "1.5"),
        ("1e2", "100"),
        ("-0", "0"),
        ("-1.000", "-1"),
        # DynamoDB's extremes, held exactly (not rounded to Python's default 28 digits).
        (str(10**38 - 1), str(10**38 - 1)),
        ("9.9999999999999999999999999999999999999E+125", str(10**126 - 10**88)),
        ("-9.9999999999999999999999999999999999999E+125", str(10**88 - 10**126)),
        ("1E-130", "0." + "0" * 129 + "1"),
    ],
)
def test_numbers_are_stored_canonical(text: str, canonical: str) -> None:
    assert v.canonical({"N": text}) == {"N": canonical}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "cannot be converted to a numeric value: abc"),
        ("", "cannot be converted to a numeric value"),
        ("1" * 39, "more than 38 significant digits"),
        ("1e126", "Number overflow"),
        ("1e-131", "Number underflow"),
        ("NaN", "cannot be converted"),
    ],
)
def test_numbers_dynamodb_refuses(text: str, message: str) -> None:
    with pytest.raises(v.InvalidValue, match=message):
        v.parse_number(text)


def payload(expression: str, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeNames": {"#v": "count", "#w": "writer"},
        "ExpressionAttributeValues": values,
    }


@pytest.mark.parametrize(
    ("expression", "values", "delta"),
    [
        ("ADD #v :n", {":n": {"N": "5"}}, Decimal(5)),
        ("ADD #v :n", {":n": {"N": "-2"}}, Decimal(-2)),
        ("SET #v = if_not_exists(#v, :z) + :n", {":z": {"N": "0"}, ":n": {"N": "4"}}, 4),
        ("SET #v = #v - :n", {":n": {"N": "3"}}, Decimal(-3)),
        ("SET #v = :n + #v", {":n": {"N": "3"}}, Decimal(3)),
        ("SET #w = :s ADD #v :n", {":s": {"N": "9"}, ":n": {"N": "7"}}, Decimal(7)),
        ("SET #v = :n", {":n": {"N": "100"}}, Decimal(0)),
        ("REMOVE #v", {}, None),  # removing only: no increment, not counted
        # At DynamoDB's 38 digits, where Python's default context (28) would round.
        ("ADD #v :n", {":n": {"N": str(10**28 + 1)}}, 10**28 + 1),
        ("SET #v = #v - :n", {":n": {"N": str(10**38 - 1)}}, -(10**38 - 1)),
        (
            "SET #v = :n + #v",
            {":n": {"N": "9.9999999999999999999999999999999999999E+125"}},
            10**126 - 10**88,
        ),
        ("ADD #v :n", {":n": {"N": "0.5"}}, Decimal("0.5")),
    ],
)
def test_the_ledger_reads_counter_arithmetic(
    expression: str, values: dict[str, Any], delta: Any
) -> None:
    assert update_delta(payload(expression, values)) == delta


def test_the_ledger_sums_exactly_at_any_size() -> None:
    ledger = AppliedLedger()
    big = 10**38 - 1
    for delta in (big, -big, 10**28 + 1, big - (10**28 + 1), Decimal("1E-130"), Decimal("0.1")):
        ledger.record("t", "k", delta)
    assert ledger.table("t")["k"].sum == Decimal(f"{big}.1{'0' * 128}1")
    ledger.record("t", "k", Decimal("-1E-130"))
    ledger.record("t", "k", Decimal("-0.1"))
    entry = ledger.table("t")["k"]
    assert (type(entry.sum), entry.sum, entry.count) == (int, big, 8)  # whole again: an int
    assert ledger.to_json("t") == {"tables": {"t": {"k": {"sum": big, "count": 8}}}}


def test_the_ledger_ignores_what_it_cannot_read() -> None:
    assert update_delta(payload("ADD #v", {})) is None
    assert update_delta({}) == 0


def test_ledger_key_names() -> None:
    assert key_string({"pk": {"S": "views:/home"}}) == "views:/home"
    assert key_string({"pk": {"N": "7"}}) == "7"
    assert key_string({"pk": {"S": "a"}, "sk": {"N": "1"}}) == '{"pk":{"S":"a"},"sk":{"N":"1"}}'

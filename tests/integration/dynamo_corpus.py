"""One request corpus, valid and invalid, sent in order to two backends to find differences.

Each case is (label, operation, payload). The sequence builds state: tables, then counters, then
conditional writes, then reads. It is written to probe the operations the pool uses and the edges
where an emulator could drift: placeholders, reserved words, conditions on missing attributes,
return values, key schema errors, number formats and limits.
"""

from __future__ import annotations

from typing import Any

T = "corpus"  # the main table: pk (S)
C = "corpus-composite"  # pk (S) + sk (N)

Case = tuple[str, str, dict[str, Any]]


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


def _add(pk: str, amount: str, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "TableName": T,
        "Key": _key(pk),
        "UpdateExpression": "ADD #v :n",
        "ExpressionAttributeNames": {"#v": "count"},
        "ExpressionAttributeValues": {":n": {"N": amount}},
        "ReturnValues": "UPDATED_NEW",
    }
    values = extra.pop("values", {})
    payload["ExpressionAttributeValues"].update(values)
    names = extra.pop("names", {})
    payload["ExpressionAttributeNames"].update(names)
    payload.update(extra)
    return payload


def _get(pk: str, **extra: Any) -> dict[str, Any]:
    return {"TableName": T, "Key": _key(pk), "ConsistentRead": True, **extra}


def _tx_add(pk: str, amount: str, **extra: Any) -> dict[str, Any]:
    """A transaction's Update action adding to a counter."""
    update: dict[str, Any] = {
        "TableName": T,
        "Key": _key(pk),
        "UpdateExpression": "ADD #v :n",
        "ExpressionAttributeNames": {"#v": "count"},
        "ExpressionAttributeValues": {":n": {"N": amount}, **extra.pop("values", {})},
    }
    return {"Update": {**update, **extra}}


def _transact(*actions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"TransactItems": list(actions), **extra}


CORPUS: list[Case] = [
    # Tables.
    ("describe a missing table", "DescribeTable", {"TableName": T}),
    (
        "create the main table",
        "CreateTable",
        {
            "TableName": T,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ),
    (
        "create it again",
        "CreateTable",
        {
            "TableName": T,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ),
    (
        "create a composite-key provisioned table",
        "CreateTable",
        {
            "TableName": C,
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 7},
        },
    ),
    (
        "create with an undefined key attribute",
        "CreateTable",
        {
            "TableName": "corpus-bad",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "other", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ),
    (
        "create on-demand with throughput",
        "CreateTable",
        {
            "TableName": "corpus-bad",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
        },
    ),
    ("describe the main table", "DescribeTable", {"TableName": T}),
    ("list tables", "ListTables", {}),
    # Counters: the pool's increment.
    ("add to a new counter", "UpdateItem", _add("a", "5")),
    ("add again", "UpdateItem", _add("a", "7")),
    ("add a negative amount", "UpdateItem", _add("a", "-2")),
    ("add zero", "UpdateItem", _add("a", "0")),
    ("add with no return values", "UpdateItem", _add("b", "1", ReturnValues="NONE")),
    ("add returning ALL_NEW", "UpdateItem", _add("b", "1", ReturnValues="ALL_NEW")),
    ("add returning ALL_OLD", "UpdateItem", _add("b", "1", ReturnValues="ALL_OLD")),
    ("add returning UPDATED_OLD", "UpdateItem", _add("b", "1", ReturnValues="UPDATED_OLD")),
    (
        "add returning UPDATED_OLD on a new item",
        "UpdateItem",
        _add("c", "1", ReturnValues="UPDATED_OLD"),
    ),
    ("a large amount", "UpdateItem", _add("big", "99999999999999999999999999999999999999")),
    ("a large amount past 38 digits", "UpdateItem", _add("big", "1")),
    (
        "set if_not_exists plus",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("s"),
            "UpdateExpression": "SET #v = if_not_exists(#v, :zero) + :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":zero": {"N": "0"}, ":n": {"N": "4"}},
            "ReturnValues": "UPDATED_NEW",
        },
    ),
    (
        "set if_not_exists plus, again",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("s"),
            "UpdateExpression": "SET #v = if_not_exists(#v, :zero) + :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":zero": {"N": "0"}, ":n": {"N": "4"}},
            "ReturnValues": "UPDATED_NEW",
        },
    ),
    (
        "set minus",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("s"),
            "UpdateExpression": "SET #v = #v - :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":n": {"N": "3"}},
            "ReturnValues": "UPDATED_NEW",
        },
    ),
    (
        "set plus on a missing attribute",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("s2"),
            "UpdateExpression": "SET #v = #v + :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":n": {"N": "3"}},
            "ReturnValues": "UPDATED_NEW",
        },
    ),
    ("get the missing attribute's item", "GetItem", _get("s2")),
    # Reserved words and placeholders.
    (
        "the usual recipe: SET Count = Count + :val",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("r"),
            "UpdateExpression": "SET Count = Count + :val",
            "ExpressionAttributeValues": {":val": {"N": "1"}},
        },
    ),
    (
        "an undefined name placeholder",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("r"),
            "UpdateExpression": "ADD #x :n",
            "ExpressionAttributeValues": {":n": {"N": "1"}},
        },
    ),
    (
        "an undefined value placeholder",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("r"),
            "UpdateExpression": "ADD #v :m",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":n": {"N": "1"}},
        },
    ),
    ("an unused value", "UpdateItem", _add("r", "1", values={":extra": {"N": "2"}})),
    ("an unused name", "UpdateItem", _add("r", "1", names={"#extra": "other"})),
    ("empty values", "UpdateItem", {**_add("r", "1"), "ExpressionAttributeValues": {}}),
    ("a name key without #", "UpdateItem", _add("r", "1", names={"v": "count"})),
    (
        "a plain, unreserved name",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("r"),
            "UpdateExpression": "ADD hits :n",
            "ExpressionAttributeValues": {":n": {"N": "1"}},
            "ReturnValues": "UPDATED_NEW",
        },
    ),
    # Operand types.
    (
        "add a string",
        "UpdateItem",
        _add("t", "1") | {"ExpressionAttributeValues": {":n": {"S": "x"}}},
    ),
    (
        "set a string attribute",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("t"),
            "UpdateExpression": "SET #s = :s",
            "ExpressionAttributeNames": {"#s": "label"},
            "ExpressionAttributeValues": {":s": {"S": "hello"}},
            "ReturnValues": "UPDATED_NEW",
        },
    ),
    (
        "add a number to the string",
        "UpdateItem",
        _add("t", "1") | {"ExpressionAttributeNames": {"#v": "label"}},
    ),
    ("not a number", "UpdateItem", _add("t2", "abc")),
    ("too many digits", "UpdateItem", _add("t2", "1234567890123456789012345678901234567890")),
    # Several actions, as exactly-once writes send them.
    (
        "SET a sequence and ADD the count",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("x"),
            "UpdateExpression": "SET #w = :seq ADD #v :n",
            "ConditionExpression": "attribute_not_exists(#w) OR #w < :seq",
            "ExpressionAttributeNames": {"#v": "count", "#w": "writer"},
            "ExpressionAttributeValues": {":seq": {"N": "1"}, ":n": {"N": "10"}},
            "ReturnValues": "UPDATED_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    ),
    (
        "the same sequence again (a duplicate)",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("x"),
            "UpdateExpression": "SET #w = :seq ADD #v :n",
            "ConditionExpression": "attribute_not_exists(#w) OR #w < :seq",
            "ExpressionAttributeNames": {"#v": "count", "#w": "writer"},
            "ExpressionAttributeValues": {":seq": {"N": "1"}, ":n": {"N": "10"}},
            "ReturnValues": "UPDATED_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    ),
    (
        "the next sequence",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("x"),
            "UpdateExpression": "SET #w = :seq ADD #v :n",
            "ConditionExpression": "attribute_not_exists(#w) OR #w < :seq",
            "ExpressionAttributeNames": {"#v": "count", "#w": "writer"},
            "ExpressionAttributeValues": {":seq": {"N": "2"}, ":n": {"N": "10"}},
            "ReturnValues": "ALL_NEW",
        },
    ),
    (
        "REMOVE and ADD",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("x"),
            "UpdateExpression": "REMOVE #w ADD #v :n",
            "ExpressionAttributeNames": {"#v": "count", "#w": "writer"},
            "ExpressionAttributeValues": {":n": {"N": "1"}},
            "ReturnValues": "ALL_NEW",
        },
    ),
    (
        "two clauses of one kind",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("x"),
            "UpdateExpression": "ADD #v :n ADD #w :n",
            "ExpressionAttributeNames": {"#v": "count", "#w": "writer"},
            "ExpressionAttributeValues": {":n": {"N": "1"}},
        },
    ),
    (
        "two actions on one path",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("x"),
            "UpdateExpression": "SET #v = :n ADD #v :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":n": {"N": "1"}},
        },
    ),
    (
        "update the key",
        "UpdateItem",
        {
            "TableName": T,
            "Key": _key("x"),
            "UpdateExpression": "SET #k = :k",
            "ExpressionAttributeNames": {"#k": "pk"},
            "ExpressionAttributeValues": {":k": {"S": "y"}},
        },
    ),
    ("a syntax error", "UpdateItem", _add("x", "1") | {"UpdateExpression": "ADD #v :n :n"}),
    ("an empty update expression", "UpdateItem", _add("x", "1") | {"UpdateExpression": " "}),
    ("an unknown clause", "UpdateItem", _add("x", "1") | {"UpdateExpression": "INCREMENT #v :n"}),
    # Floors: conditional decrements.
    ("stock up", "UpdateItem", _add("stock", "2")),
    *[
        (
            f"decrement with a floor ({i})",
            "UpdateItem",
            _add(
                "stock",
                "-1",
                ConditionExpression="#v >= :one",
                values={":one": {"N": "1"}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ),
        )
        for i in range(3)
    ],
    (
        "a floor on a counter never written",
        "UpdateItem",
        _add(
            "never",
            "-1",
            ConditionExpression="attribute_not_exists(#v) OR #v >= :one",
            values={":one": {"N": "1"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
    ),
    (
        "a floor on a counter never written, ALL_OLD has nothing",
        "UpdateItem",
        _add(
            "never2",
            "-1",
            ConditionExpression="#v >= :one",
            values={":one": {"N": "1"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
    ),
    (
        "a failed condition without ALL_OLD",
        "UpdateItem",
        _add("stock", "-1", ConditionExpression="#v >= :one", values={":one": {"N": "1"}}),
    ),
    # Conditions.
    *[
        (
            f"condition {condition}",
            "UpdateItem",
            _add(key, "1", ConditionExpression=condition, values=values),
        )
        for key, condition, values in [
            ("a", "#v = :ten", {":ten": {"N": "10"}}),
            ("a", "#v <> :ten", {":ten": {"N": "10"}}),
            ("a", "#v < :big", {":big": {"N": "1000"}}),
            ("a", "#v <= :small", {":small": {"N": "1"}}),
            ("a", "#v > :small", {":small": {"N": "1"}}),
            ("a", "NOT #v > :small", {":small": {"N": "1"}}),
            ("a", "(#v > :small) AND (#v < :big)", {":small": {"N": "1"}, ":big": {"N": "1000"}}),
            ("a", "#v > :big OR attribute_exists(#v)", {":big": {"N": "1000"}}),
            ("a", "#v BETWEEN :small AND :big", {":small": {"N": "1"}, ":big": {"N": "1000"}}),
            ("a", "#v IN (:small, :big)", {":small": {"N": "1"}, ":big": {"N": "1000"}}),
            ("e", "attribute_exists(#w)", {}),
            ("e", "#v > :s", {":s": {"S": "1"}}),
            ("e", "#v = #v", {}),
            ("e", "#v >", {}),
            ("e", "#v < :big AND", {":big": {"N": "1000"}}),
            ("a", "attribute_type(#v, :t)", {":t": {"S": "N"}}),
            ("a", "attribute_type(#v, :s)", {":s": {"S": "S"}}),
            ("e", "begins_with(#v, :t)", {":t": {"S": "1"}}),
            ("e", "nosuch(#v)", {}),
        ]
    ],
    (
        "condition on size",
        "UpdateItem",
        _add(
            "t",
            "1",
            ConditionExpression="size(#l) > :small",
            values={":small": {"N": "1"}},
            names={"#l": "label"},
        ),
    ),
    (
        "a condition name placeholder that is never defined",
        "UpdateItem",
        _add("a", "1", ConditionExpression="attribute_exists(#nope)"),
    ),
    (
        "a condition that uses a reserved word",
        "UpdateItem",
        _add("a", "1", ConditionExpression="attribute_exists(size)"),
    ),
    # Return values and other parameters.
    ("ReturnValues FOO", "UpdateItem", _add("a", "1", ReturnValues="FOO")),
    ("ReturnConsumedCapacity TOTAL", "UpdateItem", _add("a", "1", ReturnConsumedCapacity="TOTAL")),
    # Keys.
    ("a key with the wrong type", "UpdateItem", _add("a", "1") | {"Key": {"pk": {"N": "1"}}}),
    ("a key with the wrong name", "UpdateItem", _add("a", "1") | {"Key": {"id": {"S": "a"}}}),
    (
        "a key with an extra attribute",
        "UpdateItem",
        _add("a", "1") | {"Key": {"pk": {"S": "a"}, "x": {"S": "b"}}},
    ),
    ("an empty string key", "UpdateItem", _add("a", "1") | {"Key": {"pk": {"S": ""}}}),
    ("a missing table", "UpdateItem", _add("a", "1") | {"TableName": "corpus-missing"}),
    (
        "a composite key",
        "UpdateItem",
        {
            "TableName": C,
            "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}},
            "UpdateExpression": "ADD #v :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":n": {"N": "3"}},
            "ReturnValues": "ALL_NEW",
        },
    ),
    (
        "a composite key without its range part",
        "UpdateItem",
        {
            "TableName": C,
            "Key": {"pk": {"S": "a"}},
            "UpdateExpression": "ADD #v :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":n": {"N": "3"}},
        },
    ),
    (
        "an update without an expression creates the item",
        "UpdateItem",
        {"TableName": T, "Key": _key("bare"), "ReturnValues": "ALL_NEW"},
    ),
    # Reads.
    ("get a counter", "GetItem", _get("a")),
    ("get a counter never written", "GetItem", _get("nothing")),
    ("get eventually consistent", "GetItem", _get("a", ConsistentRead=False)),
    (
        "get with a projection",
        "GetItem",
        _get("x", ProjectionExpression="#v", ExpressionAttributeNames={"#v": "count"}),
    ),
    (
        "get with a projection of two attributes",
        "GetItem",
        _get("t", ProjectionExpression="pk, #l", ExpressionAttributeNames={"#l": "label"}),
    ),
    (
        "get with an unused name",
        "GetItem",
        _get("a", ProjectionExpression="#v", ExpressionAttributeNames={"#v": "count", "#w": "x"}),
    ),
    (
        "get with names and no projection",
        "GetItem",
        _get("a", ExpressionAttributeNames={"#v": "count"}),
    ),
    ("get from a missing table", "GetItem", _get("a") | {"TableName": "corpus-missing"}),
    ("get with a wrong key", "GetItem", _get("a") | {"Key": {"id": {"S": "a"}}}),
    (
        "batch get",
        "BatchGetItem",
        {
            "RequestItems": {
                T: {"Keys": [_key("a"), _key("b"), _key("nothing")], "ConsistentRead": True}
            }
        },
    ),
    (
        "batch get with a projection",
        "BatchGetItem",
        {
            "RequestItems": {
                T: {
                    "Keys": [_key("a"), _key("x")],
                    "ConsistentRead": True,
                    "ProjectionExpression": "#v",
                    "ExpressionAttributeNames": {"#v": "count"},
                }
            }
        },
    ),
    (
        "batch get from two tables",
        "BatchGetItem",
        {
            "RequestItems": {
                T: {"Keys": [_key("a")]},
                C: {"Keys": [{"pk": {"S": "a"}, "sk": {"N": "1"}}]},
            }
        },
    ),
    (
        "batch get with duplicate keys",
        "BatchGetItem",
        {"RequestItems": {T: {"Keys": [_key("a"), _key("a")]}}},
    ),
    (
        "batch get of too many keys",
        "BatchGetItem",
        {"RequestItems": {T: {"Keys": [_key(f"k{i}") for i in range(101)]}}},
    ),
    (
        "batch get from a missing table",
        "BatchGetItem",
        {"RequestItems": {"corpus-missing": {"Keys": [_key("a")]}}},
    ),
    # Items put and deleted whole, as tests set them up.
    (
        "put an item with a string count",
        "PutItem",
        {"TableName": T, "Item": {"pk": {"S": "p"}, "count": {"S": "not a number"}}},
    ),
    ("add to the string count", "UpdateItem", _add("p", "1")),
    (
        "put it again, returning ALL_OLD",
        "PutItem",
        {
            "TableName": T,
            "Item": {"pk": {"S": "p"}, "count": {"N": "15"}, "tags": {"SS": ["a", "b"]}},
            "ReturnValues": "ALL_OLD",
        },
    ),
    ("get the put item", "GetItem", _get("p")),
    (
        "put a number written 1.50",
        "PutItem",
        {"TableName": T, "Item": {"pk": {"S": "dec"}, "count": {"N": "001.50"}}},
    ),
    ("get the number written 1.50", "GetItem", _get("dec")),
    (
        "put only if absent",
        "PutItem",
        {
            "TableName": T,
            "Item": {"pk": {"S": "p"}},
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    ),
    ("put without the key", "PutItem", {"TableName": T, "Item": {"other": {"S": "x"}}}),
    ("put a key of the wrong type", "PutItem", {"TableName": T, "Item": {"pk": {"N": "1"}}}),
    (
        "put returning ALL_NEW",
        "PutItem",
        {"TableName": T, "Item": {"pk": {"S": "q"}}, "ReturnValues": "ALL_NEW"},
    ),
    (
        "put with values but no condition",
        "PutItem",
        {
            "TableName": T,
            "Item": {"pk": {"S": "q"}},
            "ExpressionAttributeValues": {":x": {"N": "1"}},
        },
    ),
    (
        "delete on a condition that fails",
        "DeleteItem",
        {
            "TableName": T,
            "Key": _key("p"),
            "ConditionExpression": "#v > :big",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":big": {"N": "100"}},
        },
    ),
    (
        "delete returning ALL_OLD",
        "DeleteItem",
        {"TableName": T, "Key": _key("p"), "ReturnValues": "ALL_OLD"},
    ),
    (
        "delete what is gone",
        "DeleteItem",
        {"TableName": T, "Key": _key("p"), "ReturnValues": "ALL_OLD"},
    ),
    ("get the deleted item", "GetItem", _get("p")),
    # Transactions: what exactly-once may be built on.
    (
        "transact two adds",
        "TransactWriteItems",
        _transact(_tx_add("tx1", "1"), _tx_add("tx2", "2")),
    ),
    ("get a transacted counter", "GetItem", _get("tx2")),
    (
        "transact with a failed condition",
        "TransactWriteItems",
        _transact(
            _tx_add("tx1", "5"),
            _tx_add(
                "tx2",
                "-5",
                ConditionExpression="#v >= :five",
                values={":five": {"N": "5"}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ),
        ),
    ),
    ("get after the cancelled transaction", "GetItem", _get("tx1")),
    (
        "transact one item twice",
        "TransactWriteItems",
        _transact(_tx_add("tx1", "1"), _tx_add("tx1", "1")),
    ),
    (
        "transact a put, a delete and a check",
        "TransactWriteItems",
        _transact(
            {"Put": {"TableName": T, "Item": {"pk": {"S": "tx3"}, "count": {"N": "3"}}}},
            {"Delete": {"TableName": T, "Key": _key("tx2")}},
            {
                "ConditionCheck": {
                    "TableName": T,
                    "Key": _key("tx1"),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
        ),
    ),
    ("get the transacted put", "GetItem", _get("tx3")),
    ("get the transacted delete", "GetItem", _get("tx2")),
    (
        "transact with a token",
        "TransactWriteItems",
        _transact(_tx_add("tx4", "1"), ClientRequestToken="corpus-token-1"),
    ),
    (
        "the same token and items again",
        "TransactWriteItems",
        _transact(_tx_add("tx4", "1"), ClientRequestToken="corpus-token-1"),
    ),
    ("get the counter after the replay", "GetItem", _get("tx4")),
    (
        "the same token for other items",
        "TransactWriteItems",
        _transact(_tx_add("tx4", "2"), ClientRequestToken="corpus-token-1"),
    ),
    (
        "transact with consumed capacity",
        "TransactWriteItems",
        _transact(_tx_add("tx5", "1"), ReturnConsumedCapacity="TOTAL"),
    ),
    ("transact nothing", "TransactWriteItems", _transact()),
    (
        "transact 101 items",
        "TransactWriteItems",
        _transact(*(_tx_add(f"many{i}", "1") for i in range(101))),
    ),
    (
        "transact on a missing table",
        "TransactWriteItems",
        _transact(
            _tx_add("tx1", "1")
            | {"Update": {**_tx_add("tx1", "1")["Update"], "TableName": "corpus-missing"}}
        ),
    ),
    (
        "put a string count to transact on",
        "PutItem",
        {"TableName": T, "Item": {"pk": {"S": "txs"}, "count": {"S": "not a number"}}},
    ),
    ("transact an add to a string", "TransactWriteItems", _transact(_tx_add("txs", "1"))),
    # Time to live.
    ("describe time to live, off", "DescribeTimeToLive", {"TableName": T}),
    (
        "enable time to live",
        "UpdateTimeToLive",
        {"TableName": T, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "expires"}},
    ),
    ("describe time to live, on", "DescribeTimeToLive", {"TableName": T}),
    (
        "enable time to live again",
        "UpdateTimeToLive",
        {"TableName": T, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "expires"}},
    ),
    (
        "put an item expired long ago",
        "PutItem",
        {"TableName": T, "Item": {"pk": {"S": "expired"}, "expires": {"N": "1700000000"}}},
    ),
    ("an expired item is still read", "GetItem", _get("expired")),
    # Tear down.
    ("delete the composite table", "DeleteTable", {"TableName": C}),
    ("delete it again", "DeleteTable", {"TableName": C}),
    ("describe after the delete", "DescribeTable", {"TableName": C}),
    ("an operation nobody knows", "NoSuchOperation", {}),
]

"""Pure builders of the DynamoDB requests the pool sends, and the validation of their inputs.

Nothing user-supplied is spliced into an expression: attribute names go through
``ExpressionAttributeNames`` (``count`` is a reserved word) and values through
``ExpressionAttributeValues``. ``ADD`` creates a missing attribute (and item) at 0 first, which is
why the pool sends ``ADD #v :n`` instead of the usual ``SET Count = Count + :val`` that fails twice:
``COUNT`` is reserved, and ``Count + :val`` is an error on an item without the attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from .checks import whole

__all__ = [
    "LEGACY_SHARDS_ATTRIBUTE",
    "MAX_BATCH_GET",
    "MAX_KEY_BYTES",
    "MAX_NUMBER",
    "SHARDS_ATTRIBUTE",
    "SHARD_PREFIX",
    "WINDOW_PREFIX",
    "adder",
    "batch_get",
    "check_amount",
    "check_floor",
    "check_key",
    "create_table",
    "get_attributes",
    "get_item",
    "legacy_shard_key",
    "parse_number",
    "prune_writers",
    "record_shards",
    "shard_key",
    "update",
    "update_once",
]

#: Every request that takes it asks for its cost, so that the pool always knows what it spent.
CONSUMED = "TOTAL"
#: DynamoDB numbers hold 38 significant digits: the largest integer the pool will send.
MAX_NUMBER = 10**38 - 1
#: A partition key value is at most 2,048 bytes (UTF-8).
MAX_KEY_BYTES = 2048
#: BatchGetItem reads at most 100 keys per call.
MAX_BATCH_GET = 100
#: Shard items' names begin with this, a Unicode noncharacter ("permanently reserved for internal
#: use", never in interchanged text) that no user key may begin with: no key can name a shard.
SHARD_PREFIX = "\ufdd0"
#: Windowed counters' items begin with this other noncharacter (see `windows`).
WINDOW_PREFIX = "\ufdd1"
#: On a sharded counter's first item: the widest sharding it was ever written with.
SHARDS_ATTRIBUTE = "~shard-count"
#: The same, for shards named the old way (``key#n``), which are still read (never written).
LEGACY_SHARDS_ATTRIBUTE = "~shards"
#: The most bytes a shard's name adds to its counter's key (prefix, ``#``, up to 3 digits).
SHARD_NAME_BYTES = len(SHARD_PREFIX.encode()) + 4


def shard_key(key: str, shard: int) -> str:
    """The item of ``key``'s shard ``shard``: the key itself for shard 0, else a reserved name.

    Shard 0 being the key itself makes an unsharded counter a counter with one shard, so that
    sharding a counter already written (or no longer sharding it) keeps its total. The others are
    ``SHARD_PREFIX + key + "#" + n``: one name per (key, shard) (``n`` is digits, so the last
    ``#`` splits it off), and none a user key can take.
    """
    return key if shard == 0 else f"{SHARD_PREFIX}{key}#{shard}"


def legacy_shard_key(key: str, shard: int) -> str:
    """Where shard ``shard`` of ``key`` was written before shard names were reserved: ``key#n``."""
    return key if shard == 0 else f"{key}#{shard}"


def record_shards(
    table: str,
    key_attribute: str,
    key: str,
    shards: int,
    *,
    ttl: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Record on a key's first item that it is spread over ``shards`` items, unless wider.

    ``ttl``: ``(attribute, epoch seconds)`` to set with it, for a window item (whose first item
    may hold nothing but this record, and must expire with its window all the same)."""
    params: dict[str, Any] = {
        "TableName": table,
        "Key": _key(key_attribute, key),
        "UpdateExpression": "SET #ns = :n",
        "ConditionExpression": "attribute_not_exists(#ns) OR #ns < :n",
        "ExpressionAttributeNames": {"#ns": SHARDS_ATTRIBUTE},
        "ExpressionAttributeValues": {":n": {"N": str(shards)}},
        "ReturnConsumedCapacity": CONSUMED,
    }
    if ttl is not None:
        params["UpdateExpression"] = "SET #ns = :n, #ttl = :ttl"
        params["ExpressionAttributeNames"]["#ttl"] = ttl[0]
        params["ExpressionAttributeValues"][":ttl"] = {"N": str(ttl[1])}
    return params


def check_key(key: object) -> str:
    """Return ``key`` if it can name a counter, else raise `TypeError`/`ValueError`.

    A key is a non-empty str of valid Unicode (no lone surrogate: it could not be sent) of at most
    `MAX_KEY_BYTES` in UTF-8, not beginning with `SHARD_PREFIX` (reserved for shard items).
    """
    if not isinstance(key, str):
        raise TypeError(f"counter key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("counter key must not be empty")
    if key.isascii():
        size = len(key)
    else:
        try:
            size = len(key.encode())
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"counter key is not valid Unicode: a lone surrogate {key[exc.start]!r} at "
                f"index {exc.start} cannot be encoded in UTF-8"
            ) from None
        if key.startswith(SHARD_PREFIX):
            raise ValueError(
                "counter key must not begin with U+FDD0: it is reserved for the items of "
                "sharded counters"
            )
        if key.startswith(WINDOW_PREFIX):
            raise ValueError(
                "counter key must not begin with U+FDD1: it is reserved for the items of "
                "windowed counters"
            )
    if size > MAX_KEY_BYTES:
        raise ValueError(f"counter key is longer than DynamoDB's {MAX_KEY_BYTES} bytes")
    return key


def check_amount(amount: object) -> int:
    """An amount is a positive int of at most 38 digits (``bool`` is refused, not read as 0/1).

    Zero and negative amounts are refused: an increment by 0 is a write that changes nothing, and
    a negative increment is a decrement without its floor; use ``decrement()`` to subtract.
    """
    amount = whole(amount, "amount")
    if amount < 1:
        raise ValueError(f"amount must be >= 1, got {amount} (use decrement() to subtract)")
    if amount > MAX_NUMBER:
        raise ValueError("amount has more than the 38 digits a DynamoDB number holds")
    return amount


def check_floor(floor: object, amount: int) -> int | None:
    """A floor is ``None`` or an int such that ``floor + amount`` fits in a DynamoDB number."""
    if floor is None:
        return None
    floor = whole(floor, "floor", what="an int or None")
    if abs(floor) > MAX_NUMBER or abs(floor + amount) > MAX_NUMBER:
        raise ValueError("floor is beyond the 38 digits a DynamoDB number holds")
    return floor


def _key(key_attribute: str, key: str) -> dict[str, Any]:
    return {key_attribute: {"S": key}}


def update(
    table: str,
    key_attribute: str,
    value_attribute: str,
    key: str,
    delta: int,
    *,
    floor: int | None = None,
) -> dict[str, Any]:
    """UpdateItem adding ``delta`` (negative to subtract), returning the new value.

    With a ``floor`` the write is conditional on the result staying ``>= floor``; a counter never
    written counts as 0, so a missing attribute passes only when ``0 + delta >= floor``. On refusal
    DynamoDB returns the current item (``ALL_OLD``) where it supports it, saving a read.
    """
    params: dict[str, Any] = {
        "TableName": table,
        "Key": _key(key_attribute, key),
        "UpdateExpression": "ADD #v :n",
        "ExpressionAttributeNames": {"#v": value_attribute},
        "ExpressionAttributeValues": {":n": {"N": str(delta)}},
        "ReturnValues": "UPDATED_NEW",
        "ReturnConsumedCapacity": CONSUMED,
    }
    if floor is not None:
        params["ConditionExpression"] = _floor_condition(
            delta, floor, params["ExpressionAttributeValues"]
        )
        params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return params


def adder(
    table: str, key_attribute: str, value_attribute: str
) -> Callable[[str, int], dict[str, Any]]:
    """`update` without a floor, for one table: the per-pool hot path of plain writes.

    The parts every request shares are built once (and never mutated by a transport).

    >>> add = adder("t", "pk", "count")
    >>> add("views", 5) == update("t", "pk", "count", "views", 5)
    True
    """
    names = {"#v": value_attribute}

    def add(key: str, delta: int) -> dict[str, Any]:
        return {
            "TableName": table,
            "Key": {key_attribute: {"S": key}},
            "UpdateExpression": "ADD #v :n",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":n": {"N": str(delta)}},
            "ReturnValues": "UPDATED_NEW",
            "ReturnConsumedCapacity": CONSUMED,
        }

    return add


def _floor_condition(delta: int, floor: int, values: dict[str, Any]) -> str:
    """The condition keeping ``value + delta >= floor``, i.e. ``value >= floor - delta``; a
    missing counter counts as 0, so it passes when ``delta >= floor``. Adds ``:min`` to values."""
    values[":min"] = {"N": str(floor - delta)}
    if delta >= floor:
        return "attribute_not_exists(#v) OR #v >= :min"
    return "#v >= :min"


def get_item(table: str, key_attribute: str, value_attribute: str, key: str) -> dict[str, Any]:
    """A strongly consistent GetItem of the counter's value only."""
    return {
        "TableName": table,
        "Key": _key(key_attribute, key),
        "ConsistentRead": True,
        "ProjectionExpression": "#v",
        "ExpressionAttributeNames": {"#v": value_attribute},
        "ReturnConsumedCapacity": CONSUMED,
    }


def batch_get(
    table: str, key_attribute: str, value_attribute: str, keys: Sequence[str]
) -> dict[str, Any]:
    """A strongly consistent BatchGetItem of up to `MAX_BATCH_GET` keys and their values."""
    if len(keys) > MAX_BATCH_GET:
        raise ValueError(f"BatchGetItem takes at most {MAX_BATCH_GET} keys")
    return {
        "RequestItems": {
            table: {
                "Keys": [_key(key_attribute, key) for key in keys],
                "ConsistentRead": True,
                "ProjectionExpression": "#k, #v, #ns, #ls",
                "ExpressionAttributeNames": {
                    "#k": key_attribute,
                    "#v": value_attribute,
                    "#ns": SHARDS_ATTRIBUTE,
                    "#ls": LEGACY_SHARDS_ATTRIBUTE,
                },
            }
        },
        "ReturnConsumedCapacity": CONSUMED,
    }


def create_table(table: str, key_attribute: str) -> dict[str, Any]:
    """CreateTable with a string partition key and on-demand capacity."""
    return {
        "TableName": table,
        "AttributeDefinitions": [{"AttributeName": key_attribute, "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": key_attribute, "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


def parse_number(item: Mapping[str, Any] | None, attribute: str) -> int:
    """The integer in ``item[attribute]`` (DynamoDB JSON); 0 when the item or attribute is missing.

    Raises `ValueError` when the attribute is not a whole number (someone else wrote it).
    """
    if not item or attribute not in item:
        return 0
    value = item[attribute]
    text = value.get("N") if isinstance(value, Mapping) else None
    if not isinstance(text, str):
        raise ValueError(f"attribute {attribute!r} is not a number: {value!r}")
    try:
        return int(text)
    except ValueError:
        number = Decimal(text)
        if number != number.to_integral_value():
            raise ValueError(f"attribute {attribute!r} is not a whole number: {text}") from None
        return int(number)


def update_once(
    table: str,
    key_attribute: str,
    value_attribute: str,
    key: str,
    delta: int,
    *,
    writer: tuple[str, str],
    seq: int,
    floor: int | None = None,
    return_all: bool = False,
) -> dict[str, Any]:
    """An exactly-once UpdateItem: applies only if this writer's sequence on the item is older.

    ``writer`` names the item's two attributes of this writer: the last sequence it applied and
    the counter's value right after that write (both set in the same update, so that a retry that
    finds its sequence applied also finds its answer). SET evaluates every operand on the item as
    it was, so ``if_not_exists(#v, :zero) + :n`` is the new value in both places.
    """
    seq_attribute, value_after_attribute = writer
    condition = "(attribute_not_exists(#ws) OR #ws < :seq)"
    params: dict[str, Any] = {
        "TableName": table,
        "Key": _key(key_attribute, key),
        "UpdateExpression": (
            "SET #v = if_not_exists(#v, :zero) + :n, "
            "#wv = if_not_exists(#v, :zero) + :n, #ws = :seq"
        ),
        "ExpressionAttributeNames": {
            "#v": value_attribute,
            "#ws": seq_attribute,
            "#wv": value_after_attribute,
        },
        "ExpressionAttributeValues": {
            ":n": {"N": str(delta)},
            ":zero": {"N": "0"},
            ":seq": {"N": str(seq)},
        },
        "ReturnValues": "ALL_NEW" if return_all else "UPDATED_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        "ReturnConsumedCapacity": CONSUMED,
    }
    if floor is not None:
        floored = _floor_condition(delta, floor, params["ExpressionAttributeValues"])
        condition += f" AND ({floored})"
    params["ConditionExpression"] = condition
    return params


def get_attributes(
    table: str, key_attribute: str, key: str, attributes: Sequence[str]
) -> dict[str, Any]:
    """A strongly consistent GetItem of the named attributes only."""
    names = {f"#a{i}": name for i, name in enumerate(attributes)}
    return {
        "TableName": table,
        "Key": _key(key_attribute, key),
        "ConsistentRead": True,
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
        "ReturnConsumedCapacity": CONSUMED,
    }


def prune_writers(
    table: str, key_attribute: str, key: str, stale: Mapping[str, tuple[str, int]]
) -> dict[str, Any]:
    """UpdateItem removing stale writers' attributes, each only if its sequence is unchanged.

    ``stale`` maps a writer's sequence attribute to ``(its value attribute, the sequence seen)``.
    """
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    removed: list[str] = []
    conditions: list[str] = []
    for i, (seq_attribute, (value_attribute, seq)) in enumerate(stale.items()):
        names[f"#s{i}"] = seq_attribute
        names[f"#w{i}"] = value_attribute
        values[f":s{i}"] = {"N": str(seq)}
        removed += [f"#s{i}", f"#w{i}"]
        conditions.append(f"#s{i} = :s{i}")
    return {
        "TableName": table,
        "Key": _key(key_attribute, key),
        "UpdateExpression": "REMOVE " + ", ".join(removed),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnConsumedCapacity": CONSUMED,
    }

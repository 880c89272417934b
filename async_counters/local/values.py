"""DynamoDB attribute values as they travel (``{"N": "5"}``): numbers, comparison, sizes.

The memory backend keeps items in this wire form, so nothing is converted on the way in or out;
numbers are parsed to `Decimal` only when arithmetic or comparison needs them.
"""

from __future__ import annotations

import base64
import binascii
import decimal
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

#: DynamoDB numbers: 38 significant digits, magnitudes from 1E-130 to 9.99...E+125.
MAX_DIGITS: Final = 38
MAX_MAGNITUDE: Final = Decimal("9.9999999999999999999999999999999999999E+125")
MIN_MAGNITUDE: Final = Decimal("1E-130")
#: Wide enough that sums of two valid numbers are exact; the result is checked afterwards.
_CONTEXT: Final = decimal.Context(
    prec=300, Emax=999999, Emin=-999999, traps=[decimal.InvalidOperation]
)

SCALAR_TYPES: Final = frozenset({"S", "N", "B"})
SET_TYPES: Final = frozenset({"SS", "NS", "BS"})
ALL_TYPES: Final = frozenset({"S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"})
#: How DynamoDB names types in its messages.
TYPE_NAMES: Final = {
    "S": "STRING",
    "N": "NUMBER",
    "B": "BINARY",
    "BOOL": "BOOLEAN",
    "NULL": "NULL",
    "L": "LIST",
    "M": "MAP",
    "SS": "STRING_SET",
    "NS": "NUMBER_SET",
    "BS": "BINARY_SET",
}

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]


class InvalidValue(Exception):
    """A value DynamoDB would refuse; the message is DynamoDB's."""


def type_of(value: Mapping[str, Any]) -> str:
    """The single type tag of an attribute value (``"S"``, ``"N"``, ...)."""
    for tag in value:
        return tag
    raise InvalidValue(
        "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
    )


def parse_number(text: Any) -> Decimal:
    """A DynamoDB number from its string form, refused as DynamoDB refuses it."""
    refusal = "The parameter cannot be converted to a numeric value"
    if not isinstance(text, str):
        raise InvalidValue(refusal)
    if not text:
        raise InvalidValue(refusal)
    try:
        number = _CONTEXT.create_decimal(text)
    except decimal.InvalidOperation:
        raise InvalidValue(f"{refusal}: {text}") from None
    if not number.is_finite():
        raise InvalidValue(f"{refusal}: {text}")
    return check_number(number)


def check_number(number: Decimal) -> Decimal:
    """``number`` if DynamoDB can store it, else DynamoDB's error."""
    if number.is_zero():
        return Decimal(0)
    digits = len(number.as_tuple().digits)
    adjusted = number.adjusted()
    if digits <= MAX_DIGITS and -130 <= adjusted <= 124:
        return number  # the common case, decided without normalizing
    magnitude = number.copy_abs()  # exact: abs() would round to the default 28 digits
    if magnitude > MAX_MAGNITUDE:
        raise InvalidValue(
            "Number overflow. Attempting to store a number with magnitude larger than supported "
            "range"
        )
    if magnitude < MIN_MAGNITUDE:
        raise InvalidValue(
            "Number underflow. Attempting to store a number with magnitude smaller than supported "
            "range"
        )
    if len(number.normalize(_CONTEXT).as_tuple().digits) > MAX_DIGITS:
        raise InvalidValue("Attempting to store more than 38 significant digits in a Number")
    return number


def format_number(number: Decimal) -> str:
    """DynamoDB's canonical text for a number: no exponent, no trailing zeros, no ``-0``."""
    if number.is_zero():
        return "0"
    return format(number.normalize(_CONTEXT), "f")


def add_numbers(left: Decimal, right: Decimal) -> Decimal:
    return check_number(_CONTEXT.add(left, right))


def subtract_numbers(left: Decimal, right: Decimal) -> Decimal:
    return check_number(_CONTEXT.subtract(left, right))


def number_value(value: Mapping[str, Any]) -> Decimal:
    """The number held by an ``{"N": ...}`` value."""
    return parse_number(value["N"])


def canonical(value: AttributeValue) -> AttributeValue:
    """The value as DynamoDB stores it: numbers canonical, sets without duplicates."""
    tag = type_of(value)
    inner = value[tag]
    if tag == "N":
        return {"N": format_number(parse_number(inner))}
    if tag == "NS":
        seen: dict[Decimal, str] = {}
        for text in inner:
            number = parse_number(text)
            seen.setdefault(number, format_number(number))
        return {"NS": list(seen.values())}
    if tag in ("SS", "BS"):
        return {tag: list(dict.fromkeys(inner))}
    if tag == "L":
        return {"L": [canonical(element) for element in inner]}
    if tag == "M":
        return {"M": {name: canonical(element) for name, element in inner.items()}}
    return {tag: inner}


def validate(value: Any, *, where: str = "") -> None:
    """Refuse a malformed attribute value with DynamoDB's message."""
    if not isinstance(value, dict) or len(value) != 1:
        raise InvalidValue(
            "Supplied AttributeValue has more than one datatypes set, must contain exactly one of "
            "the supported datatypes"
            if isinstance(value, dict) and len(value) > 1
            else "Supplied AttributeValue is empty, must contain exactly one of the supported "
            "datatypes"
        )
    tag, inner = next(iter(value.items()))
    if tag not in ALL_TYPES:
        raise InvalidValue(
            "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
        )
    if tag == "S" and not isinstance(inner, str):
        raise InvalidValue("Supplied AttributeValue has an invalid string")
    if tag == "N":
        parse_number(inner)
    elif tag == "B":
        decode_binary(inner)
    elif tag == "BOOL" and not isinstance(inner, bool):
        raise InvalidValue("Supplied AttributeValue has an invalid boolean")
    elif tag == "NULL" and inner is not True:
        raise InvalidValue(
            "One or more parameter values were invalid: Null attribute value types must have the "
            "value of true"
        )
    elif tag in SET_TYPES:
        if not isinstance(inner, list) or not inner:
            kind = {"SS": "string", "NS": "number", "BS": "binary"}[tag]
            raise InvalidValue(
                f"One or more parameter values were invalid: An {kind} set  may not be empty"
            )
        for element in inner:
            validate({tag[0]: element})
        if len(set(map(str, inner))) != len(inner) and tag != "NS":
            raise InvalidValue(
                "One or more parameter values were invalid: Input collection contains duplicates"
            )
    elif tag == "L":
        for element in inner:
            validate(element)
    elif tag == "M":
        for element in inner.values():
            validate(element)


def decode_binary(text: Any) -> bytes:
    if not isinstance(text, str):
        raise InvalidValue("Supplied AttributeValue has an invalid binary")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue("Supplied AttributeValue has an invalid binary") from None


def compare(left: Mapping[str, Any], right: Mapping[str, Any]) -> int | None:
    """-1, 0 or 1 for two values DynamoDB can order (same scalar type), else None."""
    tag = type_of(left)
    if tag != type_of(right) or tag not in SCALAR_TYPES:
        return None
    a: Any
    b: Any
    if tag == "N":
        a, b = number_value(left), number_value(right)
    elif tag == "S":
        a, b = left["S"].encode(), right["S"].encode()
    else:
        a, b = decode_binary(left["B"]), decode_binary(right["B"])
    return int(a > b) - int(a < b)


def equal(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    """DynamoDB equality: same type and same value (numbers by value, sets as sets)."""
    tag = type_of(left)
    if tag != type_of(right):
        return False
    if tag in SCALAR_TYPES:
        return compare(left, right) == 0
    if tag == "NS":
        return {number_value({"N": x}) for x in left[tag]} == {
            number_value({"N": x}) for x in right[tag]
        }
    if tag in ("SS", "BS"):
        return set(left[tag]) == set(right[tag])
    if tag == "L":
        return len(left["L"]) == len(right["L"]) and all(
            equal(a, b) for a, b in zip(left["L"], right["L"], strict=True)
        )
    if tag == "M":
        return left["M"].keys() == right["M"].keys() and all(
            equal(value, right["M"][name]) for name, value in left["M"].items()
        )
    return bool(left[tag] == right[tag])


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes a value counts for in DynamoDB's item size."""
    tag = type_of(value)
    inner = value[tag]
    if tag == "S":
        return len(inner.encode())
    if tag == "N":
        return _number_size(inner)
    if tag == "B":
        return len(decode_binary(inner))
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "SS":
        return sum(len(s.encode()) for s in inner)
    if tag == "NS":
        return sum(_number_size(n) for n in inner)
    if tag == "BS":
        return sum(len(decode_binary(b)) for b in inner)
    if tag == "L":
        return 3 + sum(1 + value_size(element) for element in inner)
    return 3 + sum(1 + len(name.encode()) + value_size(element) for name, element in inner.items())


def _number_size(text: str) -> int:
    if "e" in text or "E" in text:
        digits = len(parse_number(text).normalize(_CONTEXT).as_tuple().digits)
    else:
        # A plain decimal's significant digits: no sign, point, leading or trailing zeros.
        digits = max(1, len(text.lstrip("+-").replace(".", "").strip("0")))
    return (digits + 1) // 2 + 1


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes an item counts for: attribute names and values."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())

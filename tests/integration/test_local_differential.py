"""The memory backend against references: one corpus of requests sent over HTTP to each.

Where a reference is known to answer differently from DynamoDB itself, the case is listed with
the reason; where every reference is off, the memory backend is held to DynamoDB's own answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from async_counters.local import LocalDynamo, wire
from tests.integration.dynamo_corpus import CORPUS, C, T
from tests.integration.local_fixtures import dynalite_package, dynalite_url

__all__ = ["dynalite_package", "dynalite_url"]  # fixtures, imported for pytest

HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Date": "20250101T000000Z",
    "Authorization": "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/dynamodb/aws4_request,"
    " SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0",
}
KEY_ATTRIBUTES = ("pk", "sk")
SETTLE_POLLS = 200
SETTLE_INTERVAL = 0.02

_CRASH = "moto crashes on this request (answered as a ValidationException naming moto)"
_NO_ITEM_ON_FAILURE = "dynalite ignores ReturnValuesOnConditionCheckFailure"
_NO_TOKEN = "moto ignores ClientRequestToken: it applies a retry again (DynamoDB answers it again)"
_NO_TRANSACTIONS = "dynalite has no TransactWriteItems: what the transactions wrote is missing"
#: Operations a reference does not have at all: it must answer UnknownOperationException.
UNSUPPORTED: dict[str, frozenset[str]] = {
    "moto": frozenset(),
    "dynalite": frozenset({"TransactWriteItems", "UpdateTimeToLive"}),
}
KNOWN: dict[str, dict[str, str]] = {
    "moto": {
        "create on-demand with throughput": "moto words this refusal its own way",
        "add zero": "moto's UPDATED_NEW leaves out an attribute whose value did not change",
        "an undefined name placeholder": _CRASH,
        "an undefined value placeholder": "moto reports the unused value before the undefined one",
        "a name key without #": "moto does not check the syntax of placeholder names",
        "add a string": "moto refuses a string ADD only when applying it, with another message",
        "not a number": _CRASH,
        "too many digits": "moto stores numbers of more than 38 digits",
        "condition attribute_exists(#w)": _CRASH,
        "condition #v = #v": "moto does not refuse a comparison of an operand with itself",
        "condition #v >": _CRASH,
        "condition #v < :big AND": _CRASH,
        "condition nosuch(#v)": _CRASH,
        "a condition name placeholder that is never defined": _CRASH,
        "a condition that uses a reserved word": _CRASH,
        "ReturnValues FOO": "moto words this refusal its own way",
        "a key with the wrong type": "moto uses PutItem's wording for GetItem/UpdateItem keys",
        "an empty string key": "moto accepts an empty string as a key",
        "a composite key without its range part": "moto answers a generic 'Validation Exception'",
        "an update without an expression creates the item": _CRASH,
        "delete it again": "moto leaves the table name out of this message",
        "get the number written 1.50": "moto keeps a number's text as sent, not canonical",
        "put returning ALL_NEW": "moto words this refusal its own way",
        "put with values but no condition": "moto accepts values no expression uses",
        "get the counter after the replay": _NO_TOKEN,
        "the same token for other items": _NO_TOKEN,
        "transact nothing": "moto accepts an empty transaction",
        "transact 101 items": "moto words this refusal its own way",
        "transact an add to a string": "moto refuses the whole request; DynamoDB cancels the "
        "transaction with a ValidationError reason for the action (a validation error caused by "
        "the transaction's changes)",
        "enable time to live again": "moto does not refuse turning TTL on twice",
    },
    "dynalite": {
        "create it again": "dynalite sends this error without a message",
        "add a string": "dynalite uses an older wording, without the typeSet",
        "the same sequence again (a duplicate)": _NO_ITEM_ON_FAILURE,
        "decrement with a floor (2)": _NO_ITEM_ON_FAILURE,
        "put only if absent": _NO_ITEM_ON_FAILURE,
        "an empty update expression": "dynalite reports an empty expression as a syntax error",
        "an empty string key": "dynalite uses an older wording",
        "batch get of too many keys": "dynalite quotes the whole value in its message",
        "get a transacted counter": _NO_TRANSACTIONS,
        "get after the cancelled transaction": _NO_TRANSACTIONS,
        "get the transacted put": _NO_TRANSACTIONS,
        "get the transacted delete": _NO_TRANSACTIONS,
        "get the counter after the replay": _NO_TRANSACTIONS,
        "describe time to live, on": "dynalite always describes TTL as DISABLED",
    },
}
#: DynamoDB's own answers, where no reference gives them: (status, code, message).
DYNAMODB_ANSWERS: dict[str, tuple[int, str, str]] = {
    "add a string": (
        400,
        "ValidationException",
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
        "ADD, operand type: STRING, typeSet: ALLOWED_FOR_ADD_OPERAND",
    ),
    "an empty string key": (
        400,
        "ValidationException",
        "One or more parameter values are not valid. The AttributeValue for a key attribute "
        "cannot contain an empty string value. Key: pk",
    ),
    "delete it again": (
        400,
        "ResourceNotFoundException",
        "Requested resource not found: Table: corpus-composite not found",
    ),
    "enable time to live again": (400, "ValidationException", "TimeToLive is already enabled"),
}
#: DynamoDB's documented behaviour where no reference shows it: (status, body, the source).
DYNAMODB_RESULTS: dict[str, tuple[int, dict[str, Any], str]] = {
    # "multiple identical calls have the same effect as one single call" (TransactWriteItems).
    "get the counter after the replay": (
        200,
        {"Item": {"pk": {"S": "tx4"}, "count": {"N": "1"}}},
        "ClientRequestToken",
    ),
    # "same client token but a change in other parameters ... IdempotentParameterMismatch";
    # the message is not documented, so only the code is held.
    "the same token for other items": (
        400,
        {"__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException"},
        "ClientRequestToken",
    ),
    # TransactItems: "Array Members: Minimum number of 1 item. Maximum number of 100 items."
    # (the wording of the refusal is not documented: only the code is held).
    "transact nothing": (400, {"__type": wire.VALIDATION}, "TransactItems"),
    "transact 101 items": (400, {"__type": wire.VALIDATION}, "TransactItems"),
    # "a similar validation error occurs because of changes made by the transaction": the
    # transaction is cancelled, the action's reason is ValidationError.
    "transact an add to a string": (
        400,
        {
            "__type": wire.TRANSACTION_CANCELED,
            "CancellationReasons": [
                {
                    "Code": "ValidationError",
                    "Message": "An operand in the update expression has an incorrect data type",
                }
            ],
        },
        "TransactionCanceledException",
    ),
}
# ItemCount and TableSizeBytes are left out: DynamoDB refreshes them about every six hours.
_TABLE_FIELDS = ("TableName", "KeySchema", "AttributeDefinitions")


async def post(
    session: aiohttp.ClientSession, url: str, operation: str, payload: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    headers = {**HEADERS, "X-Amz-Target": f"DynamoDB_20120810.{operation}"}
    async with session.post(url, data=json.dumps(payload), headers=headers) as response:
        raw = await response.read()
        return response.status, json.loads(raw) if raw else {}


async def settle(session: aiohttp.ClientSession, url: str, table: str) -> None:
    """Wait out a table's CREATING or DELETING state (dynalite has them; DynamoDB too)."""
    for _ in range(SETTLE_POLLS):
        status, body = await post(session, url, "DescribeTable", {"TableName": table})
        if status != 200 or body["Table"]["TableStatus"] == "ACTIVE":
            return
        await asyncio.sleep(SETTLE_INTERVAL)
    raise AssertionError(f"{table} did not settle")


async def send_corpus(endpoint_url: str) -> list[tuple[int, dict[str, Any]]]:
    answers = []
    async with aiohttp.ClientSession() as session:
        for _, operation, payload in CORPUS:
            status, body = await post(session, endpoint_url, operation, payload)
            answers.append((status, body))
            if operation in ("CreateTable", "DeleteTable") and status == 200:
                await settle(session, endpoint_url, payload["TableName"])
    return answers


def normalize(
    reference: str, operation: str, payload: dict[str, Any], status: int, body: dict[str, Any]
) -> dict[str, Any]:
    """What must agree: status, error code and message, or the answer without what emulators
    are known to fill in their own way (consumed capacity, table metadata, result order)."""
    if "__type" in body:
        # A few errors spell it Message (TransactionCanceledException among them).
        message = str(body.get("message", body.get("Message", "")))
        if reference == "moto":
            # moto prefixes some messages; DynamoDB and dynalite do not.
            message = message.removeprefix("1 validation error detected: ")
        if "Syntax error;" in message:
            # Each emulator words the token and position of a syntax error differently.
            message = message[: message.index("Syntax error;") + len("Syntax error;")]
        if operation == "NoSuchOperation":
            message = ""
        extra = {k: v for k, v in body.items() if k not in ("__type", "message", "Message")}
        return {
            "status": status,
            "code": body["__type"].split("#")[-1],
            "message": message,
            **extra,
        }
    answer = {k: v for k, v in body.items() if k != "ConsumedCapacity"}
    if answer.get("ItemCollectionMetrics") == {}:
        # moto sends an empty ItemCollectionMetrics that DynamoDB leaves out.
        del answer["ItemCollectionMetrics"]
    for field in ("Table", "TableDescription"):
        if field in answer:
            answer[field] = {k: answer[field].get(k) for k in _TABLE_FIELDS}
    if reference == "moto" and payload.get("ReturnValues") == "UPDATED_NEW":
        # moto adds the key attributes to UPDATED_NEW when the update creates the item.
        attributes = answer.get("Attributes", {})
        answer["Attributes"] = {k: v for k, v in attributes.items() if k not in KEY_ATTRIBUTES}
    if "Responses" in answer:
        answer["Responses"] = {
            table: sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
            for table, items in answer["Responses"].items()
        }
    return {"status": status, **answer}


@pytest.fixture(scope="module")
def fast_answers() -> list[tuple[int, dict[str, Any]]]:
    with LocalDynamo(backend="memory") as server:
        return asyncio.run(send_corpus(server.endpoint_url))


def compare(
    reference: str,
    fast: list[tuple[int, dict[str, Any]]],
    other: list[tuple[int, dict[str, Any]]],
) -> list[str]:
    differences = []
    for (label, operation, payload), (fs, fb), (rs, rb) in zip(CORPUS, fast, other, strict=True):
        if operation in UNSUPPORTED[reference]:
            if rs != 400 or not rb.get("__type", "").endswith("#UnknownOperationException"):
                differences.append(f"{label}: {reference} was expected not to know {operation}")
            continue
        if label in KNOWN[reference]:
            continue
        ours = normalize(reference, operation, payload, fs, fb)
        theirs = normalize(reference, operation, payload, rs, rb)
        if ours != theirs:
            differences.append(f"{label}:\n  fast:   {ours}\n  {reference}: {theirs}")
    return differences


@pytest.mark.parametrize("reference", ["moto", "dynalite"])
async def test_fast_backend_answers_like_the_reference(
    reference: str, request: pytest.FixtureRequest, fast_answers: list[Any]
) -> None:
    if reference == "moto":
        async with LocalDynamo(backend="moto") as server:
            other = await send_corpus(server.endpoint_url)
    else:
        other = await send_corpus(request.getfixturevalue("dynalite_url"))
    differences = compare(reference, fast_answers, other)
    assert not differences, "\n".join(differences)


async def test_fast_backend_gives_dynamodbs_answer_where_no_reference_does(
    fast_answers: list[Any],
) -> None:
    labels = [label for label, _, _ in CORPUS]
    for label, (status, code, message) in DYNAMODB_ANSWERS.items():
        fs, fb = fast_answers[labels.index(label)]
        assert (fs, fb["__type"].split("#")[-1], fb["message"]) == (status, code, message)
    for label, (status, expected, _) in DYNAMODB_RESULTS.items():
        fs, fb = fast_answers[labels.index(label)]
        assert fs == status
        assert {k: fb.get(k) for k in expected} == expected
    unsupported = {
        label
        for label, operation, _ in CORPUS
        if operation in UNSUPPORTED["moto"] | UNSUPPORTED["dynalite"]
    }
    known = {
        ref: set(KNOWN[ref]) | {lbl for lbl in unsupported if ref == "dynalite"} for ref in KNOWN
    }
    known_everywhere = known["moto"] & known["dynalite"]
    assert known_everywhere <= set(DYNAMODB_ANSWERS) | set(DYNAMODB_RESULTS)


def test_the_known_differences_name_real_cases() -> None:
    labels = {label for label, _, _ in CORPUS}
    assert len(labels) == len(CORPUS), "corpus labels must be unique"
    for reference, known in KNOWN.items():
        assert set(known) <= labels, f"{reference}: {set(known) - labels}"
    assert {T, C} == {"corpus", "corpus-composite"}


async def test_fast_backend_never_answers_500(fast_answers: list[Any]) -> None:
    assert all(status in (200, 400) for status, _ in fast_answers)

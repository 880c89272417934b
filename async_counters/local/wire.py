"""What goes on the wire: DynamoDB's JSON 1.0 error bodies, content type and checksums.

Every body this server sends, its own or one it forwards, passes through `response_headers`, so
the ``x-amz-crc32`` header always matches the bytes sent (botocore re-sends a write whose
checksum does not match, and the write was already applied).
"""

from __future__ import annotations

import json
import secrets
import zlib
from typing import Any, Final

CONTENT_TYPE: Final = "application/x-amz-json-1.0"
TARGET_PREFIX: Final = "DynamoDB_20120810."

DYNAMODB: Final = "com.amazonaws.dynamodb.v20120810#"
VALIDATION: Final = "com.amazon.coral.validate#ValidationException"
UNKNOWN_OPERATION: Final = "com.amazon.coral.service#UnknownOperationException"
SERIALIZATION: Final = "com.amazon.coral.service#SerializationException"
INTERNAL_SERVER_ERROR: Final = DYNAMODB + "InternalServerError"
RESOURCE_NOT_FOUND: Final = DYNAMODB + "ResourceNotFoundException"
RESOURCE_IN_USE: Final = DYNAMODB + "ResourceInUseException"
CONDITIONAL_CHECK_FAILED: Final = DYNAMODB + "ConditionalCheckFailedException"
THROUGHPUT_EXCEEDED: Final = DYNAMODB + "ProvisionedThroughputExceededException"
TRANSACTION_CANCELED: Final = DYNAMODB + "TransactionCanceledException"
TRANSACTION_IN_PROGRESS: Final = DYNAMODB + "TransactionInProgressException"
IDEMPOTENT_MISMATCH: Final = DYNAMODB + "IdempotentParameterMismatchException"


def dumps(payload: Any) -> bytes:
    """Compact JSON, as DynamoDB sends it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def error_body(type_: str, message: str, *, message_key: str = "message", **extra: Any) -> bytes:
    """A JSON 1.0 error body: ``{"__type": ..., "message": ..., **extra}`` (DynamoDB spells the
    message ``Message`` in a few errors, `TransactionCanceledException` among them)."""
    return dumps({"__type": type_, message_key: message, **extra})


def cancellation_message(codes: list[str]) -> str:
    """The message of a TransactionCanceledException, naming each action's reason code."""
    return (
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        f"[{', '.join(codes)}]"
    )


def crc32(body: bytes) -> str:
    """The value of ``x-amz-crc32`` for a body: its CRC32 as an unsigned decimal."""
    return str(zlib.crc32(body))


def request_id() -> str:
    """A fresh request id in the shape DynamoDB uses (52 upper-case letters and digits)."""
    return secrets.token_hex(26).upper()


def response_headers(body: bytes) -> dict[str, str]:
    """Headers for a DynamoDB response carrying exactly these bytes."""
    return {
        "Content-Type": CONTENT_TYPE,
        "x-amzn-RequestId": request_id(),
        "x-amz-crc32": crc32(body),
    }

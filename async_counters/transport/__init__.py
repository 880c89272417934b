"""How a request reaches DynamoDB: one small interface, and the outcomes a request can end in.

A transport takes an operation name and its parameters in DynamoDB's JSON wire shape
(``{"TableName": ..., "Key": {"pk": {"S": "a"}}, ...}``, which is also botocore's low-level
parameter shape), and either returns the response body as a dict or raises `TransportError` whose
``outcome`` says what the caller may assume about the request. Mapping service codes to outcomes is
done here, with one table, so that every transport classifies alike.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from async_counters.redact import redact

__all__ = [
    "Outcome",
    "Transport",
    "TransportError",
    "is_loopback",
    "is_loopback_url",
    "outcome_for_code",
]


class Outcome(enum.Enum):
    """How one request (or one whole operation) ended."""

    ACKNOWLEDGED = "acknowledged"  # applied, answered
    CONDITION_FAILED = "condition_failed"  # refused by its condition; not applied
    THROTTLED = "throttled"  # refused for capacity; not applied; safe to retry
    CONFLICT = "conflict"  # refused: a transaction or replicated write on the item; not applied
    UNREACHABLE = "unreachable"  # nothing was sent (connect failed); safe to retry
    AMBIGUOUS = "ambiguous"  # sent, no trustworthy answer: may or may not have applied
    TABLE_NOT_FOUND = "table_not_found"  # refused; not applied
    REJECTED = "rejected"  # any other refusal (validation, access...); not applied
    CANCELLED = "cancelled"  # the caller gave up before anything was sent; not applied


class TransportError(Exception):
    """A request did not succeed; ``outcome`` says what is known about it.

    ``item`` carries the current item that DynamoDB returns inside a failed conditional write when
    ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` was asked (None where the server ignores it).
    ``reasons`` names a throttle's limits (``ThrottlingReasons``): ``...KeyRangeThroughputExceeded``
    is a hot partition, the others a table's, an index's or the account's limit.
    ``code`` and ``message`` come from the service: credentials quoted in them are redacted here,
    where every transport's errors are made (`async_counters.redact`).
    """

    def __init__(
        self,
        outcome: Outcome,
        code: str,
        message: str = "",
        *,
        status: int | None = None,
        item: Mapping[str, Any] | None = None,
        reasons: tuple[str, ...] = (),
    ) -> None:
        code, message = redact(code), redact(message)
        super().__init__(f"{code}: {message}" if message else code)
        self.outcome = outcome
        self.code = code
        self.message = message
        self.status = status
        self.item = item
        self.reasons = reasons  # a throttle's ``ThrottlingReasons`` (``reason`` of each), if sent


class Transport(Protocol):
    """Sends one DynamoDB operation; the pool owns a transport it built, not one it was given."""

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Send ``operation`` (e.g. ``"UpdateItem"``); return the parsed response body."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


# DynamoDB error codes, by what they mean for the request; the retry decision follows from the
# outcome (`async_counters.retry.is_retryable`). Codes not listed are REJECTED when the HTTP
# status is 4xx, and AMBIGUOUS when it is 5xx: a server error may have applied a write.
_CODE_OUTCOMES: dict[str, Outcome] = {
    "ProvisionedThroughputExceededException": Outcome.THROTTLED,
    "ThrottlingException": Outcome.THROTTLED,
    "RequestLimitExceeded": Outcome.THROTTLED,
    # The item is being written by a transaction, or (multi-region strong consistency) by another
    # region: this write was refused, not applied; retried like throttling.
    "TransactionConflictException": Outcome.CONFLICT,
    "ReplicatedWriteConflictException": Outcome.CONFLICT,
    "ConditionalCheckFailedException": Outcome.CONDITION_FAILED,
    "ResourceNotFoundException": Outcome.TABLE_NOT_FOUND,
    "InternalServerError": Outcome.AMBIGUOUS,
    "InternalFailure": Outcome.AMBIGUOUS,
    "ServiceUnavailable": Outcome.AMBIGUOUS,
    "ServiceUnavailableException": Outcome.AMBIGUOUS,
}


def outcome_for_code(code: str, status: int | None) -> Outcome:
    """Classify a service error by its code (the part after ``#`` in ``__type``) and status."""
    outcome = _CODE_OUTCOMES.get(code)
    if outcome is not None:
        return outcome
    if status is not None and status >= 500:
        return Outcome.AMBIGUOUS
    return Outcome.REJECTED


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any address in 127.0.0.0/8 or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (a local server, which needs no real credentials)."""
    return is_loopback(urlsplit(url).hostname or "")

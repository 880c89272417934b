"""The interface between the embedded server's front and whatever applies a request.

A backend gets each DynamoDB call the front lets through and answers it. The in-process backends
(moto, memory) answer without ever suspending, so on the server's single event loop each request is
applied whole before the next one starts: that is what makes increments atomic. An upstream is as
atomic as the endpoint behind it. The backends themselves live in their own modules (`moto`,
`memory`, `upstream`, `dynalite`); `make_backend` in `choice` picks one by name.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from async_counters.local import wire

#: moto's default account, so ARNs read as they do under moto everywhere else.
ACCOUNT_ID: Final = "123456789012"


@dataclass(slots=True)
class Call:
    """One DynamoDB request as received: the operation, the raw body and headers, and the
    body decoded as JSON when the front needed to look inside (``None`` otherwise)."""

    operation: str
    body: bytes
    headers: Mapping[str, str]
    payload: dict[str, Any] | None = None

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (decoded once); raises ValueError if it is not one."""
        if self.payload is None:
            payload = json.loads(self.body) if self.body else {}
            if not isinstance(payload, dict):
                raise ValueError("the request body is not a JSON object")
            self.payload = payload
        return self.payload


@dataclass(slots=True)
class Reply:
    """A DynamoDB answer: HTTP status and body bytes (headers are the front's business).

    A backend that knows more says so: ``replayed`` when the answer repeats an earlier one and
    nothing was applied (an idempotent `TransactWriteItems` retry), and ``units``, the capacity
    units each item of the request consumed, in the request's order (its keys, its actions).
    """

    status: int
    body: bytes
    replayed: bool = False
    units: tuple[float, ...] | None = None

    @classmethod
    def error(
        cls, status: int, type_: str, message: str, *, message_key: str = "message", **extra: Any
    ) -> Reply:
        return cls(status, wire.error_body(type_, message, message_key=message_key, **extra))


class Backend(abc.ABC):
    """The interface between the front and whatever holds the tables."""

    #: Whether `handle` answers without suspending (and so applies requests one at a time).
    in_process: bool = True

    async def open(self) -> None:  # noqa: B027  (optional hook: most backends hold nothing)
        """Acquire resources; called once on the server's event loop before the first request."""

    async def aclose(self) -> None:  # noqa: B027  (optional hook)
        """Release resources; called once on the server's event loop after the last request."""

    @abc.abstractmethod
    async def handle(self, call: Call) -> Reply:
        """Answer one call."""

    def item_size(self, table: str, key: Mapping[str, Any]) -> int | None:
        """The stored item's size in bytes as DynamoDB counts it, if this backend can tell."""
        return None

    def hash_key(self, table: str) -> str | None:
        """The name of a table's partition key, if this backend can tell."""
        return None

    def sweep(self) -> int | None:
        """Delete now what TTL is due to delete; how many items, or None if this backend never
        deletes expired items."""
        return None

"""What applies a request: moto's DynamoDB model, the fast model, or another endpoint.

A backend gets each DynamoDB call the front lets through and answers it. The in-process backends
(moto, fast) answer without ever suspending, so on the server's single event loop each request is
applied whole before the next one starts: that is what makes increments atomic. An upstream is as
atomic as the endpoint behind it.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from async_counters.local import wire

if TYPE_CHECKING:
    from moto.dynamodb.models import DynamoDBBackend

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
    """A DynamoDB answer: HTTP status and body bytes (headers are the front's business)."""

    status: int
    body: bytes

    @classmethod
    def error(cls, status: int, type_: str, message: str, **extra: Any) -> Reply:
        return cls(status, wire.error_body(type_, message, **extra))


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


class MotoBackend(Backend):
    """moto's DynamoDB model with a table store of its own.

    moto keeps its backends in a process-wide registry keyed by account and region; this one
    builds a private `DynamoDBBackend` and a handler subclass bound to it, so two servers in
    one process never see each other's tables.
    """

    def __init__(self, *, region: str, endpoint: str) -> None:
        # moto is an extra and slow to import: only a server that uses it pays for it.
        from botocore.model import OperationNotFoundError
        from moto.core.request import Request
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.responses import DynamoHandler

        backend: DynamoDBBackend = DynamoDBBackend(region, ACCOUNT_ID)

        class Handler(DynamoHandler):
            @property
            def dynamodb_backend(self) -> DynamoDBBackend:
                return backend

        self._backend = backend
        self._handler_class = Handler
        self._request_class = Request
        self._unknown_operation = (OperationNotFoundError, NotImplementedError)
        self._url = endpoint.rstrip("/") + "/"

    async def handle(self, call: Call) -> Reply:
        # DynamoDB speaks JSON 1.0 only; moto picks its parser by content type.
        headers = {**call.headers, "Content-Type": wire.CONTENT_TYPE}
        request = self._request_class.from_primitives("POST", self._url, headers, call.body)
        try:
            status, _, body = self._handler_class()._dispatch(request)
        except self._unknown_operation:
            return Reply.error(400, wire.UNKNOWN_OPERATION, f"Unknown operation: {call.operation}")
        except Exception as exc:
            # moto crashes on some requests DynamoDB refuses (an undefined placeholder, a
            # malformed number): it applied nothing, so say so instead of an ambiguous 500.
            return Reply.error(
                400, wire.VALIDATION, f"The moto backend failed on this request: {exc!r}"
            )
        return Reply(int(status), body.encode() if isinstance(body, str) else bytes(body))

    def item_size(self, table: str, key: Mapping[str, Any]) -> int | None:
        try:
            found = self._backend.get_table(table)
            item = found.get_item(*_hash_and_range(found, key))
        except Exception:  # a missing table or a malformed key: the request will say so
            return None
        return None if item is None else int(item.size())

    def hash_key(self, table: str) -> str | None:
        try:
            return str(self._backend.get_table(table).hash_key_attr)
        except Exception:  # a missing table: the request will say so
            return None


def _hash_and_range(table: Any, key: Mapping[str, Any]) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return hash_value, range_value


def make_backend(name: str, *, region: str, endpoint: str) -> Backend:
    """The backend a `LocalConfig.backend` names: moto, fast, dynalite or an upstream URL."""
    if name == "moto":
        return MotoBackend(region=region, endpoint=endpoint)
    if name == "fast":
        from async_counters.local.fast import FastBackend

        return FastBackend(region=region)
    if name == "dynalite":
        from async_counters.local.dynalite import DynaliteBackend

        return DynaliteBackend()
    if name.startswith(("http://", "https://")):
        from async_counters.local.upstream import UpstreamBackend

        return UpstreamBackend(name)
    raise ValueError(f"unknown backend {name!r}")

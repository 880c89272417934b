"""moto's DynamoDB model as a backend: fidelity first (FACTS.md: it is exact only when it is
applied one request at a time, which the server's single event loop does)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from async_counters.local import moto_capacity, wire
from async_counters.local.backend import ACCOUNT_ID, Backend, Call, Reply

if TYPE_CHECKING:
    from moto.dynamodb.models import DynamoDBBackend


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
            mode, items = moto_capacity.plan(call.operation, call.json())
        except ValueError:
            mode, items = "NONE", []
        before = moto_capacity.sizes(items, self.item_size)
        try:
            status, _, body = self._handler_class()._dispatch(request)
        except self._unknown_operation:
            return self._unknown(call)
        except Exception as exc:
            # moto crashes on some requests DynamoDB refuses (an undefined placeholder, a
            # malformed number): it applied nothing, so say so instead of an ambiguous 500.
            return Reply.error(
                400, wire.VALIDATION, f"The moto backend failed on this request: {exc!r}"
            )
        code = int(status)
        if code == 404:  # moto 5.2.6 on: no handler; DynamoDB answers no 404
            return self._unknown(call)
        data = body.encode() if isinstance(body, str) else bytes(body)
        if items and code == 200:  # moto's ConsumedCapacity is a constant: say the real one
            after = moto_capacity.sizes(items, self.item_size)
            data = moto_capacity.rewrite(call.operation, data, mode, items, before, after)
        return Reply(code, data)

    @staticmethod
    def _unknown(call: Call) -> Reply:
        return Reply.error(400, wire.UNKNOWN_OPERATION, f"Unknown operation: {call.operation}")

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

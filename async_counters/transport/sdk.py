"""The botocore transport: DynamoDB calls through an aiobotocore client.

botocore's own retries must be off (the pool is the only retry layer; botocore would retry an
``ADD`` after a timeout and count it twice), and its connection pool must be as large as the pool's
in-flight bound (botocore's default of 10 would silently cap it). `client_config` builds that.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from . import Outcome, TransportError, outcome_for_code

__all__ = ["BotocoreTransport", "client_config"]

# Raised before anything is sent (bad parameters, no region, credentials that cannot be had or
# refreshed): the request was refused, not lost.
_REFUSED_UNSENT: tuple[type[BotoCoreError], ...] = (
    ParamValidationError,
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    NoRegionError,
)

_METHODS = {
    "UpdateItem": "update_item",
    "GetItem": "get_item",
    "BatchGetItem": "batch_get_item",
    "CreateTable": "create_table",
    "DescribeTable": "describe_table",
    "DeleteTable": "delete_table",
    "TransactWriteItems": "transact_write_items",
}


def client_config(*, max_in_flight: int, connect_timeout: float, read_timeout: float) -> Any:
    """An `AioConfig` with botocore's retries off and a connection pool of ``max_in_flight``."""
    return AioConfig(
        max_pool_connections=max_in_flight,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


class BotocoreTransport:
    """A `Transport` over an aiobotocore DynamoDB client (which the transport does not close)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        method = getattr(self._client, _METHODS[operation])
        try:
            response: dict[str, Any] = await method(**params)
        except ClientError as exc:
            raise _from_client_error(exc) from None
        except _REFUSED_UNSENT as exc:
            raise TransportError(Outcome.REJECTED, type(exc).__name__, str(exc)) from None
        except BotoCoreError as exc:
            raise _from_connection_error(exc) from None
        response.pop("ResponseMetadata", None)
        return response

    async def aclose(self) -> None:
        """The client belongs to whoever created it; nothing to release here."""


def _from_client_error(exc: ClientError) -> TransportError:
    response = exc.response
    error = response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return TransportError(
        outcome_for_code(code, status),
        code,
        str(error.get("Message", "")),
        status=status,
        item=response.get("Item"),
    )


def _from_connection_error(exc: BotoCoreError) -> TransportError:
    """Tell "nothing was sent" (safe to retry) from "sent, answer lost" (ambiguous).

    aiobotocore maps every aiohttp ``ClientConnectionError`` to ``EndpointConnectionError``,
    including a connection reset while the request was in flight; only a failure to *establish*
    the connection (``ClientConnectorError``, a DNS failure) or a connect timeout proves the request
    never left.
    """
    code = type(exc).__name__
    if isinstance(exc, ConnectTimeoutError):
        return TransportError(Outcome.UNREACHABLE, code, str(exc))
    if isinstance(exc, EndpointConnectionError):
        cause = exc.kwargs.get("error")
        if isinstance(cause, aiohttp.ClientConnectorError | socket.gaierror):
            return TransportError(Outcome.UNREACHABLE, code, str(exc))
    return TransportError(Outcome.AMBIGUOUS, code, str(exc))
